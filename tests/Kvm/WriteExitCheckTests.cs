// The hardware check without /dev/kvm: a guest whose layout the test knows (code bytes at known addresses, identity
// paging, a device window), KVM's exit written down as KVM reports it (writes after the instruction, reads before),
// and a decoder under test. A planted decoder bug must fail the check on writes as it does on reads.
using Copra.Hot.Decode;
using Copra.Kernel.Backends;
using Copra.Kernel.Kvm;
using Xunit;

namespace Copra.Tests.Kvm;

public sealed class WriteExitCheckTests
{
    const ulong Code = 0x1000, Device = 0xF000_0000;

    /// <summary>Identity paging; code at <see cref="Code"/>, preceded by NOPs so candidates before it decode.</summary>
    sealed class Guest(byte[] code) : IGuestView
    {
        readonly byte[] _mem = [.. Enumerable.Repeat((byte)0x90, 32), .. code, .. Enumerable.Repeat((byte)0xCC, 16)];
        public int Fetch(ulong linear, Span<byte> dest)
        {
            long off = (long)linear - (long)(Code - 32);
            int n = 0;
            while (n < dest.Length && off + n >= 0 && off + n < _mem.Length) { dest[n] = _mem[off + n]; n++; }
            return n;
        }
        public bool Translate(ulong linear, bool write, out ulong gpa) { gpa = linear; return true; }
    }

    static readonly DecoderUnderTest Good = (ReadOnlySpan<byte> b, out DecodedAccess d) => X86Decoder.TryDecode(b, CpuMode.Bits64, out d);

    /// <summary>The planted bug: every displacement is decoded 8 too high (both directions, the same bug).</summary>
    static readonly DecoderUnderTest DispOffByEight = (ReadOnlySpan<byte> b, out DecodedAccess d) =>
    {
        if (!X86Decoder.TryDecode(b, CpuMode.Bits64, out d)) return false;
        if (d.Base >= 0 || d.Index >= 0) d.Disp += 8;
        return true;
    };

    /// <summary>The other planted bug: the displacement byte is not counted in the length.</summary>
    static readonly DecoderUnderTest ShortByOne = (ReadOnlySpan<byte> b, out DecodedAccess d) =>
    {
        if (!X86Decoder.TryDecode(b, CpuMode.Bits64, out d)) return false;
        if (d.Disp != 0) d.Length--;
        return true;
    };

    static ulong[] Regs(ulong rax = 0, ulong rcx = 0, ulong rbx = 0, ulong rsi = 0, ulong rdi = 0)
    {
        var r = new ulong[16];
        r[0] = rax; r[1] = rcx; r[3] = rbx; r[6] = rsi; r[7] = rdi;
        return r;
    }

    static KvmExit Mmio(ulong gpa, uint size, bool write, ulong data = 0) =>
        new() { Reason = KvmExitReason.Mmio, Address = gpa, Size = size, IsWrite = write, Data = data, Count = 1 };

    // mov [rbx+8], eax   then   mov eax, [rbx+8]
    static readonly byte[] StoreThenLoad = [0x89, 0x43, 0x08, 0x8B, 0x43, 0x08];

    static string? CheckWrite(DecoderUnderTest dec, byte[] code, ulong ripAfter, ulong[] regs, KvmExit e, ulong rflags = 0x2)
    {
        var g = new Guest(code);
        var loc = WriteExitCheck.Locate(g, ripAfter, regs, rflags, e);
        var before = (ulong[])regs.Clone();
        if (loc is { } l) WriteExitCheck.Rewind(l, before);
        return WriteExitCheck.Check(dec, g, ripAfter, before, e, loc);
    }

    [Fact]
    public void A_correct_decoder_passes_the_check_on_a_write_and_a_read()
    {
        var regs = Regs(rax: 0x1234_5678, rbx: Device);
        // KVM: the write is reported with RIP past it; the read with RIP at it.
        Assert.Null(CheckWrite(Good, StoreThenLoad, Code + 3, regs, Mmio(Device + 8, 4, true, 0x1234_5678)));
        Assert.Null(WriteExitCheck.Check(Good, new Guest(StoreThenLoad), Code + 3, regs, Mmio(Device + 8, 4, false), null));
    }

    [Fact]
    public void The_write_is_located_by_Iced_where_it_ends_at_KVMs_rip()
    {
        var loc = WriteExitCheck.Locate(new Guest(StoreThenLoad), Code + 3, Regs(rax: 7, rbx: Device), 0x2, Mmio(Device + 8, 4, true, 7));
        Assert.Equal(new LocatedInstruction(Code, 3, false, 0, false, false, false), loc);
        // Data that is not the guest's register is not this instruction.
        Assert.Null(WriteExitCheck.Locate(new Guest(StoreThenLoad), Code + 3, Regs(rax: 7, rbx: Device), 0x2, Mmio(Device + 8, 4, true, 8)));
        // Nor is another address or another size.
        Assert.Null(WriteExitCheck.Locate(new Guest(StoreThenLoad), Code + 3, Regs(rax: 7, rbx: Device), 0x2, Mmio(Device, 4, true, 7)));
        Assert.Null(WriteExitCheck.Locate(new Guest(StoreThenLoad), Code + 3, Regs(rax: 7, rbx: Device), 0x2, Mmio(Device + 8, 2, true, 7)));
    }

