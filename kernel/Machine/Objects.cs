using System.Runtime.InteropServices;
using Copra.Abi;
using Copra.Cold;
using Copra.Hot.Guest;
using Copra.Hot.Lookup;
using Copra.Kernel.Core;

namespace Copra.Kernel.Machine;

/// <summary>A window over native kernel or guest memory, for mappings.</summary>
public sealed class NativeWindow(GuestMemory mem, ulong baseOffset) : IMemoryWindow
{
    public Span<byte> Span(ulong offset, int length) => mem.Span(baseOffset + offset, length);

    /// <summary>The byte at <paramref name="offset"/>, for a view kept across accesses. Caller obligation: [offset, offset+length) lies in the window (the address space checked it).</summary>
    public unsafe byte* At(ulong offset, int length)
    {
        _ = mem.Span(baseOffset + offset, length);   // the bounds check, once, at resolve time
        return mem.Base + baseOffset + offset;
    }
}

/// <summary>
/// Pages the kernel shares with user space (run pages, event areas): one native block, handed out
/// a page at a time, with a free list. Native so the exit path writes them with plain loads/stores.
/// </summary>
public sealed class KernelPages : IDisposable
{
    readonly Stack<int> _free = new();
    int _next;

    public KernelPages(int pages) { Memory = new GuestMemory((ulong)pages * Page.Size); Capacity = pages; }

    public GuestMemory Memory { get; }
    public int Capacity { get; }

    public ulong Alloc()
    {
        lock (_free)
        {
            int p = _free.Count > 0 ? _free.Pop() : _next < Capacity ? _next++ : throw KernelError.NoMem("kernel page pool exhausted");
            ulong off = (ulong)p * Page.Size;
            Memory.Clear(off, Page.Size);
            return off;
        }
    }

    public void Free(ulong offset) { lock (_free) _free.Push((int)(offset / Page.Size)); }
    public void Dispose() => Memory.Dispose();
}

/// <summary>Base for objects that own one kernel page user space may map (read/write).</summary>
public abstract class PageObject : KObject, IMappable
{
    protected PageObject(KernelPages pages) { Pages = pages; PageOffset = pages.Alloc(); }
    protected KernelPages Pages { get; }
    public ulong PageOffset { get; }
    public ulong MappableLength => Page.Size;
    public override IMappable AsMappable() => this;

    public IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable)
    {
        if (offset != 0 || length != Page.Size) throw KernelError.Inval("map the whole page: offset 0, length 4096");
        Interlocked.Increment(ref _maps);
        return new NativeWindow(Pages.Memory, PageOffset);
    }

    public void Unmapped(Process process, ulong offset, ulong length)
    {
        Interlocked.Decrement(ref _maps);
        TryRelease();
    }

    int _maps, _released;
    volatile bool _closed;

    /// <summary>True for objects whose page goes back to the pool once closed and unmapped (event areas; not run pages, which the platform owns).</summary>
    protected virtual bool ReleasesPage => false;

    /// <summary>The last handle is gone; the page follows once no mapping names it (a mapping may outlive the handle).</summary>
    protected void MarkClosed()
    {
        _closed = true;
        TryRelease();
    }

    void TryRelease()
    {
        if (!ReleasesPage || !_closed || Volatile.Read(ref _maps) != 0) return;
        if (Interlocked.Exchange(ref _released, 1) == 0) Pages.Free(PageOffset);
    }

    public bool PageReleased => Volatile.Read(ref _released) != 0;
    protected Span<byte> Bytes => Pages.Memory.Span(PageOffset, Page.Size);

    /// <summary>
    /// The page's first byte. The pool is native memory allocated once and never moved, so the exit
    /// path keeps this pointer instead of slicing a span on every access.
    /// </summary>
    protected unsafe byte* PagePointer => Pages.Memory.Base + PageOffset;
}

