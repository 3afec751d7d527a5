using Copra.Hot.Decode;
using Copra.Kernel;
using Copra.Kernel.Backends;
using Copra.Kernel.Core;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;
using Slot = Copra.Kernel.Backends.KvmGuestLayout.Slot;
using Copra.Hot.Exit;

namespace Copra.Tests.Kvm;

/// <summary>
/// The KVM backend end to end: real guest code under /dev/kvm, its exits through the kernel's exit path
/// and the same device models as the replay backend. Skipped with a reason where /dev/kvm is missing.
/// </summary>
[Collection(nameof(KvmBackendCollection))]
public sealed class KvmBackendTests
{
    static CopraSystem Boot(Scenario sc, out DriverResult result)
    {
        sc = sc with { Backend = "kvm" };
        var sys = new CopraSystem(sc, backend: RunCommand.KvmFactory(sc));
        result = sys.Run(maxSteps: 5_000_000);
        return sys;
    }

    static Scenario Small(int iterations = 20, params string[] mix) =>
        Scenario.Default() with { Workload = Scenario.Default().Workload with { Iterations = iterations, Mix = mix.Length > 0 ? mix : Scenario.Default().Workload.Mix } };

    /// <summary>One vCPU: the device's data window is then the driver's alone (a second vCPU's loop writes into it too).</summary>
    static Scenario OneVcpu() => Small() with { Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }] };

    static ulong Result(CopraSystem sys, Slot slot, int vcpu = 0) =>
        sys.Kernel.Memory.ReadU64(KvmGuestLayout.Results(sys.Layouts[0], vcpu) + 8 * (ulong)slot);

    [KvmFact]
    public void Boots_the_guest_and_prints_the_greeting_through_the_uart()
    {
        using var sys = Boot(Small(), out var r);
        Assert.True(r.Quiescent);
        Assert.Equal("kvm", sys.Kernel.Backend!.Name);
        Assert.Equal("Hello from the Copra guest!\n", sys.GuestConsole);
        Assert.Equal(0, sys.Kvm!.ShutdownExits);
        Assert.Empty(sys.Kvm.Problems);
        for (int v = 0; v < sys.Kernel.Vms[0].VcpuCount; v++) Assert.Equal(KvmGuestLayout.DoneMagic, Result(sys, Slot.Done, v));
    }

    [KvmFact]
    public void The_guest_reads_back_the_test_device_registers()
    {
        using var sys = Boot(OneVcpu(), out _);
        Assert.Equal(TestDeviceRegs.IdValue, Result(sys, Slot.Id));
        Assert.Equal(0xCDEFUL, Result(sys, Slot.MovzxScratch));                 // movzx eax, word: upper bits cleared
        Assert.Equal(0xFFFF_FFFF_FFFF_FFEFUL, Result(sys, Slot.MovsxScratch));  // movsx rax, byte: sign-extended
        Assert.Equal(0x0123_4567_89AB_CDEFUL, Result(sys, Slot.Scratch64));
        Assert.Equal(0x89AB_DDEFUL, Result(sys, Slot.ScratchAfterOr));          // or dword [rbx+8], 0x1000
    }

    [KvmFact]
    public void Rep_movs_copies_into_and_out_of_the_data_window()
    {
        using var sys = Boot(OneVcpu(), out _);
        Assert.Equal((ulong)KvmGuestLayout.PatternChecksum(), Result(sys, Slot.Checksum));
        var back = sys.Kernel.Memory.Span(KvmGuestLayout.CopyBack(sys.Layouts[0]), KvmGuestLayout.PatternBytes);
        for (int i = 0; i < back.Length; i++) Assert.Equal(KvmGuestLayout.PatternByte(i), back[i]);
        uint dword15 = 0;
        for (int i = 0; i < 4; i++) dword15 |= (uint)KvmGuestLayout.PatternByte(60 + i) << (8 * i);
        Assert.Equal(dword15, Result(sys, Slot.WindowDword15));
        Assert.True(sys.Kernel.Stats.Count[(int)ExitKind.MmioString] >= 2 * KvmGuestLayout.PatternBytes / 4);
    }

    [KvmFact]
    public void The_doorbell_irq_reaches_the_guest_handler_while_it_sleeps_in_hlt()
    {
        using var sys = Boot(OneVcpu(), out _);
        Assert.Equal(1UL, Result(sys, Slot.DeviceIrqCount));
        Assert.Equal(1UL, Result(sys, Slot.HandlerIrqCount));
        Assert.Equal(1UL, sys.Kernel.Memory.ReadU64(KvmGuestLayout.IrqCounter(sys.Layouts[0])));
        Assert.True(sys.Kvm!.InterruptsInjected >= 1);
        Assert.True(sys.Kernel.Stats.Hlt >= 2);   // the wait, and the final cli; hlt of each vCPU
    }

    [KvmFact]
    public void The_kernels_decode_agrees_with_every_hardware_exit()
    {
        using var sys = Boot(Small(30, "read", "write", "write_imm", "read_zx", "read_sx", "alu", "port_out", "port_in", "stos", "movs"), out var r);
        var st = sys.Kernel.Stats;
        Assert.True(r.Quiescent);
        Assert.Equal(0, st.DecodeMismatch);
        Assert.Equal(0, st.MismatchAddress + st.MismatchSize + st.MismatchDirection + st.MismatchData);
        Assert.Equal(st.AccessesTaken, st.HardwareChecked);
        Assert.Equal(0, st.Faulted);
        Assert.Equal(0, st.InFlight);
        Assert.Equal(st.AccessesTaken, st.Completed + st.Forwarded);
        Assert.Equal(0, sys.Kvm!.LocateFailures);
        Assert.Equal(0, sys.Kvm.IndependentMismatches);   // Iced-located, decoder-independent check (WriteExitCheck)
        Assert.Equal(0, sys.Kvm.ExceptionsDropped);
        // Every exit kind carries a real round trip.
        Assert.True(st.HasHardware);
        Assert.True(st.HardwareMedian(ExitKind.MmioRead) > 0);
        Assert.True(st.HardwareMedian(ExitKind.PortOut) > 0);
    }

    /// <summary>
    /// LOCK XADD, PUSH m and POP m against the device under KVM (mix entries lock_xadd and push_pop,
    /// KvmGuestBuilder.EmitAccessLoop): the hardware reports each read and write, the kernel's decode must agree with all. The guest code itself is checked without
    /// /dev/kvm by <see cref="KvmGuestCodeTests"/>.
    /// </summary>
    [KvmFact]
    public void Locked_xadd_and_push_pop_exits_agree_with_the_kernels_decode()
    {
        using var sys = Boot(Small(30, "lock_xadd", "push_pop"), out var r);
        var st = sys.Kernel.Stats;
        Assert.True(r.Quiescent);
        Assert.Equal(0, st.DecodeMismatch);
        Assert.Equal(0, st.MismatchAddress + st.MismatchSize + st.MismatchDirection + st.MismatchData);
        Assert.Equal(st.AccessesTaken, st.HardwareChecked);
        Assert.Equal(0, st.Faulted);
        Assert.Equal(0, sys.Kvm!.IndependentMismatches);
        Assert.Equal(0, sys.Kvm.LocateFailures);
        Assert.Empty(sys.Kvm.Problems);
    }

    /// <summary>
    /// The forms issue 14 added that KVM's emulator completes (mix entries sse, cmps, call_jmp, bsf_bsr): every read and
    /// write the hardware reports, including the 8-byte pieces of a 16-byte MOVDQU, must agree with the kernel's decode,
    /// located by Iced. The same entries run through the replay backend in tests/Kernel/KvmPathMixTests.cs, and their
    /// guest code is decoded in <see cref="KvmGuestCodeTests"/>.
    /// </summary>
    [KvmFact]
    public void The_kvm_path_forms_agree_with_the_kernels_decode()
    {
        using var sys = Boot(Small(30, KvmEmulated) with { Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }] }, out var r);
        var st = sys.Kernel.Stats;
        Assert.True(r.Quiescent);
        Assert.Equal(0, st.DecodeMismatch);
        Assert.Equal(0, st.MismatchAddress + st.MismatchSize + st.MismatchDirection + st.MismatchData);
        Assert.Equal(st.AccessesTaken, st.HardwareChecked);
        Assert.Equal(0, st.Faulted);
        Assert.Equal(0, sys.Kvm!.IndependentMismatches);
        Assert.Equal(0, sys.Kvm.LocateFailures);
        Assert.Empty(sys.Kvm.Problems);
    }

    /// <summary>The KVM path entries KVM's own emulator completes on MMIO (measured here: kvm_pvm; see <see cref="KvmRefused"/>).</summary>
    static readonly string[] KvmEmulated = ["sse", "vector", "cmps", "call_jmp", "bsf_bsr"];

    /// <summary>
    /// MOVDIRI, MOVDIR64B and CMPXCHG16B on MMIO: KVM's instruction emulator has no case for them and stops with
    /// KVM_EXIT_INTERNAL_ERROR (suberror 1, emulation), RIP at the instruction. The backend hands such an exit to the
    /// kernel as one it completes itself (KvmBackend.KernelCompletes): the kernel-emulated pipeline performs it through
    /// the device model and the next entry loads the registers and RIP it left. Every iteration's instruction is
    /// completed that way, the vCPU runs on to its HLT, and the device's window holds what the instruction stored.
    /// </summary>
    public static readonly TheoryData<string> KvmRefused = new() { "movdiri", "movdir64b", "cmpxchg16b" };

    [KvmTheory]
    [MemberData(nameof(KvmRefused))]
    public void A_form_kvm_cannot_emulate_is_completed_by_the_kernel(string entry)
    {
        using var sys = Boot(Small(5, entry) with { Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }] }, out var r);
        Assert.True(r.Quiescent);
        Assert.Equal(0, sys.Kvm!.ShutdownExits);
        Assert.Equal(5, sys.Kvm.KernelCompleted);
        Assert.Empty(sys.Kvm.Problems);
        Assert.Equal(0, sys.Kernel.Stats.Faulted);
        Assert.Equal(0, sys.Kernel.Stats.DecodeMismatch);
    }

    /// <summary>
    /// Issue 14's narrow families under KVM (the "families" entry: KvmGuestBuilder.EmitFamilies): KVM's emulator finishes
    /// each, and every read and write it reports must agree with the kernel's decode, located by Iced (the register
    /// offset BTS past its dword, both CMPXCHG outcomes, the read-modify-writes whose writes KVM reports after their
    /// register writes, REP LODS, REPE CMPS, REPNE SCAS). The replay side runs the same families with results checked
    /// (EmulatedFamiliesTests).
    /// </summary>
    [KvmFact]
    public void The_narrow_families_agree_with_the_kernels_decode_under_kvm()
    {
        using var sys = Boot(Small(3, "families") with { Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }] }, out var r);
        var st = sys.Kernel.Stats;
        Assert.True(r.Quiescent);
        Assert.Equal(0, sys.Kvm!.ShutdownExits);
        Assert.True(st.AccessesTaken > 3 * 40, $"{st.AccessesTaken} accesses");
        Assert.Equal(0, st.DecodeMismatch);
        Assert.Equal(st.AccessesTaken, st.HardwareChecked);
        Assert.True(sys.Kvm.IndependentMismatches == 0, string.Join("\n", sys.Kvm.Problems));
        Assert.Equal(0, sys.Kvm.LocateFailures);
        Assert.Empty(sys.Kvm.Problems);
    }

    /// <summary>
    /// The hardware check is independent of the decoder it checks (WriteExitCheck: Iced locates the instruction behind a
    /// write): a decoder bug planted in what the check holds against KVM is caught on MMIO reads and on MMIO writes alike,
    /// under real KVM exits. Two bugs: every displacement 8 too high (the address), the displacement not counted in the
    /// length. The kernel's own decoder passes the same run (the other tests here: 0 mismatches).
    /// </summary>
    [KvmTheory]
    [InlineData("disp+8")]
    [InlineData("short-by-one")]
    public void A_planted_decoder_bug_fails_the_hardware_check_on_reads_and_on_writes(string bug)
    {
        DecoderUnderTest planted = bug == "disp+8"
            ? (ReadOnlySpan<byte> b, out DecodedAccess d) => { bool ok = X86Decoder.TryDecode(b, CpuMode.Bits64, out d); if (d.Base >= 0 || d.Index >= 0) d.Disp += 8; return ok; }
            : (ReadOnlySpan<byte> b, out DecodedAccess d) => { bool ok = X86Decoder.TryDecode(b, CpuMode.Bits64, out d); if (d.Disp != 0) d.Length--; return ok; };
        // Entries whose operands have a displacement on both sides: a store and a load of [rsi+disp] (the families' [rsi+4]).
        var sc = Small(3, "families") with { Backend = "kvm", Vms = [Scenario.Default().Vms[0] with { Vcpus = 1 }] };
        using var sys = new CopraSystem(sc, backend: (k, layouts) => KvmBackend.Create(k, layouts, sc.Workload, [.. sc.Vms.Select(v => (byte)v.IrqVector)], planted));
        sys.Run(maxSteps: 5_000_000);
        var kvm = sys.Kvm!;
        Assert.True(kvm.IndependentWriteMismatches > 0, $"writes: {kvm.IndependentWriteMismatches}");
        Assert.True(kvm.IndependentMismatches - kvm.IndependentWriteMismatches > 0, $"reads: {kvm.IndependentMismatches - kvm.IndependentWriteMismatches}");
    }

    /// <summary>A `cpuid` mix entry under KVM: KVM answers CPUID itself (no exit to user space); the loop's reads still exit and agree.</summary>
    [KvmFact]
    public void A_cpuid_entry_runs_under_kvm_and_the_reads_around_it_agree()
    {
        using var sys = Boot(Small(5, "read", "cpuid"), out var r);
        Assert.True(r.Quiescent);
        Assert.Equal(0, sys.Kvm!.ShutdownExits);
        Assert.Equal(0, sys.Kernel.Stats.DecodeMismatch);
        Assert.True(sys.Kernel.Stats.AccessesTaken > 0);
    }

    [KvmFact]
    public void The_parallel_driver_runs_the_kvm_guests_too()
    {
        using var sys = Boot(Small() with { Driver = "parallel" }, out var r);
        Assert.True(r.Quiescent);
        Assert.Equal("Hello from the Copra guest!\n", sys.GuestConsole);
        Assert.Equal(0, sys.Kernel.Stats.DecodeMismatch);
    }

    [KvmFact]
    public void Run_command_accepts_the_kvm_backend_and_reports_zero_disagreements()
    {
        var json = Path.GetTempFileName();
        try
        {
            int rc = Cli.Run(["run", "--backend", "kvm", "--exits", "400", "--quiet", "--json", json]);
            Assert.Equal(0, rc);
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
            Assert.Equal("kvm", doc.RootElement.GetProperty("parameters").GetProperty("backend").GetString());
            Assert.Equal(0, doc.RootElement.GetProperty("exits").GetProperty("decode_mismatches_count").GetInt64());
            Assert.Contains("Hello from the Copra guest!", doc.RootElement.GetProperty("console_text").GetString());
            Assert.True(doc.RootElement.GetProperty("cycles").GetProperty("by_kind").GetProperty("mmio_read").GetProperty("hardware_round_trip").GetProperty("p50_cycles").GetDouble() > 0);
        }
        finally { File.Delete(json); }
    }
}

/// <summary>The backend tests time real exits and run the parallel driver: they run alone, not beside other classes.</summary>
[CollectionDefinition(nameof(KvmBackendCollection), DisableParallelization = true)]
public sealed class KvmBackendCollection;
