// Design note — what kind of /dev/kvm this is, decided at run time.
//
// A KVM figure means little without the host: with hardware virtualization (vmx/svm in the CPU flags) guest code
// runs natively and an exit costs a VM exit plus the user-space round trip; under kvm_pvm (pagetable-based
// virtualization, used where the host is itself a guest without nested virtualization) guest ring-3 code runs
// natively but guest ring-0 code goes through KVM's instruction emulator one instruction at a time, so the length
// of a ring-0 guest loop dominates the cost of every exit. The evidence is read from /proc/cpuinfo's flags and
// /sys/module (kvm_intel, kvm_amd, kvm_pvm); Classify is a pure function of that text, unit-tested on fixtures.
namespace Copra.Kernel.Kvm;

/// <summary>The host's kind of KVM.</summary>
public enum VirtualizationKind { Unknown, HardwareVmx, HardwareSvm, Pvm, NoKvm }

/// <summary>What was found and why.</summary>
public sealed record HostVirtualization(VirtualizationKind Kind, bool UnderHypervisor, string Evidence)
{
    /// <summary>One line for a report header.</summary>
    public string Describe() => Kind switch
    {
        VirtualizationKind.HardwareVmx => $"host: KVM on Intel VT-x{(UnderHypervisor ? " (nested, under a hypervisor)" : "")}: guest code runs natively ({Evidence})",
        VirtualizationKind.HardwareSvm => $"host: KVM on AMD SVM{(UnderHypervisor ? " (nested, under a hypervisor)" : "")}: guest code runs natively ({Evidence})",
        VirtualizationKind.Pvm => $"host: kvm_pvm (pagetable-based, no VT-x/SVM): guest ring-0 instructions are emulated one at a time, ring-3 runs natively ({Evidence})",
        VirtualizationKind.NoKvm => $"host: no KVM module ({Evidence})",
        _ => $"host: KVM of unknown kind ({Evidence})",
    };

    /// <summary>
    /// Classifies from the flags line of /proc/cpuinfo (null if unreadable) and the names of loaded modules
    /// (directories of /sys/module, or the first column of /proc/modules).
    /// </summary>
    public static HostVirtualization Classify(string? cpuinfo, IEnumerable<string> modules)
    {
        var flags = FlagsOf(cpuinfo);
        var mods = new HashSet<string>(modules, StringComparer.Ordinal);
        bool vmx = flags.Contains("vmx"), svm = flags.Contains("svm"), hyp = flags.Contains("hypervisor");
        string cpu = cpuinfo is null ? "cpuinfo unreadable" : $"cpu flags: {(vmx ? "vmx" : svm ? "svm" : "no vmx/svm")}{(hyp ? ", hypervisor" : "")}";
        string loaded = string.Join(", ", new[] { "kvm", "kvm_intel", "kvm_amd", "kvm_pvm" }.Where(mods.Contains));
        string ev = $"{cpu}; modules: {(loaded.Length == 0 ? "none" : loaded)}";
        // kvm_pvm first: it is what /dev/kvm is when it is loaded, whatever the CPU flags say.
        if (mods.Contains("kvm_pvm")) return new(VirtualizationKind.Pvm, hyp, ev);
        if (mods.Contains("kvm_intel") || (vmx && mods.Contains("kvm"))) return new(VirtualizationKind.HardwareVmx, hyp, ev);
        if (mods.Contains("kvm_amd") || (svm && mods.Contains("kvm"))) return new(VirtualizationKind.HardwareSvm, hyp, ev);
        if (!mods.Contains("kvm")) return new(VirtualizationKind.NoKvm, hyp, ev);
        return new(VirtualizationKind.Unknown, hyp, ev);
    }

    /// <summary>This machine, now.</summary>
    public static HostVirtualization Probe()
    {
        string? cpuinfo = null;
        try { cpuinfo = File.ReadAllText("/proc/cpuinfo"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        var mods = new List<string>();
        try { if (Directory.Exists("/sys/module")) mods.AddRange(Directory.GetDirectories("/sys/module").Select(Path.GetFileName)!); }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
        return Classify(cpuinfo, mods);
    }

    static HashSet<string> FlagsOf(string? cpuinfo)
    {
        foreach (var line in (cpuinfo ?? "").Split('\n'))
        {
            if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
            int colon = line.IndexOf(':');
            if (colon >= 0) return new HashSet<string>(line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        }
        return [];
    }
}
