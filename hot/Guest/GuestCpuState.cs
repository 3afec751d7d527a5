using Copra.Abi;
using Copra.Hot.State;

namespace Copra.Hot.Guest;

/// <summary>One segment register as the state store and KVM keep it: selector, base, byte-granular limit, packed attributes.</summary>
public readonly record struct SegmentState(ushort Selector, ulong Base, uint Limit, ushort Attributes)
{
    /// <summary>A segment loaded from a flat GDT descriptor with attributes <paramref name="attributes"/>.</summary>
    public static SegmentState Flat(ushort selector, ushort attributes) =>
        new(selector, 0, (attributes & SegmentAttributes.G) != 0 ? 0xFFFF_FFFFu : 0xFFFFu, attributes);

    /// <summary>A real-mode segment: base = selector * 16, 64 KiB limit.</summary>
    public static SegmentState Real(ushort selector, bool code) =>
        new(selector, (ulong)selector << 4, 0xFFFF, code ? SegmentAttributes.Code16 : SegmentAttributes.Data16);

    /// <summary>An unusable (not present) segment, e.g. LDTR.</summary>
    public static SegmentState Unusable => default;
}

/// <summary>
/// The GDT that <see cref="GuestBuilder.WriteGdt"/> lays down: flat descriptors at fixed selectors.
/// <code>
///   0x00 null | 0x08 code64 | 0x10 code32 | 0x18 code16 (64 KiB) | 0x20 data (flat) | 0x28 data16 (64 KiB)
/// </code>
/// </summary>
public static class Gdt
{
    public const ushort Null = 0x00, Code64 = 0x08, Code32 = 0x10, Code16 = 0x18, Data = 0x20, Data16 = 0x28;
    /// <summary>Bytes the table occupies.</summary>
    public const int Size = 6 * 8;
    /// <summary>The GDTR limit (size - 1).</summary>
    public const ushort Limit = Size - 1;

    /// <summary>The six raw descriptors, in selector order.</summary>
    public static ReadOnlySpan<ulong> Descriptors => s_descriptors;

    static readonly ulong[] s_descriptors =
    [
        0,
        SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Code64),
        SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Code32),
        SegmentAttributes.Descriptor(0, 0xFFFF, SegmentAttributes.Code16),
        SegmentAttributes.Descriptor(0, 0xFFFFF, SegmentAttributes.Data),
        SegmentAttributes.Descriptor(0, 0xFFFF, SegmentAttributes.Data16),
    ];
}

/// <summary>
/// The register state a vCPU needs to start in a given mode, complete enough for KVM_SET_SREGS/KVM_SET_REGS
/// (TR, LDTR, GDTR, IDTR included) and loadable into a <see cref="VcpuStateStore"/>. Build with
/// <see cref="LongMode"/>, <see cref="ProtectedMode"/> or <see cref="RealMode"/>.
/// </summary>
public sealed record GuestCpuState
{
    public const ulong Cr0Pe = 1UL << 0, Cr0Mp = 1UL << 1, Cr0Et = 1UL << 4, Cr0Ne = 1UL << 5, Cr0Wp = 1UL << 16, Cr0Pg = 1UL << 31;
    public const ulong Cr4Pse = 1UL << 4, Cr4Pae = 1UL << 5, Cr4Osfxsr = 1UL << 9, Cr4Osxmmexcpt = 1UL << 10, Cr4La57 = 1UL << 12;
    public const ulong EferLme = 1UL << 8, EferLma = 1UL << 10, EferNxe = 1UL << 11;
    /// <summary>RFLAGS with only the always-one bit 1.</summary>
    public const ulong RflagsFixed = 0x2;

    public required ulong Cr0 { get; init; }
    public required ulong Cr3 { get; init; }
    public required ulong Cr4 { get; init; }
    public required ulong Efer { get; init; }
    public required ulong Rip { get; init; }
    public required ulong Rsp { get; init; }
    public ulong Rflags { get; init; } = RflagsFixed;
    public required SegmentState Cs { get; init; }
    public required SegmentState Ds { get; init; }
    public required SegmentState Es { get; init; }
    public required SegmentState Ss { get; init; }
    public required SegmentState Fs { get; init; }
    public required SegmentState Gs { get; init; }
    public required SegmentState Tr { get; init; }
    public SegmentState Ldtr { get; init; } = SegmentState.Unusable;
    public ulong GdtBase { get; init; }
    public ushort GdtLimit { get; init; }
    public ulong IdtBase { get; init; }
    public ushort IdtLimit { get; init; }

    /// <summary>The paging mode these registers select.</summary>
    public PagingMode Mode => PagingMode.From(Cr0, Cr4, Efer);

    /// <summary>16, 32 or 64: the code size CS selects in this mode.</summary>
    public int CodeBitness => SegmentAttributes.CodeBitness(Cs.Attributes, (Efer & EferLma) != 0, (Cr0 & Cr0Pe) != 0);

