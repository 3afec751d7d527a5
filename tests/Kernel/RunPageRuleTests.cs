using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Machine;
using Copra.User;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// The run page (kernel/Exit/Kernel.Exit.cs ReportRunExitLocked, Kernel.Devices.cs WaitVcpu): what the kernel writes
/// there for each exit the VMM handles, and what it does with the VMM's answer at the next WAIT_FOR_EVENT. Through
/// <see cref="VmmRig"/>: a scripted guest and a VMM the test writes.
/// </summary>
public sealed class RunPageRuleTests
{
    const ulong If = 0x202, NoIf = 0x2;

    [Fact]
    public void A_cpuid_exit_gives_the_VMM_leaf_subleaf_and_RIP_and_its_answer_fills_four_registers_and_moves_RIP_by_two()
    {
        using var rig = new VmmRig();
        rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, [(0, 0xFFFF_FFFF_8000_0008), (1, 0xAAAA_AAAA_0000_0003), (2, 0x5555), (3, 0x6666)], Rip: 0x12_3456, Rflags: If));
        rig.Run((IUserContext _, RunExit why, ref RunPage p) =>
        {
            if (why != RunExit.Cpuid) return false;
            p.CpuidEax = 0x11; p.CpuidEbx = 0x22; p.CpuidEcx = 0x33; p.CpuidEdx = 0x44;
            return true;
        });
        Assert.Equal(2, rig.Exits.Count);
        var (_, why, page) = rig.Exits[0];
        Assert.Equal(RunExit.Cpuid, why);
        Assert.Equal(RunExit.Cpuid, page.ExitReason);
        Assert.Equal(0x12_3456UL, page.Rip);
        Assert.Equal(0x8000_0008u, page.CpuidLeaf);
        Assert.Equal(3u, page.CpuidSubleaf);
        Assert.Equal(RunPage.FlagInterruptsEnabled, page.Flags);
        Assert.Equal(1UL, page.Sequence);
        // The answer: EAX, EBX, ECX, EDX zero-extended into the four registers, RIP past the two-byte CPUID.
        var after = rig.Guest.Entries[1];
        Assert.Equal((0x12_3458UL, 0x11UL, 0x22UL, 0x33UL, 0x44UL), (after.Rip, after.Rax, after.Rbx, after.Rcx, after.Rdx));
        // The guest's halt (interrupts off) is the second exit: the sequence counts exits, and IF is reported clear.
        Assert.Equal(RunExit.Hlt, rig.Exits[1].Why);
        Assert.Equal(2UL, rig.Exits[1].Page.Sequence);
        Assert.Equal(0u, rig.Exits[1].Page.Flags);
        Assert.Equal(0x12_3458UL, rig.Exits[1].Page.Rip);
        Assert.Equal(2, rig.K.Stats.ToVmm);
        Assert.Equal(2, rig.Guest.Entries.Count);
    }

    [Fact]
    public void An_msr_write_gives_EDX_EAX_and_ECX_and_an_msr_read_gives_zero_then_loads_the_answer_into_EDX_EAX()
    {
        using var rig = new VmmRig();
        rig.Guest.Add(0,
            new GuestExit(ExitReason.MsrWrite, [(0, 0xFFFF_FFFF_1234_5678), (2, 0xAAAA_BBBB_9ABC_DEF0), (1, 0xFFFF_0000_0000_001B)], Rip: 0x40_0000, Rflags: NoIf),
            new GuestExit(ExitReason.MsrRead, [(0, 0xDEAD), (2, 0xBEEF), (1, 0xC000_0080)], Rflags: NoIf));
        rig.Run((IUserContext _, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.MsrRead) p.MsrValue = 0x1122_3344_5566_7788;
            return why is RunExit.MsrRead or RunExit.MsrWrite;
        });
        Assert.Equal(3, rig.Exits.Count);
        var write = rig.Exits[0].Page;
        Assert.Equal(RunExit.MsrWrite, write.ExitReason);
        Assert.Equal(0x1Bu, write.MsrIndex);
        Assert.Equal(0x9ABC_DEF0_1234_5678UL, write.MsrValue);
        Assert.Equal(0u, write.Flags);
        var read = rig.Exits[1].Page;
        Assert.Equal(RunExit.MsrRead, read.ExitReason);
        Assert.Equal(0xC000_0080u, read.MsrIndex);
        Assert.Equal(0UL, read.MsrValue);   // not the write's value left on the page
        Assert.Equal(0x40_0002UL, read.Rip);
        var afterWrite = rig.Guest.Entries[1];
        Assert.Equal((0x40_0002UL, 0xFFFF_FFFF_1234_5678UL, 0xAAAA_BBBB_9ABC_DEF0UL), (afterWrite.Rip, afterWrite.Rax, afterWrite.Rdx));
        var afterRead = rig.Guest.Entries[2];
        Assert.Equal((0x40_0004UL, 0x5566_7788UL, 0x1122_3344UL), (afterRead.Rip, afterRead.Rax, afterRead.Rdx));
    }

    [Fact]
    public void A_hlt_with_interrupts_on_sleeps_until_an_irq_and_resumes_past_the_hlt_with_the_vector_pending()
    {
        // vCPU 0 halts with IF set; vCPU 1 takes CPUID exits, and its VMM thread raises the IRQ once vCPU 0 has halted.
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Guest.Add(0, new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: If));
        for (int i = 0; i < 6; i++) rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x60_0000, Rflags: NoIf));
        uint irq = 0;
        int entriesOfZeroAtSignal = -1;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            if (why == RunExit.Cpuid && entriesOfZeroAtSignal < 0 && rig.Exits.Any(x => x.Vcpu == 0 && x.Why == RunExit.Hlt))
            {
                entriesOfZeroAtSignal = rig.Guest.Of(0).Count();
                Sys.EventSignal(ctx, irq);
            }
            return VmmRig.Continue(ctx, why, ref p);
        }, after: (ctx, vm) => { irq = Sys.IrqEvent(ctx, vm, 0x41); return Task.CompletedTask; });
        var halt = rig.Exits.First(x => x.Vcpu == 0).Page;
        Assert.Equal(RunExit.Hlt, halt.ExitReason);
        Assert.Equal(RunPage.FlagInterruptsEnabled, halt.Flags);
        Assert.Equal(1, entriesOfZeroAtSignal);   // halted: not entered again before the IRQ
        var zero = rig.Guest.Of(0).ToList();
        Assert.Equal(2, zero.Count);
        Assert.Equal(0x50_0001UL, zero[1].Rip);
        Assert.Equal(KernelT.PendingEventValid | 0x41, zero[1].PendingEvent);
    }

    [Fact]
    public void A_shutdown_kills_the_vcpu_and_every_later_wait_answers_shutdown_without_entering_it()
    {
        using var rig = new VmmRig();
        rig.Guest.Add(0, new GuestExit(ExitReason.Shutdown, Rip: 0x70_0000));
        int shutdowns = 0;
        rig.Run((IUserContext _, RunExit why, ref RunPage p) => why == RunExit.Shutdown && ++shutdowns < 3);
        Assert.Equal([RunExit.Shutdown, RunExit.Shutdown, RunExit.Shutdown], rig.Exits.Select(x => x.Why));
        Assert.Single(rig.Guest.Entries);
        Assert.Equal(1, rig.K.Stats.ToVmm);   // the later answers are WAIT_FOR_EVENT's own, not exits
        Assert.Equal(1UL, rig.Exits[0].Page.Sequence);
        Assert.Equal(0x70_0000UL, rig.Exits[0].Page.Rip);
        Assert.Equal(VcpuRun.Dead, rig.K.Vms[0].Vcpus[0].Run);
    }
}
