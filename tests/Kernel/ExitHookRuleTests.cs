using Copra.Abi;
using Copra.Hot.Exit;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The kernel's hooks on the exit path (kernel/Exit/Kernel.Exit.cs, KernelExitHost.cs): the first-exit callback runs once,
/// the per-exit callback once per exit with its vCPU, a timed backend's figure lands in the exit's sample, and a vCPU
/// that runs with no backend is a clear error. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class ExitHookRuleTests
{
    [Fact]
    public void The_first_exit_callback_runs_once_and_the_exit_callback_once_per_exit_with_its_vcpu()
    {
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        for (int i = 0; i < 3; i++) rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        rig.Guest.Add(1, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        int first = 0;
        var taken = new List<int>();
        rig.K.OnFirstExit = () => first++;
        rig.K.OnExitTaken = v => taken.Add(v);
        rig.Run();
        Assert.Equal(1, first);
        Assert.Equal(6, taken.Count);   // 4 CPUIDs and 2 halts
        Assert.Equal(4, taken.Count(v => v == 0));
        Assert.Equal(2, taken.Count(v => v == 1));
        Assert.Equal(6, rig.K.Stats.Taken);
    }

    [Fact]
    public void With_nothing_else_hooked_the_first_exit_callback_still_runs_once_at_the_first_exit()
    {
        // The run command's case: the replay backend (not timed), no tracer, no exit callback; only the first-exit
        // callback, which the header reaches through its hooked path until the first exit is taken.
        var sc = Copra.Kernel.Run.Scenario.Default() with { Vms = [new Copra.Kernel.Run.VmScenario(Vcpus: 1)] };
        using var sys = new Copra.Kernel.Run.CopraSystem(sc);
        int first = 0;
        long takenThen = -1;
        var boot = sys.Kernel.OnFirstExit!;
        sys.Kernel.OnFirstExit = () => { first++; takenThen = sys.Kernel.Stats.Taken; boot(); };
        Assert.True(sys.Run().Quiescent);
        Assert.Equal(1, first);
        Assert.Equal(1, takenThen);   // at the first exit, not later
        Assert.NotNull(sys.BootTree);
        Assert.True(sys.Kernel.Stats.Taken > 100);
    }

    [Fact]
    public void A_timed_backends_figure_for_each_exit_is_that_exits_hardware_sample()
    {
        using var rig = new VmmRig();
        rig.K.Stats.EnableHardware();
        rig.Guest.Ticks = n => 1000 * n;
        rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2), new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: 2));
        rig.Run();
        Assert.Equal([1000L, 2000L], rig.K.Stats.HardwareSamples(ExitKind.Cpuid).ToArray().Order());
        Assert.Equal([3000L], rig.K.Stats.HardwareSamples(ExitKind.Hlt).ToArray());
    }

    [Fact]
    public void A_vcpu_that_runs_with_no_backend_is_a_clear_error()
    {
        using var rig = new VmmRig();
        rig.K.Backend = null;
        rig.Start();
        var e = Assert.Throws<InvalidOperationException>(() => rig.K.RunDeterministic(1_000_000));
        Assert.Equal("no guest backend", e.Message);
    }
}
