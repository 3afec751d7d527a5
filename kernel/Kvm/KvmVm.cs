// A KVM virtual machine: its fd, the guest-memory slots (memory the caller owns, mapped by
// host address), and the vCPUs created on it. No in-kernel irqchip is created, so HLT and
// interrupt delivery stay in user space (KVM_EXIT_HLT, KVM_INTERRUPT).
namespace Copra.Kernel.Kvm;

/// <summary>One guest-memory slot: <see cref="Size"/> bytes at <see cref="GuestPhys"/>, backed by host memory at <see cref="HostAddress"/>.</summary>
public readonly record struct KvmMemoryRegion(uint Slot, ulong GuestPhys, ulong Size, nint HostAddress)
{
    /// <summary>True when [gpa, gpa + length) lies inside this region.</summary>
    public bool Contains(ulong gpa, ulong length) =>
        gpa >= GuestPhys && length <= Size && gpa - GuestPhys <= Size - length;
}

/// <summary>A KVM VM (KVM_CREATE_VM). Disposing it disposes its vCPUs; guest memory stays the caller's.</summary>
public sealed unsafe class KvmVm : IDisposable
{
    /// <summary>Where KVM_SET_TSS_ADDR puts the three pages VMX needs for real mode (as QEMU does); unused on SVM.</summary>
    public const ulong TssAddress = 0xFFFB_D000;

    /// <summary>Slot, address and size granularity.</summary>
    public const ulong PageSize = 4096;

    readonly KvmSystem _system;
    readonly bool _ownsSystem;
    readonly List<KvmMemoryRegion> _regions = [];
    readonly List<KvmVcpu> _vcpus = [];
    int _fd;

    KvmVm(KvmSystem system, bool ownsSystem, int fd)
    {
        _system = system;
        _ownsSystem = ownsSystem;
        _fd = fd;
    }

    ~KvmVm() => ReleaseFd();

    /// <summary>The /dev/kvm this VM was created on.</summary>
    public KvmSystem System => _system;

    /// <summary>The mapped guest-memory regions, in slot order of creation.</summary>
    public IReadOnlyList<KvmMemoryRegion> Regions => _regions;

    /// <summary>The vCPUs created on this VM and not yet disposed.</summary>
    public IReadOnlyList<KvmVcpu> Vcpus => _vcpus;

