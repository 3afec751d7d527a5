// Design note — one clock.
//
// Every timed figure in Copra (the kernel's own segments, exitbench, kvmbench, KVM_RUN round trips, the bare loop)
// reads this one counter, serialised the same way everywhere (LFENCE before RDTSC: earlier instructions complete
// before the counter is read), so two sides of a comparison are never timed by different clocks. .NET has no RDTSC
// intrinsic: a 13-byte stub is written to a private page, the page is made read+execute (never writable and
// executable at once), and called through an unmanaged function pointer with SuppressGCTransition (legal under
// NativeAOT). Where that fails, or off x86-64 Linux, Read returns Stopwatch ticks.
//
// Units. TSC ticks are cycles only of an invariant TSC (constant_tsc and nonstop_tsc in /proc/cpuinfo); the rate
// (Hz) is measured against Stopwatch at start-up, never assumed. Where there is no hardware TSC, or it is not
// invariant, figures are reported in nanoseconds and never called cycles (Unit, ToReportUnits).
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Timing;

/// <summary>The one time-stamp counter helper: LFENCE-serialised RDTSC, or Stopwatch ticks where RDTSC is unreachable.</summary>
public static unsafe partial class Tsc
{
    static readonly byte[] Stub =
    [
        0x0F, 0xAE, 0xE8,       // lfence       (earlier instructions complete before the counter is read)
        0x0F, 0x31,             // rdtsc        (edx:eax)
        0x48, 0xC1, 0xE2, 0x20, // shl rdx, 32
        0x48, 0x09, 0xD0,       // or rax, rdx
        0xC3,                   // ret
    ];

    static readonly delegate* unmanaged[SuppressGCTransition]<ulong> s_rdtsc = CreateStub(out s_unavailableReason);
    static readonly string? s_unavailableReason;

    /// <summary>True when <see cref="Read"/> is the hardware TSC (else Stopwatch ticks).</summary>
    public static bool IsHardware => s_rdtsc != null;

    /// <summary>Why RDTSC could not be reached, or null when it is.</summary>
    public static string? UnavailableReason => s_unavailableReason;

    /// <summary>The counter: LFENCE; RDTSC where available, else Stopwatch ticks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Read()
    {
        var f = s_rdtsc;
        // SAFETY: s_rdtsc is null or points at the immutable, read+execute stub above, which touches only rax/rdx
        // (caller-saved) and the return address.
        return f != null ? f() : (ulong)Stopwatch.GetTimestamp();
    }

    /// <summary>Counter ticks per second, measured against Stopwatch at its first use (Stopwatch's own rate without RDTSC).</summary>
    public static double Hz => Rate.Hz;

    /// <summary>
    /// The rate in a class of its own, so it is measured when first read, not when the counter is: a run that never
    /// converts ticks (`copra exitbench --count`, whose instructions bench/instructions.sh counts) skips the 30 ms
    /// calibration spin, whose instruction count under valgrind depends on how fast the host runs it (~1-2 M).
    /// </summary>
    static class Rate
    {
        public static readonly double Hz = Calibrate();
    }

    /// <summary>True when the CPU says its TSC is invariant (constant rate, runs in every C-state).</summary>
    public static readonly bool IsInvariant = IsHardware && InvariantFromCpuinfo(ReadCpuinfo());

    /// <summary>True when ticks are CPU-independent cycles: a hardware, invariant TSC.</summary>
    public static bool CountsCycles => IsHardware && IsInvariant;

    /// <summary>The unit figures are reported in: "cycles" for an invariant hardware TSC, else "ns".</summary>
    public static string Unit => CountsCycles ? "cycles" : "ns";

    public static double ToNanoseconds(double ticks) => ticks * 1e9 / Hz;

    /// <summary>Ticks in <see cref="Unit"/>: unchanged for an invariant TSC, nanoseconds otherwise.</summary>
    public static double ToReportUnits(double ticks) => CountsCycles ? ticks : ToNanoseconds(ticks);

    /// <summary>One line for a report header: which clock, whether it is invariant, its measured rate.</summary>
    public static string Describe() => IsHardware
        ? $"clock: RDTSC (lfence-serialised), {(IsInvariant ? "invariant" : "not invariant: figures in ns")}, measured {Hz / 1e9:F3} GHz"
        : $"clock: Stopwatch ({UnavailableReason}); figures in ns";

    /// <summary>Whether a /proc/cpuinfo text declares an invariant TSC (constant_tsc and nonstop_tsc on the flags line).</summary>
    public static bool InvariantFromCpuinfo(string? cpuinfo)
    {
        if (cpuinfo is null) return false;
        foreach (var line in cpuinfo.Split('\n'))
        {
            if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var flags = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return flags.Contains("constant_tsc") && flags.Contains("nonstop_tsc");
        }
        return false;
    }

    static string? ReadCpuinfo()
    {
        try { return File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    static double Calibrate()
    {
        if (s_rdtsc == null) return Stopwatch.Frequency;
        // Median of three 10 ms windows: one preempted window (a shared host) does not set the rate.
        Span<double> r = stackalloc double[3];
        for (int i = 0; i < r.Length; i++)
        {
            long s0 = Stopwatch.GetTimestamp(); ulong t0 = Read();
            while (Stopwatch.GetTimestamp() - s0 < Stopwatch.Frequency / 100) { }
            long s1 = Stopwatch.GetTimestamp(); ulong t1 = Read();
            r[i] = (t1 - t0) * (double)Stopwatch.Frequency / (s1 - s0);
        }
        r.Sort();
        return r[1];
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(nint addr, nuint length, int prot);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint addr, nuint length);

    static delegate* unmanaged[SuppressGCTransition]<ulong> CreateStub(out string? reason)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            reason = "RDTSC stub needs x86-64 Linux";
            return null;
        }
        try
        {
            const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
            const nuint PageSize = 4096;
            nint page = Mmap(0, PageSize, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
            if (page == -1 || page == 0)
            {
                reason = $"mmap failed: errno {Marshal.GetLastPInvokeError()}";
                return null;
            }
            // SAFETY: page is a fresh private RW mapping of PageSize bytes, larger than the stub.
            Stub.CopyTo(new Span<byte>((void*)page, Stub.Length));
            if (Mprotect(page, PageSize, ProtRead | ProtExec) != 0)
            {
                reason = $"mprotect(PROT_EXEC) refused: errno {Marshal.GetLastPInvokeError()}";
                Munmap(page, PageSize);
                return null;
            }
            reason = null;
            // The page is never unmapped: the stub lives as long as the process.
            return (delegate* unmanaged[SuppressGCTransition]<ulong>)page;
        }
        catch (DllNotFoundException) { reason = "libc not found"; return null; }
        catch (EntryPointNotFoundException) { reason = "mmap/mprotect not found"; return null; }
    }
}
