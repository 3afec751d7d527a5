// The fuzzers must be able to fail: each property runs against a deliberately broken variant (fuzz/Variants) and must
// find the bug and shrink it to a small case.
using Copra.Fuzz.Core;
using Copra.Fuzz.Targets;
using Copra.Fuzz.Variants;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Fuzz.Properties;

public class BrokenVariantTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [Theory]
    [InlineData(CpuMode.Bits16)]
    [InlineData(CpuMode.Bits32)]
    [InlineData(CpuMode.Bits64)]
    public void DecoderPropertyCatchesMovsxBug(CpuMode mode)
    {
        var t = new DecoderTarget(mode, DecoderGen.Structured, BrokenDecoder.MovsxAsMovzx, "decoder-broken-movsx");
        var o = FsCheckRunner.Run(t, 50_000);
        Assert.False(o.Passed, "the MOVSX bug went unnoticed");
        var c = o.Shrunk!;
        Assert.NotNull(t.SafeCheck(c));
        // 0F BE /r plus at most a SIB/displacement: a handful of bytes, and the opcode survives shrinking.
        log.WriteLine($"shrunk: {t.Show(c)}\n{t.SafeCheck(c)}");
        Assert.True(c.Bytes.Length <= 5, $"not shrunk: {t.Show(c)}");
        Assert.Contains("kind", t.SafeCheck(c)!, StringComparison.Ordinal);
        // And the campaign runner's own shrinker gets there too.
        var f = t.Minimise(o.Seed!.Value);
        Assert.True(f.Size <= 5, f.ToString());
    }

    [Fact]
    public void WalkerPropertyCatchesIgnoredPageSize()
    {
        var t = new PageWalkTarget(BrokenWalker.IgnoresPageSize, "pagewalk-broken-ps");
        var o = FsCheckRunner.Run(t, 20_000);
        Assert.False(o.Passed, "ignoring PS went unnoticed");
        log.WriteLine($"shrunk: {t.Show(o.Shrunk!)}\n{t.SafeCheck(o.Shrunk!)}");
        Assert.True(o.Shrunk!.Writes.Length <= 4, $"not shrunk: {t.Show(o.Shrunk)}");
    }

    [Fact]
    public void RingPropertyCatchesDroppedEntry()
    {
        var t = new RingTarget((k, c) => new DroppingMpscRing(c), "rings-broken-drop", RingKind.Mpsc);
        var o = FsCheckRunner.Run(t, 100);
        Assert.False(o.Passed, "the dropped entry went unnoticed");
        log.WriteLine($"shrunk: {t.Show(o.Shrunk!)}\n{t.SafeCheck(o.Shrunk!)}");
        Assert.True(o.Shrunk!.Total <= 150, $"not shrunk: {t.Show(o.Shrunk)}");
    }

    [Fact]
    public void WriteBackPropertyCatchesMissingSignExtension()
    {
        // A write-back that forgets MOVSX's sign extension (writes the raw loaded value).
        var t = new WriteBackTarget((in DecodedAccess d, Span<ulong> g, ulong v) =>
        {
            var plain = d;
            if (plain.Kind == AccessKind.ReadSx) plain.Kind = AccessKind.ReadZx;
            WriteBack.ApplyRead(in plain, g, v);
        }, "writeback-broken-sx");
        var o = FsCheckRunner.Run(t, 20_000);
        Assert.False(o.Passed);
        log.WriteLine($"shrunk: {t.Show(o.Shrunk!)}\n{t.SafeCheck(o.Shrunk!)}");
        Assert.True(t.SizeOf(o.Shrunk!) <= 2, $"not shrunk: {t.Show(o.Shrunk!)}");
    }
}

/// <summary>The CPU-oracle property must catch planted executor bugs against the real processor.</summary>
public class CpuOracleBrokenVariantTests(Xunit.Abstractions.ITestOutputHelper log)
{
    void Catches(CpuOracleTarget t, int cases, string expect)
    {
        var o = FsCheckRunner.Run(t, cases);
        Assert.False(o.Passed, $"{t.Name}: the planted bug went unnoticed");
        string msg = t.SafeCheck(o.Shrunk!)!;
        log.WriteLine($"shrunk: {t.Show(o.Shrunk!)}\n{msg}");
        Assert.Contains(expect, expect == "_r" ? t.Show(o.Shrunk!) : msg, StringComparison.Ordinal);
    }

    [NativeCpuFact]
    public void CatchesCarryOnAddOfZero() =>
        Catches(new CpuOracleTarget(OracleFamily.Alu, BrokenExecutor.AddZeroCarries, name: "cpu-oracle-broken-add-cf"), 20_000, "RFLAGS");

    [NativeCpuFact]
    public void CatchesBtsIgnoringARegisterOffsetPastTheOperand() =>
        Catches(new CpuOracleTarget(OracleFamily.Bit, address: BrokenExecutor.BitOffsetStaysInOperand, name: "cpu-oracle-broken-bts"), 20_000, "_r");  // a register-offset form (Bt*_rm*_r*)

    [NativeCpuFact]
    public void CatchesCmpxchgWritingOnMismatch() =>
        Catches(new CpuOracleTarget(OracleFamily.Exchange, BrokenExecutor.CmpxchgAlwaysStores, name: "cpu-oracle-broken-cmpxchg"), 20_000, "memory byte");

    /// <summary>An MMX store that reads ST(n) instead of physical register n (ignores TOP): the oracle's random TOP finds it.</summary>
    [NativeCpuFact]
    public void CatchesAnMmxStoreIgnoringTop()
    {
        var t = new X87OracleTarget((in DecodedAccess d, Copra.Hot.State.VcpuStateStore s, Span<byte> mem) =>
        {
            if (d.Kind == AccessKind.MmxWrite)
            {
                ulong wrong = s.St(0, d.Reg).Mantissa;
                Copra.Hot.Emulate.X87.MmxStore(s, 0, d.Reg);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(mem, wrong);
            }
            else X87OracleTarget.Execute(in d, s, mem);
        }, "cpu-oracle-broken-mmx-top");
        var o = FsCheckRunner.Run(t, 20_000);
        Assert.False(o.Passed, "the planted bug went unnoticed");
        string msg = t.SafeCheck(o.Shrunk!)!;
        log.WriteLine($"shrunk: {t.Show(o.Shrunk!)}\n{msg}");
        Assert.Contains("memory byte", msg, StringComparison.Ordinal);
    }

    [NativeCpuFact]
    public void CatchesAnSseStoreWithItsHalvesSwapped() =>
        Catches(new CpuOracleTarget(OracleFamily.Vector, name: "cpu-oracle-broken-sse-store", vector: BrokenExecutor.SseStoreSwapsHalves), 20_000, "memory byte");
}
