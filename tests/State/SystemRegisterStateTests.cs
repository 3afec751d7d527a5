using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.State;
using Xunit;

namespace Copra.Tests.State;

/// <summary>GDTR, IDTR, LDTR and TR as vCPU state: field ids, widths, reset values, TDX charging and the VMSA page.</summary>
public sealed class SystemRegisterStateTests
{
    [Fact]
    public void Reset_values_are_the_sdm_power_up_ones()
    {
        var s = new VcpuStateStore(2, StateAccessCost.Snp);
        Assert.Equal(0xFFFF, s.GdtrLimit(1));
        Assert.Equal(0xFFFF, s.IdtrLimit(1));
        Assert.Equal(0UL, s.GdtrBase(1));
        Assert.Equal(0xFFFFu, s.SegLimit(1, StateField.Ldtr));
        Assert.Equal(0xFFFFu, s.SegLimit(1, StateField.Tr));
        Assert.Equal(0x82, s.SegAttributes(1, StateField.Ldtr));   // present, LDT
        Assert.Equal(0x83, s.SegAttributes(1, StateField.Tr));     // present, busy 16-bit TSS
        Assert.Equal(0, s.SegSelector(1, StateField.Tr));
    }

    [Fact]
    public void Field_ids_are_fixed_and_round_trip()
    {
        Assert.Equal(24UL, StateField.GdtrBase);
        Assert.Equal(27UL, StateField.IdtrLimit);
        Assert.Equal(72UL, StateField.Seg(StateField.Ldtr, StateField.Selector));
        Assert.Equal(79UL, StateField.Seg(StateField.Tr, StateField.Attributes));
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        (ulong Field, ulong Value)[] writes =
        [
            (StateField.GdtrBase, 0xFFFF_8000_1234_0000), (StateField.GdtrLimit, 0x7F), (StateField.IdtrBase, 0xFFFF_8000_5678_0000),
            (StateField.IdtrLimit, 0xFFF), (StateField.Seg(6, 0), 0x28), (StateField.Seg(6, 1), 0x1000), (StateField.Seg(6, 2), 0x67),
            (StateField.Seg(6, 3), 0x82), (StateField.Seg(7, 0), 0x40), (StateField.Seg(7, 1), 0xFFFF_FE00_0000_3000),
            (StateField.Seg(7, 2), 0x2067), (StateField.Seg(7, 3), 0x8B),
        ];
        foreach (var (f, v) in writes) Assert.True(s.TryWrite(0, f, v), $"field {f}");
        foreach (var (f, v) in writes)
        {
            Assert.True(s.TryRead(0, f, out ulong got));
            Assert.Equal(v, got);
        }
        // Each is its own storage: the six ordinary segments are untouched.
        Assert.Equal(0, s.SegSelector(0, StateField.Gs));
        Assert.Equal(0x28, s.SegSelector(0, StateField.Ldtr));
        Assert.Equal(0x40, s.SegSelector(0, StateField.Tr));
    }

