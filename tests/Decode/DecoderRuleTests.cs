// Decoder, fallback and write-back rules the vector files left open (survivors of the decode mutation run,
// docs/testing.md): each test names its rule; the comment says which wrong line it catches.
using Copra.Hot.Decode;
using Xunit;

namespace Copra.Tests.Decode;

public class DecoderRuleTests
{
    static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    static DecodedAccess Fast(string hex, CpuMode mode = CpuMode.Bits64)
    {
        Assert.True(X86Decoder.TryDecode(Hex(hex), mode, out var d), $"{hex}: {d.Error}");
        return d;
    }

    static RefuseReason FallbackRefusal(string hex, CpuMode mode = CpuMode.Bits64)
    {
        Assert.False(IcedFallback.TryDecode(Hex(hex), mode, out var d), $"{hex}: the fallback accepted it");
        Assert.Equal(0, d.Length);
        return d.Error;
    }

    [Theory]
    [InlineData("8b 46 08"), InlineData("66 8b 07"), InlineData("67 8b 06"), InlineData("a1 34 12"), InlineData("66 c7 07 78 56 34 12")]
    public void A_mode_byte_that_is_no_CpuMode_decodes_as_16_bit_code(string hex)
    {
        // The operand/address sizes come from a per-mode row of the table; a mode outside the enum must pick the 16-bit
        // row, as the comparisons it replaced did, never a row past the table (catches the clamp's 0 turned into 1 or 2).
        var bad = Fast(hex, (CpuMode)7);
        var d16 = Fast(hex, CpuMode.Bits16);
        Assert.Equal((d16.Length, d16.Size, d16.AddressSize, d16.Base, d16.Index, d16.Disp, d16.Imm), (bad.Length, bad.Size, bad.AddressSize, bad.Base, bad.Index, bad.Disp, bad.Imm));
    }

    [Fact]
    public void RAX_counts_as_an_index_register()
    {
        // mov eax, [rbx+rax*4]: index 0 is RAX, not "no index" (catches `d.Index >= 0` narrowed to `> 0`).
        var d = Fast("8b 04 83");
        var g = new ulong[16];
        g[Gpr.Rax] = 0x10;
        g[Gpr.Rbx] = 0x1000;
        Assert.Equal(0x1040ul, EffectiveAddress.Compute(in d, g, 0, 0));
    }

    [Fact]
    public void BT_with_its_bit_offset_in_RAX_moves_to_the_unit_holding_the_bit()
    {
        // bt [rbx], eax with EAX = 64 + 3: bit 3 of the dword 8 bytes up (catches `d.Reg >= 0` / `d.Reg < 0` off by one).
        var d = Fast("0f a3 03");
        var g = new ulong[16];
        g[Gpr.Rax] = 67;
        g[Gpr.Rbx] = 0x1000;
        Assert.Equal(8, WriteBack.BtByteOffset(in d, g));
        Assert.Equal(0x1008ul, EffectiveAddress.Compute(in d, g, 0, 0));
        ulong fl = 0x2;
        WriteBack.Bt(in d, g, ref fl, 0b1000);
        Assert.Equal(WriteBack.CF, fl & WriteBack.CF);
    }

    [Fact]
    public void A_16_bit_register_form_with_its_whole_immediate_is_a_register_operand_not_truncated()
    {
        // add ax, 0x1234 (66 81 C0 iw): the immediate is 2 bytes at operand size 16, so all 5 bytes are there.
        Assert.False(X86Decoder.TryDecode(Hex("66 81 c0 34 12"), CpuMode.Bits64, out var d));
        Assert.Equal(RefuseReason.RegisterOperand, d.Error);
        Assert.False(X86Decoder.TryDecode(Hex("66 81 c0 34"), CpuMode.Bits64, out d));
        Assert.Equal(RefuseReason.Truncated, d.Error);
    }

    [Theory]
    [InlineData(CpuMode.Bits16, "ec")]       // in al, dx
    [InlineData(CpuMode.Bits32, "ec")]
    [InlineData(CpuMode.Bits64, "ec")]
    [InlineData(CpuMode.Bits16, "e6 80")]    // out 0x80, al
    [InlineData(CpuMode.Bits32, "e6 80")]
    [InlineData(CpuMode.Bits64, "e6 80")]
    public void The_fallback_gives_port_IO_the_modes_address_size_as_the_fast_path_does(CpuMode mode, string hex)
    {
        var fast = Fast(hex, mode);
        Assert.True(IcedFallback.TryDecode(Hex(hex), mode, out var f));
        Assert.Equal(mode switch { CpuMode.Bits16 => 2, CpuMode.Bits32 => 4, _ => 8 }, f.AddressSize);
        Assert.Equal(fast.AddressSize, f.AddressSize);
    }

