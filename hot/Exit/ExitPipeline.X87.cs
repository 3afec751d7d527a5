using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>
/// The exit path's x87/MMX/FXSAVE forms (hot/Emulate/X87.cs has the state rules; docs/emulation.md "x87, MMX and
/// FXSAVE" how a device sees them).
///
/// FNSTCW/FNSTSW and MMX MOVQ are ordinary 2- and 8-byte elements whose value comes from (or goes to) the x87 state.
/// FXSAVE/FXRSTOR move an image of 416 bytes (288 outside 64-bit mode) as a run of elements of at most 64 bytes, the
/// event payload's size, in address order: piece i is the instruction with its displacement moved by 64*i and its size
/// the piece's (so the linear address, segment, canonical and #AC checks of every element are the ordinary ones). The
/// instruction is never half-done by a fault: before the first piece every piece is checked (segment or canonical
/// limits, the page walk with the access's rights, a piece over a page boundary must be RAM on both sides, an MMIO
/// piece must sit inside one registered range). FXSAVE builds the whole image from the state before its first write;
/// FXRSTOR checks MXCSR after its first piece (#GP(0), nothing loaded) and loads the state only after its last.
/// </summary>
public sealed partial class ExitPipeline<THost>
{

    Span<byte> FxImage(int v) => _f.FxImage.Row(v);

    static bool IsX87Form(AccessKind k) => k is AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxRead or AccessKind.MmxWrite
        or AccessKind.Fxsave or AccessKind.Fxrstor;

    static bool IsFx(AccessKind k) => k is AccessKind.Fxsave or AccessKind.Fxrstor;

    /// <summary>
    /// Before anything of an x87/MMX form is done (and before the alignment #GP, which ranks below them): #UD/#NM/#MF from
    /// CR0 and FSW. True when a fault was injected.
    /// </summary>
    bool X87Precheck(int cpu, int v, ulong cr0)
    {
        ref readonly var d = ref _f.Acc[v];
        bool mmx = d.Kind is AccessKind.MmxRead or AccessKind.MmxWrite;
        byte vector = X87.Precheck(mmx, cr0, mmx ? State.Fsw(v) : (ushort)0);
        if (vector == 0) return false;
        InjectException(cpu, v, vector, null);
        return true;
    }

    /// <summary>
    /// FXSAVE/FXRSTOR, kernel-emulated: every piece checked before the first (see the type's note); FXSAVE's image built.
    /// True when a fault was injected (nothing done).
    /// </summary>
    bool FxBegin(int cpu, int v)
    {
        ref var d = ref _f.Acc[v];
        bool write = d.Kind == AccessKind.Fxsave;
        bool mode64 = d.Mode == CpuMode.Bits64;
        int pieces = X87.Pieces(mode64);
        long disp = d.Disp;
        try
        {
            for (int i = 0; i < pieces; i++)
            {
                d.Disp = disp + i * X87.PieceSize;
                d.Size = (byte)X87.PieceBytes(mode64, i);
                if (_f.Row[v].CheckElements && ElementFaults(cpu, v)) return true;
                ulong linear = LinearOf(v, write);
                if (CanonicalFaults(cpu, v, linear)) return true;
                uint size = d.Size;
                ulong first = linear, last = linear + size - 1;
                var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, first, DataAccess(v, write), out ulong gpa);
                if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return true; }
                if ((first & ~(ulong)Page.Mask) != (last & ~(ulong)Page.Mask))
                {
                    var walk2 = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, last & ~(ulong)Page.Mask, DataAccess(v, write), out ulong gpa2);
                    if (!walk2.IsOk) { InjectWalkFault(cpu, v, walk2); return true; }
                    uint head = Page.Size - (uint)(first & Page.Mask);
                    if (!_host.IsRam(v, gpa, head) || !_host.IsRam(v, gpa2, size - head)) { InjectException(cpu, v, VectorGp, 0); return true; }
                    continue;
                }
                if (_host.IsRam(v, gpa, size)) continue;
                _host.Mmio(v).Lookup(v, gpa, size, out _, out bool straddles);
                if (straddles) { InjectException(cpu, v, VectorGp, 0); return true; }
            }
        }
        finally
        {
            d.Disp = disp;
            d.Size = (byte)X87.PieceBytes(mode64, 0);
        }
        _f.FxPiece[v] = 0;
        if (write) X87.Save(State, v, mode64, d.Imm != 0, FxImage(v));
        return false;
    }

    /// <summary>The state update of an x87/MMX element once its read side is done (<paramref name="value"/>, or the wide read).</summary>
    void ComputeX87(int v, ulong value, out bool write, out ulong toWrite)
    {
        ref readonly var d = ref _f.Acc[v];
        toWrite = 0;
        write = true;
        switch (d.Kind)
        {
            case AccessKind.Fnstcw: toWrite = State.Fcw(v); break;
            case AccessKind.Fnstsw: toWrite = State.Fsw(v); break;
            case AccessKind.MmxRead: X87.MmxLoad(State, v, d.Reg, value); write = false; break;
            case AccessKind.MmxWrite: toWrite = X87.MmxStore(State, v, d.Reg); break;
            case AccessKind.Fxsave:
                FxImage(v).Slice(_f.FxPiece[v] * X87.PieceSize, d.Size).CopyTo(WideWrite(v));
                break;
            default:   // Fxrstor
                WideRead(v)[..d.Size].CopyTo(FxImage(v)[(_f.FxPiece[v] * X87.PieceSize)..]);
                write = false;
                break;
        }
    }

    /// <summary>
    /// After an FXSAVE/FXRSTOR piece: the next one (true), or the end: FXRSTOR loads the state now. A #GP(0) for a
    /// reserved MXCSR bit is raised as soon as the first piece (which holds MXCSR) is in. False when the instruction is
    /// over (finished or faulted).
    /// </summary>
    bool FxNextPiece(int cpu, int v)
    {
        ref var d = ref _f.Acc[v];
        bool mode64 = d.Mode == CpuMode.Bits64;
        if (d.Kind == AccessKind.Fxrstor && _f.FxPiece[v] == 0 && !X87.MxcsrValid(FxImage(v)))
        {
            InjectException(cpu, v, VectorGp, 0);
            return false;
        }
        int next = _f.FxPiece[v] + 1;
        if (next < X87.Pieces(mode64))
        {
            _f.FxPiece[v] = (byte)next;
            d.Disp += X87.PieceSize;
            d.Size = (byte)X87.PieceBytes(mode64, next);
            StartElement(cpu, v);
            return true;
        }
        if (d.Kind == AccessKind.Fxrstor) X87.Restore(State, v, mode64, d.Imm != 0, FxImage(v));
        FinishInstruction(cpu, v);
        return false;
    }
}