    /// <summary>
    /// 64-bit long mode: CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT (+LA57), EFER = LME|LMA|NXE,
    /// CS = <see cref="Gdt.Code64"/>, data segments flat <see cref="Gdt.Data"/>, TR a busy 64-bit TSS at 0, RFLAGS 0x2.
    /// </summary>
    public static GuestCpuState LongMode(ulong cr3, ulong gdtBase, ulong rip, ulong rsp, bool la57 = false)
    {
        SegmentState data = SegmentState.Flat(Gdt.Data, SegmentAttributes.Data);
        return new GuestCpuState
        {
            Cr0 = Cr0Pe | Cr0Mp | Cr0Et | Cr0Ne | Cr0Wp | Cr0Pg,
            Cr3 = cr3,
            Cr4 = Cr4Pae | Cr4Osfxsr | Cr4Osxmmexcpt | (la57 ? Cr4La57 : 0),
            Efer = EferLme | EferLma | EferNxe,
            Rip = rip,
            Rsp = rsp,
            Cs = SegmentState.Flat(Gdt.Code64, SegmentAttributes.Code64),
            Ds = data, Es = data, Ss = data, Fs = data, Gs = data,
            Tr = BusyTss(SegmentAttributes.TypeBusyTss),
            GdtBase = gdtBase,
            GdtLimit = Gdt.Limit,
        };
    }

    /// <summary>
    /// 32-bit protected mode with <paramref name="paging"/> None, Legacy32 (CR4.PSE set, so 4 MiB pages work) or
    /// Pae (EFER.NXE set). CR0 = PE|MP|ET|NE|WP (+PG), CS = <see cref="Gdt.Code32"/>, data flat.
    /// </summary>
    public static GuestCpuState ProtectedMode(PagingKind paging, ulong cr3, ulong gdtBase, uint eip, uint esp)
    {
        if (paging is not (PagingKind.None or PagingKind.Legacy32 or PagingKind.Pae))
            throw new ArgumentOutOfRangeException(nameof(paging), "32-bit protected mode pages with none, 32-bit or PAE tables");
        SegmentState data = SegmentState.Flat(Gdt.Data, SegmentAttributes.Data);
        return new GuestCpuState
        {
            Cr0 = Cr0Pe | Cr0Mp | Cr0Et | Cr0Ne | Cr0Wp | (paging == PagingKind.None ? 0 : Cr0Pg),
            Cr3 = paging == PagingKind.None ? 0 : cr3,
            Cr4 = Cr4Osfxsr | Cr4Osxmmexcpt | paging switch { PagingKind.Legacy32 => Cr4Pse, PagingKind.Pae => Cr4Pae, _ => 0 },
            Efer = paging == PagingKind.Pae ? EferNxe : 0,
            Rip = eip,
            Rsp = esp,
            Cs = SegmentState.Flat(Gdt.Code32, SegmentAttributes.Code32),
            Ds = data, Es = data, Ss = data, Fs = data, Gs = data,
            Tr = BusyTss(SegmentAttributes.TypeBusyTss),
            GdtBase = gdtBase,
            GdtLimit = Gdt.Limit,
        };
    }

    /// <summary>16-bit real mode at CS:IP with SS:SP; CR0 = ET, every data segment = <paramref name="ds"/>.</summary>
    public static GuestCpuState RealMode(ushort cs, ushort ip, ushort ss, ushort sp, ushort ds = 0)
    {
        SegmentState data = SegmentState.Real(ds, code: false);
        return new GuestCpuState
        {
            Cr0 = Cr0Et,
            Cr3 = 0,
            Cr4 = 0,
            Efer = 0,
            Rip = ip,
            Rsp = sp,
            Cs = SegmentState.Real(cs, code: true),
            Ds = data, Es = data, Fs = data, Gs = data,
            Ss = SegmentState.Real(ss, code: false),
            Tr = BusyTss(SegmentAttributes.TypeBusyTss16),
            IdtLimit = 0x3FF,
        };
    }

    static SegmentState BusyTss(ushort type) => new(0, 0, 0x67, (ushort)(type | SegmentAttributes.P));

    /// <summary>Platform side: loads these registers into vCPU v of <paramref name="store"/> without charging accesses.</summary>
    public void ApplyTo(VcpuStateStore store, int v)
    {
        store.Rip(v) = Rip;
        store.Rflags(v) = Rflags;
        store.Gpr(v, (int)StateField.Rsp) = Rsp;
        Poke(store, v, StateField.Cr0, Cr0);
        Poke(store, v, StateField.Cr3, Cr3);
        Poke(store, v, StateField.Cr4, Cr4);
        Poke(store, v, StateField.Efer, Efer);
        PokeSeg(store, v, StateField.Es, Es);
        PokeSeg(store, v, StateField.Cs, Cs);
        PokeSeg(store, v, StateField.Ss, Ss);
        PokeSeg(store, v, StateField.Ds, Ds);
        PokeSeg(store, v, StateField.Fs, Fs);
        PokeSeg(store, v, StateField.Gs, Gs);
        PokeSeg(store, v, StateField.Ldtr, Ldtr);
        PokeSeg(store, v, StateField.Tr, Tr);
        Poke(store, v, StateField.GdtrBase, GdtBase);
        Poke(store, v, StateField.GdtrLimit, GdtLimit);
        Poke(store, v, StateField.IdtrBase, IdtBase);
        Poke(store, v, StateField.IdtrLimit, IdtLimit);
    }

    static void PokeSeg(VcpuStateStore store, int v, int seg, SegmentState s)
    {
        Poke(store, v, StateField.Seg(seg, StateField.Selector), s.Selector);
        Poke(store, v, StateField.Seg(seg, StateField.Base), s.Base);
        Poke(store, v, StateField.Seg(seg, StateField.Limit), s.Limit);
        Poke(store, v, StateField.Seg(seg, StateField.Attributes), s.Attributes);
    }

    static void Poke(VcpuStateStore store, int v, ulong field, ulong value)
    {
        if (!store.TryPoke(v, field, value)) throw new InvalidOperationException($"state field {field} rejected {value:X}");
    }
}
