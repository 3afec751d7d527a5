// The x87/MMX/MXCSR part of the state store (issue 14): FCW, FSW, the full tag word, FOP, FIP, FDP, FCS, FDS, MXCSR
// and the eight 80-bit registers ST(0..7), the state FNSTCW/FNSTSW, MMX MOVQ and FXSAVE/FXRSTOR read and write.
//
// Kept in its own block with its own valid/dirty pair (Accounting.X87Valid/X87Dirty): the first 64-bit mask is nearly
// full and other fields are being added to it. The charging rule is the same as every other tracked field's: on TDX
// the first read after an exit costs one TDG.VP.RD, a write is dirty until the next entry (one TDG.VP.WR); an 80-bit
// register is one bit but two TDCALLs (<see cref="StTdcalls"/>), as the TDX module moves 64 bits per call. On SNP the
// fields are in the VMSA (offsets in VmsaLayout) and nothing is counted.
//
// Registers are kept in stack order, ST(0) first, as FXSAVE and the VMSA's fpreg_x87 store them; MMX register n is the
// mantissa of physical register n, i.e. ST((n - TOP) mod 8) (Mmx/SetMmx below).
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Layout;

namespace Copra.Hot.State;

public sealed partial class VcpuStateStore
{
    /// <summary>Bits of the x87 valid/dirty pair, one per field; ST(n) is StFirst + n.</summary>
    public static class X87Bit
    {
        public const int Fcw = 0, Fsw = 1, Ftw = 2, Fop = 3, Fip = 4, Fdp = 5, Mxcsr = 6, Fcs = 7, Fds = 8, StFirst = 9;
        public const int Count = StFirst + 8;
        public const ulong StMask = 0xFFUL << StFirst;
        public const ulong All = (1UL << Count) - 1;
    }

    /// <summary>TDG.VP.RD (or WR) per 80-bit x87 register: two 64-bit moves.</summary>
    public const int StTdcalls = 2;

    /// <summary>Reset values (SDM vol. 3 table 9-1, power-up/RESET; the values Linux and COCONUT-SVSM put in a new VMSA).</summary>
    public const ushort FcwReset = 0x0040, FtwReset = 0x5555;
    public const uint MxcsrReset = 0x1F80;

    static int X87Tdcalls(ulong mask) => BitOperations.PopCount(mask) + (StTdcalls - 1) * BitOperations.PopCount(mask & X87Bit.StMask);

    // Each vCPU's entries on their own cache-line pair, like the other state columns (hot/Layout/VcpuColumn.cs).
    sealed class X87Arrays
    {
        public readonly VcpuColumn<ushort> Fcw, Fsw, Ftw, Fop, Fcs, Fds;
        public readonly VcpuColumn<ulong> Fip, Fdp;
        public readonly VcpuColumn<uint> Mxcsr;
        public readonly VcpuWays<ulong> Mant;   // (v, n): ST(n)
        public readonly VcpuWays<ushort> Exp;   // (v, n): sign (bit 15) and exponent

        public X87Arrays(int n)
        {
            Fcw = new(n); Fsw = new(n); Ftw = new(n); Fop = new(n); Fcs = new(n); Fds = new(n);
            Fip = new(n); Fdp = new(n); Mxcsr = new(n);
            Mant = new(n, 8); Exp = new(n, 8);
            for (int v = 0; v < n; v++) { Fcw[v] = FcwReset; Ftw[v] = FtwReset; Mxcsr[v] = MxcsrReset; }
        }
    }