    internal int Fd => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(KvmVm));

    /// <summary>Opens /dev/kvm and creates a VM that owns that handle.</summary>
    public static KvmVm Create()
    {
        var system = KvmSystem.Open();
        try
        {
            return Create(system, ownsSystem: true);
        }
        catch
        {
            system.Dispose();
            throw;
        }
    }

    internal static KvmVm Create(KvmSystem system, bool ownsSystem)
    {
        int fd = KvmNative.Ioctl(system.Fd, KvmIoctls.CreateVm, 0);
        if (fd < 0) throw KvmException.Last("KVM_CREATE_VM");
        var vm = new KvmVm(system, ownsSystem, fd);
        if (system.CheckExtension(KvmCap.SetTssAddr) > 0
            && KvmNative.Ioctl(fd, KvmIoctls.SetTssAddr, (nuint)TssAddress) < 0)
        {
            var e = KvmException.Last("KVM_SET_TSS_ADDR");
            vm.Dispose();
            throw e;
        }
        return vm;
    }

    /// <summary>
    /// Maps <paramref name="size"/> bytes of host memory at <paramref name="hostAddress"/> into the guest at
    /// <paramref name="guestPhys"/> (KVM_SET_USER_MEMORY_REGION) and returns the slot.
    /// Caller obligation: the host memory stays allocated, and is not reused, until the slot is removed
    /// with <see cref="UnmapMemory"/> or the VM is disposed; the guest reads and writes it at any time a vCPU runs.
    /// </summary>
    public uint MapMemory(nint hostAddress, ulong size, ulong guestPhys)
    {
        if (hostAddress == 0 || (ulong)hostAddress % PageSize != 0)
            throw new ArgumentException("host address must be non-null and page-aligned", nameof(hostAddress));
        if (size == 0 || size % PageSize != 0) throw new ArgumentException("size must be a non-zero multiple of 4 KiB", nameof(size));
        if (guestPhys % PageSize != 0) throw new ArgumentException("guest-physical address must be page-aligned", nameof(guestPhys));
        if (guestPhys + size < guestPhys) throw new ArgumentException("region wraps the address space", nameof(size));
        foreach (var r in _regions)
            if (guestPhys < r.GuestPhys + r.Size && r.GuestPhys < guestPhys + size)
                throw new ArgumentException($"overlaps slot {r.Slot} at 0x{r.GuestPhys:X}", nameof(guestPhys));

        uint slot = LowestFreeSlot();
        SetRegion(slot, guestPhys, size, hostAddress);
        _regions.Add(new KvmMemoryRegion(slot, guestPhys, size, hostAddress));
        return slot;
    }

    /// <summary>Removes a slot made by <see cref="MapMemory"/>; its host memory is the caller's again.</summary>
    public void UnmapMemory(uint slot)
    {
        int i = _regions.FindIndex(r => r.Slot == slot);
        if (i < 0) throw new ArgumentException($"slot {slot} is not mapped", nameof(slot));
        SetRegion(slot, _regions[i].GuestPhys, 0, 0);
        _regions.RemoveAt(i);
    }

    void SetRegion(uint slot, ulong guestPhys, ulong size, nint hostAddress)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            GuestPhysAddr = guestPhys,
            MemorySize = size,
            UserspaceAddr = (ulong)hostAddress,
        };
        // SAFETY: &region is a live stack struct of the size KVM_SET_USER_MEMORY_REGION encodes.
        if (KvmNative.Ioctl(Fd, KvmIoctls.SetUserMemoryRegion, &region) < 0)
            throw KvmException.Last("KVM_SET_USER_MEMORY_REGION");
    }

    uint LowestFreeSlot()
    {
        uint slot = 0;
        while (_regions.Exists(r => r.Slot == slot)) slot++;
        return slot;
    }

    /// <summary>The host address of guest-physical [gpa, gpa + length) when it lies inside one mapped region.</summary>
    public bool TryGetHostAddress(ulong gpa, ulong length, out nint hostAddress)
    {
        foreach (var r in _regions)
        {
            if (r.Contains(gpa, length))
            {
                hostAddress = r.HostAddress + (nint)(gpa - r.GuestPhys);
                return true;
            }
        }
        hostAddress = 0;
        return false;
    }

    /// <summary>
    /// A view of guest-physical [gpa, gpa + length) in host memory. It stays valid while the region stays
    /// mapped and its memory allocated (see <see cref="MapMemory"/>); a running vCPU may change it under you.
    /// </summary>
    public Span<byte> GuestMemory(ulong gpa, int length)
    {
        if (length < 0 || !TryGetHostAddress(gpa, (ulong)length, out nint host))
            throw new ArgumentOutOfRangeException(nameof(gpa), $"[0x{gpa:X}, +{length}) is not inside one mapped region");
        // SAFETY: [host, host + length) lies inside a region whose memory the caller keeps allocated while mapped.
        return new Span<byte>((void*)host, length);
    }

    /// <summary>Creates vCPU <paramref name="id"/> with its kvm_run mapping and the host-supported CPUID (needed for long mode).</summary>
    public KvmVcpu CreateVcpu(uint id)
    {
        var vcpu = new KvmVcpu(this, id);
        _vcpus.Add(vcpu);
        return vcpu;
    }

    internal void Forget(KvmVcpu vcpu) => _vcpus.Remove(vcpu);

    public void Dispose()
    {
        foreach (var v in _vcpus.ToArray()) v.Dispose();
        ReleaseFd();
        if (_ownsSystem) _system.Dispose();
        GC.SuppressFinalize(this);
    }

    void ReleaseFd()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) KvmNative.Close(fd);
    }
}
