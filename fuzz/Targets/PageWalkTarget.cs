// Page walker against a slow reference walker. Cases are sparse page tables in a 64 KiB guest memory: the generator
// follows the walk it plans for the linear address and writes one entry per level (present or not, huge or not,
// pointing into memory, back at a table already on the path (a loop), or past the end), plus noise. The reference
// (ReferenceWalker) is written straight from SDM vol. 3 ch. 4 over a plain byte array.
using System.Buffers.Binary;
using Copra.Fuzz.Core;
using Copra.Hot.Guest;

namespace Copra.Fuzz.Targets;

public readonly record struct PteWrite(ulong Address, ulong Value, bool Wide)
{
    public override string ToString() => $"[{Address:x}]={(Wide ? Value.ToString("x16") : Value.ToString("x8"))}";
}

public sealed record WalkCase(PagingKind Kind, bool Wp, bool Nxe, bool Pse, ulong Cr3, ulong Linear, AccessType Access, PteWrite[] Writes)
{
    public ulong Cr0 => (Kind == PagingKind.None ? 0x1UL : 0x8000_0001UL) | (Wp ? 1UL << 16 : 0);
    public ulong Cr4 => Kind switch { PagingKind.Legacy32 => Pse ? 0x10UL : 0, PagingKind.Level5 => 0x1020UL, PagingKind.None => 0, _ => 0x20UL };
    public ulong Efer => (Kind is PagingKind.Level4 or PagingKind.Level5 ? 0x500UL : 0) | (Nxe ? 0x800UL : 0);
    public PagingMode Mode => PagingMode.From(Cr0, Cr4, Efer);
}

/// <summary>The walker under test.</summary>
public delegate WalkResult WalkFn(GuestMemory mem, in PagingMode mode, ulong cr3, ulong linear, AccessType access, out ulong gpa);

public sealed class PageWalkTarget(WalkFn? walk = null, string? name = null) : FuzzTarget<WalkCase>
{
    public const int MemoryBytes = 16 * 4096;
    readonly WalkFn _walk = walk ?? PageWalker.Translate;
    [ThreadStatic] static GuestMemory? t_mem;

    public override string Name => name ?? "pagewalk";
    public override string Description => "PageWalker vs the SDM reference walker, malformed tables included";