    readonly X87Arrays _x87;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void ChargeReadX87(int v, int bit)
    {
        ref Accounting a = ref _acct[v];
        ulong m = 1UL << bit;
        if ((a.X87Valid & m) == 0) { a.X87Valid |= m; a.Reads += (m & X87Bit.StMask) != 0 ? StTdcalls : 1; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void ChargeWriteX87(int v, int bit)
    {
        ref Accounting a = ref _acct[v];
        ulong m = 1UL << bit;
        a.X87Valid |= m;
        a.X87Dirty |= m & _dirtyTrack;
    }

    /// <summary>x87 fields the kernel currently holds for vCPU v (see <see cref="X87Bit"/>).</summary>
    public ulong X87ValidMask(int v) => _acct[v].X87Valid;
    /// <summary>x87 fields written since the last entry (always 0 on SNP).</summary>
    public ulong X87DirtyMask(int v) => _acct[v].X87Dirty;

    // ---- typed accessors, charged --------------------------------------------------------------

    public ushort Fcw(int v) { ChargeReadX87(v, X87Bit.Fcw); return _x87.Fcw[v]; }
    public ushort Fsw(int v) { ChargeReadX87(v, X87Bit.Fsw); return _x87.Fsw[v]; }
    /// <summary>The full tag word (two bits per physical register; 11 = empty).</summary>
    public ushort Ftw(int v) { ChargeReadX87(v, X87Bit.Ftw); return _x87.Ftw[v]; }
    public ushort Fop(int v) { ChargeReadX87(v, X87Bit.Fop); return _x87.Fop[v]; }
    public ulong Fip(int v) { ChargeReadX87(v, X87Bit.Fip); return _x87.Fip[v]; }
    public ulong Fdp(int v) { ChargeReadX87(v, X87Bit.Fdp); return _x87.Fdp[v]; }
    public ushort Fcs(int v) { ChargeReadX87(v, X87Bit.Fcs); return _x87.Fcs[v]; }
    public ushort Fds(int v) { ChargeReadX87(v, X87Bit.Fds); return _x87.Fds[v]; }
    public uint Mxcsr(int v) { ChargeReadX87(v, X87Bit.Mxcsr); return _x87.Mxcsr[v]; }
    /// <summary>ST(<paramref name="n"/>): the 64-bit mantissa and the sign+exponent word (one charged read of both).</summary>
    public (ulong Mantissa, ushort Exponent) St(int v, int n)
    {
        ChargeReadX87(v, X87Bit.StFirst + n);
        return (_x87.Mant.At(v, n), _x87.Exp.At(v, n));
    }

    public void SetFcw(int v, ushort value) { ChargeWriteX87(v, X87Bit.Fcw); _x87.Fcw[v] = value; }
    public void SetFsw(int v, ushort value) { ChargeWriteX87(v, X87Bit.Fsw); _x87.Fsw[v] = value; }
    public void SetFtw(int v, ushort value) { ChargeWriteX87(v, X87Bit.Ftw); _x87.Ftw[v] = value; }
    public void SetFop(int v, ushort value) { ChargeWriteX87(v, X87Bit.Fop); _x87.Fop[v] = (ushort)(value & FopMask); }
    public void SetFip(int v, ulong value) { ChargeWriteX87(v, X87Bit.Fip); _x87.Fip[v] = value; }
    public void SetFdp(int v, ulong value) { ChargeWriteX87(v, X87Bit.Fdp); _x87.Fdp[v] = value; }
    public void SetFcs(int v, ushort value) { ChargeWriteX87(v, X87Bit.Fcs); _x87.Fcs[v] = value; }
    public void SetFds(int v, ushort value) { ChargeWriteX87(v, X87Bit.Fds); _x87.Fds[v] = value; }
    /// <summary>Writes MXCSR; the caller has checked it against <see cref="StateField.MxcsrMask"/>.</summary>
    public void SetMxcsr(int v, uint value) { ChargeWriteX87(v, X87Bit.Mxcsr); _x87.Mxcsr[v] = value; }
    public void SetSt(int v, int n, ulong mantissa, ushort exponent)
    {
        ChargeWriteX87(v, X87Bit.StFirst + n);
        _x87.Mant.At(v, n) = mantissa;
        _x87.Exp.At(v, n) = exponent;
    }

    /// <summary>FOP is 11 bits.</summary>
    public const ushort FopMask = 0x7FF;

    // ---- by field id ---------------------------------------------------------------------------

    static bool IsX87Field(ulong field) => field is >= StateField.Fcw and <= StateField.Fds;

    /// <summary>The x87 valid/dirty bit field id <paramref name="field"/> is charged to, or -1 when it is not an x87 field.</summary>
    public static int X87TrackedBit(ulong field) => field switch
    {
        StateField.Fcw => X87Bit.Fcw,
        StateField.Fsw => X87Bit.Fsw,
        StateField.Ftw => X87Bit.Ftw,
        StateField.Fop => X87Bit.Fop,
        StateField.Fip => X87Bit.Fip,
        StateField.Fdp => X87Bit.Fdp,
        StateField.Mxcsr => X87Bit.Mxcsr,
        StateField.Fcs => X87Bit.Fcs,
        StateField.Fds => X87Bit.Fds,
        >= StateField.StBase and < StateField.StBase + 16 => X87Bit.StFirst + (int)(field - StateField.StBase) / 2,
        _ => -1,
    };

    bool TryReadX87(int v, ulong field, out ulong value)
    {
        switch (field)
        {
            case StateField.Fcw: value = Fcw(v); return true;
            case StateField.Fsw: value = Fsw(v); return true;
            case StateField.Ftw: value = Ftw(v); return true;
            case StateField.Fop: value = Fop(v); return true;
            case StateField.Fip: value = Fip(v); return true;
            case StateField.Fdp: value = Fdp(v); return true;
            case StateField.Mxcsr: value = Mxcsr(v); return true;
            case StateField.Fcs: value = Fcs(v); return true;
            case StateField.Fds: value = Fds(v); return true;
            case >= StateField.StBase and < StateField.StBase + 16:
            {
                int x = (int)(field - StateField.StBase);
                var (m, e) = St(v, x >> 1);
                value = (x & 1) == 0 ? m : e;
                return true;
            }
        }
        value = 0;
        return false;
    }

    /// <summary>False for a value wider than the field: 16-bit words and selectors, FOP 11 bits, MXCSR outside its mask.</summary>
    bool TryWriteX87(int v, ulong field, ulong value)
    {
        switch (field)
        {
            case StateField.Fcw: if (value > ushort.MaxValue) return false; SetFcw(v, (ushort)value); return true;
            case StateField.Fsw: if (value > ushort.MaxValue) return false; SetFsw(v, (ushort)value); return true;
            case StateField.Ftw: if (value > ushort.MaxValue) return false; SetFtw(v, (ushort)value); return true;
            case StateField.Fop: if (value > FopMask) return false; SetFop(v, (ushort)value); return true;
            case StateField.Fip: SetFip(v, value); return true;
            case StateField.Fdp: SetFdp(v, value); return true;
            case StateField.Mxcsr: if ((value & ~(ulong)StateField.MxcsrMask) != 0) return false; SetMxcsr(v, (uint)value); return true;
            case StateField.Fcs: if (value > ushort.MaxValue) return false; SetFcs(v, (ushort)value); return true;
            case StateField.Fds: if (value > ushort.MaxValue) return false; SetFds(v, (ushort)value); return true;
            case >= StateField.StBase and < StateField.StBase + 16:
            {
                int x = (int)(field - StateField.StBase), n = x >> 1;
                if ((x & 1) != 0 && value > ushort.MaxValue) return false;
                // Why: a write of one half keeps the other (the store holds both), as for XMM.
                ulong m = (x & 1) == 0 ? value : _x87.Mant.At(v, n);
                ushort e = (x & 1) != 0 ? (ushort)value : _x87.Exp.At(v, n);
                SetSt(v, n, m, e);
                return true;
            }
        }
        return false;
    }

    // ---- VMSA ----------------------------------------------------------------------------------

    static bool X87PageValid(ReadOnlySpan<byte> page) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(page[VmsaLayout.Mxcsr..]) & ~StateField.MxcsrMask) == 0
        && BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Fop..]) <= FopMask;

    void ExportX87(int v, Span<byte> page)
    {
        Put(page, VmsaLayout.X87Dp, _x87.Fdp[v]);
        Put(page, VmsaLayout.X87Rip, _x87.Fip[v]);
        BinaryPrimitives.WriteUInt32LittleEndian(page[VmsaLayout.Mxcsr..], _x87.Mxcsr[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Ftw..], _x87.Ftw[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Fsw..], _x87.Fsw[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Fcw..], _x87.Fcw[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Fop..], _x87.Fop[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Ds..], _x87.Fds[v]);
        BinaryPrimitives.WriteUInt16LittleEndian(page[VmsaLayout.X87Cs..], _x87.Fcs[v]);
        for (int n = 0; n < 8; n++)
        {
            Put(page, VmsaLayout.St(n), _x87.Mant.At(v, n));
            BinaryPrimitives.WriteUInt16LittleEndian(page[(VmsaLayout.St(n) + 8)..], _x87.Exp.At(v, n));
        }
    }

    void ImportX87(int v, ReadOnlySpan<byte> page)
    {
        _x87.Fdp[v] = Get(page, VmsaLayout.X87Dp);
        _x87.Fip[v] = Get(page, VmsaLayout.X87Rip);
        _x87.Mxcsr[v] = BinaryPrimitives.ReadUInt32LittleEndian(page[VmsaLayout.Mxcsr..]);
        _x87.Ftw[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Ftw..]);
        _x87.Fsw[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Fsw..]);
        _x87.Fcw[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Fcw..]);
        _x87.Fop[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Fop..]);
        _x87.Fds[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Ds..]);
        _x87.Fcs[v] = BinaryPrimitives.ReadUInt16LittleEndian(page[VmsaLayout.X87Cs..]);
        for (int n = 0; n < 8; n++)
        {
            _x87.Mant.At(v, n) = Get(page, VmsaLayout.St(n));
            _x87.Exp.At(v, n) = BinaryPrimitives.ReadUInt16LittleEndian(page[(VmsaLayout.St(n) + 8)..]);
        }
    }
}
