using Copra.Hot.Exit;

namespace Copra.Kernel.Backends;

public enum StepKind : byte
{
    /// <summary>An exiting access (MMIO or port); the kernel completes it.</summary>
    Access,
    /// <summary>An access read repeatedly until <c>(RAX &amp; PollMask) == PollExpect</c> (the glue test/jz is the guest's).</summary>
    Poll,
    /// <summary>HLT with interrupts enabled: the guest sleeps until an interrupt arrives.</summary>
    WaitIrq,
    /// <summary>HLT with interrupts off: the guest is done.</summary>
    Halt,
    Cpuid,
}

/// <summary>
/// One instruction of a replay guest: where it is, what exit it causes, the registers it needs
/// (set just before the exit, as the guest's non-exiting code would have), and for a loop body how
/// those registers vary per iteration (the address pattern).
/// </summary>
public sealed class Step
{
    public StepKind Kind;
    public ulong Rip;
    public int Length;
    /// <summary>RIP after the step and its glue (the next step's RIP unless a branch goes elsewhere).</summary>
    public ulong Next;
    public ExitReason Reason;
    public ulong Gpa;
    public ushort Port;
    public byte Size;
    public ExitFlags Flags;
    public (int Reg, ulong Value)[] Presets = [];
    /// <summary>Other state the guest's glue set before the step (segment registers, RFLAGS, CR0): state-field ids and
    /// values, written as the hardware would (no TDCALL charged).</summary>
    public (ulong Field, ulong Value)[] StatePresets = [];
    /// <summary>In a loop body: register <see cref="VaryReg"/> = preset + offset(iteration), and the GPA moves with it.</summary>
    public int VaryReg = -1;
    public ulong VaryStride, VarySpan;
    public bool VaryRandom;
    public ulong PollMask, PollExpect;
    /// <summary>After completion, RAX (masked) must equal this, or the replay counts a data mismatch.</summary>
    public ulong? ExpectRax;
    /// <summary>A branch (CALL/JMP m): the RIP the step must leave instead of the end of the instruction.</summary>
    public ulong? ExpectRip;
    public ulong ExpectMask = ulong.MaxValue;
    /// <summary>State fields (StateField ids: XMM halves, RFLAGS, ...) set before the exit, as the guest's own code would have.</summary>
    public (ulong Field, ulong Value)[] PresetFields = [];
    /// <summary>After completion, each field masked must equal its value, or the replay counts a data mismatch.</summary>
    public (ulong Field, ulong Value, ulong Mask)[] ExpectFields = [];
    public bool SetIf, ClearIf;
    public string Text = "";

    /// <summary>The address pattern's offset at an iteration: <c>k * stride % span</c>, k the iteration or its hash
    /// (<paramref name="random"/>); <paramref name="span"/> not 0 (a step with a span of 0 does not vary).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ulong OffsetAt(long iteration, ulong stride, ulong span, bool random)
    {
        ulong k = random ? Mix((ulong)iteration) : (ulong)iteration;
        return k * stride % span;
    }

    static ulong Mix(ulong x) { x ^= x >> 33; x *= 0xff51afd7ed558ccdUL; x ^= x >> 33; return x; }
}

/// <summary>A vCPU's program: a prologue, a loop body run <see cref="Iterations"/> times, an epilogue.</summary>
public sealed class ReplayProgram
{
    public List<Step> Steps { get; } = [];
    public int LoopStart, LoopEnd;   // [LoopStart, LoopEnd) is the body; empty if equal
    public long Iterations;
    public ulong EntryRip => Steps.Count > 0 ? Steps[0].Rip : 0;
}
