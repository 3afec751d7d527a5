// The five libc calls the KVM backend needs, source-generated ([LibraryImport]) so the
// binding is AOT-clean: no runtime marshalling stubs, no reflection.
//
// ioctl and open are variadic in C. On x86-64 System V a variadic call with only integer
// arguments is passed exactly like a fixed-arity one (AL, the vector-register count, is
// ignored by glibc's syscall wrappers), so declaring fixed signatures is sound here.
using System.Runtime.InteropServices;

namespace Copra.Kernel.Kvm;

internal static unsafe partial class KvmNative
{
    const string LibC = "libc";

    public const int O_RDWR = 0x2;
    public const int O_CLOEXEC = 0x80000;

    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int PROT_EXEC = 0x4;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public static readonly nint MAP_FAILED = -1;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int E2BIG = 7;

    [LibraryImport(LibC, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(LibC, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>ioctl with a pointer argument. Caller obligation: <paramref name="arg"/> points
    /// at a buffer at least as large as the size encoded in <paramref name="request"/>.</summary>
    [LibraryImport(LibC, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* arg);

    /// <summary>ioctl with an integer argument (or none: pass 0).</summary>
    [LibraryImport(LibC, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nuint arg);

    [LibraryImport(LibC, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(LibC, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport(LibC, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(nint addr, nuint length, int prot);

    /// <summary>The errno of the last call above on this thread.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();
}

/// <summary>A failed KVM or libc call: which operation, and the errno it returned (0 when the
/// call succeeded but its answer was unusable, e.g. a wrong API version).</summary>
public sealed class KvmException : Exception
{
    public KvmException(string operation, int errno)
        : base($"{operation} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})")
    {
        Operation = operation;
        Errno = errno;
    }

    public KvmException(string operation, string problem) : base($"{operation}: {problem}")
    {
        Operation = operation;
    }

    /// <summary>The operation that failed, e.g. <c>KVM_CREATE_VM</c>.</summary>
    public string Operation { get; }

    /// <summary>The Linux errno value, or 0 when the call itself succeeded.</summary>
    public int Errno { get; }

    internal static KvmException Last(string operation) => new(operation, KvmNative.Errno);
}
