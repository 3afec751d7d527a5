using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Iced.Intel;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The hardware-completes pipeline (hot/Exit/ExitPipeline.Hardware.cs) without /dev/kvm: a backend that plays KVM's part
/// over the replay guest. It flags every MMIO exit <see cref="ExitFlags.HardwareCompletes"/>, reports a write's data in
/// the record, and finishes the instruction itself when the kernel hands the value back (a read's value into EAX, RIP
/// past the instruction), as KVM does at the next KVM_RUN. The kernel must deliver the one side at the address the
/// hardware named, with the hardware's data, hand back what the device answered, and never move RIP itself.
/// </summary>
public class HardwarePipelineTests
{
    const ulong Dev = 0xFEB0_0000;   // the test device; +8 is its scratch register

    /// <summary>KVM's part: flags the exit, reports write data (EAX, or <see cref="WriteData"/>), finishes the instruction on CompleteAccess.</summary>
    sealed class FakeKvm(VcpuStateStore state, ReplayBackend replay) : IGuestBackend
    {
        public readonly ReplayBackend Replay = replay;
        public readonly List<(ulong Rip, ulong Value)> Completed = [];
        public ulong? WriteData;
        ExitRecord _last;
        public string Name => "fake-kvm";

        public void Run(int vcpu, ref ExitRecord exit)
        {
            Replay.Run(vcpu, ref exit);
            if (exit.Reason != ExitReason.Mmio) return;
            exit.Flags |= ExitFlags.HardwareCompletes;
            if (exit.IsWrite) exit.Data = WriteData ?? (uint)state.Gpr(vcpu, 0);
            _last = exit;
        }

        public void CompleteAccess(int vcpu, ulong readValue)
        {
            ulong rip = state.Rip(vcpu);
            Completed.Add((rip, readValue));
            if (!_last.IsWrite) state.Gpr(vcpu, 0) = (uint)readValue;   // mov eax, [m]: the hardware writes the register
            state.Rip(vcpu) = rip + _last.InstructionLength;
        }

        public void Dispose() { }
    }

    static (CopraSystem Sys, FakeKvm Kvm, List<Step> Steps) Boot(Action<Func<string, Action<Assembler>, bool, ulong, ulong?, Step>> build)
    {
        FakeKvm? kvm = null;
        var steps = new List<Step>();
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        var sys = new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var gb = new GuestBuilder(k.Memory);
            gb.WriteGdt(l.Gdt);
            var start = GuestCpuState.ProtectedMode(PagingKind.None, 0, l.Gdt, (uint)l.Code, (uint)l.StackTop(0));
            ulong rip = l.Code;
            build((text, insn, write, eax, expect) =>
            {
                var asm = new Assembler(32);
                insn(asm);
                var code = gb.Assemble(rip, rip, asm);
                var s = new Step
                {
                    Kind = StepKind.Access, Rip = rip, Length = (int)(code.End - rip), Text = text, Reason = ExitReason.Mmio,
                    Gpa = Dev + 8, Size = 4, Flags = write ? ExitFlags.Write : 0, Presets = [(3, Dev), (0, eax)],
                    ExpectRax = expect, ExpectMask = 0xFFFF_FFFF,
                };
                s.Next = code.End;
                rip = code.End;
                steps.Add(s);
                return s;
            });
            var halt = new Assembler(32);
            halt.hlt();
            var hc = gb.Assemble(rip, rip, halt);
            var p = new ReplayProgram { Iterations = 1 };
            p.Steps.AddRange(steps);
            p.Steps.Add(new Step { Kind = StepKind.Halt, Rip = rip, Length = (int)(hc.End - rip), Next = hc.End, Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" });
            p.LoopStart = p.LoopEnd = p.Steps.Count;
            start.ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            kvm = new FakeKvm(k.State, new ReplayBackend(k.State, [p]));
            return kvm;
        });
        return (sys, kvm!, steps);
    }

    [Fact]
    public void The_device_gets_the_hardwares_side_and_the_hardware_gets_the_devices_answer()
    {
        var (sys, kvm, steps) = Boot(add =>
        {
            add("mov [ebx+8], eax", a => a.mov(__dword_ptr[ebx + 8], eax), true, 0x1234_5678, null);
            add("mov eax, [ebx+8]", a => a.mov(eax, __dword_ptr[ebx + 8]), false, 0, 0x1234_5678);
        });
        using (sys)
        {
            Assert.True(sys.Run().Quiescent);
            Assert.True(kvm.Replay.Desyncs == 0 && kvm.Replay.DataMismatches == 0, string.Join("\n", kvm.Replay.Problems));
            var st = sys.Kernel.Stats;
            Assert.Equal(2, st.HardwareChecked);
            Assert.Equal(0, st.DecodeMismatch);
            Assert.Equal(2, st.DeviceRoundTrips);
            Assert.Equal(2, st.Completed);
            Assert.Equal(0, st.InFlight);
            // Handed back at the instruction (the kernel left RIP to the hardware): the write with nothing, the read with the value.
            Assert.Equal(new[] { (steps[0].Rip, 0UL), (steps[1].Rip, 0x1234_5678UL) }, kvm.Completed);
        }
    }

    [Fact]
    public void A_disagreement_is_counted_and_the_hardwares_values_win()
    {
        var (sys, kvm, steps) = Boot(add =>
        {
            // The record says the store wrote 0xCAFE; the decode says EAX (0x1111): the device gets the hardware's value.
            add("mov [ebx+8], eax", a => a.mov(__dword_ptr[ebx + 8], eax), true, 0x1111, null);
            add("mov eax, [ebx+8]", a => a.mov(eax, __dword_ptr[ebx + 8]), false, 0, 0xCAFE);
        });
        kvm.WriteData = 0xCAFE;
        using (sys)
        {
            Assert.True(sys.Run().Quiescent);
            Assert.True(kvm.Replay.Desyncs == 0 && kvm.Replay.DataMismatches == 0, string.Join("\n", kvm.Replay.Problems));
            var st = sys.Kernel.Stats;
            Assert.Equal(1, st.MismatchData);
            Assert.Equal(1, st.DecodeMismatch);
            Assert.Equal(0, st.MismatchAddress + st.MismatchSize + st.MismatchDirection);
            Assert.Equal(2, st.Completed);
            Assert.Equal(steps[1].Rip, kvm.Completed[1].Rip);
            Assert.Equal(0xCAFEUL, kvm.Completed[1].Value);
        }
    }
}