    [Fact]
    public void The_fallback_says_truncated_when_fewer_than_15_bytes_end_early()
    {
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal("89"));                 // mov [..], eax without its ModRM
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal("66 66 66 89 04"));     // SIB missing
    }

    [Fact]
    public void The_fallback_says_too_long_when_15_bytes_are_not_enough()
    {
        // 14 operand-size prefixes and an opcode: the ModRM would be the 16th byte (the CPU's #GP).
        Assert.Equal(RefuseReason.TooLong, FallbackRefusal(string.Concat(Enumerable.Repeat("66", 14)) + "89 00"));
        Assert.Equal(RefuseReason.TooLong, FallbackRefusal(string.Concat(Enumerable.Repeat("66", 14)) + "89"));
    }

    [Fact]
    public void The_fallback_says_unknown_opcode_for_an_undefined_opcode_however_many_bytes_follow()
    {
        // 06 (PUSH ES) does not exist in 64-bit mode: #UD, whether 1, 4 or 15 bytes were supplied. Iced reads a byte past
        // it (and past D6, 0F 04) and on "06" alone reports running out; the CPU needs no more bytes to say #UD.
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("06"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("d6"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("0f 04"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("f0 06"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("06 90 90 90"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("06" + string.Concat(Enumerable.Repeat("90", 14))));
    }

    [Fact]
    public void The_fallback_says_truncated_for_an_opcode_whose_next_byte_could_still_make_it_valid()
    {
        // The CPU needs the next byte (a fetch fault if it is on a missing page), so these are not #UD yet.
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal("0f"));      // 0F 0B is UD2, 0F A2 CPUID...
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal("fe"));      // FE /0 INC, FE /1 DEC; /2../7 undefined
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal("c4"));      // a VEX prefix
        Assert.Equal(RefuseReason.Truncated, FallbackRefusal(string.Concat(Enumerable.Repeat("66", 13)) + "89"));
    }

    [Fact]
    public void An_undefined_opcode_at_exactly_15_bytes_is_unknown_opcode_not_too_long()
    {
        // 14 prefixes and D6: 15 bytes, within the limit, and D6 is undefined in 64-bit mode: #UD as the fast path says
        // (Iced calls it invalid at the length limit, as it does a 16th byte it would need).
        string p14 = string.Concat(Enumerable.Repeat("66", 14));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal(p14 + "d6"));
        Assert.False(X86Decoder.TryDecode(Hex(p14 + "d6"), CpuMode.Bits64, out var fast));
        Assert.Equal(RefuseReason.UnknownOpcode, fast.Error);
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("66 2e 66 2e 66 2e 66 2e 66 2e 66 2e 66 2e d6"));
        Assert.Equal(RefuseReason.LockInvalid, FallbackRefusal(string.Concat(Enumerable.Repeat("66", 12)) + "f0 8b 00"));
        // The same prefixes and a ModRM that would be the 16th byte: too long (the CPU's #GP).
        Assert.Equal(RefuseReason.TooLong, FallbackRefusal(p14 + "89"));
        Assert.Equal(RefuseReason.TooLong, FallbackRefusal(p14 + "66"));   // prefixes only: the opcode would be the 16th
        // The prefix dropped is one repeated later, wherever it stands: dropping the LOCK here would make it valid.
        Assert.Equal(RefuseReason.LockInvalid, FallbackRefusal("f0" + string.Concat(Enumerable.Repeat("66", 12)) + "8b 00"));
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("2e" + string.Concat(Enumerable.Repeat("66", 13)) + "d6"));
        // No prefix repeated (nothing can be dropped) and 17 bytes needed: too long.
        Assert.Equal(RefuseReason.TooLong, FallbackRefusal("26 2e 36 3e 64 65 66 67 c7 84 24 00 00 00 00"));
    }

    [Fact]
    public void The_offset_checked_against_a_segment_limit_is_the_effective_address_truncated_to_the_address_size()
    {
        // mov eax, [ebx+0x20] in 32-bit mode with EBX = 0xFFFFFFF0: the sum wraps to 0x10 (catches `&` → `|`).
        var d = Fast("8b 43 20", CpuMode.Bits32);
        var g = new ulong[16];
        g[Gpr.Rbx] = 0xFFFF_FFF0;
        Assert.Equal(0x10ul, EffectiveAddress.Offset(in d, g, 0));
    }

    [Fact]
    public void The_fallback_says_lock_invalid_only_when_LOCK_is_what_makes_the_bytes_invalid()
    {
        Assert.Equal(RefuseReason.LockInvalid, FallbackRefusal("f0 8b 00"));         // lock mov eax, [rax]
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("f0 06 90"));       // lock on an undefined opcode
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("06 90 90 90"));
        // Bytes Iced refuses for a reason other than LOCK, which its lax mode ignores, are not LOCK's fault (catches the
        // lax re-decode's `valid && LOCK` widened to `valid || LOCK`): LEA with a register operand and MOV to CS, both #UD.
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("8d c0"));          // lea eax, eax
        Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal("8e c8"));          // mov cs, eax
    }

    [Fact]
    public void Write_back_functions_never_index_the_registers_for_an_access_without_a_register()
    {
        // mov dword [rax], 1: no register operand. ApplyRead does nothing; StoreValue is the immediate.
        var imm = Fast("c7 00 01 00 00 00");
        var g = new ulong[16];
        for (int i = 0; i < 16; i++) g[i] = 0x1111ul * (ulong)(i + 1);
        var before = (ulong[])g.Clone();
        WriteBack.ApplyRead(in imm, g, 0xFFFF_FFFF);
        Assert.Equal(before, g);
        Assert.Equal(1ul, WriteBack.StoreValue(in imm, g));
        // An access with neither a register nor an immediate (MOVS) stores 0 rather than reading a register.
        var movs = Fast("a5");
        Assert.Equal(-1, movs.Reg);
        Assert.False(movs.HasImm);
        Assert.Equal(0ul, WriteBack.StoreValue(in movs, g));
    }

    [Fact]
    public void ALU_write_back_leaves_operations_it_does_not_compute_to_the_executor()
    {
        // adc [rax], ecx: not one of ADD/SUB/CMP/AND/TEST/OR/XOR. Alu returns false, writes nothing, keeps the flags.
        var adc = Fast("11 08");
        Assert.Equal(AluOp.Adc, adc.Op);
        var g = new ulong[16];
        g[Gpr.Rcx] = 5;
        ulong fl = 0x2 | WriteBack.CF;
        Assert.False(WriteBack.Alu(in adc, g, ref fl, 7, out ulong mem));
        Assert.Equal(0ul, mem);
        Assert.Equal(0x2 | WriteBack.CF, fl);
        Assert.Equal(5ul, g[Gpr.Rcx]);
    }

    [Fact]
    public void F2_selects_its_own_mandatory_prefix_column_not_F3s()
    {
        // F3 0F 6F/7F is MOVDQU; F2 0F 6F/7F is undefined (#UD). The fast path must look F2 up as F2 (catches the REP
        // prefix's column chosen as F3 whatever the prefix, which would decode F2 0F 6F as MOVDQU).
        var movdqu = Fast("f3 0f 6f 00");
        Assert.Equal(AccessKind.ReadVec, movdqu.Kind);
        Assert.Equal(16, movdqu.Size);
        foreach (string hex in new[] { "f2 0f 6f 00", "f2 0f 7f 00", "f3 f2 0f 6f 00" })
        {
            Assert.False(X86Decoder.TryDecode(Hex(hex), CpuMode.Bits64, out _), $"{hex}: decoded as MOVDQU");
            Assert.Equal(RefuseReason.UnknownOpcode, FallbackRefusal(hex));
        }
    }
}

