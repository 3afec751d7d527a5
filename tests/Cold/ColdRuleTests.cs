// cold/ held to its rules through its public API, one rule per test (the survivors mutation testing found: see
// docs/testing.md). Each test names the rule; the comment says which wrong line it would catch.
using Copra.Abi;
using Copra.Cold;
using Xunit;

namespace Copra.Tests.Cold;

public class PhysPagesRuleTests
{
    const ulong Mem = 64 * (ulong)Page.Size;          // 64 pages
    const ulong KBase = 8 * (ulong)Page.Size, KLen = 4 * (ulong)Page.Size;  // kernel at pages 8..11
    static PhysPages New() => new(Mem, KBase, KLen);
    static long Code(Action a) => Assert.Throws<KernelError>(a).AbiCode();
    const ulong P = Page.Size;

    [Fact]
    public void SetMemStateBeyondPhysicalMemoryIsEfault()
    {
        var pp = New();
        Assert.Equal(Errno.EFAULT, Code(() => pp.SetState(Mem, P, MemState.Shared)));
        Assert.Equal(Errno.EFAULT, Code(() => pp.SetState(Mem - P, 2 * P, MemState.Shared)));
        // A range whose end wraps past 2^64 is outside memory too.
        Assert.Equal(Errno.EFAULT, Code(() => pp.SetState(0xFFFF_FFFF_FFFF_F000, 2 * P, MemState.Shared)));
        // The last page is inside: the bound is end <= Bytes, not end < Bytes.
        pp.SetState(Mem - P, P, MemState.Shared);
        Assert.Equal(MemState.Shared, pp.State(Mem - P));
    }

    [Fact]
    public void SetMemStateTouchingTheKernelRangeIsEperm_AdjacentPagesAreNot()
    {
        var pp = New();
        Assert.Equal(Errno.EPERM, Code(() => pp.SetState(KBase, P, MemState.Shared)));
        Assert.Equal(Errno.EPERM, Code(() => pp.SetState(KBase + KLen - P, P, MemState.Shared)));
        Assert.Equal(Errno.EPERM, Code(() => pp.SetState(KBase - P, 2 * P, MemState.Shared)));
        Assert.Equal(Errno.EPERM, Code(() => pp.SetState(KBase + KLen - P, 2 * P, MemState.Shared)));
        // The pages right below and right above the kernel are the guest's.
        pp.SetState(KBase - P, P, MemState.Shared);
        pp.SetState(KBase + KLen, P, MemState.Shared);
        Assert.Equal(MemState.Shared, pp.State(KBase - P));
        Assert.Equal(MemState.Shared, pp.State(KBase + KLen));
        Assert.Equal(2, pp.StateChanges);
    }

    [Fact]
    public void SetMemStateRangeMustBePageAlignedAndNonEmpty_StateMustBeKnown()
    {
        var pp = New();
        Assert.Equal(Errno.EINVAL, Code(() => pp.SetState(0, 0, MemState.Shared)));
        Assert.Equal(Errno.EINVAL, Code(() => pp.SetState(1, P, MemState.Shared)));
        Assert.Equal(Errno.EINVAL, Code(() => pp.SetState(0, P + 1, MemState.Shared)));
        Assert.Equal(Errno.EINVAL, Code(() => pp.SetState(0, P, MemState.Shared + 1)));
        Assert.Equal(0, pp.StateChanges);
    }

    [Fact]
    public void SetMemStateChangesEveryPageOfTheRangeAndCountsThem()
    {
        var pp = New();
        pp.SetState(16 * P, 3 * P, MemState.Shared);
        Assert.Equal(MemState.Private, pp.State(15 * P));
        for (ulong i = 16; i < 19; i++) Assert.Equal(MemState.Shared, pp.State(i * P));
        Assert.Equal(MemState.Private, pp.State(19 * P));
        Assert.Equal(3, pp.StateChanges);
        pp.SetState(16 * P, P, MemState.Private);
        Assert.Equal(MemState.Private, pp.State(16 * P));
        Assert.Equal(4, pp.StateChanges);
    }

    [Fact]
    public void SetMemStateIsAllOrNothing_EbusyWhenAnyPageIsMapped()
    {
        var pp = New();
        pp.AddMapping(20 * P, P);
        Assert.Equal(Errno.EBUSY, Code(() => pp.SetState(18 * P, 4 * P, MemState.Shared)));
        // Nothing changed, not even the pages before the mapped one.
        Assert.Equal(MemState.Private, pp.State(18 * P));
        Assert.Equal(0, pp.StateChanges);
        pp.RemoveMapping(20 * P, P);
        pp.SetState(18 * P, 4 * P, MemState.Shared);
        Assert.Equal(MemState.Shared, pp.State(21 * P));
    }

    [Fact]
    public void MappingCountsMoveByOnePerPageAndCannotGoNegative()
    {
        var pp = New();
        pp.AddMapping(2 * P, 2 * P);
        pp.AddMapping(3 * P, 2 * P);
        Assert.Equal(0, pp.MapCount(1 * P));
        Assert.Equal(1, pp.MapCount(2 * P));
        Assert.Equal(2, pp.MapCount(3 * P));
        Assert.Equal(1, pp.MapCount(4 * P));
        Assert.Equal(0, pp.MapCount(5 * P));
        pp.RemoveMapping(2 * P, 2 * P);
        Assert.Equal(0, pp.MapCount(2 * P));
        Assert.Equal(1, pp.MapCount(3 * P));
        Assert.Throws<InvalidOperationException>(() => pp.RemoveMapping(2 * P, P));
    }

    [Fact]
    public void APageMappedUshortMaxTimesRefusesOneMoreWithEnomem_AndChangesNothing()
    {
        var pp = New();
        for (int i = 0; i < ushort.MaxValue; i++) pp.AddMapping(P, P);
        Assert.Equal(Errno.ENOMEM, Code(() => pp.AddMapping(0, 2 * P)));
        Assert.Equal(0, pp.MapCount(0));           // all or nothing: page 0 was not counted
        Assert.Equal(ushort.MaxValue, pp.MapCount(P));
    }

