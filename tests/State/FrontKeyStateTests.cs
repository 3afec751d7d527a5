using Copra.Abi;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.State;

/// <summary>
/// VcpuStateStore.FrontKey, the five fields the exit's front end reads first (CR0, CR4, EFER, CR3, CS's attributes):
/// the same values as the five getters, and on TDX the same charge (a TDG.VP.RD for each not read since the exit).
/// </summary>
public sealed class FrontKeyStateTests
{
    static VcpuStateStore Store(StateAccessCost cost)
    {
        var s = new VcpuStateStore(2, cost);
        s.SetCr0(1, 0x8000_0031); s.SetCr4(1, 0x20); s.SetEfer(1, 0x500); s.SetCr3(1, 0x7000);
        s.SetSegAttributes(1, StateField.Cs, 0x29B);
        s.SetCr3(0, 0x1234);
        s.OnEntry(0); s.OnEntry(1);
        return s;
    }

    [Theory]
    [InlineData(StateAccessCost.Snp)]
    [InlineData(StateAccessCost.Tdx)]
    public void It_reads_what_the_getters_read_for_each_vcpu(StateAccessCost cost)
    {
        var s = Store(cost);
        s.OnExit(1);
        s.FrontKey(1, out ulong cr0, out ulong cr4, out ulong efer, out ulong cr3, out ushort cs);
        Assert.Equal((s.Cr0(1), s.Cr4(1), s.Efer(1), s.Cr3(1), s.SegAttributes(1, StateField.Cs)), (cr0, cr4, efer, cr3, cs));
        Assert.Equal((0x8000_0031UL, 0x20UL, 0x500UL, 0x7000UL, (ushort)0x29B), (cr0, cr4, efer, cr3, cs));
        s.FrontKey(0, out _, out _, out _, out cr3, out _);
        Assert.Equal(0x1234UL, cr3);
    }

    [Fact]
    public void On_tdx_it_charges_each_field_not_read_since_the_exit_once_and_nothing_more()
    {
        var s = Store(StateAccessCost.Tdx);
        s.OnExit(1);
        long r0 = s.TdReads[1];
        s.FrontKey(1, out _, out _, out _, out _, out _);
        Assert.Equal(5, s.TdReads[1] - r0);
        s.FrontKey(1, out _, out _, out _, out _, out _);
        s.Cr0(1); s.SegAttributes(1, StateField.Cs);
        Assert.Equal(5, s.TdReads[1] - r0);

        // After the next exit, with two of the five read first through their getters: three more.
        s.OnEntry(1); s.OnExit(1);
        r0 = s.TdReads[1];
        s.Cr3(1); s.Efer(1);
        s.FrontKey(1, out _, out _, out _, out _, out _);
        Assert.Equal(5, s.TdReads[1] - r0);

        // Each of the five alone: the other four read first, FrontKey charges the fifth.
        Action<VcpuStateStore>[] getters = [x => x.Cr0(1), x => x.Cr4(1), x => x.Efer(1), x => x.Cr3(1), x => x.SegAttributes(1, StateField.Cs)];
        for (int skip = 0; skip < getters.Length; skip++)
        {
            s.OnEntry(1); s.OnExit(1);
            for (int g = 0; g < getters.Length; g++) if (g != skip) getters[g](s);
            r0 = s.TdReads[1];
            s.FrontKey(1, out _, out _, out _, out _, out _);
            Assert.True(s.TdReads[1] - r0 == 1, $"field {skip}: {s.TdReads[1] - r0} reads");
        }
        Assert.Equal(0, s.TdReads[0]);
    }

    [Fact]
    public void On_snp_it_charges_nothing()
    {
        var s = Store(StateAccessCost.Snp);
        s.OnExit(1);
        s.FrontKey(1, out _, out _, out _, out _, out _);
        Assert.Equal(0, s.TdReads[1]);
    }
}