/// <summary>
/// A VM the platform offers (SNP VMPL n, TDX L2 VM n). Exactly one handle at a time. Holds the VM's
/// device registrations (MMIO ranges, ports), its IRQ routing and its unhandled-exit policy.
/// </summary>
public sealed class VmObject : KObject
{
    public VmObject(int index, int vcpuBase, int vcpuCount, IReadOnlyList<(ulong Base, ulong Length)> ranges, int maxVcpusTotal)
    {
        // Whole pages, fixed for the VM's life: a page is all RAM or none of it, which the plain memo relies on
        // (hot/Exit/ExitPipeline.Plain.cs: a page that once led to a device never holds RAM).
        foreach (var (b, l) in ranges)
            if (l == 0 || ((b | l) & Page.Mask) != 0) throw new ArgumentException($"VM {index} RAM range 0x{b:x}+0x{l:x} is not whole 4 KiB pages");
        Index = index; VcpuBase = vcpuBase; VcpuCount = vcpuCount; Ranges = ranges; _ranges = [.. ranges];
        Mmio = new MmioRangeTable(maxVcpusTotal);
        Vcpus = new VcpuObject[vcpuCount];
    }

    public int Index { get; }
    public int VcpuBase { get; }
    public int VcpuCount { get; }
    public IReadOnlyList<(ulong Base, ulong Length)> Ranges { get; }
    readonly (ulong Base, ulong Length)[] _ranges;
    public VcpuObject[] Vcpus { get; }
    public MmioRangeTable Mmio { get; }
    public PortTable Ports { get; } = new();
    /// <summary>Event objects by owner id (index 0 unused): what the lookup tables name.</summary>
    public readonly List<EventObject?> Owners = [null];
    /// <summary>
    /// Copy of <see cref="Owners"/> the exit path reads without a lock: replaced (never changed in
    /// place) under the lock on <see cref="Owners"/> whenever an owner is added or removed.
    /// </summary>
    public volatile EventObject?[] OwnerTable = [null];
    /// <summary>The event object with this owner id, or null (lock-free; any CPU).</summary>
    public EventObject? OwnerOf(int owner)
    {
        var t = OwnerTable;
        return (uint)owner < (uint)t.Length ? t[owner] : null;
    }
    public ulong Unhandled = VmCtl.UnhandledForward;
    public volatile bool Stopped;
    /// <summary>True if [gpa, gpa+size) is the VM's own RAM (anything else is a device or nothing).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // into the exit path's RAM test (KernelExitHost.IsRam), once or twice per exit
    public bool IsRam(ulong gpa, ulong size)
    {
        // An array copy of Ranges: no enumerator (40 B) and no interface call per exit.
        var ranges = _ranges;
        for (int i = 0; i < ranges.Length; i++)
        {
            var (b, l) = ranges[i];
            if (gpa >= b && gpa - b < l && size <= l - (gpa - b)) return true;
        }
        return false;
    }

    public override bool Exclusive => true;
    public override string Kind => "vm";
    public override string Describe() => $"vm {Index} ({VcpuCount} vCPUs)";
}

public enum VcpuRun : byte
{
    /// <summary>No thread has entered it (or its thread is handling a run-page exit).</summary>
    Idle,
    /// <summary>Queued on its CPU to enter the guest.</summary>
    Runnable,
    /// <summary>An access is with a device model.</summary>
    WaitingDevice,
    /// <summary>After HLT: waits for an interrupt.</summary>
    Halted,
    /// <summary>Shut down (triple fault, stop): cannot run again.</summary>
    Dead,
}

/// <summary>A vCPU: bound to one CPU, mappable (its run page), and an event source for WAIT_FOR_EVENT.</summary>
public sealed class VcpuObject(KernelPages pages, VmObject vm, int localIndex, int globalIndex, int cpu) : PageObject(pages)
{
    public VmObject Vm { get; } = vm;
    public int LocalIndex { get; } = localIndex;
    public int Global { get; } = globalIndex;
    public int Cpu { get; } = cpu;
    public KThread? Waiter;
    public volatile VcpuRun Run;
    /// <summary>The run-page exit the VMM is handling, completed at its next WAIT_FOR_EVENT.</summary>
    public RunExit PendingRunExit;
    /// <summary>Pending interrupt vectors (IRR), 256 bits.</summary>
    public readonly ulong[] Irr = new ulong[4];
    /// <summary>How many vectors <see cref="Irr"/> holds: written with it under the vCPU's lock, read without it at every
    /// entry (Kernel.Exit.cs IrqPending), one word where the four words cost ~8 instructions of every exit.</summary>
    public int IrrSet;
    public override bool Exclusive => true;
    public override string Kind => "vcpu";
    public override string Describe() => $"vcpu {Vm.Index}.{LocalIndex} on cpu {Cpu}";
    public ref RunPage Page => ref MemoryMarshal.AsRef<RunPage>(Bytes[..RunPage.ByteSize]);
}