    [Fact]
    public void TheLastPageOfMemoryCanBeMappedAndCounted()
    {
        // Catches the page loop's bound `i < first + n` widened to `<=` (it would look one page past the range).
        var pp = New();
        pp.AddMapping(Mem - P, P);
        Assert.Equal(1, pp.MapCount(Mem - P));
        pp.RemoveMapping(Mem - P, P);
        Assert.Equal(0, pp.MapCount(Mem - P));
    }

    [Fact]
    public void UnmappingMoreThanWasMappedIsAKernelBugThatNamesThePage()
    {
        // Not a user error (no ABI code): an InvalidOperationException whose text reaches the internal-error report.
        var pp = New();
        var e = Assert.Throws<InvalidOperationException>(() => pp.RemoveMapping(5 * P, P));
        Assert.Equal("page 5 unmapped more than mapped", e.Message);
    }

    [Fact]
    public void BootTimeGuestRangesLieInMemoryAndOutsideTheKernel()
    {
        var pp = New();
        Assert.Equal(64, pp.Pages);
        Assert.Equal(Mem, pp.Bytes);
        Assert.True(pp.IsGuestRange(0, KBase));                    // everything below the kernel
        Assert.True(pp.IsGuestRange(KBase + KLen, Mem - KBase - KLen)); // everything above, up to the last byte
        Assert.False(pp.IsGuestRange(0, 0));                       // empty
        Assert.False(pp.IsGuestRange(0, KBase + 1));               // one byte into the kernel
        Assert.False(pp.IsGuestRange(KBase + KLen - 1, 1));        // the kernel's last byte
        Assert.False(pp.IsGuestRange(KBase - P, KLen + 2 * P));    // spans the kernel
        Assert.False(pp.IsGuestRange(Mem - P, P + 1));             // one byte past memory
        Assert.False(pp.IsGuestRange(ulong.MaxValue - P + 1, 2 * P)); // wraps
    }
}

