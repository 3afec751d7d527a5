using BenchmarkDotNet.Attributes;
using Copra.Hot.Guest;

namespace Copra.Bench;

/// <summary>
/// RIP to instruction bytes: a full 4-level walk (what every fetch would cost without the per-vCPU
/// code-page cache, the baseline), the fetcher with its cache invalidated (cold: walk + copy), and the
/// fetcher on its cached code page (warm: the exit path's steady state). Tables are hot in the CPU's
/// caches in all three; "cold" is about Copra's cache, not the hardware's.
/// </summary>
[MemoryDiagnoser]
public class PageWalkBench
{
    GuestMemory _mem = null!;
    PagingMode _mode;
    ulong _cr3;
    InstructionFetcher _fetcher = null!;
    readonly byte[] _buf = new byte[InstructionFetcher.MaxInstructionLength];
    const ulong Code = 0x10_0000, Rip = Code + 0x123;

    [GlobalSetup]
    public void Setup()
    {
        _mem = new GuestMemory(8UL << 20);
        var gb = new GuestBuilder(_mem);
        var pt = gb.PageTables(PagingKind.Level4, 0, 0x8_0000);
        pt.Map(Code, Code, 0x10_0000, PageSize.Size4K, writable: false, executable: true);
        pt.Map(0x20_0000, 0x20_0000, 0x60_0000, PageSize.Size2M, writable: true, executable: false);
        gb.Assemble(Rip, a => a.mov(Iced.Intel.AssemblerRegisters.eax, Iced.Intel.AssemblerRegisters.__dword_ptr[Iced.Intel.AssemblerRegisters.rsi]));
        _cr3 = pt.Cr3;
        _mode = PagingMode.From(GuestCpuState.Cr0Pe | GuestCpuState.Cr0Pg | GuestCpuState.Cr0Wp, GuestCpuState.Cr4Pae,
            GuestCpuState.EferLme | GuestCpuState.EferLma | GuestCpuState.EferNxe);
        _fetcher = new InstructionFetcher(1);
        if (PageWalker.Translate(_mem, _mode, _cr3, Rip, AccessType.Execute, out ulong gpa).IsOk is false || gpa != Rip)
            throw new InvalidOperationException("page tables do not identity-map the code page");
        if (_fetcher.Fetch(0, _mem, _mode, _cr3, Rip, _buf, out int n, out _) != FetchResult.Complete || n == 0)
            throw new InvalidOperationException("fetch failed");
    }

    [GlobalCleanup]
    public void Cleanup() => _mem.Dispose();

    [Benchmark(Baseline = true, Description = "PageWalker.Translate (4-level walk)")]
    public ulong TranslateCold()
    {
        PageWalker.Translate(_mem, _mode, _cr3, Rip, AccessType.Execute, out ulong gpa);
        return gpa;
    }

    [Benchmark(Description = "InstructionFetcher.Fetch, cache invalidated (walk + copy)")]
    public int FetchCold()
    {
        _fetcher.Invalidate(0);
        _fetcher.Fetch(0, _mem, _mode, _cr3, Rip, _buf, out int n, out _);
        return n;
    }

    [Benchmark(Description = "InstructionFetcher.Fetch, cached code page")]
    public int FetchWarm()
    {
        _fetcher.Fetch(0, _mem, _mode, _cr3, Rip, _buf, out int n, out _);
        return n;
    }
}
