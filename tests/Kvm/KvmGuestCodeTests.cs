using Copra.Hot.Decode;
using Copra.Kernel.Backends;
using Iced.Intel;
using Xunit;

namespace Copra.Tests.Kvm;

/// <summary>
/// The KVM guest's access loop (KvmGuestBuilder.EmitAccessLoop) without /dev/kvm: every mix entry's exiting instruction
/// is assembled, found in the emitted code, and decoded by X86Decoder as the form the entry names, so a broken guest
/// builder fails here even where the KVM tests are skipped.
/// </summary>
public class KvmGuestCodeTests
{
    [Theory]
    [InlineData("lock_xadd", AccessKind.Alu, AluOp.Xadd, true)]
    [InlineData("alu", AccessKind.Alu, AluOp.Or, false)]
    [InlineData("write_imm", AccessKind.WriteImm, AluOp.None, false)]
    [InlineData("push_pop", AccessKind.Push, AluOp.None, false, AccessKind.Pop)]
    public void The_access_loop_emits_the_entrys_form_against_the_window(string entry, AccessKind kind, AluOp op, bool locked, AccessKind then = AccessKind.Unsupported)
    {
        AccessKind[] kinds = then == AccessKind.Unsupported ? [kind] : [kind, then];
        Check(entry, kinds, op, locked, Gpr.Rsi);
    }

    /// <summary>The issue 14 entries: each exiting instruction in order (a store of a branch target is a plain write).</summary>
    [Theory]
    [InlineData("sse", Gpr.Rsi, AccessKind.WriteVec, AccessKind.ReadVec)]
    [InlineData("movdiri", Gpr.Rsi, AccessKind.Write)]
    [InlineData("movdir64b", Gpr.Rsi, AccessKind.Movdir64b)]
    [InlineData("cmps", Gpr.Rdi, AccessKind.Cmps)]
    [InlineData("cmpxchg16b", Gpr.Rdi, AccessKind.Alu)]
    [InlineData("call_jmp", Gpr.Rsi, AccessKind.Write, AccessKind.Call, AccessKind.Write, AccessKind.Jmp)]
    [InlineData("bsf_bsr", Gpr.Rsi, AccessKind.Alu, AccessKind.Alu)]
    [InlineData("vector", Gpr.Rsi, AccessKind.WriteVec, AccessKind.WriteVec, AccessKind.WriteVec, AccessKind.WriteVec, AccessKind.WriteVec,
        AccessKind.WriteVec, AccessKind.WriteVec, AccessKind.WriteVec, AccessKind.ReadVec, AccessKind.ReadVec, AccessKind.ReadVec,
        AccessKind.ReadVec, AccessKind.ReadVec)]
    public void The_access_loop_emits_the_kvm_path_forms(string entry, sbyte baseReg, params AccessKind[] kinds) =>
        Check(entry, kinds, entry == "cmpxchg16b" ? AluOp.Cmpxchg16b : AluOp.None, entry == "cmpxchg16b", baseReg,
            entry == "bsf_bsr" ? [AluOp.Bsf, AluOp.Bsr] : null);

    /// <summary>
    /// Every entry `copra run` accepts builds a KVM guest loop (a `cpuid` entry once ended `copra run --backend kvm` with
    /// an internal error); CPUID itself has no memory operand and KVM answers it without an exit to user space.
    /// </summary>
    [Fact]
    public void Every_mix_entry_the_scenario_accepts_builds_a_kvm_guest_loop()
    {
        foreach (var entry in Copra.Kernel.Run.Scenario.MixKinds)
        {
            var a = new Assembler(64);
            KvmGuestBuilder.EmitAccessLoop(a, [entry], 3, random: false, window: 0xFEB0_1000, outPort: 0x3FF, inPort: 0x3FD, movsSource: 0x20_0000);
            Assert.NotEmpty(a.Instructions);
        }
        var cpuid = new Assembler(64);
        KvmGuestBuilder.EmitAccessLoop(cpuid, ["cpuid"], 3, random: false, window: 0xFEB0_1000, outPort: 0x3FF, inPort: 0x3FD, movsSource: 0x20_0000);
        Assert.Contains(cpuid.Instructions, i => i.Mnemonic == Mnemonic.Cpuid);
    }

    static void Check(string entry, AccessKind[] kinds, AluOp op, bool locked, sbyte baseReg, AluOp[]? ops = null)
    {
        var a = new Assembler(64);
        KvmGuestBuilder.EmitAccessLoop(a, [entry], 3, random: false, window: 0xFEB0_1000, outPort: 0x3FF, inPort: 0x3FD, movsSource: 0x20_0000);
        var w = new CodeWriterImpl();
        a.Assemble(w, 0x10_0000);
        byte[] code = w.Bytes.ToArray();
        var dec = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code), 0x10_0000);
        int found = 0;
        while (dec.IP < 0x10_0000 + (ulong)code.Length)
        {
            int at = (int)(dec.IP - 0x10_0000);
            dec.Decode(out var ins);
            if (ins.Mnemonic == Mnemonic.Lea || !Enumerable.Range(0, ins.OpCount).Any(k => IcedForms.IsMemory(ins.GetOpKind(k)))) continue;
            Assert.True(X86Decoder.TryDecode(code.AsSpan(at), CpuMode.Bits64, out var d), $"{ins}: {d.Error}");
            Assert.True(found < kinds.Length, $"more exiting instructions than expected: {ins}");
            Assert.Equal(kinds[found], d.Kind);
            Assert.Equal(ops?[found] ?? op, d.Op);
            Assert.Equal(locked, d.Lock);
            // The window pointer the loop advances (CMPS: its rSI side; MOVDIR64B: the RAM source, rSI reloaded).
            Assert.Equal(baseReg, d.Base);
            found++;
        }
        Assert.Equal(kinds.Length, found);
    }

    sealed class CodeWriterImpl : CodeWriter
    {
        public readonly List<byte> Bytes = [];
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