/// <summary>The x87/MMX/FXSAVE rows (issue 14): direction, whole-operand size and the REX.W layout bit, one row each, so a
/// mutant of any of them fails here as well as in the vectors.</summary>
public class X87DecoderRowTests
{
    [Theory]
    [InlineData("d9 38", "write", 2, 0)]
    [InlineData("dd 38", "write", 2, 0)]
    [InlineData("0f 6f 03", "read", 8, 0)]
    [InlineData("0f 7f 03", "write", 8, 0)]
    [InlineData("0f ae 03", "write", 512, 0)]
    [InlineData("48 0f ae 03", "write", 512, 1)]
    [InlineData("0f ae 0b", "read", 512, 0)]
    [InlineData("48 0f ae 0b", "read", 512, 1)]
    public void Rows_give_direction_size_and_layout(string hex, string dir, int bytes, long rexW)
    {
        Assert.True(X86Decoder.TryDecode(Convert.FromHexString(hex.Replace(" ", "")), CpuMode.Bits64, out DecodedAccess d), d.Error.ToString());
        Assert.Equal(dir, Copra.Hot.Emulate.Executor.MemoryDirection(in d));
        Assert.Equal(bytes, d.OperandBytes);
        Assert.Equal(rexW, d.Imm);
        Assert.False(d.HasImm);
        Assert.Equal(d.Kind is AccessKind.Fxsave or AccessKind.Fxrstor ? 16 : 0, d.Align);
    }

    [Theory]
    [InlineData("66 0f ae 03")]
    [InlineData("f3 0f ae 0b")]
    [InlineData("f2 0f ae 03")]
    [InlineData("f2 0f 6f 03")]
    public void Fxsave_fxrstor_and_mmx_movq_take_no_mandatory_prefix(string hex) =>
        Assert.False(X86Decoder.TryDecode(Convert.FromHexString(hex.Replace(" ", "")), CpuMode.Bits64, out _));
}
