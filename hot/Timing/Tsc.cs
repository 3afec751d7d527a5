using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Copra.Hot.Timing;

/// <summary>
/// The time-stamp counter. .NET has no RDTSC intrinsic, so on x64 Linux a 12-byte stub
/// (<c>rdtsc; shl rdx,32; or rax,rdx; ret</c>) is placed in an executable page once and called
/// through an unmanaged function pointer; elsewhere it falls back to <see cref="Stopwatch"/> ticks.
/// <see cref="Hz"/> is calibrated against Stopwatch at start-up so cycles and nanoseconds convert.
/// </summary>
public static unsafe partial class Tsc
{
    static readonly delegate* unmanaged<ulong> s_rdtsc = CreateStub();

    /// <summary>True when <see cref="Read"/> is the real TSC (else Stopwatch ticks).</summary>
    public static bool IsHardware => s_rdtsc != null;

    public static ulong Read() => s_rdtsc != null ? s_rdtsc() : (ulong)Stopwatch.GetTimestamp();

    /// <summary>Counter ticks per second.</summary>
    public static readonly double Hz = Calibrate();

    public static double ToNanoseconds(double ticks) => ticks * 1e9 / Hz;

    static double Calibrate()
    {
        if (s_rdtsc == null) return Stopwatch.Frequency;
        long s0 = Stopwatch.GetTimestamp(); ulong t0 = Read();
        while (Stopwatch.GetTimestamp() - s0 < Stopwatch.Frequency / 50) { }   // 20 ms
        long s1 = Stopwatch.GetTimestamp(); ulong t1 = Read();
        return (t1 - t0) * (double)Stopwatch.Frequency / (s1 - s0);
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    static delegate* unmanaged<ulong> CreateStub()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return null;
        try
        {
            const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
            nint page = Mmap(0, 4096, ProtRead | ProtWrite | ProtExec, MapPrivate | MapAnonymous, -1, 0);
            if (page == -1 || page == 0) return null;
            ReadOnlySpan<byte> code = [0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3];
            // SAFETY: page is a fresh private 4 KiB RWX mapping we own; the stub is 10 bytes, and it
            // clobbers only RAX and RDX, which the unmanaged calling convention treats as volatile.
            code.CopyTo(new Span<byte>((void*)page, code.Length));
            return (delegate* unmanaged<ulong>)page;
        }
        catch (DllNotFoundException) { return null; }
        catch (EntryPointNotFoundException) { return null; }
    }
}
