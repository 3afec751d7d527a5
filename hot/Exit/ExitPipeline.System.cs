using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;
using Copra.Hot.State;

namespace Copra.Hot.Exit;

/// <summary>
/// The exit-path side of the system-state forms and the segment loads (the rules are hot/Emulate/SystemOps.cs): SGDT,
/// SIDT, SLDT, STR, SMSW and MOV m16, Sreg store a register to the operand; LGDT, LIDT, LLDT, LTR, LMSW, MOV Sreg, m16
/// and far JMP/CALL m16:xx load from it. Small hooks the element stages call, on the kernel-emulated path only.
///
/// The operand is the element's device side, as for any read or write (6 bytes travel as a narrow access, 10 as a wide
/// one in the payload). The descriptor tables are guest RAM, read through the guest's page walk as implicit supervisor
/// accesses (their own #PF); a descriptor that is not RAM is #GP(0), as a stack slot that is not RAM is. Order, so that
/// nothing is ever half done: privilege and mode (#UD, #GP(0)) before anything; far CALL's stack slots translated
/// before the device is asked (ExitPipeline.cs StartElement); once the operand is in hand every descriptor is read and
/// checked, then the accessed (or TSS busy) bit, the stack frame, the registers and RIP are written together.
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    /// <summary>Before the element: the privilege/mode check of the system forms. False when a fault was injected.</summary>
    bool SystemBegin(int cpu, int v)
    {
        ref readonly var d = ref _f.Acc[v];
        _f.Branch[v] = false;
        var f = SystemOps.PrivilegeFault(in d, _f.Fault[v].Mode, _f.Fault[v].Cpl, _f.Fault[v].Cr4);
        if (!f.Raised) return true;
        Followed(v)?.Step(v, $"{d.Kind} refused at CPL {_f.Fault[v].Cpl}: {f}; nothing reaches a device");
        RaiseCheckFault(cpu, v, in f);
        return false;
    }

    /// <summary>Far CALL's stack slots: CS and the return offset, operand-size each.</summary>
    uint FarCallSlot(int v) => 2u * _f.Acc[v].RegSize;

    /// <summary>
    /// The state update of a system form once its operand is in hand (<paramref name="value"/>, or the wide buffer for 10
    /// bytes): a store's bytes into <paramref name="toWrite"/>/<see cref="WideWrite"/>, or a load's checks and commit.
    /// False when a fault was injected (nothing committed).
    /// </summary>
    bool SystemCompute(int cpu, int v, ulong value, out bool write, out ulong toWrite)
    {
        ref readonly var d = ref _f.Acc[v];
        toWrite = 0;
        write = d.Kind == AccessKind.SysStore;
        Span<byte> op = stackalloc byte[16];
        op.Clear();   // SkipLocalsInit: bytes a form does not write stay zero
        if (d.Kind == AccessKind.SysStore)
        {
            if (d.SysReg is SysReg.Gdtr or SysReg.Idtr)
            {
                bool g = d.SysReg == SysReg.Gdtr;
                ulong @base = g ? State.GdtrBase(v) : State.IdtrBase(v);
                if (d.Mode != CpuMode.Bits64) @base &= 0xFFFF_FFFF;
                SystemOps.DescriptorTableImage(g ? State.GdtrLimit(v) : State.IdtrLimit(v), @base, op[..d.Size]);
            }
            else
            {
                ushort word = d.SysReg == SysReg.Msw ? SystemOps.Msw(State.Cr0(v)) : State.SegSelector(v, d.SysReg);
                BinaryPrimitives.WriteUInt16LittleEndian(op, word);
            }
            if (d.Size > 8) op[..d.Size].CopyTo(WideWrite(v));
            else toWrite = BinaryPrimitives.ReadUInt64LittleEndian(op[..8]);
            return true;
        }
        if (d.Size > 8) WideRead(v)[..d.Size].CopyTo(op);
        else BinaryPrimitives.WriteUInt64LittleEndian(op, value);
        Fault f = d.Kind switch
        {
            AccessKind.SegLoad => LoadSegment(cpu, v, d.SysReg, BinaryPrimitives.ReadUInt16LittleEndian(op), out _),
            AccessKind.FarJmp or AccessKind.FarCall => FarBranch(cpu, v, op),
            AccessKind.LoadFarPtr => LoadFarPointer(cpu, v, op),
            _ => SystemLoad(cpu, v, op),
        };
        if (f.Raised)
        {
            if (f.Cause == FaultCause.Injected) return false;   // the descriptor's page walk injected it already
            Followed(v)?.Step(v, $"{d.Kind}: {f}; nothing committed");
            RaiseCheckFault(cpu, v, in f);
            return false;
        }
        return true;
    }

    /// <summary>LGDT, LIDT, LMSW, LLDT, LTR from the operand bytes.</summary>
    Fault SystemLoad(int cpu, int v, ReadOnlySpan<byte> op)
    {
        ref readonly var d = ref _f.Acc[v];
        switch (d.SysReg)
        {
            case SysReg.Gdtr or SysReg.Idtr:
            {
                var f = SystemOps.LoadDescriptorTable(op, d.RegSize, d.Mode == CpuMode.Bits64, _f.Fault[v].La57, out ushort limit, out ulong @base);
                if (f.Raised) return f;
                if (d.SysReg == SysReg.Gdtr) { State.SetGdtrBase(v, @base); State.SetGdtrLimit(v, limit); }
                else { State.SetIdtrBase(v, @base); State.SetIdtrLimit(v, limit); }
                return Fault.None;
            }
            case SysReg.Msw:
                State.SetCr0(v, SystemOps.Lmsw(State.Cr0(v), BinaryPrimitives.ReadUInt16LittleEndian(op)));
                InvalidateCaches(v);   // PE may have come on: the next exit decodes in protected mode
                return Fault.None;
            default:
                return LoadSystemSegment(cpu, v, d.SysReg, BinaryPrimitives.ReadUInt16LittleEndian(op));
        }
    }

    /// <summary>LLDT/LTR: a null selector (LLDT only) makes LDTR unusable; else the 8- or 16-byte descriptor from the GDT,
    /// its checks, LTR's busy bit written back, then the register.</summary>
    Fault LoadSystemSegment(int cpu, int v, int reg, ushort sel)
    {
        bool longMode = _f.Mode[v].LongMode;
        if (SystemOps.IsNull(sel))
        {
            if (reg == SysReg.Tr) return Fault.Gp(0, FaultCause.Segment);   // LTR of a null selector: #GP(0)
            SetSegment(v, reg, SystemOps.NullCache(reg, sel, 0));
            return Fault.None;
        }
        if ((sel & 4) != 0) return Fault.Gp(Faults.SelectorError(sel), FaultCause.Segment);
        int bytes = longMode ? 16 : 8;
        var f = SystemOps.Locate(sel, Tables(v), bytes, out ulong linear);
        if (f.Raised) return f;
        if (!ReadDescriptor(cpu, v, linear, bytes, out ulong lo, out ulong hi)) return WalkFaulted;
        f = SystemOps.CheckSystemLoad((byte)reg, sel, lo, hi, longMode, _f.Fault[v].La57);
        if (f.Raised) return f;
        if (reg == SysReg.Tr)
        {
            // The CPU's check and set of busy are one locked read-modify-write: if another vCPU's LTR made the TSS busy
            // since the descriptor was read, this LTR sees a busy TSS, #GP(sel), as CheckSystemLoad would have said.
            if (!SetDescriptorBit(cpu, v, linear, BusyBit, out byte before)) return WalkFaulted;
            if ((before & BusyBit) != 0) return Fault.Gp(Faults.SelectorError(sel), FaultCause.Segment);
        }
        SetSegment(v, reg, SystemOps.Cache(sel, reg == SysReg.Tr ? SystemOps.WithBusy(lo) : lo, hi, longMode));
        return Fault.None;
    }

    /// <summary>MOV Sreg, m16 (and the CS of a far branch through <see cref="FarBranch"/>): checks, accessed bit, commit.
    /// <paramref name="loaded"/> is what the register now holds.</summary>
    Fault LoadSegment(int cpu, int v, int seg, ushort sel, out SegmentState loaded)
    {
        ref readonly var c = ref _f.Fault[v];
        loaded = default;
        if (c.Mode is SegMode.Real or SegMode.Virtual8086)
        {
            loaded = SystemOps.RealModeCache(sel, State.SegLimit(v, seg), State.SegAttributes(v, seg), c.Mode == SegMode.Virtual8086);
            SetSegment(v, seg, loaded);
            return Fault.None;
        }
        if (SystemOps.IsNull(sel))
        {
            var nf = SystemOps.NullSegmentLoad(seg, sel, c.Cpl, _f.Acc[v].Mode == CpuMode.Bits64);
            if (nf.Raised) return nf;
            loaded = SystemOps.NullCache(seg, sel, c.Cpl);
            SetSegment(v, seg, loaded);
            return Fault.None;
        }
        var f = SystemOps.Locate(sel, Tables(v), 8, out ulong linear);
        if (f.Raised) return f;
        if (!ReadDescriptor(cpu, v, linear, 8, out ulong desc, out _)) return WalkFaulted;
        f = SystemOps.CheckSegmentLoad(seg, sel, desc, c.Cpl);
        if (f.Raised) return f;
        if (!SetAccessed(cpu, v, linear, desc)) return WalkFaulted;
        loaded = SystemOps.Cache(sel, SystemOps.WithAccessed(desc), 0, system64: false);
        SetSegment(v, seg, loaded);
        return Fault.None;
    }

    /// <summary>Far JMP/CALL m16:xx: the new CS and the target are checked, then (CALL) the frame pushed, CS, rSP and RIP committed.</summary>
    Fault FarBranch(int cpu, int v, ReadOnlySpan<byte> op)
    {
        ref readonly var d = ref _f.Acc[v];
        ref readonly var c = ref _f.Fault[v];
        int osz = d.RegSize;
        var (offset, sel) = SystemOps.FarPointer(op, osz);
        ulong target = SystemOps.FarTarget(offset, osz);
        bool longMode = _f.Mode[v].LongMode, pe = c.Mode != SegMode.Real;
        SegmentState cs;
        ulong linear = 0, desc = 0;
        if (c.Mode is SegMode.Real or SegMode.Virtual8086)
        {
            cs = SystemOps.RealModeCache(sel, State.SegLimit(v, Seg.CS), State.SegAttributes(v, Seg.CS), c.Mode == SegMode.Virtual8086);
            if (c.Mode == SegMode.Virtual8086) cs = cs with { Attributes = (ushort)(SegmentAttributes.Code16 | SegmentAttributes.DplMask) };
        }
        else
        {
            if (SystemOps.IsNull(sel)) return Fault.Gp(0, FaultCause.Segment);
            var lf = SystemOps.Locate(sel, Tables(v), 8, out linear);
            if (lf.Raised) return lf;
            if (!ReadDescriptor(cpu, v, linear, 8, out desc, out _)) return WalkFaulted;
            var f = SystemOps.CheckFarTarget(sel, desc, c.Cpl, longMode);
            if (f.Raised) return f;
            cs = SystemOps.Cache(SystemOps.CsSelector(sel, c.Cpl), SystemOps.WithAccessed(desc), 0, system64: false);
        }
        if (SystemOps.FarTargetFaults(in cs, target, longMode, pe, c.La57)) return Fault.Gp(0, FaultCause.Segment);
        if (c.Mode is SegMode.Protected or SegMode.Long64 && !SetAccessed(cpu, v, linear, desc)) return WalkFaulted;
        if (d.Kind == AccessKind.FarCall)
        {
            Span<byte> frame = stackalloc byte[16];
            SystemOps.FarCallFrame(State.Rip(v) + d.Length, State.SegSelector(v, Seg.CS), osz, frame);
            int n = 2 * osz, split = _f.StackSplit[v];
            _memory.Write(_f.StackGpa.At(v, 0), frame[..split]);
            if (split < n) _memory.Write(_f.StackGpa.At(v, 1), frame[split..n]);
            State.Gpr(v, Gpr.Rsp) = StackOps.Moved(State.Gpr(v, Gpr.Rsp), -n, StackWidth(v));
        }
        SetSegment(v, Seg.CS, cs);
        _f.BranchTarget[v] = target;
        _f.Branch[v] = true;
        Followed(v)?.Step(v, $"far {(d.Kind == AccessKind.FarCall ? "call" : "jmp")}: CS 0x{cs.Selector:x} base 0x{cs.Base:x} attr 0x{cs.Attributes:x}, RIP 0x{target:x}");
        return Fault.None;
    }

    /// <summary>LSS/LFS/LGS: the segment from the pointer's selector (every check of MOV Sreg), then the register = the offset.</summary>
    Fault LoadFarPointer(int cpu, int v, ReadOnlySpan<byte> op)
    {
        ref readonly var d = ref _f.Acc[v];
        var (offset, sel) = SystemOps.FarPointer(op, d.RegSize);
        var f = LoadSegment(cpu, v, d.SysReg, sel, out _);
        if (f.Raised) return f;
        WriteBack.WriteReg(State.Gprs(v), d.Reg, false, d.RegSize, offset);
        return Fault.None;
    }

    /// <summary>
    /// MOV SS, m16 or LSS has completed: the interrupt shadow (SDM vol. 3 §6.8.3; vol. 2 MOV). The CPU holds interrupts
    /// and debug traps until the next instruction completes, so the kernel records blocking by MOV SS in the
    /// interruptibility field (InjectPendingIrq honours it at the next entry; the VMSA's INT_SHADOW, TDX's L2 VMCS
    /// field) and the single-step trap of this instruction is not raised: TF still set, the next instruction's trap is
    /// the delayed one. True when the shadow started (a segment load of another register starts none).
    /// </summary>
    bool StartsShadow(int v)
    {
        if (_f.Acc[v].SysReg != Seg.SS) return false;
        State.SetInterruptibility(v, StateField.BlockingByMovSs);
        _f.Row[v].Shadow = true;
        Followed(v)?.Step(v, "SS loaded: interrupt shadow until the next instruction completes (interrupts and the #DB trap held)");
        return true;
    }

    /// <summary>The exit after the one that started the shadow: the guest has reached the next instruction, which this
    /// exit completes (or faults, whose delivery ends the shadow too), so the shadow the kernel set ends here.</summary>
    void EndShadow(int v)
    {
        _f.Row[v].Shadow = false;
        State.SetInterruptibility(v, 0);
    }

    void SetSegment(int v, int seg, in SegmentState s)
    {
        State.SetSegSelector(v, seg, s.Selector);
        State.SetSegBase(v, seg, s.Base);
        State.SetSegLimit(v, seg, s.Limit);
        State.SetSegAttributes(v, seg, s.Attributes);
        // CS and SS decide the decode mode and the CPL; the next exit must not reuse a decode of the old ones.
        if (seg is Seg.CS or Seg.SS) InvalidateCaches(v);
    }

    DescriptorTables Tables(int v) => new(State.GdtrBase(v), State.GdtrLimit(v), State.SegBase(v, StateField.Ldtr),
        State.SegLimit(v, StateField.Ldtr), (State.SegAttributes(v, StateField.Ldtr) & SegmentAttributes.P) != 0);

    /// <summary>The fault a descriptor access returns when it has injected its own (#PF, or #GP(0) off RAM): no second injection.</summary>
    static Fault WalkFaulted => Fault.Injected;

    /// <summary>The linear address of a descriptor byte: 32 bits wide outside long mode.</summary>
    ulong DescriptorLinear(int v, ulong linear) => _f.Mode[v].LongMode ? linear : linear & 0xFFFF_FFFF;

    /// <summary>Reads <paramref name="bytes"/> (8 or 16) of a descriptor table at <paramref name="linear"/> through the page
    /// walk (implicit supervisor reads, a page at a time). False when a fault was injected.</summary>
    bool ReadDescriptor(int cpu, int v, ulong linear, int bytes, out ulong lo, out ulong hi)
    {
        Span<byte> b = stackalloc byte[16];
        b.Clear();   // SkipLocalsInit: bytes past the descriptor stay zero
        lo = hi = 0;
        for (int i = 0; i < bytes;)
        {
            ulong at = DescriptorLinear(v, linear + (ulong)i);
            if (!DescriptorGpa(cpu, v, at, write: false, out ulong gpa)) return false;
            int n = (int)Math.Min((ulong)(bytes - i), Page.Size - (at & Page.Mask));
            _memory.Read(gpa, b.Slice(i, n));
            i += n;
        }
        lo = BinaryPrimitives.ReadUInt64LittleEndian(b);
        hi = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
        return true;
    }

    /// <summary>Type bits 0 (accessed) and 1 (TSS busy) in descriptor byte 5.</summary>
    const byte AccessedBit = 1, BusyBit = 2;

    /// <summary>Sets the accessed bit of the descriptor at <paramref name="linear"/> in guest RAM unless it was set when
    /// read (the CPU writes only when it changes). False when a fault was injected.</summary>
    bool SetAccessed(int cpu, int v, ulong linear, ulong desc) =>
        (desc & 1UL << 40) != 0 || SetDescriptorBit(cpu, v, linear, AccessedBit, out _);

    /// <summary>Sets <paramref name="bit"/> in byte 5 (P, DPL, S, type) of the descriptor at <paramref name="linear"/> with
    /// a locked OR on guest RAM (GuestMemory.OrU8Locked), as the CPU does: a concurrent write of the descriptor by another
    /// vCPU is kept, where a plain store of the byte read before would undo it. <paramref name="before"/>: byte 5 just
    /// before. False when a fault was injected.</summary>
    bool SetDescriptorBit(int cpu, int v, ulong linear, byte bit, out byte before)
    {
        before = 0;
        if (!DescriptorGpa(cpu, v, DescriptorLinear(v, linear + 5), write: true, out ulong gpa)) return false;
        before = _memory.OrU8Locked(gpa, bit);
        return true;
    }

    bool DescriptorGpa(int cpu, int v, ulong linear, bool write, out ulong gpa)
    {
        var access = SupervisorProtection.Data(write, 0, _f.Fault[v].Cr4, _f.Fault[v].Rflags, implicitAccess: true);
        var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, linear, access, out gpa);
        if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return false; }
        if (_host.IsRam(v, gpa, 1)) return true;
        Followed(v)?.Step(v, $"descriptor at GPA 0x{gpa:x} is not RAM: #GP(0)");
        InjectException(cpu, v, VectorGp, 0);
        return false;
    }
}
