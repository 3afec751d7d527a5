using Copra.Kernel.Core;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>Whole-system rules (issue 3): /init → /bin/vmm → device models, a replay guest, run to the end.</summary>
public class SystemRuleTests
{
    static CopraSystem RunSystem(Scenario sc, bool keepTrace = false)
    {
        var sys = new CopraSystem(sc, keepTrace);
        var r = sys.Run();
        Assert.True(r.Quiescent, "the system did not become quiescent");
        return sys;
    }

    static void AssertClean(CopraSystem sys)
    {
        var k = sys.Kernel;
        Assert.True(k.InternalErrors == 0, $"internal error: {k.LastInternalError}");
        Assert.Equal(0, k.Stats.InFlight);
        Assert.True(sys.Replay!.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.True(sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        foreach (var p in k.Processes)
            Assert.False(p.ExitReason?.StartsWith("crash", StringComparison.Ordinal) ?? false, $"{p}: {p.ExitReason}");
    }

    [Fact]
    public void The_default_scenario_ends_quiescent_with_nothing_in_flight_and_the_greeting_on_the_console()
    {
        using var sys = RunSystem(Scenario.Default());
        AssertClean(sys);
        var st = sys.Kernel.Stats;
        Assert.Equal(0, st.Faulted);
        Assert.Equal(0, st.Aborted);
        Assert.True(st.Completed > 0);
        Assert.Equal(st.AccessesTaken, st.Completed + st.Forwarded);
        Assert.Contains("Hello from the Copra guest!", sys.GuestConsole);
        Assert.All(sys.Kernel.Processes, p => Assert.True(p.Exited || p.Path != "/bin/vmm", $"{p} still running"));
    }

    [Fact]
    public void Same_seed_gives_the_same_trace_hash_and_the_same_stats()
    {
        var sc = Scenario.Default() with { Workload = Scenario.Default().Workload with { Iterations = 50 } };
        using var a = RunSystem(sc);
        using var b = RunSystem(sc);
        Assert.Equal(a.Kernel.Trace.Hash, b.Kernel.Trace.Hash);
        Assert.Equal(a.Kernel.Trace.Count, b.Kernel.Trace.Count);
        Assert.Equal(Counters(a.Kernel), Counters(b.Kernel));
        Assert.Equal(a.Kernel.Stats.Count, b.Kernel.Stats.Count);
        Assert.Equal(a.Kernel.ConsoleText, b.Kernel.ConsoleText);
        Assert.Equal(a.Kernel.Cpus.Select(c => c.Clock), b.Kernel.Cpus.Select(c => c.Clock));
    }

    [Theory]
    [InlineData(2UL)]
    [InlineData(12345UL)]
    public void Other_seeds_also_run_clean_and_reproduce(ulong seed)
    {
        // Different seeds may interleave differently (and so hash differently); each must still be clean and repeatable.
        // The loop mix leaves out the window writes: with them, vCPU 1's loop can write the device's data window
        // between vCPU 0's REP MOVSD and its checksum read (a race in the replay workload itself, not in the
        // kernel), which seed 1 happens not to hit.
        var sc = Scenario.Default() with
        {
            Seed = seed, Cpus = 2,
            Workload = Scenario.Default().Workload with { Iterations = 30, Mix = ["read", "read_zx", "read_sx", "port_out", "port_in"] },
        };
        using var a = RunSystem(sc);
        using var b = RunSystem(sc);
        AssertClean(a);
        Assert.Equal(a.Kernel.Trace.Hash, b.Kernel.Trace.Hash);
    }

    static long[] Counters(Copra.Kernel.Core.Kernel k)
    {
        var s = k.Stats;
        return [s.Taken, s.Mmio, s.Io, s.Completed, s.Forwarded, s.Reinjected, s.Faulted, s.Aborted, s.ToVmm, s.Hlt, s.Cpuid, s.Msr,
                s.Shutdown, s.DecodeMismatch, s.IcedFallbacks, s.DeviceRoundTrips, s.DevicesLost, s.TdReads, s.TdWrites, s.CrossCpuWakes,
                k.Gate.Calls, k.Gate.Transitions];
    }

    [Theory]
    [InlineData("snp", 29)]
    [InlineData("tdx", 20)]
    public void Unregistered_accesses_are_forwarded_by_default_and_reinjected_as_VC_or_VE_when_the_VM_asks(string platform, int vector)
    {
        using var fwd = RunSystem(Scenario.Default() with { Platform = platform });
        AssertClean(fwd);
        Assert.True(fwd.Kernel.Stats.Forwarded > 0);
        Assert.Equal(0, fwd.Kernel.Stats.Reinjected);
        Assert.Equal(0, fwd.Replay!.ExceptionsSeen);

        using var re = RunSystem(Scenario.Default() with { Platform = platform, Unhandled = "reinject" });
        AssertClean(re);
        Assert.True(re.Kernel.Stats.Reinjected > 0);
        Assert.Equal(0, re.Kernel.Stats.Forwarded);
        Assert.Equal(re.Kernel.Stats.Reinjected, re.Replay!.ExceptionsByVector[vector]);
        Assert.Equal(re.Replay.ExceptionsSeen, re.Replay.ExceptionsByVector[vector]);
    }

    [Fact]
    public void An_IRQ_wakes_a_halted_vCPU_and_the_device_counts_it_once()
    {
        var sc = Scenario.Default();
        using var sys = RunSystem(sc, keepTrace: true);
        AssertClean(sys);   // the guest's read of the IRQ count register expects 1: any other value is a data mismatch
        Assert.Equal(1, sys.Replay!.InterruptsSeen);
        var raised = Assert.Single(sys.Kernel.Trace.Records.ToArray(), r => r.Kind == TraceKind.Irq);
        Assert.Equal((long)sc.Vms[0].IrqVector, raised.B);
        // vCPU 0 was halted (sti; hlt) when the doorbell's IRQ arrived, and ran on afterwards to its CPUID.
        Assert.Equal(1, sys.Kernel.Stats.Cpuid);
    }

    [Fact]
    public void HLT_and_CPUID_exits_reach_the_VMM_through_the_run_page()
    {
        var sc = Scenario.Default();
        using var sys = RunSystem(sc);
        AssertClean(sys);
        var st = sys.Kernel.Stats;
        int vcpus = sc.Vms[0].Vcpus;
        Assert.Equal(1, st.Cpuid);                 // vCPU 0 asks once
        Assert.Equal(vcpus + 1, st.Hlt);           // each vCPU's final cli; hlt, and vCPU 0's wait for the IRQ
        Assert.Equal(st.Hlt + st.Cpuid + st.Msr + st.Shutdown, st.ToVmm);
        Assert.Contains("stopped: Hlt", sys.Kernel.ConsoleText);
    }

    [Fact]
    public void Device_models_are_delivered_to_and_complete_on_the_CPU_of_the_exit()
    {
        var sc = Scenario.Default() with { Workload = Scenario.Default().Workload with { Iterations = 20 } };
        using var sys = RunSystem(sc, keepTrace: true);
        AssertClean(sys);
        var k = sys.Kernel;
        int delivered = 0, completed = 0;
        foreach (var r in k.Trace.Records)
        {
            if (r.Kind is not (TraceKind.Deliver or TraceKind.Complete)) continue;
            int cpu = k.Vcpu((int)r.A).Cpu;
            Assert.True(cpu == r.Cpu, $"{r.Kind} for vCPU {r.A} on CPU {r.Cpu}, its CPU is {cpu}");
            if (r.Kind == TraceKind.Deliver) delivered++; else completed++;
        }
        Assert.True(delivered > 0);
        Assert.True(completed >= delivered);
        Assert.True(k.Vcpu(0).Cpu != k.Vcpu(1).Cpu, "the scenario should spread its vCPUs over both CPUs");
    }

    [Fact]
    public void TDX_pays_TDCALLs_for_state_reads_and_SNP_pays_none()
    {
        using var tdx = RunSystem(Scenario.Default() with { Platform = "tdx" });
        AssertClean(tdx);
        Assert.True(tdx.Kernel.Stats.TdReads > 0);

        using var snp = RunSystem(Scenario.Default() with { Platform = "snp" });
        AssertClean(snp);
        Assert.Equal(0, snp.Kernel.Stats.TdReads);
        Assert.Equal(0, snp.Kernel.Stats.TdWrites);
    }
}
