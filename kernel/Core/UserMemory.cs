using System.Text;
using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

/// <summary>
/// The one place user pointers are checked (Hubris umem.rs: a pointer is an allegation until checked). The rule is
/// upstream's (kernel/src/mm/guestmem.rs <c>UserPtr::new</c>, then the copy): a range that wraps or does not lie
/// wholly inside user space [0, 0x0000_8000_0000_0000) is EINVAL; a range inside user space that is not wholly inside
/// one mapping of the caller (or is read-only where the kernel writes) is EFAULT. An empty range is not checked
/// (upstream copies nothing, so nothing can fault).
/// </summary>
public static class UserMemory
{
    public const ulong UserTop = AddressSpace.UserTop;

    /// <summary>EINVAL unless [va, va+len) lies inside user space without wrapping.</summary>
    public static void CheckRange(ulong va, ulong len)
    {
        if (va >= UserTop || len > UserTop - va) throw KernelError.Inval($"0x{va:x}+{len} is not a user-space range");
    }

    /// <summary>An array of <paramref name="count"/> elements of <paramref name="size"/> bytes: EINVAL if the byte length overflows or leaves user space.</summary>
    public static ulong CheckArray(ulong va, ulong count, ulong size)
    {
        if (count != 0 && size > ulong.MaxValue / count) throw KernelError.Inval($"{count} x {size} bytes overflows");
        CheckRange(va, count * size);
        return count * size;
    }

    /// <summary>The caller's bytes at [va, va+len): EINVAL outside user space, EFAULT where not mapped (or not writable).</summary>
    public static Span<byte> Span(KThread t, ulong va, ulong len, bool write)
    {
        if (len == 0) return [];
        CheckRange(va, len);
        if (len > int.MaxValue || !t.Process.Space.TrySpan(va, (int)len, write, out var span))
            throw KernelError.Fault($"0x{va:x}+{len} is not mapped{(write ? " writable" : "")}");
        return span;
    }

    /// <summary>A NUL-terminated UTF-8 path of at most PATH_MAX bytes (NUL included): EINVAL outside user space, too long or not UTF-8; EFAULT unmapped.</summary>
    public static string Path(KThread t, ulong va)
    {
        CheckRange(va, 1);
        if (!t.Process.Space.TryResolve(va, 1, false, out var region, out var off)) throw KernelError.Fault($"bad path pointer 0x{va:x}");
        int avail = (int)Math.Min(region.Length - off, OpenMode.PathMax);
        var span = region.Window.Span(off, avail);
        int nul = span.IndexOf((byte)0);
        if (nul < 0) throw avail == OpenMode.PathMax ? KernelError.Inval("path longer than PATH_MAX") : KernelError.Fault("path runs off its mapping");
        try { return new UTF8Encoding(false, true).GetString(span[..nul]); }
        catch (DecoderFallbackException) { throw KernelError.Inval("path is not UTF-8"); }
    }
}
