// GuestMemory: the confidential VM's guest-physical memory as one native,
// page-aligned, zeroed block. Every guest VM in the model shares it (the
// kernel's memory map hands out ranges of it); the KVM backend maps the same
// block into its VM, so there is exactly one copy of guest RAM.
//
// Contract: gpa is an offset from Base. Callers that act for the guest (page
// walker, fetcher, string-instruction write-back) check Contains first and
// turn a miss into a guest-visible fault; the accessors below throw only when
// the kernel itself passed a range it never checked (a kernel bug).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Guest;

/// <summary>Native, page-aligned, zero-filled guest-physical memory shared by all guest VMs.</summary>
public sealed unsafe class GuestMemory : IDisposable
{
    /// <summary>Size of a guest page in bytes.</summary>
    public const int PageSize = 4096;

    byte* _base;

    /// <summary>Allocates <paramref name="size"/> bytes (a non-zero multiple of 4096), zeroed and 4096-aligned.</summary>
    public GuestMemory(ulong size)
    {
        if (size == 0 || (size & (PageSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, "guest memory is a non-zero whole number of 4 KiB pages");
        // SAFETY: AlignedAlloc returns size bytes or throws OutOfMemoryException; Clear touches exactly those bytes.
        _base = (byte*)NativeMemory.AlignedAlloc((nuint)size, PageSize);
        NativeMemory.Clear(_base, (nuint)size);
        Size = size;
    }

    /// <summary>Start of guest-physical address 0 in this process. Valid until <see cref="Dispose"/>.</summary>
    public byte* Base => _base;

    /// <summary>Bytes of guest-physical memory.</summary>
    public ulong Size { get; }

    /// <summary>True when [gpa, gpa+len) lies inside guest memory. Overflow-safe for any inputs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(ulong gpa, ulong len) => len <= Size && gpa <= Size - len;

    /// <summary>A view of [gpa, gpa+len). Caller obligation: <see cref="Contains"/> holds; otherwise this throws.</summary>
    public Span<byte> Span(ulong gpa, int len)
    {
        Check(gpa, (ulong)len);
        // SAFETY: Check proved [gpa, gpa+len) lies inside the live allocation.
        return new Span<byte>(_base + gpa, len);
    }

    /// <summary>Reads a byte. Caller obligation: the address is inside guest memory.</summary>
    public byte ReadU8(ulong gpa) { Check(gpa, 1); return _base[gpa]; }
    /// <summary>Reads a little-endian u16 (any alignment).</summary>
    public ushort ReadU16(ulong gpa) { Check(gpa, 2); return Unsafe.ReadUnaligned<ushort>(_base + gpa); }
    /// <summary>Reads a little-endian u32 (any alignment).</summary>
    public uint ReadU32(ulong gpa) { Check(gpa, 4); return Unsafe.ReadUnaligned<uint>(_base + gpa); }
    /// <summary>Reads a little-endian u64 (any alignment).</summary>
    public ulong ReadU64(ulong gpa) { Check(gpa, 8); return Unsafe.ReadUnaligned<ulong>(_base + gpa); }

    /// <summary>Writes a byte.</summary>
    public void WriteU8(ulong gpa, byte value) { Check(gpa, 1); _base[gpa] = value; }
    /// <summary>Writes a little-endian u16.</summary>
    public void WriteU16(ulong gpa, ushort value) { Check(gpa, 2); Unsafe.WriteUnaligned(_base + gpa, value); }
    /// <summary>Writes a little-endian u32.</summary>
    public void WriteU32(ulong gpa, uint value) { Check(gpa, 4); Unsafe.WriteUnaligned(_base + gpa, value); }
    /// <summary>Writes a little-endian u64.</summary>
    public void WriteU64(ulong gpa, ulong value) { Check(gpa, 8); Unsafe.WriteUnaligned(_base + gpa, value); }

    /// <summary>Reads the aligned u64 at <paramref name="gpa"/> with acquire semantics (a locked access's first read).</summary>
    public ulong ReadU64Volatile(ulong gpa)
    {
        CheckAligned8(gpa);
        // SAFETY: CheckAligned8 proved [gpa, gpa+8) is inside the allocation and 8-byte aligned.
        return Volatile.Read(ref *(ulong*)(_base + gpa));
    }

    /// <summary>
    /// Atomically replaces the aligned u64 at <paramref name="gpa"/> with <paramref name="value"/> if it still holds
    /// <paramref name="expected"/>; returns what it held. Atomic against every other CPU, native guest code included.
    /// </summary>
    public ulong CompareExchangeU64(ulong gpa, ulong value, ulong expected)
    {
        CheckAligned8(gpa);
        // SAFETY: as ReadU64Volatile; an aligned 8-byte lock cmpxchg never splits a cache line.
        return Interlocked.CompareExchange(ref *(ulong*)(_base + gpa), value, expected);
    }

    /// <summary>
    /// Sets <paramref name="bits"/> in the byte at <paramref name="gpa"/> with a locked read-modify-write, as the CPU sets a
    /// descriptor's accessed or a TSS's busy bit (SDM vol. 3 §3.4.5.1, §7.2.2): a compare-exchange of the aligned u64 that
    /// holds the byte, retried with what it found, so a concurrent write to that word by another CPU is never lost. Returns
    /// the byte as it was just before; when it had every bit already, nothing is written (the CPU writes only a change).
    /// </summary>
    public byte OrU8Locked(ulong gpa, byte bits)
    {
        ulong word = gpa & ~7UL;
        int shift = (int)(gpa & 7) * 8;
        ulong old = ReadU64Volatile(word);
        while (true)
        {
            byte before = (byte)(old >> shift);
            if ((before & bits) == bits) return before;
            ulong seen = CompareExchangeU64(word, old | (ulong)bits << shift, old);
            if (seen == old) return before;
            old = seen;
        }
    }

    void CheckAligned8(ulong gpa)
    {
        Check(gpa, 8);
        if ((gpa & 7) != 0) GuestThrowHelper.BadAccessSize(8);
    }

    /// <summary>Reads 1 to 8 bytes zero-extended to 64 bits (the width of an MMIO/IO access; 3, 5, 7: a half of a stack slot split across a page; 6: SGDT/LGDT outside
    /// 64-bit mode and the m16:32 far pointer).</summary>
    public ulong ReadSized(ulong gpa, int size) => size switch
    {
        1 => ReadU8(gpa),
        2 => ReadU16(gpa),
        4 => ReadU32(gpa),
        8 => ReadU64(gpa),
        6 => ReadU32(gpa) | (ulong)ReadU16(gpa + 4) << 32,
        3 or 5 or 7 => ReadU8(gpa) | ReadSized(gpa + 1, size - 1) << 8,   // the halves of a stack slot split across a page
        _ => GuestThrowHelper.BadAccessSize(size),
    };

    /// <summary>Writes the low 1 to 8 bytes of <paramref name="value"/>.</summary>
    public void WriteSized(ulong gpa, int size, ulong value)
    {
        switch (size)
        {
            case 6: WriteU32(gpa, (uint)value); WriteU16(gpa + 4, (ushort)(value >> 32)); break;
            case 1: WriteU8(gpa, (byte)value); break;
            case 2: WriteU16(gpa, (ushort)value); break;
            case 4: WriteU32(gpa, (uint)value); break;
            case 8: WriteU64(gpa, value); break;
            case 3 or 5 or 7: WriteU8(gpa, (byte)value); WriteSized(gpa + 1, size - 1, value >> 8); break;   // a split stack slot's half
            default: GuestThrowHelper.BadAccessSize(size); break;
        }
    }

    /// <summary>Copies <paramref name="bytes"/> to gpa.</summary>
    public void Write(ulong gpa, ReadOnlySpan<byte> bytes) => bytes.CopyTo(Span(gpa, bytes.Length));

    /// <summary>Copies bytes at gpa into <paramref name="dest"/>.</summary>
    public void Read(ulong gpa, Span<byte> dest) => Span(gpa, dest.Length).CopyTo(dest);

    /// <summary>Zeroes [gpa, gpa+len).</summary>
    public void Clear(ulong gpa, int len) => Span(gpa, len).Clear();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Check(ulong gpa, ulong len)
    {
        if (!Contains(gpa, len) || _base == null) GuestThrowHelper.OutsideGuestMemory(gpa, len, Size);
    }

    /// <summary>Frees the memory. Any span or pointer obtained earlier is dead afterwards.</summary>
    public void Dispose()
    {
        if (_base != null)
        {
            // SAFETY: _base came from AlignedAlloc and is freed once (nulled below).
            NativeMemory.AlignedFree(_base);
            _base = null;
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the memory if <see cref="Dispose"/> was never called.</summary>
    ~GuestMemory() => Dispose();
}

static class GuestThrowHelper
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void OutsideGuestMemory(ulong gpa, ulong len, ulong size) =>
        throw new ArgumentOutOfRangeException(nameof(gpa),
            $"kernel misuse: [{gpa:X}, +{len:X}) is outside guest memory of {size:X} bytes (or it was disposed); check Contains first");

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static ulong BadAccessSize(int size) =>
        throw new ArgumentOutOfRangeException(nameof(size), size, "access size must be 1, 2, 4 or 8");
}
