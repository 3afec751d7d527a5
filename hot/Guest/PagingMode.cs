using System.Runtime.CompilerServices;

namespace Copra.Hot.Guest;

/// <summary>Which translation structure the guest's paging uses.</summary>
public enum PagingKind : byte
{
    /// <summary>CR0.PG = 0 (or PE = 0): linear = physical.</summary>
    None = 0,
    /// <summary>32-bit paging: 2 levels of 4-byte entries, 4 MiB pages with CR4.PSE.</summary>
    Legacy32 = 1,
    /// <summary>PAE paging: 4-entry PDPT, then 2 levels of 8-byte entries, 2 MiB pages.</summary>
    Pae = 2,
    /// <summary>4-level paging (long mode): 1 GiB, 2 MiB, 4 KiB pages.</summary>
    Level4 = 3,
    /// <summary>5-level paging (long mode with CR4.LA57).</summary>
    Level5 = 4,
}

/// <summary>
/// The control-register bits that decide how a linear address is translated, derived once
/// from CR0/CR4/EFER and packed in one byte so a cache can compare modes with one compare.
/// <code>
///   7      6      5      4      3      2         0
/// +------+------+------+------+------+-----------+
/// |  0   | LMA  | PSE  | NXE  |  WP  |   kind    |
/// +------+------+------+------+------+-----------+
/// </code>
/// NXE is kept only for PAE/4/5-level (32-bit paging has no XD bit); PSE only for 32-bit paging
/// (PAE and long mode always allow large pages).
/// </summary>
public readonly struct PagingMode : IEquatable<PagingMode>
{
    const int KindMask = 0b111;
    const int WpBit = 1 << 3, NxeBit = 1 << 4, PseBit = 1 << 5, LmaBit = 1 << 6;

    // Architectural bit positions.
    const ulong Cr0Pe = 1UL << 0, Cr0Wp = 1UL << 16, Cr0Pg = 1UL << 31;
    const ulong Cr4Pse = 1UL << 4, Cr4Pae = 1UL << 5, Cr4La57 = 1UL << 12;
    const ulong EferLma = 1UL << 10, EferNxe = 1UL << 11;

    /// <summary>The packed byte (see the diagram).</summary>
    public readonly byte Bits;

    PagingMode(int bits) => Bits = (byte)bits;

    /// <summary>Rebuilds a mode from its packed byte (as stored by a cache).</summary>
    public static PagingMode FromBits(byte bits) => new(bits);

    /// <summary>Derives the mode from the guest's CR0, CR4 and EFER.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PagingMode From(ulong cr0, ulong cr4, ulong efer)
    {
        int bits = (cr0 & Cr0Wp) != 0 ? WpBit : 0;
        if ((cr0 & (Cr0Pg | Cr0Pe)) != (Cr0Pg | Cr0Pe)) return new(bits | (int)PagingKind.None);
        if ((efer & EferLma) != 0)
        {
            bits |= LmaBit | ((efer & EferNxe) != 0 ? NxeBit : 0);
            return new(bits | (int)((cr4 & Cr4La57) != 0 ? PagingKind.Level5 : PagingKind.Level4));
        }
        if ((cr4 & Cr4Pae) != 0)
            return new(bits | ((efer & EferNxe) != 0 ? NxeBit : 0) | (int)PagingKind.Pae);
        return new(bits | ((cr4 & Cr4Pse) != 0 ? PseBit : 0) | (int)PagingKind.Legacy32);
    }

    /// <summary>The translation structure.</summary>
    public PagingKind Kind { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (PagingKind)(Bits & KindMask); }
    /// <summary>CR0.WP: supervisor writes honour read-only pages.</summary>
    public bool WriteProtect => (Bits & WpBit) != 0;
    /// <summary>EFER.NXE in a paging mode that has the XD bit.</summary>
    public bool NoExecute => (Bits & NxeBit) != 0;
    /// <summary>CR4.PSE in 32-bit paging: 4 MiB pages allowed.</summary>
    public bool Pse => (Bits & PseBit) != 0;
    /// <summary>EFER.LMA: IA-32e mode, linear addresses are 64-bit and must be canonical.</summary>
    public bool LongMode => (Bits & LmaBit) != 0;
    /// <summary>Width of a linear address outside long mode is 32 bits; inside, 48 or 57 significant bits.</summary>
    public int LinearBits => Kind switch { PagingKind.Level5 => 57, PagingKind.Level4 => 48, _ => 32 };

    public bool Equals(PagingMode other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is PagingMode m && Equals(m);
    public override int GetHashCode() => Bits;
    public static bool operator ==(PagingMode a, PagingMode b) => a.Bits == b.Bits;
    public static bool operator !=(PagingMode a, PagingMode b) => a.Bits != b.Bits;
    public override string ToString() =>
        $"{Kind}{(WriteProtect ? " WP" : "")}{(NoExecute ? " NXE" : "")}{(Pse ? " PSE" : "")}{(LongMode ? " LMA" : "")}";
}