public class AddressSpaceRuleTests
{
    sealed class Source : IMappable
    {
        public ulong MappableLength => 1 << 20;
        public IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable) => new ArrayWindow(new byte[length]);
        public void Unmapped(Process process, ulong offset, ulong length) { }
    }

    static ulong MapNew(AddressSpace s, ulong length, bool writable = true) =>
        s.Map(length, new ArrayWindow(new byte[length]), writable, new Source(), 0);

    [Fact]
    public void MappingsNeverOverlapAndAreSeparatedByAGuardPage()
    {
        var s = new AddressSpace(4096);
        ulong a = MapNew(s, 1);                    // one byte rounds up to a page
        ulong b = MapNew(s, Page.Size + 1);        // rounds to two pages
        ulong c = MapNew(s, Page.Size);
        Assert.Equal(AddressSpace.MapBase, a);
        Assert.Equal(a + 2 * (ulong)Page.Size, b);       // one page + guard
        Assert.Equal(b + 3 * (ulong)Page.Size, c);       // two pages + guard
        // The guard page after each mapping resolves to nothing.
        Assert.False(s.TryResolve(a + Page.Size, 1, false, out _, out _));
        Assert.False(s.TryResolve(b + 2 * (ulong)Page.Size, 1, false, out _, out _));
    }

    [Fact]
    public void AddressSpaceExhaustionIsEnomem_AndTheLastMappingThatFitsSucceeds()
    {
        var s = new AddressSpace(4096);
        ulong room = AddressSpace.UserTop - AddressSpace.MapBase;   // bytes from MapBase to the top
        // A mapping plus its guard page must fit below UserTop.
        var e = Assert.Throws<KernelError>(() => s.Map(room - Page.Size + 1, new ArrayWindow([]), false, new Source(), 0));
        Assert.Equal(Errno.ENOMEM, e.AbiCode());
        Assert.Empty(s.Mappings());
        ulong va = s.Map(room - Page.Size, new ArrayWindow([]), false, new Source(), 0);
        Assert.Equal(AddressSpace.MapBase, va);
        Assert.Equal(Errno.ENOMEM, Assert.Throws<KernelError>(() => MapNew(s, 1)).AbiCode());
    }

    const ulong P = Page.Size;

    static long Code(Action a) => Assert.Throws<KernelError>(a).AbiCode();

    static ulong MapAt(AddressSpace s, ulong va, ulong length) =>
        s.Map(length, new ArrayWindow(new byte[length]), true, new Source(), 0, va);

    [Fact]
    public void MapFixedTakesExactlyAPageAlignedNonZeroUserRange_AnythingElseIsEinval()
    {
        var s = new AddressSpace(4096);
        ulong top = AddressSpace.UserTop;
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, 0x2000_0000_0000 + 1, P)));  // not page-aligned
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, 0, P)));                     // address 0
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, top, P)));                   // at the top of user space
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, top, 0)));                   // even with nothing to map
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, top - P, 2 * P)));           // runs past the top
        Assert.Empty(s.Mappings());
        // The last page below the top fits, and a user range ending exactly at the top resolves.
        Assert.Equal(top - P, MapAt(s, top - P, P));
        Assert.True(s.TryResolve(top - P, P, true, out var r, out ulong off));
        Assert.Equal(top - P, r.Va);
        Assert.Equal(0ul, off);
        Assert.True(s.TryResolve(top - 1, 1, false, out _, out _));
    }

    [Fact]
    public void MapFixedMayNotOverlapAMappingRoundedUpToWholePages_ItsNeighbourPagesAreFree()
    {
        var s = new AddressSpace(4096);
        ulong x = 0x2000_0000_0000;
        MapAt(s, x, 100);                                                // 100 bytes: the whole page x is taken
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, x, P)));          // the same start
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, x - P, 2 * P)));  // ends inside it
        Assert.Equal(Errno.EINVAL, Code(() => MapAt(s, AddressSpace.DataBase, P)));   // the data segment is taken too
        // MAP_FIXED needs no guard page: the pages right after and right before are free.
        Assert.Equal(x + P, MapAt(s, x + P, P));
        Assert.Equal(x - P, MapAt(s, x - P, P));
        Assert.Equal([x, x + P, x - P], s.Mappings().Select(m => m.Va));
    }

    [Fact]
    public void AutomaticMappingsStepPastFixedOnes_KeepingAGuardPageOnEachSide()
    {
        ulong b = AddressSpace.MapBase;
        // A fixed page ending at MapBase and another two pages above: one page and its guard fit between them.
        var s = new AddressSpace(4096);
        MapAt(s, b - P, P);
        MapAt(s, b + 3 * P, P);
        Assert.Equal(b + P, MapNew(s, P));
        // With the upper one a page lower there is no room left between them: the mapping goes above it.
        var t = new AddressSpace(4096);
        MapAt(t, b - P, P);
        MapAt(t, b + 2 * P, P);
        Assert.Equal(b + 4 * P, MapNew(t, P));
        Assert.False(t.TryResolve(b + 3 * P, 1, false, out _, out _));   // the guard page between them
    }

    [Fact]
    public void AutomaticAddressesAreNotReusedAfterMunmap()
    {
        // A stale user pointer into an unmapped range must not land in the next mapping.
        var s = new AddressSpace(4096);
        ulong a = MapNew(s, P);
        s.Unmap(a);
        Assert.Equal(a + 2 * P, MapNew(s, P));
    }

    [Fact]
    public void ResolveNeedsTheWholeRangeInsideOneRegion()
    {
        var s = new AddressSpace(2 * Page.Size);
        ulong d = AddressSpace.DataBase;
        Assert.True(s.TryResolve(d, 2 * (ulong)Page.Size, true, out var r, out var off));
        Assert.Equal(0ul, off);
        Assert.Equal(d, r.Va);
        Assert.True(s.TryResolve(d + 2 * (ulong)Page.Size - 1, 1, true, out _, out off));
        Assert.Equal(2 * (ulong)Page.Size - 1, off);
        Assert.False(s.TryResolve(d + 2 * (ulong)Page.Size - 1, 2, true, out _, out _)); // one byte past the end
        Assert.False(s.TryResolve(d - 1, 2, true, out _, out _));                        // one byte before
        Assert.True(s.TryResolve(d, 0, false, out _, out _));                            // zero length checks one byte
        Assert.False(s.TryResolve(d + 2 * (ulong)Page.Size, 0, false, out _, out _));
        Assert.False(s.TryResolve(ulong.MaxValue, 2, false, out _, out _));               // wraps
        Assert.False(s.TryResolve(AddressSpace.UserTop, 1, false, out _, out _));          // kernel half
    }

    [Fact]
    public void ReadOnlyMappingsRefuseWritesButAllowReads()
    {
        var s = new AddressSpace(4096);
        ulong va = MapNew(s, Page.Size, writable: false);
        Assert.True(s.TryResolve(va, 8, false, out var r, out _));
        Assert.False(r.Writable);
        Assert.False(s.TryResolve(va, 8, true, out _, out _));
        Assert.False(s.TrySpan(va, 8, true, out _));
        Assert.True(s.TrySpan(va + 8, 8, false, out var span));
        Assert.Equal(8, span.Length);
        Assert.False(s.TrySpan(va, -1, false, out _));
    }

    [Fact]
    public void TrySpanShowsTheRegionsBytesAtTheOffset()
    {
        var s = new AddressSpace(64);
        Assert.True(s.TrySpan(AddressSpace.DataBase + 10, 4, true, out var w));
        w[0] = 0xAB;
        Assert.True(s.TrySpan(AddressSpace.DataBase + 10, 1, false, out var rd));
        Assert.Equal(0xAB, rd[0]);
        Assert.Equal(64, s.DataSize);
    }

    [Fact]
    public void AZeroLengthSpanOfAMappedAddressIsEmptyAndValid()
    {
        // Catches `length < 0` hardened to `<= 0` in TrySpan: a zero-byte user buffer at a mapped address is legal.
        var s = new AddressSpace(64);
        Assert.True(s.TrySpan(AddressSpace.DataBase, 0, true, out var span));
        Assert.Equal(0, span.Length);
        Assert.False(s.TrySpan(AddressSpace.DataBase - 1, 0, false, out _));
    }

    [Fact]
    public void UnmapRemovesTheMappingThatStartsThere_AnythingElseIsEinval()
    {
        var s = new AddressSpace(4096);
        ulong a = MapNew(s, 100), b = MapNew(s, 200);
        Assert.Equal(Errno.EINVAL, Assert.Throws<KernelError>(() => s.Unmap(a + 1)).AbiCode());
        // The data segment is not a mapping.
        Assert.Equal(Errno.EINVAL, Assert.Throws<KernelError>(() => s.Unmap(AddressSpace.DataBase)).AbiCode());
        var r = s.Unmap(a);
        Assert.Equal(a, r.Va);
        Assert.Equal(100ul, r.Length);
        Assert.False(s.TryResolve(a, 1, false, out _, out _));
        Assert.True(s.TryResolve(b, 1, false, out _, out _));
        Assert.Equal([b], s.Mappings().Select(m => m.Va));
        Assert.Equal([b], s.UnmapAll().Select(m => m.Va));
        Assert.Empty(s.Mappings());
        Assert.True(s.TryResolve(AddressSpace.DataBase, 1, false, out _, out _)); // the data segment stays
    }
}

public class HandleTableRuleTests
{
    sealed class Obj(bool exclusive = false) : KObject
    {
        public override string Kind => exclusive ? "excl" : "obj";
        public override bool Exclusive => exclusive;
    }

