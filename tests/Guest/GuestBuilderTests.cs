using Copra.Hot.Guest;
using Copra.Hot.State;
using Iced.Intel;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Guest;

/// <summary>Guests built with GuestBuilder: assembled code round-trips through the walker and fetcher, and the state is consistent.</summary>
public sealed class GuestBuilderTests : IDisposable
{
    const ulong MiB = 1UL << 20;
    readonly GuestMemory _mem = new(8 * MiB);
    readonly GuestBuilder _b;

    public GuestBuilderTests() => _b = new GuestBuilder(_mem);
    public void Dispose() => _mem.Dispose();

    /// <summary>Fetches and decodes every instruction in [start, end) through the guest's own page tables.</summary>
    static List<Instruction> FetchAndDecode(GuestMemory mem, GuestCpuState s, ulong start, ulong end)
    {
        var fetcher = new InstructionFetcher(1);
        var list = new List<Instruction>();
        byte[] buf = new byte[15];
        for (ulong rip = start; rip < end;)
        {
            ulong linear = s.Cs.Base + rip;
            Assert.Equal(FetchResult.Complete, fetcher.Fetch(0, mem, s.Mode, s.Cr3, linear, buf, out int n, out _));
            var d = Decoder.Create(s.CodeBitness, new ByteArrayCodeReader(buf, 0, n), rip);
            d.Decode(out Instruction ins);
            Assert.False(ins.IsInvalid);
            list.Add(ins);
            rip = ins.NextIP;
        }
        return list;
    }

    [Fact]
    public void Long_mode_code_assembled_at_a_high_linear_address_round_trips_through_the_walker()
    {
        const ulong codeLinear = 0xFFFF_8000_0040_0FF0UL, codeGpa = 0x20_0FF0; // straddles a page boundary
        PageTableBuilder pt = _b.PageTables(PagingKind.Level4, MiB, MiB);
        pt.Map(0xFFFF_8000_0040_0000UL, 0x20_0000, 2 * MiB, PageSize.Size2M, writable: false, executable: true);
        ushort limit = _b.WriteGdt(0x1000);
        GuestCpuState s = GuestCpuState.LongMode(pt.Cr3, 0x1000, codeLinear, 0x8000);
        Label loop = default;
        AssembledCode code = _b.Assemble(codeLinear, codeGpa, a =>
        {
            loop = a.CreateLabel();
            a.Label(ref loop);
            a.mov(eax, __dword_ptr[rbx + rcx * 4 + 0x10]);
            a.mov(__qword_ptr[rdi], 0x12345678);
            a.movzx(edx, __word_ptr[rsi]);
            a.@out(dx, al);
            a.jmp(loop);
        });

        Assert.Equal(Gdt.Limit, limit);
        Assert.Equal(codeLinear, code.LabelAddress(loop));
        List<Instruction> got = FetchAndDecode(_mem, s, codeLinear, code.End);
        Assert.Equal([Code.Mov_r32_rm32, Code.Mov_rm64_imm32, Code.Movzx_r32_rm16, Code.Out_DX_AL, Code.Jmp_rel8_64], got.Select(i => i.Code));
        Assert.Equal(codeLinear, got[^1].NearBranchTarget);
    }

    [Theory]
    [InlineData(PagingKind.Legacy32)]
    [InlineData(PagingKind.Pae)]
    [InlineData(PagingKind.None)]
    public void Protected_mode_32_bit_code_round_trips_through_each_paging_kind(PagingKind paging)
    {
        ulong cr3 = 0;
        if (paging != PagingKind.None)
        {
            PageTableBuilder pt = _b.PageTables(paging, MiB, MiB);
            pt.Map(0x8000_0000, 0x40_0000, 0x2000, PageSize.Size4K, writable: false, executable: true);
            cr3 = pt.Cr3;
        }
        ulong rip = paging == PagingKind.None ? 0x40_0000UL : 0x8000_0000UL;
        _b.WriteGdt(0x1000);
        GuestCpuState s = GuestCpuState.ProtectedMode(paging, cr3, 0x1000, (uint)rip, 0x9000);
        Assert.Equal(32, s.CodeBitness);
        Assert.Equal(paging, s.Mode.Kind);
        AssembledCode code = _b.Assemble(rip, 0x40_0000, a =>
        {
            a.mov(__dword_ptr[0xFEE0_00B0], 0);
            a.rep.movsd();
            a.@in(eax, dx);
        }, bitness: 32);
        Assert.Equal([Code.Mov_rm32_imm32, Code.Movsd_m32_m32, Code.In_EAX_DX], FetchAndDecode(_mem, s, rip, code.End).Select(i => i.Code));
    }

