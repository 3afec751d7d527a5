using System.Runtime.InteropServices;
using Copra.Abi;

namespace Copra.User;

/// <summary>
/// A batch builder over BATCH(in, out, count): calls are pushed into a SysCallIn array in the
/// process's own memory, <see cref="Submit"/> makes one BATCH call (one user/kernel transition for
/// all of them), and the completions are read back from the SysCallOut array, one per entry in
/// submission order, each carrying the user_data it was pushed with. The arrays are allocated once;
/// a push after a submit starts the next batch in the same memory.
/// </summary>
public sealed class SysBatch
{
    readonly IUserContext _ctx;
    readonly ulong _in, _out;
    int _count;
    int _completed;

    public SysBatch(IUserContext ctx, int capacity)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity));
        _ctx = ctx;
        Capacity = capacity;
        _in = Sys.Alloc(ctx, capacity * SysCallIn.Size);
        _out = Sys.Alloc(ctx, capacity * SysCallOut.Size);
    }

    public int Capacity { get; }
    /// <summary>Calls pushed and not yet submitted.</summary>
    public int Count => _count;
    public bool IsFull => _count == Capacity;

    /// <summary>Adds a call; returns its index in the batch. Throws when the batch is full.</summary>
    public int Push(ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong userData = 0)
    {
        if (_completed > 0) _completed = 0;   // the previous batch's completions are gone now
        if (_count == Capacity) throw new InvalidOperationException("batch full: submit first");
        Entries(_count + 1)[_count] = new SysCallIn { Nr = nr, A0 = a0, A1 = a1, A2 = a2, A3 = a3, A4 = a4, UserData = userData };
        return _count++;
    }

    /// <summary>
    /// One BATCH call for everything pushed. Returns the number of entries run; afterwards
    /// <see cref="Completions"/> holds one result per entry. An empty batch makes no call.
    /// BATCH itself failing (a bad pointer, too many entries) throws <see cref="SysCallException"/>.
    /// </summary>
    public int Submit()
    {
        int n = _count;
        _count = 0;
        _completed = 0;
        if (n == 0) return 0;
        long r = Sys.CallChecked(_ctx, SysNr.Batch, _in, _out, (ulong)n);
        _completed = (int)r;
        return _completed;
    }

    /// <summary>The completions of the last <see cref="Submit"/>, in submission order.</summary>
    public ReadOnlySpan<SysCallOut> Completions =>
        _completed == 0 ? default : MemoryMarshal.Cast<byte, SysCallOut>(_ctx.Memory(_out, _completed * SysCallOut.Size));

    /// <summary>Result of entry <paramref name="index"/> of the last submit.</summary>
    public long Result(int index) => Completions[index].Result;

    Span<SysCallIn> Entries(int n) => MemoryMarshal.Cast<byte, SysCallIn>(_ctx.Memory(_in, n * SysCallIn.Size));
}

/// <summary>
/// The user half of a polled ring (RING_POLL, io_uring's SQPOLL): entries are written into the
/// mapped submission queue and published with one release store of its tail; a kernel poller
/// on another CPU runs them and posts completions, so submitting costs no transition at all.
/// Completions are reaped from the mapped completion queue by memory reads; <see cref="WaitAsync"/>
/// blocks in WAIT_FOR_EVENT (one transition) when there is nothing else to do.
/// </summary>
public sealed class PolledRing
{
    readonly IUserContext _ctx;
    readonly ulong _va;
    readonly int _entries;
    ulong _sqTail, _cqHead;
    // Cached copies of the poller's indices, re-read only when the SQ looks full or the CQ looks empty.
    ulong _sqHeadCache, _cqTailCache;

    PolledRing(IUserContext ctx, uint handle, ulong va, int entries)
    {
        _ctx = ctx; Handle = handle; _va = va; _entries = entries;
        _sqTail = Index(PolledRingLayout.SqTail);
        _cqHead = Index(PolledRingLayout.CqHead);
        _sqHeadCache = Index(PolledRingLayout.SqHead);
        _cqTailCache = Index(PolledRingLayout.CqTail);
    }

    /// <summary>RING_POLL(entries, cpu), then maps the ring.</summary>
    public static PolledRing Create(IUserContext ctx, int entries, int cpu)
    {
        uint h = (uint)Sys.CallChecked(ctx, SysNr.RingPoll, (ulong)entries, (ulong)cpu);
        ulong va = Sys.Mmap(ctx, h, 0, (ulong)PolledRingLayout.Bytes(entries));
        return new PolledRing(ctx, h, va, entries);
    }

    public uint Handle { get; }
    public int Entries => _entries;

    ref ulong Word(int offset) => ref MemoryMarshal.Cast<byte, ulong>(_ctx.Memory(_va + (ulong)offset, 8))[0];
    ulong Index(int offset) => Volatile.Read(ref Word(offset));

    /// <summary>Writes one entry into the submission queue; false when it is full. Invisible to the poller until <see cref="Publish"/>.</summary>
    public bool TryPush(ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong userData = 0)
    {
        if (_sqTail - _sqHeadCache >= (ulong)_entries)
        {
            _sqHeadCache = Index(PolledRingLayout.SqHead);
            if (_sqTail - _sqHeadCache >= (ulong)_entries) return false;
        }
        int i = (int)(_sqTail & (ulong)(_entries - 1));
        SqColumn(PolledRingLayout.SqNr)[i] = nr;
        SqColumn(PolledRingLayout.SqA0)[i] = a0;
        SqColumn(PolledRingLayout.SqA1)[i] = a1;
        SqColumn(PolledRingLayout.SqA2)[i] = a2;
        SqColumn(PolledRingLayout.SqA3)[i] = a3;
        SqColumn(PolledRingLayout.SqA4)[i] = a4;
        SqColumn(PolledRingLayout.SqUserData)[i] = userData;
        _sqTail++;
        return true;
    }

    /// <summary>Makes every pushed entry visible to the poller: one release store, no syscall.</summary>
    public void Publish() => Volatile.Write(ref Word(PolledRingLayout.SqTail), _sqTail);

    /// <summary>Takes the oldest completion, if there is one (memory reads only).</summary>
    public bool TryReap(out SysCallOut completion)
    {
        if (_cqHead == _cqTailCache)
        {
            _cqTailCache = Index(PolledRingLayout.CqTail);
            if (_cqHead == _cqTailCache) { completion = default; return false; }
        }
        int i = (int)(_cqHead & (ulong)(_entries - 1));
        completion = new SysCallOut
        {
            Result = (long)CqColumn(PolledRingLayout.CqResult)[i],
            UserData = CqColumn(PolledRingLayout.CqUserData)[i],
        };
        _cqHead++;
        Volatile.Write(ref Word(PolledRingLayout.CqHead), _cqHead);
        return true;
    }

    Span<ulong> SqColumn(int column) =>
        MemoryMarshal.Cast<byte, ulong>(_ctx.Memory(_va + (ulong)PolledRingLayout.SqColumn(column, _entries), _entries * 8));

    Span<ulong> CqColumn(int column) =>
        MemoryMarshal.Cast<byte, ulong>(_ctx.Memory(_va + (ulong)PolledRingLayout.CqColumn(column, _entries), _entries * 8));

    /// <summary>Blocks in WAIT_FOR_EVENT until at least one completion is posted; returns how many are ready.</summary>
    public async ValueTask<long> WaitAsync() => Sys.Check(SysNr.WaitForEvent, await Sys.WaitForEvent(_ctx, Handle));
}
