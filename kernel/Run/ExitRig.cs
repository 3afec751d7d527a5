using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.User.Programs;
using Copra.Hot.Exit;

namespace Copra.Kernel.Run;

/// <summary>The exit kinds the exit-path suite times, one per rig. MmioAlu is <c>or dword [rsi], 1</c> on the test device: a
/// read-modify-write, two device round trips per exit (its read, then its write).</summary>
public enum ExitFlavor { MmioRead, MmioWrite, MmioAlu, PortOut, Forwarded }

/// <summary>
/// A whole Copra system (the real kernel, the replay backend, /init, the VMM, the device models) on
/// one CPU with one vCPU whose workload loops a single exiting instruction practically forever. After
/// <see cref="Warm"/>, <see cref="StepOneExit"/> drives the deterministic driver until exactly one more
/// MMIO/IOIO exit has finished (completed by a device model, or forwarded to the modelled host): one
/// full cycle of guest run → exit → decode → lookup → device-model wake-up and answer → write-back →
/// RIP advance. The replay guest's own work per exit (setting registers, checking the last result) is
/// included; it is a few loads and stores.
/// </summary>
public sealed class ExitRig : IDisposable
{
    public CopraSystem System { get; }
    public Kernel.Core.Kernel Kernel => System.Kernel;
    public ExitFlavor Flavor { get; }

    /// <summary>The kind the rig's exits are counted under (ExitStats).</summary>
    public ExitKind Kind => Flavor switch
    {
        ExitFlavor.MmioRead => ExitKind.MmioRead,
        ExitFlavor.MmioWrite => ExitKind.MmioWrite,
        ExitFlavor.MmioAlu => ExitKind.MmioAlu,
        ExitFlavor.PortOut => ExitKind.PortOut,
        _ => ExitKind.Forwarded,
    };

    public ExitRig(ExitFlavor flavor, int warmExits = 4096)
    {
        Flavor = flavor;
        string kind = flavor switch
        {
            ExitFlavor.MmioRead or ExitFlavor.Forwarded => "read",
            ExitFlavor.MmioWrite => "write",
            ExitFlavor.MmioAlu => "alu",
            _ => "port_out",
        };
        // Forwarded: no test device, so the loop's MMIO window (device base 0 + 0x1000) belongs to nobody
        // and every access goes to the modelled host (one GHCB request each).
        ulong testDevice = flavor == ExitFlavor.Forwarded ? 0 : 0xFEB0_0000;
        var sc = new Scenario
        {
            Platform = "snp",
            Cpus = 1,
            Seed = 1,
            Driver = "deterministic",
            Unhandled = "forward",
            Vms = [new VmScenario(Vcpus: 1, MemoryMb: 8, Uart: 0x3F8, TestDevice: testDevice, IrqVector: 0x40)],
            Workload = new WorkloadSpec { Greeting = "", DeviceDriver = false, Unregistered = false, Mix = [kind], Iterations = long.MaxValue / 2 },
        };
        sc.Validate();
        // The trace is not hashed: nothing reads a rig's hash, and the hash is the deterministic driver's check, not the exit's work.
        System = new CopraSystem(sc, hashTrace: false);
        Kernel.Spawn(Paths.Init, null, 0);
        long guard = 0;
        while (Done < warmExits)
        {
            var r = Kernel.RunDeterministic(10_000);
            if (r.Quiescent || (guard += r.Steps) > 50_000_000)
                throw new InvalidOperationException($"{flavor}: the system stopped after {Done} exits (internal errors {Kernel.InternalErrors}: {Kernel.LastInternalError?.Message})");
        }
        // Stop exactly on an exit boundary.
        StepOneExit();
        Check();
    }

    /// <summary>MMIO/IOIO exits that have finished.</summary>
    public long Done => Kernel.Stats.Completed + Kernel.Stats.Forwarded;

    /// <summary>Steps the driver until one more exit has finished, with no direct guest entry from the model's WAIT; returns the steps it took.</summary>
    public long StepOneExit() => StepExits(1);

    /// <summary>
    /// Steps the driver until exactly <paramref name="n"/> more exits have finished; returns the steps it took.
    /// The CPU's direct-switch budget is capped at what remains, so the model's WAIT_FOR_EVENT enters the guest
    /// directly (the IPC fast path) for up to n - 1 of them and the count never overshoots.
    /// </summary>
    public long StepExits(int n)
    {
        var cpu = Kernel.Cpus[0];
        long target = Finished + n;
        long steps = 0;
        // The one CPU's steps without the deterministic driver's round around each (its shuffle and quiescence test,
        // ~140 instructions per step, were most of a forwarded exit's count): the same steps in the same order.
        using var scope = Kernel.Drive(0);
        for (long done = Finished; done < target; done = Finished)
        {
            cpu.DirectBudgetCap = (int)Math.Min(Core.Cpu.DirectSwitchBudget, target - done - 1);
            cpu.Step();
            steps++;
        }
        cpu.DirectBudgetCap = Core.Cpu.DirectSwitchBudget;
        return steps;
    }

    /// <summary>Exits per <see cref="StepExits"/> call in the timed harnesses: one direct-switch slice.</summary>
    public const int Batch = Core.Cpu.DirectSwitchBudget;

    // The rig has one CPU: its lane is the whole count (cheaper to poll than the sum over lanes).
    long Finished
    {
        [global::System.Runtime.CompilerServices.MethodImpl(global::System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]   // polled after every step
        get { var s = Kernel.Stats; return s.GetOn(0, Counter.Completed) + s.GetOn(0, Counter.Forwarded); }
    }

    /// <summary>Throws unless every exit so far went the way this rig's flavor says, with no desync.</summary>
    public void Check()
    {
        var s = Kernel.Stats;
        var replay = System.Replay!;
        if (replay.Desyncs != 0 || replay.DataMismatches != 0 || Kernel.InternalErrors != 0 || s.Faulted != 0 || s.DecodeMismatch != 0)
            throw new InvalidOperationException($"{Flavor}: desyncs {replay.Desyncs}, mismatches {replay.DataMismatches}, internal errors {Kernel.InternalErrors}, faulted {s.Faulted}: {string.Join("; ", replay.Problems)}");
        if (Flavor == ExitFlavor.Forwarded ? s.Completed != 0 : s.Forwarded != 0)
            throw new InvalidOperationException($"{Flavor}: completed {s.Completed}, forwarded {s.Forwarded}");
        if (s.IcedFallbacks != 0) throw new InvalidOperationException($"{Flavor}: {s.IcedFallbacks} Iced fallbacks");
    }

    public void Dispose() => System.Dispose();
}
