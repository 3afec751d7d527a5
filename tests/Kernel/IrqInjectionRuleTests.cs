using Copra.Abi;
using Copra.Hot.Exit;
using Copra.User;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>
/// Interrupt injection at guest entry (kernel/Exit/Kernel.Exit.cs InjectIrq): the highest pending vector becomes the
/// vCPU's pending event, once, and only when the guest can take it (RFLAGS.IF set, no STI/MOV SS shadow, no event
/// already pending). Through <see cref="VmmRig"/>: the VMM raises IRQs before the vCPU first runs (its RFLAGS clear),
/// and the scripted guest's CPUID exits set what each next entry sees.
/// </summary>
public sealed class IrqInjectionRuleTests
{
    const ulong If = 0x202, NoIf = 0x2;
    const ulong Valid = KernelT.PendingEventValid;

    /// <summary>Raises <paramref name="vectors"/> on VM 1 before vCPU 0 first runs (with IF clear) and runs the script; the pending event at each entry.</summary>
    static ulong[] Entries(byte[] vectors, params GuestExit[] script)
    {
        using var rig = new VmmRig();
        rig.K.State.Rflags(0) = NoIf;
        rig.Guest.Add(0, script);
        rig.Run(after: (ctx, vm) =>
        {
            foreach (byte vec in vectors) Sys.EventSignal(ctx, Sys.IrqEvent(ctx, vm, vec));
            return Task.CompletedTask;
        });
        return rig.Guest.Of(0).Select(e => e.PendingEvent).ToArray();
    }

    static GuestExit Cpuid(ulong rflags, ulong? shadow = null, ulong? pending = null) =>
        new(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: rflags, Interruptibility: shadow, PendingEvent: pending);

    [Fact]
    public void The_highest_pending_vector_is_injected_first_and_each_only_once()
    {
        // 0x31 (word 0), 0x7F (word 1, its top bit), 0xA5 (word 2): one per entry, highest first, then none.
        var seen = Entries([0x31, 0xA5, 0x7F], Cpuid(If), Cpuid(If), Cpuid(If), Cpuid(If));
        Assert.Equal([0, Valid | 0xA5, Valid | 0x7F, Valid | 0x31, 0], seen);
    }

    [Fact]
    public void Vectors_at_the_bottom_and_top_of_the_table_are_injected_as_themselves()
    {
        var seen = Entries([0x20, 0xFF, 0xC0], Cpuid(If), Cpuid(If), Cpuid(If));
        Assert.Equal([0, Valid | 0xFF, Valid | 0xC0, Valid | 0x20], seen);
    }

    [Fact]
    public void A_vector_in_the_top_word_alone_is_seen_as_pending()
    {
        var seen = Entries([0xE1], Cpuid(If));
        Assert.Equal([0, Valid | 0xE1], seen);
    }

    [Fact]
    public void Nothing_is_injected_while_RFLAGS_IF_is_clear()
    {
        var seen = Entries([0x41], Cpuid(NoIf), Cpuid(NoIf), Cpuid(If), Cpuid(If));
        Assert.Equal([0, 0, 0, Valid | 0x41, 0], seen);
    }

    [Fact]
    public void Nothing_is_injected_in_an_interrupt_shadow()
    {
        var seen = Entries([0x41], Cpuid(If, shadow: 1), Cpuid(If, shadow: 2), Cpuid(If, shadow: 0));
        Assert.Equal([0, 0, 0, Valid | 0x41], seen);
    }

    [Fact]
    public void An_event_already_pending_is_not_replaced_and_the_irq_waits_for_the_next_entry()
    {
        const ulong pageFault = Valid | 3u << 8 | 14;
        var seen = Entries([0x41], Cpuid(If, pending: pageFault), Cpuid(If));
        Assert.Equal([0, pageFault, Valid | 0x41], seen);
    }

    [Fact]
    public void A_vcpu_with_an_irq_pending_at_its_hlt_does_not_sleep()
    {
        // The IRQ is raised before the HLT: WAIT_FOR_EVENT after the HLT finds it pending and runs the vCPU at once.
        var seen = Entries([0x41], new GuestExit(ExitReason.Hlt, Rip: 0x50_0000, Rflags: If));
        Assert.Equal([0, Valid | 0x41], seen);
    }
}