    [Fact]
    public void Real_mode_code_round_trips_with_segment_base()
    {
        GuestCpuState s = GuestCpuState.RealMode(cs: 0x1000, ip: 0x100, ss: 0, sp: 0x7000);
        Assert.Equal(16, s.CodeBitness);
        Assert.Equal(0x1_0000UL, s.Cs.Base);
        AssembledCode code = _b.Assemble(0x100, 0x1_0100, a => { a.mov(al, __byte_ptr[bx + si]); a.hlt(); }, bitness: 16);
        Assert.Equal([Code.Mov_r8_rm8, Code.Hlt], FetchAndDecode(_mem, s, 0x100, code.End).Select(i => i.Code));
    }

    [Fact]
    public void Identity_long_mode_guest_starts_where_its_code_is()
    {
        GuestCpuState s = _b.LongModeIdentity(tablesBase: MiB, tablesSize: 64 * 1024, gdtBase: 0x1000, identityBytes: 8 * MiB, rip: 0x20_0000, rsp: 0x1F_F000);
        ulong end = _b.Assemble(0x20_0000, a => { a.mov(rcx, __qword_ptr[0x7F_0000]); a.hlt(); });
        Assert.Equal(PagingKind.Level4, s.Mode.Kind);
        Assert.Equal(64, s.CodeBitness);
        Assert.Equal([Code.Mov_r64_rm64, Code.Hlt], FetchAndDecode(_mem, s, s.Rip, end).Select(i => i.Code));
        Assert.True(PageWalker.Translate(_mem, s.Mode, s.Cr3, 0x7F_FFF8, AccessType.Write, out ulong gpa).IsOk);
        Assert.Equal(0x7F_FFF8UL, gpa);
    }

    [Fact]
    public void Gdt_descriptors_decode_back_to_the_state_attributes()
    {
        _b.WriteGdt(0x2000);
        Assert.Equal(SegmentAttributes.Code64, SegmentAttributes.FromDescriptor(_mem.ReadU64(0x2000 + Gdt.Code64)));
        Assert.Equal(SegmentAttributes.Code32, SegmentAttributes.FromDescriptor(_mem.ReadU64(0x2000 + Gdt.Code32)));
        Assert.Equal(SegmentAttributes.Code16, SegmentAttributes.FromDescriptor(_mem.ReadU64(0x2000 + Gdt.Code16)));
        Assert.Equal(SegmentAttributes.Data, SegmentAttributes.FromDescriptor(_mem.ReadU64(0x2000 + Gdt.Data)));
        Assert.Equal(0x00AF_9B00_0000_FFFFUL, _mem.ReadU64(0x2000 + Gdt.Code64)); // the canonical flat 64-bit code descriptor
        Assert.Equal(0x00CF_9300_0000_FFFFUL, _mem.ReadU64(0x2000 + Gdt.Data));
    }

    [Fact]
    public void Cpu_state_loads_into_the_store_without_charging()
    {
        var store = new VcpuStateStore(2, StateAccessCost.Tdx);
        GuestCpuState s = GuestCpuState.LongMode(0x5000, 0x1000, 0x20_0000, 0x8000);
        s.ApplyTo(store, 1);
        Assert.Equal(0L, store.TdReads[1] + store.TdWrites[1]);
        Assert.Equal(0x20_0000UL, store.Rip(1));
        Assert.Equal(s.Mode, store.PagingMode(1));
        Assert.Equal(SegmentAttributes.Code64, store.SegAttributes(1, Copra.Abi.StateField.Cs));
    }

    [Fact]
    public void Page_table_builder_refuses_what_hardware_cannot_express()
    {
        var legacy = _b.PageTables(PagingKind.Legacy32, MiB, MiB);
        Assert.Throws<ArgumentException>(() => legacy.Map(0x1000, 0x1000, 0x1000, PageSize.Size4K, true, executable: false));
        Assert.Throws<ArgumentException>(() => legacy.Map(0, 0, 2 * MiB, PageSize.Size2M, true, true));
        var l4 = _b.PageTables(PagingKind.Level4, 2 * MiB, MiB);
        Assert.Throws<ArgumentException>(() => l4.Map(0x1000, 0x1800, 0x1000, PageSize.Size4K, true, true));
        Assert.Throws<ArgumentOutOfRangeException>(() => l4.Map(0x0000_8000_0000_0000UL, 0, 0x1000, PageSize.Size4K, true, true));
        l4.Map(0, 0, 2 * MiB, PageSize.Size2M, true, true);
        Assert.Throws<InvalidOperationException>(() => l4.Map(0x1000, 0x1000, 0x1000, PageSize.Size4K, true, true));
    }
}