    [Theory]
    [InlineData("disp+8")]
    [InlineData("short-by-one")]
    public void A_planted_decoder_bug_fails_the_check_on_writes_as_on_reads(string bug)
    {
        var dec = bug == "disp+8" ? DispOffByEight : ShortByOne;
        var regs = Regs(rax: 0x1234_5678, rbx: Device);
        string? read = WriteExitCheck.Check(dec, new Guest(StoreThenLoad), Code + 3, regs, Mmio(Device + 8, 4, false), null);
        string? write = CheckWrite(dec, StoreThenLoad, Code + 3, regs, Mmio(Device + 8, 4, true, 0x1234_5678));
        Assert.NotNull(read);
        Assert.NotNull(write);
        Assert.Equal(read.Split(' ')[0], write.Split(' ')[0]);   // the same disagreement (address, or length) both ways
    }

    [Fact]
    public void A_rep_stos_still_running_is_located_at_rip_with_its_registers_one_element_back()
    {
        byte[] code = [0xF3, 0xAB];   // rep stosd
        // KVM after one element: RDI advanced by 4, RCX down by one (3 left), RIP still at the instruction.
        var regs = Regs(rax: 0xAABB_CCDD, rcx: 3, rdi: Device + 4);
        var e = Mmio(Device, 4, true, 0xAABB_CCDD);
        var loc = WriteExitCheck.Locate(new Guest(code), Code, regs, 0x2, e);
        Assert.Equal(new LocatedInstruction(Code, 2, true, 4, true, false, true), loc);
        Assert.Null(CheckWrite(Good, code, Code, regs, e));
        // With DF set the string runs downward.
        var down = Regs(rax: 1, rcx: 3, rdi: Device - 4);
        Assert.Null(CheckWrite(Good, code, Code, down, Mmio(Device, 4, true, 1), rflags: 0x402));
    }

    [Fact]
    public void An_out_is_located_at_or_before_rip_and_checked_against_the_port_and_data()
    {
        byte[] code = [0xE6, 0x80];   // out 0x80, al
        var regs = Regs(rax: 0x5A);
        var e = new KvmExit { Reason = KvmExitReason.Io, Address = 0x80, Size = 1, IsWrite = true, Data = 0x5A, Count = 1 };
        // This host's KVM may have skipped the OUT already (RIP past it), or not (RIP at it).
        Assert.Equal(Code, WriteExitCheck.Locate(new Guest(code), Code + 2, regs, 0x2, e)!.Value.Start);
        Assert.Equal(Code, WriteExitCheck.Locate(new Guest(code), Code, regs, 0x2, e)!.Value.Start);
        Assert.Null(CheckWrite(Good, code, Code + 2, regs, e));
        DecoderUnderTest wrongPort = (ReadOnlySpan<byte> b, out DecodedAccess d) => { bool ok = X86Decoder.TryDecode(b, CpuMode.Bits64, out d); d.Port++; return ok; };
        Assert.NotNull(CheckWrite(wrongPort, code, Code + 2, regs, e));
    }

    /// <summary>
    /// KVM hands a 16-byte store to user space as two 8-byte pieces, each its own exit with RIP past the instruction:
    /// both pieces are located (as MOVDQU, not as the MMX MOVQ its bytes without F3 would be) and both agree; a piece
    /// outside the operand, or one not on an 8-byte boundary of it, is not this instruction.
    /// </summary>
    [Fact]
    public void Both_8_byte_pieces_of_a_16_byte_store_are_located_with_their_prefix_and_agree()
    {
        byte[] code = [0xF3, 0x0F, 0x7F, 0x06];   // movdqu [rsi], xmm0
        var regs = Regs(rsi: Device + 4);
        foreach (ulong piece in new ulong[] { 0, 8 })
        {
            var e = Mmio(Device + 4 + piece, 8, true, 0x1122);
            Assert.Equal(new LocatedInstruction(Code, 4, false, 0, false, false, false), WriteExitCheck.Locate(new Guest(code), Code + 4, regs, 0x2, e));
            Assert.Null(CheckWrite(Good, code, Code + 4, regs, e));
        }
        Assert.Null(WriteExitCheck.Locate(new Guest(code), Code + 4, regs, 0x2, Mmio(Device + 4 + 16, 8, true)));
        Assert.Null(WriteExitCheck.Locate(new Guest(code), Code + 4, regs, 0x2, Mmio(Device + 4 + 4, 8, true)));
        // The reads of a 16-byte load come in the same pieces, checked at RIP.
        byte[] load = [0xF3, 0x0F, 0x6F, 0x0E];   // movdqu xmm1, [rsi]
        Assert.Null(WriteExitCheck.Check(Good, new Guest(load), Code, regs, Mmio(Device + 12, 8, false), null));
        Assert.NotNull(WriteExitCheck.Check(Good, new Guest(load), Code, regs, Mmio(Device + 20, 8, false), null));
    }