    [Fact]
    public void Values_wider_than_the_field_are_refused()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        Assert.False(s.TryWrite(0, StateField.GdtrLimit, 0x1_0000));
        Assert.False(s.TryWrite(0, StateField.IdtrLimit, 0x1_0000));
        Assert.False(s.TryWrite(0, StateField.Seg(StateField.Tr, StateField.Selector), 0x1_0000));
        Assert.False(s.TryWrite(0, StateField.Seg(StateField.Ldtr, StateField.Attributes), 0x1000));
        Assert.Equal(0xFFFF, s.GdtrLimit(0));
        Assert.False(s.TryRead(0, 28, out _));   // the next id is not a field
    }

    [Fact]
    public void Tdx_charges_each_system_field_once_per_exit_and_each_write_at_entry()
    {
        var s = new VcpuStateStore(2, StateAccessCost.Tdx);
        s.OnExit(1);
        s.GdtrBase(1); s.GdtrBase(1); s.GdtrLimit(1);
        s.SegSelector(1, StateField.Ldtr); s.SegBase(1, StateField.Tr); s.SegBase(1, StateField.Tr);
        Assert.True(s.TryRead(1, StateField.IdtrLimit, out _));
        Assert.Equal(5, s.TdReads[1]);
        s.SetIdtrBase(1, 0x1000);
        s.SetSegAttributes(1, StateField.Tr, 0x8B);
        s.SetCr0(1, 0x11);
        Assert.Equal(1UL << (VcpuStateStore.Bit.IdtrBase - 64) | 1UL << (VcpuStateStore.Bit.Seg(StateField.Tr, StateField.Attributes) - 64), s.DirtyMaskHigh(1));
        Assert.Equal(3, s.OnEntry(1));
        Assert.Equal(0UL, s.DirtyMaskHigh(1));
        s.OnExit(1);
        Assert.Equal(0UL, s.ValidMaskHigh(1));
        s.GdtrBase(1);
        Assert.Equal(6, s.TdReads[1]);
        Assert.Equal(0, s.TdReads[0]);
    }

    [Fact]
    public void Tracked_bits_of_the_system_fields_are_distinct_and_in_the_second_word()
    {
        var bits = new HashSet<int>();
        foreach (ulong f in new ulong[] { 24, 25, 26, 27, 72, 73, 74, 75, 76, 77, 78, 79 })
        {
            int b = VcpuStateStore.TrackedBit(f);
            Assert.InRange(b, 64, 75);
            Assert.True(bits.Add(b), $"field {f} shares bit {b}");
        }
        Assert.Equal(VcpuStateStore.Bit.Seg(StateField.Gs, StateField.Attributes), VcpuStateStore.TrackedBit(71));
        Assert.Equal(0x1FFFUL, VcpuStateStore.Bit.AllHigh);   // and bit 64+12, the interruptibility field (InterruptibilityStateTests)
    }

    [Fact]
    public void Snp_charges_nothing_for_the_system_fields()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        s.OnExit(0);
        s.GdtrBase(0); s.SetIdtrLimit(0, 0x10); s.SegBase(0, StateField.Ldtr);
        Assert.Equal(0, s.TdReads[0]);
        Assert.Equal(0, s.OnEntry(0));
    }

    [Fact]
    public void Vmsa_page_carries_them_at_the_sev_es_save_area_offsets()
    {
        var s = new VcpuStateStore(1, StateAccessCost.Snp);
        s.SetGdtrBase(0, 0x1111_0000); s.SetGdtrLimit(0, 0x57);
        s.SetIdtrBase(0, 0x2222_0000); s.SetIdtrLimit(0, 0xFFF);
        s.SetSegSelector(0, StateField.Ldtr, 0x30); s.SetSegBase(0, StateField.Ldtr, 0x3333_0000); s.SetSegLimit(0, StateField.Ldtr, 0x1F); s.SetSegAttributes(0, StateField.Ldtr, 0x82);
        s.SetSegSelector(0, StateField.Tr, 0x40); s.SetSegBase(0, StateField.Tr, 0x4444_0000); s.SetSegLimit(0, StateField.Tr, 0x67); s.SetSegAttributes(0, StateField.Tr, 0x8B);
        s.SetSegSelector(0, StateField.Gs, 0x18);
        var page = new byte[VmsaLayout.Size];
        Assert.True(s.TryExportVmsa(0, page));
        Assert.Equal(0x57u, BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(0x64)));
        Assert.Equal(0x1111_0000UL, BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x68)));
        Assert.Equal(0x30, BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(0x70)));
        Assert.Equal(0x82, BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(0x72)));
        Assert.Equal(0x1Fu, BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(0x74)));
        Assert.Equal(0x3333_0000UL, BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x78)));
        Assert.Equal(0xFFFu, BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(0x84)));
        Assert.Equal(0x2222_0000UL, BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x88)));
        Assert.Equal(0x40, BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(0x90)));
        Assert.Equal(0x8B, BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(0x92)));
        Assert.Equal(0x4444_0000UL, BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(0x98)));
        Assert.Equal(0x18, BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(0x50)));   // GS stays where it was

        var t = new VcpuStateStore(1, StateAccessCost.Snp);
        Assert.True(t.TryImportVmsa(0, page));
        Assert.Equal(0x57, t.GdtrLimit(0));
        Assert.Equal(0x2222_0000UL, t.IdtrBase(0));
        Assert.Equal(0x3333_0000UL, t.SegBase(0, StateField.Ldtr));
        Assert.Equal(0x8B, t.SegAttributes(0, StateField.Tr));
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x84), 0x1_0000);   // an IDTR limit past 16 bits
        Assert.False(t.TryImportVmsa(0, page));
        Assert.Equal(0xFFF, t.IdtrLimit(0));
    }
}
