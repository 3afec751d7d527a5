using System.Runtime.CompilerServices;

namespace Copra.Hot.State;

/// <summary>
/// Segment attributes as the state store, the VMSA page and GET_STATE/SET_STATE carry them: the SVM/VMSA
/// 12-bit form, i.e. descriptor bits 47:40 and 55:52 packed together.
/// <code>
///  11   10    9    8    7    6   5    4    3      0
/// +----+----+----+-----+----+------+----+--------+
/// | G  | DB | L  | AVL | P  | DPL  | S  |  type  |
/// +----+----+----+-----+----+------+----+--------+
///  \_ descriptor 55:52 _/ \____ descriptor 47:40 ____/
/// </code>
/// The limit beside it is the byte-granular limit (0xFFFFFFFF for a flat G=1 segment), as VMCB/VMCS and KVM keep it.
/// A null/unusable segment has P = 0.
/// </summary>
public static class SegmentAttributes
{
    public const int TypeShift = 0, SShift = 4, DplShift = 5, PShift = 7, AvlShift = 8, LShift = 9, DbShift = 10, GShift = 11;
    public const ushort TypeMask = 0xF << TypeShift;
    /// <summary>Code/data (1) versus system (0) descriptor.</summary>
    public const ushort S = 1 << SShift;
    public const ushort DplMask = 3 << DplShift;
    public const ushort P = 1 << PShift;
    public const ushort Avl = 1 << AvlShift;
    /// <summary>64-bit code segment.</summary>
    public const ushort L = 1 << LShift;
    /// <summary>Default operand size 32 (code) / big stack (data).</summary>
    public const ushort Db = 1 << DbShift;
    /// <summary>Limit is in 4 KiB units.</summary>
    public const ushort G = 1 << GShift;
    /// <summary>All defined bits.</summary>
    public const ushort Mask = 0x0FFF;

    /// <summary>Type nibble: execute/read code, accessed.</summary>
    public const ushort TypeCodeExecReadAccessed = 0xB;
    /// <summary>Type nibble: read/write data, accessed.</summary>
    public const ushort TypeDataReadWriteAccessed = 0x3;
    /// <summary>Type nibble (system): LDT.</summary>
    public const ushort TypeLdt = 0x2;
    /// <summary>Type nibble (system): available 64-bit/32-bit TSS (LTR's operand; LTR makes it <see cref="TypeBusyTss"/>).</summary>
    public const ushort TypeAvailableTss = 0x9;
    /// <summary>Type nibble (system): busy 64-bit/32-bit TSS.</summary>
    public const ushort TypeBusyTss = 0xB;
    /// <summary>Type nibble (system): busy 16-bit TSS.</summary>
    public const ushort TypeBusyTss16 = 0x3;

    /// <summary>Flat 64-bit code: type B, S, P, L, G.</summary>
    public const ushort Code64 = TypeCodeExecReadAccessed | S | P | L | G;
    /// <summary>Flat 32-bit code: type B, S, P, DB, G.</summary>
    public const ushort Code32 = TypeCodeExecReadAccessed | S | P | Db | G;
    /// <summary>16-bit code with a 64 KiB limit: type B, S, P.</summary>
    public const ushort Code16 = TypeCodeExecReadAccessed | S | P;
    /// <summary>Flat data: type 3, S, P, DB, G.</summary>
    public const ushort Data = TypeDataReadWriteAccessed | S | P | Db | G;
    /// <summary>16-bit data with a 64 KiB limit: type 3, S, P.</summary>
    public const ushort Data16 = TypeDataReadWriteAccessed | S | P;

    /// <summary>Extracts the packed attributes from a raw 8-byte segment descriptor.</summary>
    public static ushort FromDescriptor(ulong descriptor) =>
        (ushort)(((descriptor >> 40) & 0xFF) | ((descriptor >> 44) & 0xF00));

    /// <summary>Builds a raw 8-byte code/data descriptor. <paramref name="rawLimit"/> is the 20-bit descriptor limit.</summary>
    public static ulong Descriptor(uint @base, uint rawLimit, ushort attributes) =>
        (rawLimit & 0xFFFFUL)
        | ((@base & 0xFF_FFFFUL) << 16)
        | (((ulong)attributes & 0xFF) << 40)
        | (((rawLimit >> 16) & 0xFUL) << 48)
        | ((((ulong)attributes >> 8) & 0xF) << 52)
        | (((ulong)@base >> 24) << 56);

    /// <summary>Code bitness a CS with these attributes selects in a mode with EFER.LMA = <paramref name="longMode"/> and CR0.PE = <paramref name="protectedMode"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CodeBitness(ushort csAttributes, bool longMode, bool protectedMode)
    {
        if (!protectedMode) return 16;
        if (longMode && (csAttributes & L) != 0) return 64;
        return (csAttributes & Db) != 0 ? 32 : 16;
    }
}