/// <summary>
/// An MMIO or port range a device model watches. Its page holds the <see cref="EventArea"/>.
/// One access is in flight at a time; other vCPUs hitting the device queue behind it in FIFO order.
/// </summary>
public sealed class EventObject : PageObject
{
    public EventObject(KernelPages pages, VmObject vm, EventKind kind, ulong start, ulong length, int ownerId, int maxVcpus) : base(pages)
    {
        Vm = vm; EventKind = kind; Start = start; Length = length; OwnerId = ownerId;
        // Global vCPU indices below maxVcpus, so the in-flight vCPU + 1 fits the slot word's 16 bits.
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(maxVcpus, SlotInflight);
        _queue = new int[maxVcpus];
        unsafe { _area = (EventArea*)PagePointer; }
    }

    public VmObject Vm { get; }
    public EventKind EventKind { get; }
    public ulong Start { get; }
    public ulong Length { get; }
    public int OwnerId { get; }
    // ---- the slot word: the object's state and who may change it next (docs/design.md, "Ownership") ----
    /// <summary>Bits 0..15 of <see cref="Slot"/>: the in-flight vCPU + 1 (0: nothing in the area).</summary>
    public const int SlotInflight = 0xFFFF;
    /// <summary><see cref="Waiter"/> holds a thread blocked in WAIT_FOR_EVENT on this object.</summary>
    public const int SlotParked = 1 << 16;
    /// <summary>Claimed: one party is between its claim and its publish; nobody else writes the object until then.</summary>
    public const int SlotBusy = 1 << 17;
    /// <summary>Off the common path: a queue, an object held by a locked read-modify-write, or a dead model.</summary>
    public const int SlotRare = 1 << 18;

    /// <summary>
    /// The slot word: a summary of <see cref="Inflight"/>, <see cref="Waiter"/> and the rare state, plus the claim bit.
    /// Every change to the object's fields (the area's kernel-written fields, the in-flight vCPU, the queue, the waiter,
    /// the held and dead marks) is made by the one party that holds the claim, taken with one compare-and-swap and
    /// released by <see cref="Publish"/>, a plain release store. The common transitions (deliver into an idle object,
    /// complete the access in flight) claim with the state they expect, so the claim is also the check; only the rare
    /// ones (<see cref="Seize"/>) wait for a claim another CPU holds for its few stores.
    /// </summary>
    public int Slot;

    /// <summary>One compare-and-swap: claims the object if its word is still <paramref name="seen"/> (not claimed).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool TryClaim(int seen) =>
        (seen & SlotBusy) == 0 && Interlocked.CompareExchange(ref Slot, seen | SlotBusy, seen) == seen;

    /// <summary>The rare paths: claim whatever the state, waiting while another CPU holds the claim for its few stores.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // the first attempt only
    public void Seize()
    {
        if (!TryClaim(Volatile.Read(ref Slot))) SeizeContended();
    }

    /// <summary>The claim was held: wait for it. Out of line: the wait's frame was paid by every claim that got it at once
    /// (the run mix's queued accesses, ~20 instructions each).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void SeizeContended()
    {
        // SpinWait's default backs off to yielding and then sleeping: on an oversubscribed host the claim's holder may be
        // a descheduled host thread, and a waiter that only spun would keep it off the core.
        var spin = new SpinWait();
        do
        {
            Contended?.Invoke();
            spin.SpinOnce();
        }
        while (!TryClaim(Volatile.Read(ref Slot)));
    }

    /// <summary>
    /// Called by <see cref="Seize"/> each time it finds the object claimed by another party, before it spins: only there,
    /// never on a path that got the claim at once. A test that holds the claim sets it to act at exactly that moment (as
    /// the other CPU would between its claim and its publish) and then publish; unset, the spin is as it was.
    /// </summary>
    public Action? Contended;

