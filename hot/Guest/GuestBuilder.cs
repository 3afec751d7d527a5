// GuestBuilder: lays real guests into GuestMemory for the replay backend, the
// tests and the KVM backend: page tables (PageTableBuilder), a flat GDT, the
// start-up register state (GuestCpuState) and code assembled with Iced.
//
// Everything it writes is what a CPU accepts: the GDT has architecturally valid
// descriptors, PAE PDPTEs carry P only, leaves have A/D set, and the register
// states satisfy the VM-entry checks KVM applies (TR a busy TSS, LDTR unusable).
// Builder misuse (a range outside memory, a region too small) throws; it never
// runs on the exit path.
using Iced.Intel;

namespace Copra.Hot.Guest;

/// <summary>Code assembled into guest memory: where it starts and ends, and where its labels landed.</summary>
public sealed class AssembledCode
{
    readonly AssemblerResult _result;

    internal AssembledCode(ulong start, ulong end, AssemblerResult result)
    {
        Start = start;
        End = end;
        _result = result;
    }

    /// <summary>RIP of the first byte.</summary>
    public ulong Start { get; }
    /// <summary>RIP one past the last byte.</summary>
    public ulong End { get; }
    /// <summary>Bytes of code.</summary>
    public ulong Length => End - Start;
    /// <summary>The RIP a label was bound to.</summary>
    public ulong LabelAddress(Label label) => _result.GetLabelRIP(label);
}

/// <summary>Builds guests in a <see cref="GuestMemory"/>.</summary>
public sealed class GuestBuilder
{
    /// <summary>Creates a builder over <paramref name="memory"/>.</summary>
    public GuestBuilder(GuestMemory memory) => Memory = memory;

    /// <summary>The memory being built into.</summary>
    public GuestMemory Memory { get; }

    /// <summary>Starts page tables of <paramref name="kind"/> whose table pages come from the given region.</summary>
    public PageTableBuilder PageTables(PagingKind kind, ulong regionBase, ulong regionSize) =>
        new(Memory, kind, regionBase, regionSize);

    /// <summary>Writes the <see cref="Gdt"/> at <paramref name="gdtBase"/> and returns the GDTR limit.</summary>
    public ushort WriteGdt(ulong gdtBase)
    {
        ReadOnlySpan<ulong> d = Gdt.Descriptors;
        for (int i = 0; i < d.Length; i++) Memory.WriteU64(gdtBase + (ulong)i * 8, d[i]);
        return Gdt.Limit;
    }

    /// <summary>
    /// Assembles <paramref name="build"/> for RIP = guest-physical <paramref name="address"/> (identity-mapped code)
    /// and returns the end address.
    /// </summary>
    public ulong Assemble(ulong address, Action<Assembler> build, int bitness = 64) =>
        Assemble(address, address, build, bitness).End;

    /// <summary>
    /// Assembles <paramref name="build"/> as if it ran at <paramref name="rip"/> and stores the bytes at
    /// guest-physical <paramref name="gpa"/>. Labels created inside <paramref name="build"/> can be captured by the
    /// caller and looked up with <see cref="AssembledCode.LabelAddress"/>.
    /// </summary>
    public AssembledCode Assemble(ulong rip, ulong gpa, Action<Assembler> build, int bitness = 64)
    {
        var asm = new Assembler(bitness);
        build(asm);
        return Assemble(rip, gpa, asm);
    }

    /// <summary>Assembles a prepared <paramref name="asm"/> at <paramref name="rip"/> into guest memory at <paramref name="gpa"/>.</summary>
    public AssembledCode Assemble(ulong rip, ulong gpa, Assembler asm)
    {
        var writer = new GuestCodeWriter(Memory, gpa);
        AssemblerResult result = asm.Assemble(writer, rip, BlockEncoderOptions.ReturnNewInstructionOffsets);
        return new AssembledCode(rip, rip + writer.Written, result);
    }

    /// <summary>
    /// A complete 64-bit guest in one call: 4-level tables in [tablesBase, +tablesSize) identity-mapping
    /// [0, identityBytes) with 2 MiB pages (writable, executable), the GDT at <paramref name="gdtBase"/>, and the
    /// long-mode registers to start at <paramref name="rip"/> with <paramref name="rsp"/>.
    /// </summary>
    public GuestCpuState LongModeIdentity(ulong tablesBase, ulong tablesSize, ulong gdtBase, ulong identityBytes, ulong rip, ulong rsp)
    {
        PageTableBuilder pt = PageTables(PagingKind.Level4, tablesBase, tablesSize);
        pt.Identity(0, identityBytes, PageSize.Size2M);
        WriteGdt(gdtBase);
        return GuestCpuState.LongMode(pt.Cr3, gdtBase, rip, rsp);
    }

    sealed class GuestCodeWriter(GuestMemory mem, ulong gpa) : CodeWriter
    {
        public ulong Written { get; private set; }

        public override void WriteByte(byte value)
        {
            mem.WriteU8(gpa + Written, value);
            Written++;
        }
    }
}