    public override WalkCase Generate(Rng r)
    {
        PagingKind kind = r.Next(100) switch { < 5 => PagingKind.None, < 25 => PagingKind.Legacy32, < 45 => PagingKind.Pae, < 85 => PagingKind.Level4, _ => PagingKind.Level5 };
        bool wp = r.Chance(50), nxe = r.Chance(60), pse = r.Chance(70);
        ulong cr3 = (ulong)r.Next(16) << 12;
        if (r.Chance(5)) cr3 = (ulong)r.Next(16, 20) << 12;        // the root past memory
        if (r.Chance(10)) cr3 |= (ulong)r.Next(4096) & ~0x1FUL;  // PAE uses bits 31:5
        ulong linear = r.Next64();
        if (kind is PagingKind.Level4 && r.Chance(90)) linear = (ulong)((long)(linear << 16) >> 16);
        if (kind is PagingKind.Level5 && r.Chance(90)) linear = (ulong)((long)(linear << 7) >> 7);
        var access = (AccessType)r.Next(32) & (AccessType.Write | AccessType.Execute | AccessType.User | AccessType.Smep | AccessType.Smap);
        if ((access & AccessType.Write) != 0 && (access & AccessType.Execute) != 0) access &= ~AccessType.Execute;

        var writes = new List<PteWrite>();
        bool wide = kind != PagingKind.Legacy32;
        if (kind == PagingKind.Legacy32)
        {
            uint lin = (uint)linear;
            ulong pdeA = (cr3 & 0xFFFF_F000) + (lin >> 22) * 4UL;
            ulong pde = Entry32(r, leafAllowed: true);
            writes.Add(new(pdeA, pde, false));
            ulong pteA = (pde & 0xFFFF_F000) + ((lin >> 12) & 0x3FF) * 4UL;
            writes.Add(new(pteA, Entry32(r, leafAllowed: false), false));
        }
        else if (kind != PagingKind.None)
        {
            ulong table;
            int level;
            if (kind == PagingKind.Pae)
            {
                ulong pdpteA = (cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8;
                ulong pdpte = r.Chance(92) ? 1UL : 0;
                pdpte |= Target(r);
                if (r.Chance(8)) pdpte |= 1UL << r.Pick(new[] { 1, 2, 5, 6, 7, 8, 52, 63 });
                writes.Add(new(pdpteA, pdpte, true));
                table = pdpte & 0x000F_FFFF_FFFF_F000UL;
                level = 2;
            }
            else
            {
                table = cr3 & 0x000F_FFFF_FFFF_F000UL;
                level = kind == PagingKind.Level5 ? 5 : 4;
            }
            for (; level >= 1; level--)
            {
                int shift = 12 + 9 * (level - 1);
                ulong a = table + ((linear >> shift) & 511) * 8;
                ulong e = Entry64(r, level);
                writes.Add(new(a, e, true));
                if (level <= 3 && (e & 0x80) != 0 && level > 1 && r.Chance(80)) break;
                table = e & 0x000F_FFFF_FFFF_F000UL;
            }
        }
        int noise = r.Next(3);
        for (int i = 0; i < noise; i++) writes.Add(new((ulong)r.Next(MemoryBytes / 8) * 8, r.Next64(), wide));
        return new WalkCase(kind, wp, nxe, pse, cr3, linear, access, [.. writes]);
    }

    static ulong Target(Rng r) => r.Next(100) switch
    {
        < 85 => (ulong)r.Next(16) << 12,            // a table in memory (often one already on the path: a loop)
        < 93 => (ulong)r.Next(16, 64) << 12,        // past the end of memory
        _ => r.Next64() & 0x000F_FFFF_FFFF_F000UL,  // anywhere
    };

    static ulong Entry32(Rng r, bool leafAllowed)
    {
        ulong e = (r.Chance(90) ? 1UL : 0) | (r.Chance(70) ? 2UL : 0) | (r.Chance(60) ? 4UL : 0);
        e |= Target(r) & 0xFFFF_F000;
        if (leafAllowed && r.Chance(30)) e |= 0x80 | ((ulong)r.Next(512) << 13);
        return e;
    }

    static ulong Entry64(Rng r, int level)
    {
        ulong e = (r.Chance(90) ? 1UL : 0) | (r.Chance(75) ? 2UL : 0) | (r.Chance(65) ? 4UL : 0) | (r.Chance(25) ? 1UL << 63 : 0);
        e |= Target(r);
        if (r.Chance(level is 2 or 3 ? 30 : 6)) e |= 0x80;      // a huge page, or a reserved PS at level 4/5
        if (r.Chance(8)) e |= 1UL << r.Next(13, 30);            // a large page's reserved bits
        if (r.Chance(5)) e |= 1UL << r.Next(52, 63);            // PAE-reserved, ignored in long mode
        return e;
    }

    public override string Show(WalkCase c) =>
        $"{c.Mode} cr3={c.Cr3:x} linear={c.Linear:x} access={c.Access} writes {string.Join(' ', c.Writes)}";

    public override int SizeOf(WalkCase c) => c.Writes.Length;

    public override IEnumerable<WalkCase> Shrink(WalkCase c)
    {
        for (int i = 0; i < c.Writes.Length; i++) yield return c with { Writes = [.. c.Writes[..i], .. c.Writes[(i + 1)..]] };
        if (c.Access != AccessType.Read) yield return c with { Access = AccessType.Read };
        if (c.Wp) yield return c with { Wp = false };
        if (c.Nxe) yield return c with { Nxe = false };
        for (int i = 0; i < c.Writes.Length; i++)
            foreach (ulong bit in new[] { 1UL << 63, 4UL, 2UL })
                if ((c.Writes[i].Value & bit) != 0)
                {
                    var w = (PteWrite[])c.Writes.Clone();
                    w[i] = w[i] with { Value = w[i].Value & ~bit };
                    yield return c with { Writes = w };
                }
    }

    public static byte[] Image(WalkCase c)
    {
        var img = new byte[MemoryBytes];
        foreach (var w in c.Writes)
        {
            int n = w.Wide ? 8 : 4;
            if (w.Address + (ulong)n > MemoryBytes) continue;
            if (w.Wide) BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan((int)w.Address), w.Value);
            else BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan((int)w.Address), (uint)w.Value);
        }
        return img;
    }

    public override unsafe string? Check(WalkCase c)
    {
        byte[] img = Image(c);
        var mem = t_mem ??= new GuestMemory(MemoryBytes);
        img.CopyTo(mem.Span(0, MemoryBytes));
        PagingMode mode = c.Mode;
        WalkResult ours = _walk(mem, mode, c.Cr3, c.Linear, c.Access, out ulong gpa);
        var (want, wantGpa) = ReferenceWalker.Walk(img, c.Kind, c.Wp, c.Nxe, c.Pse, c.Cr3, c.Linear, c.Access);
        if (ours == want && gpa == wantGpa) return null;
        return $"Copra {ours} gpa={gpa:x}; reference {want} gpa={wantGpa:x}";
    }
}
