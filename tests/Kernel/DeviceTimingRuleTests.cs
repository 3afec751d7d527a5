using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Timing;
using Copra.User;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The measured part of an exit that waits on a device more than once (kernel/Exit/Kernel.Devices.cs ContinueAfterDevice;
/// hot/Exit/ExitPipeline.cs EndSegment): each kernel segment ends when the exit goes back to waiting, so the time the
/// model takes to answer the next side is never measured as the kernel's, also when that answer comes through the
/// vCPU's inbox from another CPU. Through <see cref="VmmRig"/>.
/// </summary>
public sealed class DeviceTimingRuleTests
{
    const ulong NoIf = 0x2;
    const ulong At = VmmRig.Dev + 0x40;

    [Fact]
    public void A_models_time_on_the_write_side_of_a_read_modify_write_is_not_measured_as_the_kernels()
    {
        // vCPU 1 (CPU 1) runs ADD [dev], EAX. The model answers the read at once and holds the write; vCPU 0's VMM thread
        // (CPU 0) answers the write half a second later (posted to CPU 1's inbox).
        using var rig = new VmmRig(vcpus: 2, cpus: 2);
        rig.Device(EventKind.Mmio, VmmRig.Dev, 0x1000, (IUserContext _, uint _, ref EventArea a) =>
        {
            if (a.Direction == AccessDirection.Write) return true;   // hold it
            a.Data = 0x100;
            a.PublishState(EventState.Done);
            return true;
        });
        ulong add = rig.Code(a => a.add(__dword_ptr[rbx], eax));
        rig.Guest.Add(1, new GuestExit(ExitReason.Mmio, [(3, At), (0, 0x23)], Rip: add, Gpa: At, Size: 4, Rflags: NoIf));
        for (int i = 0; i < 40; i++) rig.Guest.Add(0, new GuestExit(ExitReason.Cpuid, Rip: 0x40_0000, Rflags: NoIf));
        const int SleepMs = 500;
        bool answered = false;
        rig.Run((IUserContext ctx, RunExit why, ref RunPage p) =>
        {
            ref var a = ref Sys.Ref<EventArea>(ctx, rig.DeviceAreas[0]);
            if (!answered && a.State == EventState.Pending && a.Direction == AccessDirection.Write)
            {
                answered = true;
                Thread.Sleep(SleepMs);
                a.PublishState(EventState.Done);
                Sys.EventSignal(ctx, rig.DeviceHandles[0]);
            }
            return VmmRig.Continue(ctx, why, ref p);
        });
        Assert.True(answered);
        Assert.Equal(0x123UL, rig.Deliveries[^1].Area.Data);
        Assert.Equal(add + 2, rig.Guest.Of(1).Last().Rip);
        long slowest = Enum.GetValues<ExitKind>().SelectMany(k => rig.K.Stats.MeasuredSamples(k).ToArray()).Max();
        Assert.True(slowest < (long)(Tsc.Hz * SleepMs / 2 / 1000), $"an exit measured {Tsc.ToNanoseconds(slowest) / 1e6:F1} ms: the model's wait was counted");
    }
}
