// Reading the TSC from C# without the JIT's help: .NET has no RDTSC intrinsic, so we place
// a ten-byte stub (lfence; rdtsc; shl rdx,32; or rax,rdx; ret) in an anonymous page, flip
// it to read+execute, and call it through an unmanaged function pointer with
// SuppressGCTransition. That is legal under NativeAOT (no JIT, no reflection) and costs a
// plain indirect call. Where the page cannot be made executable (a W^X policy) or the
// process is not x86-64 Linux, IsAvailable is false and Read falls back to Stopwatch ticks.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Kernel.Kvm;

/// <summary>The raw time-stamp counter, or Stopwatch ticks where RDTSC cannot be reached.</summary>
public static unsafe class RawTsc
{
    static readonly byte[] Stub =
    [
        0x0F, 0xAE, 0xE8,       // lfence       (earlier loads retire before the counter is read)
        0x0F, 0x31,             // rdtsc        (edx:eax)
        0x48, 0xC1, 0xE2, 0x20, // shl rdx, 32
        0x48, 0x09, 0xD0,       // or rax, rdx
        0xC3,                   // ret
    ];

    static readonly delegate* unmanaged[SuppressGCTransition]<ulong> s_rdtsc = CreateStub(out s_unavailableReason);
    static readonly string? s_unavailableReason;

    /// <summary>True when <see cref="Read"/> returns TSC cycles; false when it returns Stopwatch ticks.</summary>
    public static bool IsAvailable => s_rdtsc != null;

    /// <summary>Why the TSC stub could not be installed, or null when it is.</summary>
    public static string? UnavailableReason => s_unavailableReason;

    /// <summary>The current TSC (or Stopwatch timestamp when <see cref="IsAvailable"/> is false).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Read()
    {
        var f = s_rdtsc;
        // SAFETY: s_rdtsc is null or points at the immutable, executable stub above, which
        // touches only rax/rdx (caller-saved) and the stack's return address.
        return f != null ? f() : (ulong)Stopwatch.GetTimestamp();
    }

    static delegate* unmanaged[SuppressGCTransition]<ulong> CreateStub(out string? reason)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            reason = "RDTSC stub needs x86-64 Linux";
            return null;
        }
        const nuint PageSize = 4096;
        nint page = KvmNative.Mmap(0, PageSize, KvmNative.PROT_READ | KvmNative.PROT_WRITE,
            KvmNative.MAP_PRIVATE | KvmNative.MAP_ANONYMOUS, -1, 0);
        if (page == KvmNative.MAP_FAILED)
        {
            reason = $"mmap failed: errno {KvmNative.Errno}";
            return null;
        }
        // SAFETY: page is a fresh private RW mapping of PageSize bytes, larger than the stub.
        Stub.CopyTo(new Span<byte>((void*)page, Stub.Length));
        if (KvmNative.Mprotect(page, PageSize, KvmNative.PROT_READ | KvmNative.PROT_EXEC) != 0)
        {
            reason = $"mprotect(PROT_EXEC) refused: errno {KvmNative.Errno}";
            KvmNative.Munmap(page, PageSize);
            return null;
        }
        reason = null;
        // The page is never unmapped: the stub lives as long as the process.
        return (delegate* unmanaged[SuppressGCTransition]<ulong>)page;
    }
}
