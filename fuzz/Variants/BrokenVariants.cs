// Deliberately broken variants of the code under test. Each plants one realistic bug; the broken-variant tests
// assert that the matching property catches it and shrinks the counterexample to a small case. They live here, not
// in hot/, so production code never carries them.
using Copra.Hot.Decode;

namespace Copra.Fuzz.Variants;

public static class BrokenDecoder
{
    /// <summary>X86Decoder with MOVSX r, r/m8 (0F BE) reported as a zero-extending load: the classic table slip.</summary>
    public static bool MovsxAsMovzx(ReadOnlySpan<byte> bytes, CpuMode mode, out DecodedAccess d)
    {
        bool ok = X86Decoder.TryDecode(bytes, mode, out d);
        if (ok && d.Kind == AccessKind.ReadSx && d.Size == 1) d.Kind = AccessKind.ReadZx;
        return ok;
    }
}

public static class BrokenWalker
{
    /// <summary>PageWalker on a copy of guest memory with every entry's PS bit (bit 7) cleared: huge pages become tables.</summary>
    public static Copra.Hot.Guest.WalkResult IgnoresPageSize(Copra.Hot.Guest.GuestMemory mem, in Copra.Hot.Guest.PagingMode mode, ulong cr3,
        ulong linear, Copra.Hot.Guest.AccessType access, out ulong gpa)
    {
        using var copy = new Copra.Hot.Guest.GuestMemory(mem.Size);
        var src = mem.Span(0, (int)mem.Size);
        var dst = copy.Span(0, (int)mem.Size);
        src.CopyTo(dst);
        int stride = mode.Kind == Copra.Hot.Guest.PagingKind.Legacy32 ? 4 : 8;
        for (int i = 0; i < dst.Length; i += stride) dst[i] &= 0x7F;
        return Copra.Hot.Guest.PageWalker.Translate(copy, mode, cr3, linear, access, out gpa);
    }
}

/// <summary>An MpscRing that, when a producer finds the ring full (it is contending with the consumer), drops the entry and reports success.</summary>
public sealed class DroppingMpscRing(int capacity) : Copra.Fuzz.Targets.MpscAdapter(capacity)
{
    public long Dropped;
    public override bool TryEnqueue(long item)
    {
        if (InnerEnqueue(item)) return true;
        Interlocked.Increment(ref Dropped);
        return true;
    }
}

/// <summary>Planted bugs in the executor and its address computation, for the CPU-oracle property.</summary>
public static class BrokenExecutor
{
    /// <summary>ADD that sets CF when the addend is zero (a carry computed as <c>r &lt;= a</c> instead of <c>r &lt; a</c>).</summary>
    /// <summary>An SSE store that writes XMM's two halves in the wrong order (high qword first).</summary>
    public static Copra.Hot.Emulate.ExecResult SseStoreSwapsHalves(in DecodedAccess d, Span<UInt128> xmm, ReadOnlySpan<byte> mem, Span<byte> memWrite)
    {
        var res = Copra.Hot.Emulate.Executor.ExecuteVector(in d, xmm, mem, memWrite);
        if (d.Kind == AccessKind.WriteVec)
        {
            Span<byte> t = stackalloc byte[8];
            memWrite[..8].CopyTo(t);
            memWrite[8..16].CopyTo(memWrite);
            t.CopyTo(memWrite[8..]);
        }
        return res;
    }

    public static Copra.Hot.Emulate.ExecResult AddZeroCarries(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite)
    {
        var res = Copra.Hot.Emulate.Executor.Execute(in d, gprs, ref rflags, mem, out memWrite);
        if (d.Kind == AccessKind.Alu && d.Op == AluOp.Add)
        {
            ulong m = d.Size >= 8 ? ulong.MaxValue : (1UL << (d.Size * 8)) - 1;
            ulong other = d.HasImm ? (ulong)d.Imm & m : WriteBack.ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize) & m;
            // Register destinations were already overwritten; only memory destinations keep "other" intact.
            if (d.MemIsDest && other == 0) rflags |= Copra.Hot.Emulate.Executor.CF;
        }
        return res;
    }

    /// <summary>CMPXCHG that stores the source even when the accumulator does not match (and still loads it).</summary>
    public static Copra.Hot.Emulate.ExecResult CmpxchgAlwaysStores(in DecodedAccess d, Span<ulong> gprs, ref ulong rflags, ulong mem, out ulong memWrite)
    {
        ulong src = d.Reg >= 0 ? WriteBack.ReadReg(gprs, d.Reg, d.RegHigh8, d.RegSize) : 0;
        var res = Copra.Hot.Emulate.Executor.Execute(in d, gprs, ref rflags, mem, out memWrite);
        if (d.Kind == AccessKind.Alu && d.Op == AluOp.Cmpxchg && res == Copra.Hot.Emulate.ExecResult.NoWrite)
        {
            memWrite = src;
            return Copra.Hot.Emulate.ExecResult.Write;
        }
        return res;
    }

    /// <summary>BTS/BTR/BTC/BT addressing the encoded operand whatever the register bit offset (offset taken modulo the width).</summary>
    public static ulong BitOffsetStaysInOperand(in DecodedAccess d, ReadOnlySpan<ulong> gprs)
    {
        var plain = d;
        if (plain.Kind == AccessKind.Bt) plain.Kind = AccessKind.Read; // Compute adds the unit offset only for Bt
        return EffectiveAddress.Compute(in plain, gprs, 0, 0);
    }
}
