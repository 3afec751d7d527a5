using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Cold;
using Copra.Kernel.Core;

namespace Copra.Kernel.Batch;

/// <summary>
/// A polled ring (RING_POLL; io_uring's SQPOLL): a submission queue of SysCallIn and a completion
/// queue of SysCallOut in memory the process maps (<see cref="PolledRingLayout"/>), drained by a
/// kernel poller that runs in every step of one CPU. User space submits with plain stores and one
/// release store of the SQ tail: no syscall, no transition. The poller runs each entry exactly as
/// BATCH would (in order, user_data copied, blocking calls refused with EINVAL, an error does not
/// stop the rest), on behalf of the thread that created the ring, and posts completions with one
/// release store of the CQ tail per pass. What it costs is the CPU: a poller spins on it whether
/// or not there is work (docs/tuning.md, "When polling pays").
/// </summary>
public sealed class PolledRingObject : KObject, IMappable
{
    readonly ArrayWindow _window;

    internal PolledRingObject(KThread owner, int entries, int cpu)
    {
        Owner = owner;
        Entries = entries;
        Cpu = cpu;
        _window = new ArrayWindow(new byte[PolledRingLayout.Bytes(entries)]);
        var b = _window.Bytes.AsSpan();
        BitConverter.TryWriteBytes(b[PolledRingLayout.Entries..], (uint)entries);
        BitConverter.TryWriteBytes(b[PolledRingLayout.Cpu..], (uint)cpu);
    }

    /// <summary>The thread whose process and handles the entries run with.</summary>
    public KThread Owner { get; }
    public int Entries { get; }
    public int Cpu { get; }
    /// <summary>A thread blocked in WAIT_FOR_EVENT on the ring (guarded by the object's lock).</summary>
    internal KThread? Waiter;
    /// <summary>Set when the last handle closes: the poller drops the ring at its next pass.</summary>
    public volatile bool Closed;
    /// <summary>Entries the poller ran, and passes that found work.</summary>
    public long Ran, Passes;

    public override string Kind => "polled-ring";
    public override string Describe() => $"polled ring ({Entries} entries, poller on cpu {Cpu})";
    public override IMappable AsMappable() => this;
    protected override void OnLastHandleClosed(Process lastOwner) => Closed = true;

    public ulong MappableLength => (ulong)_window.Bytes.Length;

    public IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable)
    {
        if (offset != 0 || length != MappableLength) throw KernelError.Inval($"map the whole ring: offset 0, length {MappableLength}");
        return _window;
    }

    public void Unmapped(Process process, ulong offset, ulong length) { }

    ref ulong Word(int offset) => ref MemoryMarshal.Cast<byte, ulong>(_window.Bytes.AsSpan(offset, 8))[0];
    internal ulong Load(int offset) => Volatile.Read(ref Word(offset));
    internal void Store(int offset, ulong value) => Volatile.Write(ref Word(offset), value);

    /// <summary>The poller's cached copies of the user's indices (re-read only when the SQ looks empty or the CQ full).</summary>
    internal ulong CachedSqTail, CachedCqHead;

    Span<ulong> Column(int offset) => MemoryMarshal.Cast<byte, ulong>(_window.Bytes.AsSpan(offset, Entries * 8));

    /// <summary>The submission in slot <c>index &amp; (Entries-1)</c>, gathered from the SQ columns.</summary>
    internal SysCallIn ReadSq(ulong index)
    {
        int i = (int)(index & (ulong)(Entries - 1));
        return new SysCallIn
        {
            Nr = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqNr, Entries))[i],
            A0 = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqA0, Entries))[i],
            A1 = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqA1, Entries))[i],
            A2 = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqA2, Entries))[i],
            A3 = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqA3, Entries))[i],
            A4 = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqA4, Entries))[i],
            UserData = Column(PolledRingLayout.SqColumn(PolledRingLayout.SqUserData, Entries))[i],
        };
    }

    /// <summary>Writes a completion into slot <c>index &amp; (Entries-1)</c> of the CQ columns.</summary>
    internal void WriteCq(ulong index, in SysCallOut e)
    {
        int i = (int)(index & (ulong)(Entries - 1));
        Column(PolledRingLayout.CqColumn(PolledRingLayout.CqResult, Entries))[i] = (ulong)e.Result;
        Column(PolledRingLayout.CqColumn(PolledRingLayout.CqUserData, Entries))[i] = e.UserData;
    }

    /// <summary>Completions posted and not yet reaped.</summary>
    internal long Ready => (long)(Load(PolledRingLayout.CqTail) - Load(PolledRingLayout.CqHead));
}