    /// <summary>
    /// BTS with a register bit offset writes the dword the offset falls in, which may be past the operand (bit 33: the
    /// next dword) or before it (bit -1): located there, and not as the BTR at RIP that writes that next dword itself.
    /// </summary>
    [Fact]
    public void A_bts_with_a_register_offset_is_located_at_the_dword_its_bit_falls_in()
    {
        byte[] code = [0x0F, 0xAB, 0x06, 0x0F, 0xBA, 0x76, 0x04, 0x01];   // bts [rsi], eax; btr dword [rsi+4], 1
        var past = WriteExitCheck.Locate(new Guest(code), Code + 3, Regs(rax: 33, rsi: Device), 0x2, Mmio(Device + 4, 4, true, 2));
        Assert.Equal(new LocatedInstruction(Code, 3, false, 0, false, false, false), past);
        var before = WriteExitCheck.Locate(new Guest(code), Code + 3, Regs(rax: 0xFFFF_FFFF, rsi: Device), 0x2, Mmio(Device - 4, 4, true, 0x8000_0000));
        Assert.Equal(Code, before!.Value.Start);
        Assert.Null(CheckWrite(Good, code, Code + 3, Regs(rax: 33, rsi: Device), Mmio(Device + 4, 4, true, 2)));
    }

    [Fact]
    public void A_locked_instruction_is_located_with_its_lock_prefix()
    {
        byte[] code = [0xF0, 0x0F, 0xC1, 0x06];   // lock xadd [rsi], eax
        var loc = WriteExitCheck.Locate(new Guest(code), Code + 4, Regs(rax: 1, rsi: Device), 0x2, Mmio(Device, 4, true, 5));
        Assert.Equal(Code, loc!.Value.Start);
        Assert.Equal(4, loc.Value.Length);
    }

    /// <summary>What the decoder claims an instruction does with memory must be what the hardware did (each form's direction).</summary>
    [Theory]
    [InlineData(new byte[] { 0xFF, 0x36 }, 8u)]   // push qword [rsi]: reads the operand
    [InlineData(new byte[] { 0xFF, 0x16 }, 8u)]   // call qword [rsi]
    [InlineData(new byte[] { 0xFF, 0x26 }, 8u)]   // jmp qword [rsi]
    [InlineData(new byte[] { 0xA6 }, 1u)]   // cmpsb: reads [rsi] (and [rdi])
    [InlineData(new byte[] { 0x0F, 0xBC, 0x06 }, 4u)]   // bsf eax, [rsi]
    [InlineData(new byte[] { 0x0F, 0x6F, 0x06 }, 8u)]   // movq mm0, [rsi]
    public void A_read_form_agrees_with_a_read_and_not_with_a_write(byte[] code, uint size)
    {
        var regs = Regs(rsi: Device, rdi: Device);
        Assert.Null(WriteExitCheck.Check(Good, new Guest(code), Code, regs, Mmio(Device, size, false), null));
        var located = new LocatedInstruction(Code, code.Length, false, 0, false, false, false);
        Assert.Contains("does not write", WriteExitCheck.Check(Good, new Guest(code), Code + (ulong)code.Length, regs, Mmio(Device, size, true), located));
    }

    [Fact]
    public void A_cmps_read_of_the_destination_operand_agrees_and_one_elsewhere_does_not()
    {
        var regs = Regs(rsi: 0x2000, rdi: Device);
        Assert.Null(WriteExitCheck.Check(Good, new Guest([0xA6]), Code, regs, Mmio(Device, 1, false), null));
        Assert.NotNull(WriteExitCheck.Check(Good, new Guest([0xA6]), Code, regs, Mmio(Device + 1, 1, false), null));
        // Both on the device (REPE CMPSB over two device ranges): the rSI side's read agrees as well as the rDI side's.
        var both = Regs(rsi: Device, rdi: Device + 4);
        Assert.Null(WriteExitCheck.Check(Good, new Guest([0xF3, 0xA6]), Code, both, Mmio(Device, 1, false), null));
        Assert.Null(WriteExitCheck.Check(Good, new Guest([0xF3, 0xA6]), Code, both, Mmio(Device + 4, 1, false), null));
    }

    [Fact]
    public void An_mmx_store_is_a_write()
    {
        byte[] code = [0x0F, 0x7F, 0x06];   // movq [rsi], mm0
        var located = new LocatedInstruction(Code, 3, false, 0, false, false, false);
        Assert.Null(WriteExitCheck.Check(Good, new Guest(code), Code + 3, Regs(rsi: Device), Mmio(Device, 8, true), located));
    }

    [Fact]
    public void A_write_no_instruction_explains_is_a_failure_of_the_check()
    {
        var regs = Regs(rax: 1, rbx: Device);
        Assert.NotNull(CheckWrite(Good, StoreThenLoad, Code + 3, regs, Mmio(Device + 0x100, 4, true, 1)));
    }
}