    [Fact]
    public void HandlesTakeTheLowestFreeSlotAndCloseBumpsTheGeneration()
    {
        var t = new HandleTable();
        var a = new Obj(); var b = new Obj(); var c = new Obj();
        Assert.Equal(0u, t.Add(a));
        uint hb = t.Add(b);
        Assert.Equal(1u, hb);
        Assert.Same(b, t.Detach(hb));
        Assert.Null(t.Detach(hb));                        // stale now
        uint hc = t.Add(c);
        Assert.Equal(HandleTable.Encode(1, 1), hc);          // slot 1 again, generation 1
        Assert.False(t.TryGet(hb, out _));
        Assert.True(t.TryGet(hc, out var got));
        Assert.Same(c, got);
        Assert.Equal(1, HandleTable.IndexOf(hc));
    }

    [Fact]
    public void RemovalsCountsEveryRemovalAndNothingElse()
    {
        // A lookup cached with Removals (WAIT_FOR_EVENT's kept handle) is trusted while it is unchanged: every
        // removal must move it forward, and adding must not (an add never changes what an existing handle names).
        var t = new HandleTable();
        var a = new Obj(); var b = new Obj();
        uint ha = t.Add(a);
        t.Add(b);
        Assert.Equal(0, t.Removals);
        Assert.Null(t.Detach(HandleTable.Encode(0, 7)));     // a miss removes nothing
        Assert.Equal(0, t.Removals);
        Assert.Same(a, t.Detach(ha));
        Assert.Equal(1, t.Removals);
        t.Add(a);
        Assert.Equal(1, t.Removals);
        t.DetachAll();
        Assert.Equal(2, t.Removals);
    }

    [Fact]
    public void GarbageHandlesMissWithoutThrowing()
    {
        var t = new HandleTable();
        t.Add(new Obj());
        Assert.False(t.TryGet(1ul << 32, out _));          // above 32 bits (would alias slot 0 if truncated)
        Assert.Null(t.Detach(1ul << 32));
        Assert.False(t.TryGet(HandleTable.Encode(0, 1), out _)); // wrong generation
        Assert.Null(t.Detach(HandleTable.Encode(0, 1)));
        Assert.False(t.TryGet(500, out _));                  // slot beyond the array
        Assert.Null(t.Detach(500));
        Assert.False(t.TryGet(5, out _));                    // empty slot inside the array
        Assert.Equal(Errno.ENOTFOUND, Assert.Throws<KernelError>(() => t.Get(5)).AbiCode());
        Assert.True(t.TryGet(0, out _));
    }

    [Fact]
    public void GetOfTheWrongKindIsEnotsupp()
    {
        var t = new HandleTable();
        uint h = t.Add(new Obj());
        Assert.IsType<Obj>(t.Get<KObject>(h));
        Assert.Equal(Errno.ENOTSUPP, Assert.Throws<KernelError>(() => t.Get<FileObject>(h)).AbiCode());
    }

    [Fact]
    public void AnExclusiveObjectHasAtMostOneHandle()
    {
        var t = new HandleTable();
        var x = new Obj(exclusive: true);
        uint h = t.Add(x);
        Assert.Equal(1, x.HandleCount);
        Assert.Equal(Errno.EBUSY, Assert.Throws<KernelError>(() => t.Add(x)).AbiCode());
        Assert.Single(t.Snapshot());                        // the refused add took no slot
        var y = new Obj();
        t.Add(y); t.Add(y);
        Assert.Equal(2, y.HandleCount);
        Assert.Equal(h, t.Snapshot()[0].Handle);
        // Once its handle is gone the exclusive object may be opened again.
        t.Detach(h)!.GetType();
        Assert.Equal(1, x.HandleCount);   // Detach leaves the count to the caller (Process.Close drops it)
    }

    [Fact]
    public void TheTableGrowsTo65536HandlesThenIsFullWithEnomem()
    {
        var t = new HandleTable();
        var o = new Obj();
        // Fill all but the last slot with PlaceAt (linear; Add's lowest-free scan would make this quadratic, which
        // is minutes under mutation-testing instrumentation), then Add takes the last one.
        for (int i = 0; i < HandleTable.MaxHandles - 1; i++) t.PlaceAt(i, o);
        Assert.Equal((uint)(HandleTable.MaxHandles - 1), t.Add(o));
        Assert.Equal(Errno.ENOMEM, Assert.Throws<KernelError>(() => t.Add(o)).AbiCode());
        Assert.Equal(1, o.HandleCount);   // PlaceAt takes no count; Add took one, the refused add none
        Assert.True(t.TryGet(HandleTable.MaxHandles - 1, out _));
        // Freeing one slot makes room again, in that slot.
        t.Detach(17);
        Assert.Equal(HandleTable.Encode(17, 1), t.Add(o));
    }

    [Fact]
    public void PlaceAtGrowsTheTableToTheSlotAndRefusesATakenSlot()
    {
        var t = new HandleTable();
        var a = new Obj(); var b = new Obj();
        Assert.Equal(40u, t.PlaceAt(40, a));                 // beyond the initial 16 slots: grows twice
        Assert.True(t.TryGet(40, out var got));
        Assert.Same(a, got);
        Assert.Throws<InvalidOperationException>(() => t.PlaceAt(40, b));
        Assert.Equal(0u, t.Add(b));                          // lowest free slot is still 0
        Assert.Equal([0u, 40u], t.Snapshot().Select(s => s.Handle));
        var all = t.DetachAll();
        Assert.Equal(2, all.Count);
        Assert.Empty(t.Snapshot());
        Assert.False(t.TryGet(40, out _));
        Assert.Equal(HandleTable.Encode(40, 1), t.PlaceAt(40, a)); // DetachAll bumped the generation
    }

