using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.State;

/// <summary>The interruptibility field (the STI/MOV SS shadow): id, width, TDX charging and the VMSA's INT_SHADOW bit.</summary>
public sealed class InterruptibilityStateTests
{
    [Fact]
    public void The_field_holds_the_two_blocking_bits_and_refuses_any_other()
    {
        var s = new VcpuStateStore(2, StateAccessCost.Snp);
        Assert.Equal(38UL, StateField.Interruptibility);
        Assert.Equal(0UL, s.Interruptibility(1));                                   // reset: no blocking
        Assert.True(s.TryWrite(1, StateField.Interruptibility, StateField.BlockingByMovSs | StateField.BlockingBySti));
        Assert.True(s.TryRead(1, StateField.Interruptibility, out ulong got));
        Assert.Equal(3UL, got);
        Assert.False(s.TryWrite(1, StateField.Interruptibility, 4));               // blocking by SMI: not modelled
        Assert.False(s.TryWrite(1, StateField.Interruptibility, 1UL << 32));
        Assert.Equal(3UL, s.Interruptibility(1));
        Assert.Equal(0UL, s.Interruptibility(0));                                   // per vCPU
    }

    [Fact]
    public void Tdx_charges_a_read_once_per_exit_and_a_write_at_entry()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Tdx);
        s.OnExit(0);
        s.Interruptibility(0); s.Interruptibility(0);
        Assert.Equal(1, s.TdReads[0]);
        s.SetInterruptibility(0, StateField.BlockingByMovSs);
        Assert.Equal(1UL << (VcpuStateStore.Bit.Interruptibility - 64), s.DirtyMaskHigh(0));
        Assert.Equal(1, s.OnEntry(0));
        Assert.Equal(VcpuStateStore.Bit.Interruptibility, VcpuStateStore.TrackedBit(StateField.Interruptibility));
    }

    [Fact]
    public void The_vmsa_page_carries_it_as_vintr_ctrl_int_shadow()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        s.SetInterruptibility(0, StateField.BlockingBySti);
        var page = new byte[VmsaLayout.Size];
        Assert.True(s.TryExportVmsa(0, page));
        Assert.Equal(1UL << 10, BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x3B8)));   // VINTR_CTRL bit 10
        var t = new VcpuStateStore(1, StateAccessCost.Snp);
        Assert.True(t.TryImportVmsa(0, page));
        Assert.Equal(StateField.BlockingByMovSs, t.Interruptibility(0));   // one bit: read back as MOV SS blocking
        page.AsSpan(0x3B8, 8).Clear();
        Assert.True(t.TryImportVmsa(0, page));
        Assert.Equal(0UL, t.Interruptibility(0));
    }
}
