// The host's kind of KVM, decided from /proc/cpuinfo and the loaded modules: fixtures, no /dev/kvm needed.
using Copra.Hot.Timing;
using Copra.Kernel.Kvm;
using Xunit;

namespace Copra.Tests.Kvm;

public sealed class HostVirtualizationTests
{
    const string PvmGuest = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr pae constant_tsc nonstop_tsc hypervisor lahf_lm\n\nprocessor\t: 1\n";
    const string IntelHost = "processor\t: 0\nflags\t\t: fpu vme vmx ept constant_tsc nonstop_tsc\n";
    const string AmdNested = "flags\t\t: fpu svm npt hypervisor constant_tsc\n";

    [Fact]
    public void kvm_pvm_is_recognised_from_its_module_even_without_vmx_or_svm()
    {
        var h = HostVirtualization.Classify(PvmGuest, ["kvm", "kvm_pvm", "virtio_blk"]);
        Assert.Equal(VirtualizationKind.Pvm, h.Kind);
        Assert.True(h.UnderHypervisor);
        Assert.Contains("no vmx/svm", h.Evidence, StringComparison.Ordinal);
        Assert.Contains("kvm_pvm", h.Describe(), StringComparison.Ordinal);
        Assert.Contains("emulated", h.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Hardware_KVM_is_told_apart_by_vendor_and_nesting()
    {
        var intel = HostVirtualization.Classify(IntelHost, ["kvm", "kvm_intel"]);
        Assert.Equal(VirtualizationKind.HardwareVmx, intel.Kind);
        Assert.False(intel.UnderHypervisor);
        var amd = HostVirtualization.Classify(AmdNested, ["kvm", "kvm_amd"]);
        Assert.Equal(VirtualizationKind.HardwareSvm, amd.Kind);
        Assert.True(amd.UnderHypervisor);
        Assert.Contains("nested", amd.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void No_kvm_module_and_unreadable_cpuinfo_are_said_as_such()
    {
        Assert.Equal(VirtualizationKind.NoKvm, HostVirtualization.Classify(PvmGuest, ["virtio_blk"]).Kind);
        var u = HostVirtualization.Classify(null, ["kvm"]);
        Assert.Equal(VirtualizationKind.Unknown, u.Kind);
        Assert.Contains("cpuinfo unreadable", u.Evidence, StringComparison.Ordinal);
    }

    [Fact]
    public void An_invariant_TSC_needs_both_constant_and_nonstop_flags()
    {
        Assert.True(Tsc.InvariantFromCpuinfo(PvmGuest));
        Assert.True(Tsc.InvariantFromCpuinfo(IntelHost));
        Assert.False(Tsc.InvariantFromCpuinfo(AmdNested));      // constant_tsc only
        Assert.False(Tsc.InvariantFromCpuinfo(null));
        Assert.False(Tsc.InvariantFromCpuinfo("processor : 0\n"));
    }

    [Fact]
    public void Without_an_invariant_hardware_TSC_figures_are_nanoseconds_never_cycles()
    {
        Assert.Equal(Tsc.CountsCycles ? "cycles" : "ns", Tsc.Unit);
        Assert.Equal(Tsc.IsHardware && Tsc.IsInvariant, Tsc.CountsCycles);
        if (!Tsc.CountsCycles) Assert.Equal(Tsc.ToNanoseconds(1000), Tsc.ToReportUnits(1000));
        else Assert.Equal(1000, Tsc.ToReportUnits(1000));
        Assert.True(Tsc.Hz > 0);
        Assert.Contains(Tsc.IsHardware ? "RDTSC" : "Stopwatch", Tsc.Describe(), StringComparison.Ordinal);
    }
}