    [Fact]
    public void ASlotJustPastTheArrayMissesAndPlaceAtThereGrowsTheArray()
    {
        // Catches `i >= _slots.Length` weakened to `>` in TryGet, Detach and PlaceAt (index 16 is one past the initial 16 slots).
        var t = new HandleTable();
        Assert.False(t.TryGet(16, out _));
        Assert.Null(t.Detach(16));
        var a = new Obj();
        Assert.Equal(16u, t.PlaceAt(16, a));
        Assert.False(t.TryGet(32, out _));
        Assert.Null(t.Detach(32));
        Assert.Equal(32u, t.PlaceAt(32, a));
        Assert.True(t.TryGet(32, out var got));
        Assert.Same(a, got);
        Assert.Same(a, t.Detach(32));
    }

    [Fact]
    public void AddGrowsTheTableBeyondItsFirst16SlotsByDoubling()
    {
        // Allocation bounds, not exact counts: under mutation testing the instrumented code allocates a little too.
        var o = new Obj();
        new HandleTable().Add(o);                            // first call's one-time costs outside the measurement
        var t = new HandleTable();
        var got = new uint[40];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 16; i++) got[i] = t.Add(o);
        long first16 = GC.GetAllocatedBytesForCurrentThread() - before;
        // The 17th handle needs a larger array: twice the size (a 32-slot array is well under 4 KiB), not the maximum.
        before = GC.GetAllocatedBytesForCurrentThread();
        got[16] = t.Add(o);
        long seventeenth = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.InRange(first16, 0, 4096);                    // the first 16 fit: no growth
        Assert.InRange(seventeenth, 0, 4096);
        for (int i = 17; i < 40; i++) got[i] = t.Add(o);
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (uint)i), got);
        Assert.True(t.TryGet(39, out var last));
        Assert.Same(o, last);
        Assert.Equal(41, o.HandleCount);
    }

    [Fact]
    public void TheLargestHandleValueIsValid_AndTheGenerationWrapsToZero()
    {
        // Slot 65535 at generation 65535 is handle 0xFFFF_FFFF: a valid handle, not "above 32 bits".
        var t = new HandleTable();
        var o = new Obj();
        const int last = HandleTable.MaxHandles - 1;
        for (int gen = 0; gen < ushort.MaxValue; gen++)
        {
            Assert.Equal(HandleTable.Encode(last, (ushort)gen), t.PlaceAt(last, o));
            Assert.Same(o, t.Detach(HandleTable.Encode(last, (ushort)gen)));
        }
        Assert.Equal(0xFFFF_FFFFu, t.PlaceAt(last, o));
        Assert.True(t.TryGet(0xFFFF_FFFFul, out var got));
        Assert.Same(o, got);
        Assert.Same(o, t.Detach(0xFFFF_FFFFul));
        Assert.Equal((uint)last, t.PlaceAt(last, o));                  // generation 65535 + 1 wraps to 0
    }

    [Fact]
    public void PlacingIntoATakenSlotIsAKernelBugThatNamesTheSlot()
    {
        var t = new HandleTable();
        t.PlaceAt(3, new Obj());
        Assert.Equal("slot 3 is taken", Assert.Throws<InvalidOperationException>(() => t.PlaceAt(3, new Obj())).Message);
    }

    [Fact]
    public void HandleValuesAreGenerationHighIndexLow()
    {
        Assert.Equal(0x0003_0005u, HandleTable.Encode(5, 3));
        Assert.Equal(5, HandleTable.IndexOf(0x0003_0005u));
        Assert.Equal(0xFFFF, HandleTable.IndexOf(0xFFFF_FFFFu));
    }
}

public class ProcessRuleTests
{
    sealed class Counted : KObject, IMappable
    {
        public int LastClosed, Unmaps;
        public ulong UnmappedOffset, UnmappedLength;
        public override string Kind => "counted";
        protected override void OnLastHandleClosed(Process lastOwner) => LastClosed++;
        public ulong MappableLength => 1 << 16;
        public IMemoryWindow Map(Process process, ulong offset, ulong length, bool writable) => new ArrayWindow(new byte[length]);
        public void Unmapped(Process process, ulong offset, ulong length) { Unmaps++; UnmappedOffset = offset; UnmappedLength = length; }
    }

    [Fact]
    public void TheLastCloseRunsTheObjectsCleanupOnce_AnUnknownHandleIsANoOp()
    {
        var p = new Process(1, "/a", null, 16);
        var o = new Counted();
        uint h1 = p.Handles.Add(o), h2 = p.Handles.Add(o);
        p.Close(h1);
        Assert.Equal(0, o.LastClosed);
        Assert.Equal(1, o.HandleCount);
        p.Close(h1);                 // stale: nothing happens
        p.Close(0xDEAD_BEEF_0000);   // garbage: nothing happens
        Assert.Equal(1, o.HandleCount);
        p.Close(h2);
        Assert.Equal(1, o.LastClosed);
        Assert.Equal(0, o.HandleCount);
    }

    [Fact]
    public void ExitReleasesEveryHandleAndEveryMapping()
    {
        var p = new Process(2, "/b", null, 16);
        var o = new Counted();
        p.Handles.Add(o);
        p.Space.Map(8192, o.Map(p, 4096, 8192, true), true, o, 4096);
        p.ReleaseAll();
        Assert.Equal(1, o.LastClosed);
        Assert.Equal(1, o.Unmaps);
        Assert.Equal(4096ul, o.UnmappedOffset);
        Assert.Equal(8192ul, o.UnmappedLength);
        Assert.Empty(p.Space.Mappings());
        Assert.Empty(p.Handles.Snapshot());
    }

    [Fact]
    public void AProcessExitsOnceAndKeepsTheFirstCodeAndReason()
    {
        var parent = new Process(1, "/init", null, 16);
        var p = new Process(7, "/bin/x", parent, 16);
        Assert.Same(parent, p.Parent);
        Assert.Equal("7 /bin/x", p.ToString());
        Assert.False(p.Exited);
        Assert.True(p.MarkExited(3, "exit"));
        Assert.False(p.MarkExited(4, "killed"));
        Assert.True(p.Exited);
        Assert.Equal(3, p.ExitCode);
        Assert.Equal("exit", p.ExitReason);
    }

