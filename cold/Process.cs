namespace Copra.Cold;

/// <summary>A user process: its handle table, its address space, its threads (counted; the kernel owns the thread objects).</summary>
public sealed class Process
{
    public Process(int pid, string path, Process? parent, int dataSize)
    {
        Pid = pid;
        Path = path;
        Parent = parent;
        Space = new AddressSpace(dataSize);
    }

    public int Pid { get; }
    public string Path { get; }
    public Process? Parent { get; }
    public HandleTable Handles { get; } = new();
    public AddressSpace Space { get; }
    /// <summary>The directory this process's paths are walked from (EXEC's root argument; the filesystem's root for boot processes).</summary>
    public RamFs.Dir? Root { get; init; }

    /// <summary>Live threads; the process exits when it reaches zero or on EXIT.</summary>
    public int LiveThreads;

    public bool Exited { get; private set; }
    public int ExitCode { get; private set; }
    /// <summary>Why the process ended: "exit", "crash: ...", "killed".</summary>
    public string? ExitReason { get; private set; }

    /// <summary>Marks the process dead once; false if it already was.</summary>
    public bool MarkExited(int code, string reason)
    {
        lock (this)
        {
            if (Exited) return false;
            Exited = true; ExitCode = code; ExitReason = reason;
            return true;
        }
    }

    /// <summary>
    /// Releases everything the process held: every handle is closed (so a VM it had open can be
    /// opened again) and every mapping goes away (so its pages may change state).
    /// </summary>
    public void ReleaseAll()
    {
        foreach (var r in Space.UnmapAll()) r.Source!.Unmapped(this, r.SourceOffset, r.Length);
        foreach (var o in Handles.DetachAll()) o.DropHandle(this);
    }

    /// <summary>CLOSE: always succeeds; an unknown handle is a no-op; handle 0 (the console) closes like any other, as upstream's log handle does.</summary>
    public void Close(ulong handle) => Handles.Detach(handle)?.DropHandle(this);

    public override string ToString() => $"{Pid} {Path}";
}
