using Copra.Abi;
using Copra.Hot.Guest;
using Xunit;
using static Copra.Tests.Kernel.HardwareRig;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// A kernel-emulated read-modify-write computes its registers and flags into a pending copy that becomes the vCPU's only
/// when its write is done (ExitPipeline.Wide.cs, Compute/IsRmw): a write that faults leaves the instruction wholly undone.
/// The device is reached through a read-only alias: the operand's walk, made as a write for a read-modify-write as the
/// CPU makes it, raises #PF before the device is read; a plain BT only reads and succeeds.
/// </summary>
public class PendingStateRuleTests
{
    const ulong Alias = 0x50_0000_0000, Cf = 1, Reserved = 2;

    static HardwareRig Faulting(string text, Action<Iced.Intel.Assembler> insn, (int, ulong)[] regs, ulong rflags)
    {
        var rig = new HardwareRig(b => b.Add(text, insn, [(3, Alias), .. regs], [HwSide.Read(Dev + 8, 4)], [(StateField.Rflags, rflags)]),
            hardware: false, map: t => t.Map(Alias, Dev, 0x1000, PageSize.Size4K, writable: false, executable: false));
        rig.Run();
        return rig;
    }

    [Theory]
    [InlineData("bts")]
    [InlineData("btr")]
    [InlineData("btc")]
    public void A_bit_test_and_modify_whose_write_faults_leaves_cf_as_it_was(string op)
    {
        // Bit 0 of the scratch register (0) is clear: the instruction would clear CF; the write faults, so CF stays set.
        using var r = Faulting(op, a =>
        {
            if (op == "bts") a.bts(__dword_ptr[rbx + 8], eax);
            else if (op == "btr") a.btr(__dword_ptr[rbx + 8], eax);
            else a.btc(__dword_ptr[rbx + 8], eax);
        }, [(0, 0)], Reserved | Cf);
        Assert.Equal(1, r.Replay.ExceptionsByVector[14]);
        // The CPU walks a read-modify-write's operand as a write before reading it: #PF with P and W set, and the
        // device is never read (a read with side effects must not happen for an instruction that faults).
        Assert.Equal(0, r.Stats.DeviceRoundTrips);
        Assert.Equal(0b11UL, (Assert.Single(r.Replay.Exceptions).Event >> 32) & 0b11);
        Assert.Equal(Cf, r.Sys.Kernel.State.Rflags(0) & Cf);
    }

    [Fact]
    public void A_bit_test_that_only_reads_sets_cf_from_the_read()
    {
        using var r = Faulting("bt", a => a.bt(__dword_ptr[rbx + 8], eax), [(0, 0)], Reserved | Cf);
        Assert.Equal(0, r.Replay.ExceptionsSeen);
        Assert.Equal(0UL, r.Sys.Kernel.State.Rflags(0) & Cf);
    }

    [Fact]
    public void An_alu_whose_write_faults_leaves_the_flags_and_an_xchg_the_register_as_they_were()
    {
        using (var r = Faulting("add", a => a.add(__dword_ptr[rbx + 8], eax), [(0, 0)], Reserved | Cf))
        {
            Assert.Equal(1, r.Replay.ExceptionsByVector[14]);
            Assert.Equal(0, r.Stats.DeviceRoundTrips);
            Assert.Equal(Reserved | Cf, r.Sys.Kernel.State.Rflags(0) & 0xFFF);
        }
        using (var r = Faulting("xchg", a => a.xchg(__dword_ptr[rbx + 8], eax), [(0, 0x1234)], Reserved))
        {
            Assert.Equal(1, r.Replay.ExceptionsByVector[14]);
            Assert.Equal(0x1234UL, r.Sys.Kernel.State.Gpr(0, 0));
        }
    }
}