    /// <summary>Ends a claim: the fields written under it become visible with the new word (a release store).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Publish() =>
        Volatile.Write(ref Slot, (Inflight + 1) | (Waiter is not null ? SlotParked : 0) | (Dead || HeldBy >= 0 || _qCount > 0 ? SlotRare : 0));

    /// <summary>
    /// <see cref="Publish"/> after the common completion: the claim was taken from <paramref name="seen"/> with nothing rare,
    /// and only the access in flight came out, so the word is what it was without it: the waiter's bit as it was.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void PublishCompleted(int seen) => Volatile.Write(ref Slot, seen & SlotParked);

    public KThread? Waiter;
    /// <summary>Global vCPU whose access is in the area, or -1.</summary>
    public int Inflight = -1;
    /// <summary>Global vCPU whose locked read-modify-write holds the object between its read and its write, or -1.</summary>
    public int HeldBy = -1;
    public bool Dead;
    public long Delivered, Completed;
    /// <summary>Sequence of the last access handed to a waiter: WAIT_FOR_EVENT returns at once only for a newer one.</summary>
    public ulong Handed;

    readonly int[] _queue;
    int _qHead, _qCount;

    public void Enqueue(int vcpu) { _queue[(_qHead + _qCount) % _queue.Length] = vcpu; _qCount++; }
    public bool TryDequeue(out int vcpu)
    {
        vcpu = -1;
        if (_qCount == 0) return false;
        vcpu = _queue[_qHead]; _qHead = (_qHead + 1) % _queue.Length; _qCount--;
        return true;
    }
    public int Queued => _qCount;

    /// <summary>Takes a vCPU out of the queue (VM stop); false if it was not queued.</summary>
    public bool Remove(int vcpu)
    {
        for (int i = 0; i < _qCount; i++)
        {
            int at = (_qHead + i) % _queue.Length;
            if (_queue[at] != vcpu) continue;
            for (int j = i; j < _qCount - 1; j++) _queue[(_qHead + j) % _queue.Length] = _queue[(_qHead + j + 1) % _queue.Length];
            _qCount--;
            return true;
        }
        return false;
    }

    // SAFETY: the page is 4096 bytes of the pool (EventArea is 64), which lives as long as the kernel.
    public unsafe ref EventArea Area => ref System.Runtime.CompilerServices.Unsafe.AsRef<EventArea>(_area);
    readonly unsafe EventArea* _area;
    public override string Kind => EventKind == EventKind.Mmio ? "mmio-event" : "ioio-event";
    public override string Describe() => EventKind == EventKind.Mmio
        ? $"mmio 0x{Start:x}+0x{Length:x} (vm {Vm.Index})"
        : $"ioio 0x{Start:x}+{Length} (vm {Vm.Index})";

    /// <summary>Set by the kernel: what happens when the last handle goes (unregister, answer in-flight accesses).</summary>
    public Action<EventObject>? OnClosed;
    protected override bool ReleasesPage => true;
    protected override void OnLastHandleClosed(Process lastOwner)
    {
        OnClosed?.Invoke(this);
        MarkClosed();
    }
}

/// <summary>An interrupt line into a VM: EVENT_SIGNAL makes the vector pending and wakes a halted vCPU.</summary>
public sealed class IrqObject(VmObject vm, byte vector) : KObject
{
    public VmObject Vm { get; } = vm;
    public byte Vector { get; } = vector;
    public long Signals;
    public override string Kind => "irq";
    public override string Describe() => $"irq vector {Vector} (vm {Vm.Index})";
}

/// <summary>Guest-physical memory without the kernel's own range: MMAP maps page-aligned parts of it.</summary>
public sealed class PhysMemObject(GuestMemory memory, PhysPages phys) : KObject, IMappable
{
    public override string Kind => "physmem";
    public override IMappable AsMappable() => this;
    public ulong MappableLength => phys.Bytes;

    public IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable)
    {
        phys.CheckRange(offset, length);
        phys.AddMapping(offset, length);
        return new NativeWindow(memory, offset);
    }

    public void Unmapped(Process process, ulong offset, ulong length) => phys.RemoveMapping(offset, length);
}
