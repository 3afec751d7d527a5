// The properties as xunit tests, with bounded counts: the whole fuzz suite stays well under three minutes on two
// cores. Long runs belong to the campaign runner (docs/fuzzing.md).
using Copra.Fuzz.Core;
using Copra.Fuzz.Targets;
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Fuzz.Properties;

public class DecoderProperties
{
    public static TheoryData<CpuMode, DecoderGen> Cases()
    {
        var d = new TheoryData<CpuMode, DecoderGen>();
        foreach (var m in Modes.All)
            foreach (var g in new[] { DecoderGen.RandomBytes, DecoderGen.Structured })
                d.Add(m, g);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecoderAgreesWithIced(CpuMode mode, DecoderGen gen) => FsCheckRunner.Assert(new DecoderTarget(mode, gen), 100_000);

    /// <summary>The structured generator must actually reach the decoder's accepted forms, not just refusals.</summary>
    [Theory]
    [InlineData(CpuMode.Bits16)]
    [InlineData(CpuMode.Bits32)]
    [InlineData(CpuMode.Bits64)]
    public void StructuredGeneratorReachesEveryKind(CpuMode mode)
    {
        var t = new DecoderTarget(mode, DecoderGen.Structured);
        var kinds = new HashSet<AccessKind>();
        int accepted = 0;
        for (ulong s = 0; s < 20_000; s++)
            if (X86Decoder.TryDecode(t.Generate(s).Bytes, mode, out DecodedAccess d)) { accepted++; kinds.Add(d.Kind); }
        Assert.True(accepted > 5_000, $"only {accepted} of 20000 accepted");
        foreach (AccessKind k in Enum.GetValues<AccessKind>())
            if (k != AccessKind.Unsupported) Assert.Contains(k, kinds);
    }

    [Fact]
    public void ReplayIsDeterministic()
    {
        var t = new DecoderTarget(CpuMode.Bits64);
        Assert.Equal(t.ShowSeed(12345), t.ShowSeed(12345));
        Assert.Null(t.RunSeed(12345));
    }
}

public class WriteBackProperties
{
    [Fact]
    public void ReadWriteBackMatchesTheSdm() => FsCheckRunner.Assert(new WriteBackTarget(), 20_000);
}

public class PageWalkProperties
{
    [Fact]
    public void WalkerMatchesReference() => FsCheckRunner.Assert(new PageWalkTarget(), 50_000);
}

public class RingProperties
{
    [Theory]
    [InlineData(RingKind.Spsc)]
    [InlineData(RingKind.Mpsc)]
    public void EveryEntryOnceInOrder(RingKind kind) => FsCheckRunner.Assert(new RingTarget(only: kind), 60);
}

public class SyscallProperties
{
    [Fact]
    public void KernelMatchesHandleModel()
    {
        FsCheckRunner.Assert(new SyscallTarget(), 300);
        Assert.True(SyscallTarget.ObservedCalls > 1000, $"only {SyscallTarget.ObservedCalls} calls observed");
        Assert.True(SyscallTarget.Busy > 0, "no EBUSY seen: exclusivity is not exercised");
        Assert.True(SyscallTarget.Stale > 0, "no stale handle seen");
        Assert.True(SyscallTarget.Created > 100, "few objects created");
    }

    [Fact]
    public void MappedPagesNeverChangeState() => FsCheckRunner.Assert(new MemStateTarget(), 200);
}

public class CpuOracleProperties
{
    public static TheoryData<OracleFamily> Families()
    {
        var d = new TheoryData<OracleFamily>();
        foreach (var f in Enum.GetValues<OracleFamily>()) d.Add(f);
        return d;
    }

    /// <summary>The short run: every family against the host CPU (the campaign runs 10^6 per family).</summary>
    [NativeCpuTheory]
    [MemberData(nameof(Families))]
    public void ExecutorAgreesWithTheCpu(OracleFamily family) => FsCheckRunner.Assert(new CpuOracleTarget(family), 5_000);

    /// <summary>The short run of the x87/MMX/FXSAVE forms against the host CPU (the campaign runs 10^6).</summary>
    [NativeCpuFact]
    public void X87FormsAgreeWithTheCpu() => FsCheckRunner.Assert(new X87OracleTarget(), 5_000);
}

/// <summary>A theory that runs instructions on the host CPU: reported as skipped, with the reason, elsewhere.</summary>
public sealed class NativeCpuTheoryAttribute : TheoryAttribute
{
    public NativeCpuTheoryAttribute()
    {
        if (!Hot.Emulate.NativeCpu.IsSupported) Skip = "the CPU oracle runs instructions natively: it needs Linux on x86-64";
    }
}

/// <summary>A fact that runs instructions on the host CPU: reported as skipped, with the reason, elsewhere.</summary>
public sealed class NativeCpuFactAttribute : FactAttribute
{
    public NativeCpuFactAttribute()
    {
        if (!Hot.Emulate.NativeCpu.IsSupported) Skip = "the CPU oracle runs instructions natively: it needs Linux on x86-64";
    }
}