    [Fact]
    public void KernelObjectIdsAreDistinctAndIncreasing()
    {
        var a = new Counted(); var b = new Counted();
        Assert.True(b.Id > a.Id);
        Assert.Equal("counted", a.Describe());
        Assert.Null(a.AsFile());
        Assert.Null(((KObject)a).AsMappable());
        Assert.False(a.Exclusive);
        a.TryAddHandleForBoot();
        Assert.Equal(1, a.HandleCount);
    }

    [Fact]
    public void AnArrayWindowRefusesAnOffsetBeyond32BitsInsteadOfWrappingIt()
    {
        // (int)(2^32 + 4) would be 4: a window must never show other bytes than the ones asked for.
        var w = new ArrayWindow([1, 2, 3, 4, 5, 6, 7, 8]);
        Assert.Throws<OverflowException>(() => w.Span((1UL << 32) + 4, 1));
        Assert.Equal(5, w.Span(4, 1)[0]);
    }

    [Fact]
    public void KernelErrorsCarryTheirAbiCodes()
    {
        Assert.Equal(Errno.EINVAL, KernelError.Inval("x").AbiCode());
        Assert.Equal(Errno.ENOTFOUND, KernelError.NotFound("x").AbiCode());
        Assert.Equal(Errno.EBUSY, KernelError.Busy("x").AbiCode());
        Assert.Equal(Errno.EFAULT, KernelError.Fault("x").AbiCode());
        Assert.Equal(Errno.ENOTSUPP, KernelError.NotSupp("x").AbiCode());
        Assert.Equal(Errno.EEXIST, KernelError.Exists("x").AbiCode());
        Assert.Equal(Errno.ENOMEM, KernelError.NoMem("x").AbiCode());
        Assert.Equal(Errno.EPERM, KernelError.Perm("why").AbiCode());
        Assert.Equal("why", KernelError.Perm("why").Message);
    }
}

public class RamFsRuleTests
{
    static (RamFs Fs, FileObject F) NewFile(string path = "/f", ulong mode = OpenMode.Read | OpenMode.Write)
    {
        var fs = new RamFs();
        return (fs, new FileObject(fs, fs.OpenFile(path, create: true, truncate: false), mode));
    }

    static byte[] ReadAll(FileObject f, int max = 256)
    {
        var buf = new byte[max];
        long n = f.Read(buf);
        return buf.AsSpan(0, (int)n).ToArray();
    }

    static long Code(Action a) => Assert.Throws<KernelError>(a).AbiCode();

    [Fact]
    public void AWriteMayEndExactlyAtTheLargestFile_OnePastItIsENOMEMAndWritesNothing()
    {
        var fs = new RamFs { MaxFileBytes = 64 };
        var f = new FileObject(fs, fs.OpenFile("/f", create: true, truncate: false), OpenMode.Read | OpenMode.Write);
        Assert.Equal(60, f.Write(new byte[60]));
        Assert.Equal(Errno.ENOMEM, Code(() => f.Write("abcde"u8)));   // would end at 65
        Assert.Equal(4, f.Write("wxyz"u8));                           // ends at 64: allowed
        Assert.Equal(Errno.ENOMEM, Code(() => f.Write("!"u8)));
        Assert.Equal(0, f.Seek(0, SeekWhence.Set));
        var all = ReadAll(f);
        Assert.Equal(64, all.Length);
        Assert.Equal("wxyz"u8.ToArray(), all[60..]);
    }

    [Fact]
    public void SeekClampsToTheSize_CurrentIsSigned_EndSubtracts()
    {
        var (_, f) = NewFile();
        f.Write("0123456789"u8);
        Assert.Equal(3, f.Seek(3, SeekWhence.Set));
        Assert.Equal(5, f.Seek(2, SeekWhence.Current));
        Assert.Equal(2, f.Seek(unchecked((ulong)-3L), SeekWhence.Current));
        Assert.Equal(0, f.Seek(unchecked((ulong)-3L), SeekWhence.Current));   // below 0 gives 0 (upstream's unwrap_or(0))
        Assert.Equal(8, f.Seek(2, SeekWhence.End));                            // END subtracts
        Assert.Equal("89"u8.ToArray(), ReadAll(f));
        Assert.Equal(0, f.Seek(11, SeekWhence.End));                           // saturates at 0
        Assert.Equal(10, f.Seek(ulong.MaxValue, SeekWhence.Set));              // SET clamps to the size
        Assert.Equal(10, f.Seek(5, SeekWhence.Current));                       // so does CURRENT
        Assert.Equal(Errno.EINVAL, Code(() => f.Seek(0, 3)));
        Assert.Equal(10, f.Seek(0, SeekWhence.Current));                       // a refused SEEK leaves the position
    }

    [Fact]
    public void TruncateOnlyShrinksAndThePositionFollows()
    {
        var (_, f) = NewFile();
        f.Write("abcdef"u8);
        Assert.Equal(2, f.Truncate(2));
        Assert.Equal(2, f.Seek(0, SeekWhence.Current));
        Assert.Equal(Errno.EINVAL, Code(() => f.Truncate(3)));
        Assert.Equal(0, f.Remaining);                       // at the end
        Assert.Equal(0, f.Seek(0, SeekWhence.Set));
        Assert.Equal(2, f.Remaining);
        Assert.Equal("ab"u8.ToArray(), ReadAll(f));
        Assert.Equal(0, f.Remaining);
    }

