// The /dev/kvm handle: API version, capability checks, the vCPU mapping size and the
// host-supported CPUID table; the factory for VMs. One per process is plenty, but nothing
// breaks if there are several.
using System.Runtime.InteropServices;

namespace Copra.Kernel.Kvm;

/// <summary>An open /dev/kvm.</summary>
public sealed unsafe class KvmSystem : IDisposable
{
    /// <summary>The device path.</summary>
    public const string DevicePath = "/dev/kvm";

    /// <summary>The only stable KVM API version there has ever been.</summary>
    public const int ExpectedApiVersion = 12;

    int _fd;
    KvmCpuidEntry2[]? _supportedCpuid;

    KvmSystem(int fd, int vcpuMmapSize)
    {
        _fd = fd;
        VcpuMmapSize = vcpuMmapSize;
    }

    ~KvmSystem() => Release();

    /// <summary>Bytes to mmap from a vCPU fd (kvm_run and the pages that follow it, e.g. I/O data).</summary>
    public int VcpuMmapSize { get; }

    internal int Fd => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(KvmSystem));

    /// <summary>Opens /dev/kvm and checks the API version and the capabilities this backend needs.</summary>
    /// <exception cref="KvmException">The device is missing, inaccessible, or too old.</exception>
    public static KvmSystem Open()
    {
        int fd = KvmNative.Open(DevicePath, KvmNative.O_RDWR | KvmNative.O_CLOEXEC);
        if (fd < 0) throw KvmException.Last($"open({DevicePath})");
        try
        {
            int version = KvmNative.Ioctl(fd, KvmIoctls.GetApiVersion, 0);
            if (version != ExpectedApiVersion)
                throw new KvmException("KVM_GET_API_VERSION", $"returned {version}, expected {ExpectedApiVersion}");
            foreach (uint cap in (ReadOnlySpan<uint>)[KvmCap.UserMemory, KvmCap.ExtCpuid])
                if (KvmNative.Ioctl(fd, KvmIoctls.CheckExtension, cap) <= 0)
                    throw new KvmException($"KVM_CHECK_EXTENSION({cap})", "capability missing");
            int mmapSize = KvmNative.Ioctl(fd, KvmIoctls.GetVcpuMmapSize, 0);
            if (mmapSize < 0) throw KvmException.Last("KVM_GET_VCPU_MMAP_SIZE");
            if (mmapSize < KvmRun.Size) throw new KvmException("KVM_GET_VCPU_MMAP_SIZE", $"{mmapSize} bytes is smaller than kvm_run");
            return new KvmSystem(fd, mmapSize);
        }
        catch
        {
            KvmNative.Close(fd);
            throw;
        }
    }

    /// <summary>True when /dev/kvm can be opened and used; otherwise why not.</summary>
    public static bool IsAvailable(out string reason)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            reason = $"not x86-64 Linux, so no {DevicePath}";
            return false;
        }
        int fd = KvmNative.Open(DevicePath, KvmNative.O_RDWR | KvmNative.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = KvmNative.Errno;
            reason = $"{DevicePath} missing or cannot be opened: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
            return false;
        }
        KvmNative.Close(fd);
        try
        {
            using var kvm = Open();
            reason = $"{DevicePath} usable (API {ExpectedApiVersion}, vCPU mapping {kvm.VcpuMmapSize} bytes)";
            return true;
        }
        catch (KvmException e)
        {
            reason = $"{DevicePath} present but unusable: {e.Message}";
            return false;
        }
    }

    /// <summary>KVM_CHECK_EXTENSION: 0 when unsupported, otherwise a capability-specific positive value.</summary>
    public int CheckExtension(uint capability)
    {
        int r = KvmNative.Ioctl(Fd, KvmIoctls.CheckExtension, capability);
        return r < 0 ? 0 : r;
    }

    /// <summary>KVM_GET_SUPPORTED_CPUID, fetched once and cached. The returned array is shared: do not modify it.</summary>
    public ReadOnlySpan<KvmCpuidEntry2> SupportedCpuid => _supportedCpuid ??= FetchSupportedCpuid();

    KvmCpuidEntry2[] FetchSupportedCpuid()
    {
        // KVM answers E2BIG until the buffer is big enough; start at a size that fits today's CPUs.
        for (int capacity = 128; capacity <= 4096; capacity *= 2)
        {
            int bytes = KvmCpuid2Header.Size + capacity * KvmCpuidEntry2.Size;
            byte[] buffer = new byte[bytes];
            fixed (byte* p = buffer)
            {
                // SAFETY: p addresses `bytes` bytes: the header plus `capacity` entries, as nent tells KVM.
                ((KvmCpuid2Header*)p)->Nent = (uint)capacity;
                if (KvmNative.Ioctl(Fd, KvmIoctls.GetSupportedCpuid, p) == 0)
                {
                    int n = (int)((KvmCpuid2Header*)p)->Nent;
                    return new ReadOnlySpan<KvmCpuidEntry2>(p + KvmCpuid2Header.Size, n).ToArray();
                }
                if (KvmNative.Errno != KvmNative.E2BIG) throw KvmException.Last("KVM_GET_SUPPORTED_CPUID");
            }
        }
        throw new KvmException("KVM_GET_SUPPORTED_CPUID", "more than 4096 entries");
    }

    /// <summary>Creates a VM on this system. The VM does not own the system; dispose both.</summary>
    public KvmVm CreateVm() => KvmVm.Create(this, ownsSystem: false);

    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    void Release()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) KvmNative.Close(fd);
    }
}