    [Fact]
    public void TruncateToTheCurrentSizeIsAllowed_AndAPositionBelowTheNewSizeStays()
    {
        var (_, f) = NewFile();
        f.Write("abcdef"u8);
        f.Seek(1, SeekWhence.Set);
        Assert.Equal(6, f.Truncate(6));                      // not "past the size"
        Assert.Equal(4, f.Truncate(4));
        Assert.Equal(1, f.Seek(0, SeekWhence.Current));      // the position only follows when it would be past the end
        Assert.Equal("bcd"u8.ToArray(), ReadAll(f));
    }

    [Fact]
    public void AWritePastTheEndThatAnotherHandleTruncatedFillsTheGapWithZeros()
    {
        // Handle a sits at 10; handle b cuts the file to 9; a's next write leaves byte 9 as zero, not the old '9'.
        var (fs, a) = NewFile();
        a.Write("0123456789"u8);
        var b = new FileObject(fs, fs.OpenFile("/f", false, false), OpenMode.Read | OpenMode.Write);
        b.Truncate(9);
        Assert.Equal(1, a.Write("X"u8));
        Assert.Equal("012345678\0X"u8.ToArray(), ReadAll(b));
    }

    [Fact]
    public void AFileGrownByteByByteDoublesItsBuffer()
    {
        // 4096 one-byte writes: doubling allocates about 8 KiB in all; growing to fit each time would copy ~8 MiB.
        var (_, f) = NewFile();
        byte[] one = [7];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 4096; i++) f.Write(one);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 4096, 64 * 1024);
        f.Seek(4095, SeekWhence.Set);
        Assert.Equal([7], ReadAll(f));
    }

    [Fact]
    public void OverwritingAFileInPlaceAllocatesNothing()
    {
        // A write that ends exactly at the buffer's end fits: no larger buffer (64 KiB written, then overwritten).
        var (_, f) = NewFile();
        var data = new byte[64 * 1024];
        f.Write(data);
        f.Seek(0, SeekWhence.Set);
        data[^1] = 9;
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(data.Length, f.Write(data));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 4096);
        f.Seek(1, SeekWhence.End);
        Assert.Equal([9], ReadAll(f));
    }

    [Fact]
    public void TheRootDirectoryDescribesItselfAsSlash()
    {
        var fs = new RamFs();
        Assert.Equal("dir /", new DirObject(fs, fs.Root).Describe());
        Assert.Equal("", fs.Root.Name);
    }

    [Fact]
    public void ReadOnlyAndWriteOnlyModesRefuseTheOtherDirection_ModeZeroRefusesBoth()
    {
        var fs = new RamFs();
        var file = fs.OpenFile("/x", create: true, truncate: false);
        var ro = new FileObject(fs, file, OpenMode.Read);
        var wo = new FileObject(fs, file, OpenMode.Write);
        var none = new FileObject(fs, file, 0);
        Assert.Equal(Errno.ERDONLY, Code(() => ro.Write("a"u8)));
        Assert.Equal(Errno.ERDONLY, Code(() => ro.Truncate(0)));
        Assert.Equal(Errno.EWRONLY, Code(() => wo.Read(new byte[4])));
        Assert.Equal(Errno.EWRONLY, Code(() => none.Read(new byte[4])));
        Assert.Equal(Errno.ERDONLY, Code(() => none.Write("a"u8)));
        Assert.False(none.CanRead || none.CanWrite);
        Assert.Equal(1, wo.Write("a"u8));
        Assert.Equal("a"u8.ToArray(), ReadAll(ro));
    }

    [Fact]
    public void AppendMovesToTheEndOnceAndAReadAdvancesByWhatItTook()
    {
        var (fs, f) = NewFile();
        f.Write("ab"u8);
        var app = new FileObject(fs, fs.OpenFile("/f", false, false), OpenMode.Write | OpenMode.Read);
        app.SeekToEnd();
        app.Write("!"u8);
        f.Seek(0, SeekWhence.Set);
        Assert.Equal("ab!"u8.ToArray(), ReadAll(f));
        app.Seek(0, SeekWhence.Set);
        app.Write("X"u8);                                   // later writes do not seek to the end again
        f.Seek(0, SeekWhence.Set);
        Assert.Equal("Xb!"u8.ToArray(), ReadAll(f));
        f.Seek(0, SeekWhence.Set);
        Assert.Equal(2, f.Read(new byte[2]));
        Assert.Equal(2, f.Seek(0, SeekWhence.Current));
    }

    [Fact]
    public void OpenCreatesOnRequest_PathsFollowUpstreamsRules()
    {
        var fs = new RamFs();
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/nope", false, false)));
        var file = fs.OpenFile("/a", true, false);
        new FileObject(fs, file, OpenMode.Write).Write("hello"u8);
        Assert.Same(file, fs.OpenFile("/a", false, false));
        Assert.Same(file, fs.OpenFile("a", false, false));             // relative to the root
        Assert.Same(file, fs.OpenFile("//a", false, false));           // empty components dropped
        Assert.Same(file, fs.OpenFile(fs.Root, "/a", true, out bool created));
        Assert.False(created);
        fs.OpenFile("/a", false, truncate: true);
        Assert.Equal(0, file.Length);
        fs.MkDir(fs.Root, "/d");
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/d", false, false)));   // a directory is not a file
        Assert.Equal(Errno.EEXIST, Code(() => fs.OpenFile("/d", true, false)));       // and CREATE cannot make one there
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/missing/a", true, false)));
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/a/x", true, false)));  // a file on the way
        Assert.Equal(Errno.EINVAL, Code(() => fs.OpenFile("", true, false)));
        Assert.Equal(Errno.EINVAL, Code(() => fs.OpenFile("/", true, false)));
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/d/../a", false, false)));   // ".." is a name like any other
        fs.OpenFile("/" + new string('n', 300), true, false);           // no length limit on a name
        var sub = fs.OpenDir(fs.Root, "/d");
        var inSub = fs.OpenFile(sub, "/x", true, out created);          // walked from another root
        Assert.True(created);
        Assert.Same(inSub, fs.OpenFile("/d/x", false, false));
    }

    [Fact]
    public void MkDirUnlinkAndRmDirFollowUpstreamsRules()
    {
        var fs = new RamFs();
        var root = fs.Root;
        fs.MkDir(root, "/d");
        Assert.Equal(Errno.EEXIST, Code(() => fs.MkDir(root, "/d")));
        fs.MkDirIfMissing("/d");
        fs.MkDirIfMissing("/e");
        fs.OpenDir(root, "/e");
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.MkDir(root, "/x/y")));
        Assert.Equal(Errno.EINVAL, Code(() => fs.MkDir(root, "/")));   // names no entry
        fs.OpenFile("/d/f", true, false);
        Assert.Equal(Errno.UNKNOWN, Code(() => fs.RmDir(root, "/d")));      // NotEmpty
        Assert.Equal(Errno.UNKNOWN, Code(() => fs.Unlink(root, "/d")));     // IsDir
        Assert.Equal(Errno.UNKNOWN, Code(() => fs.RmDir(root, "/d/f")));    // IsFile
        Assert.Equal(KernelErrorKind.NotEmpty, Assert.Throws<KernelError>(() => fs.RmDir(root, "/d")).Kind);
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.Unlink(root, "/d/g")));
        fs.Unlink(root, "/d/f");
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenFile("/d/f", false, false)));
        fs.RmDir(root, "/d");
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenDir(root, "/d")));
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.OpenDir(root, "/e/nothing")));
        Assert.Equal(Errno.EINVAL, Code(() => fs.OpenDir(root, "")));
        Assert.Same(root, fs.OpenDir(root, "/"));
    }

    [Fact]
    public void ProgramsResolveByPathFromTheRoot_AFileThatIsNotAProgramIsEnotsupp()
    {
        var fs = new RamFs();
        fs.InstallProgram("/bin/tools/hello", "hello");
        Assert.Equal("hello", fs.ResolveProgram("/bin/tools/hello"));
        var f = fs.OpenFile("/bin/tools/hello", false, false);
        Assert.Equal("COPRA-PROGRAM hello", System.Text.Encoding.UTF8.GetString(f.Data, 0, f.Length));
        fs.InstallProgram("/bin/tools/hello", "hello2");   // reinstalling replaces
        Assert.Equal("hello2", fs.ResolveProgram("/bin/tools/hello"));
        fs.OpenFile("/plain", true, false);
        Assert.Equal(Errno.ENOTSUPP, Code(() => fs.ResolveProgram("/plain")));
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.ResolveProgram("/bin")));       // a directory is no file to load
        Assert.Equal(Errno.ENOTFOUND, Code(() => fs.ResolveProgram("/bin/none")));
        Assert.Equal(Errno.EINVAL, Code(() => fs.InstallProgram("/plain/x", "x")));
    }

    [Fact]
    public void ReaddirReturnsTheNamesListedAtOpenOnceInOrder_ARemovedOneIsEnotfound()
    {
        var fs = new RamFs();
        fs.MkDir(fs.Root, "/d");
        foreach (var n in new[] { "c", "a", "b" }) fs.OpenFile("/d/" + n, true, false);
        fs.MkDir(fs.Root, "/d/sub");
        new FileObject(fs, fs.OpenFile("/d/a", false, false), OpenMode.Write).Write("xyz"u8);
        var dir = new DirObject(fs, fs.OpenDir(fs.Root, "/d"));
        fs.OpenFile("/d/later", true, false);                   // not in the list made at open
        Assert.True(dir.TryNext(out var e));
        Assert.Equal(("a", false, 3UL), e);
        fs.Unlink(fs.Root, "/d/b");
        Assert.Equal(Errno.ENOTFOUND, Code(() => dir.TryNext(out _)));   // consumed, as upstream's is
        Assert.True(dir.TryNext(out e));
        Assert.Equal("c", e.Name);
        Assert.True(dir.TryNext(out e));
        Assert.Equal(("sub", true, 0UL), e);
        Assert.False(dir.TryNext(out _));
        Assert.False(dir.TryNext(out _));
    }

    [Fact]
    public void OpenFilesAndDirectoriesDescribeThemselvesByName()
    {
        // The process-tree printout names what each handle is; catches Kind/Describe strings emptied.
        var fs = new RamFs();
        fs.MkDir(fs.Root, "/logs");
        var f = new FileObject(fs, fs.OpenFile("/logs/today", true, false), OpenMode.Read);
        Assert.Equal("file", f.Kind);
        Assert.Equal("file today", f.Describe());
        Assert.Same(f, f.AsFile());
        var d = new DirObject(fs, fs.OpenDir(fs.Root, "/logs"));
        Assert.Equal("dir", d.Kind);
        Assert.Equal("dir /logs", d.Describe());
    }

    [Fact]
    public void TheConsoleLogsWritesWithThePid_ReadsAreEndOfFile_SeekAndTruncateAreUnsupported()
    {
        var log = new List<(int, string)>();
        var c = new ConsoleObject((pid, s) => log.Add((pid, s)), 9);
        Assert.Equal(2, c.Write("hi"u8));
        Assert.Equal([(9, "hi")], log);
        Assert.Equal(0, c.Read(new byte[4]));
        Assert.Equal(0, c.Remaining);
        Assert.Equal(Errno.ENOTSUPP, Code(() => c.Seek(0, SeekWhence.Set)));
        Assert.Equal(Errno.ENOTSUPP, Code(() => c.Truncate(0)));
        Assert.Same(c, c.AsFile());
        Assert.Equal("console", c.Kind);
    }
}

/// <summary>Cold code throws kinds; the kernel's one mapping gives the ABI code these tests compare.</summary>
static class KernelErrorCodes
{
    public static long AbiCode(this KernelError e) => Copra.Kernel.Core.SysCallGate.ToAbi(e.Kind);
}
