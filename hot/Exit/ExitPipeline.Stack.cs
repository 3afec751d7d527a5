using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>
/// The stack and branch side of PUSH m, POP m, CALL m and JMP m (the arithmetic is hot/Emulate/StackOps.cs). Small hooks
/// the element stages call; only on the kernel-emulated path (KVM finishes these forms itself).
///
/// The memory operand is the element's device side, as for any read or write. The stack is guest RAM, reached through
/// the guest's page walk with the CPU's checks for an SS reference (64-bit mode: #SS(0) when not canonical; otherwise
/// SS's limit and type, #SS; then #PF) and accessed at once. Order, so that nothing is ever half done:
///   PUSH, CALL: the stack slot is translated before the device is asked for the operand (a stack fault reaches no
///               device); once the value is in hand the branch target is checked (#GP(0)), then the slot is written and
///               rSP (and RIP) committed together.
///   POP:        the slot is translated and read first; rSP+size goes into the pending registers, the destination's
///               address is computed with it (the CPU increments rSP before computing a POP destination that uses it),
///               and rSP becomes the vCPU's only when the device write is done (CommitPending).
///   JMP:        the target is checked, then RIP loaded.
/// A stack slot that is not RAM (a guest with its stack on MMIO) is refused with #GP(0): a defined outcome, as for an
/// operand that straddles a device; no anchor emulates a device-backed stack either (KVM: "stack references ... will
/// never occur in special memory areas").
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    /// <summary>
    /// Before the element's device side: translates the stack slot (PUSH/CALL: the one written, POP: the one read) and,
    /// for POP, reads it and stages rSP in the pending registers. False when a fault was injected.
    /// </summary>
    bool StackBegin(int cpu, int v)
    {
        ref readonly var d = ref _f.Acc[v];
        _f.Branch[v] = false;
        if (d.Kind == AccessKind.Jmp) return true;
        bool push = d.Kind != AccessKind.Pop;
        if (!StackTranslate(cpu, v, push)) return false;
        if (push) return true;
        ulong value = 0;
        int split = _f.StackSplit[v];
        value = _memory.ReadSized(_f.StackGpa.At(v, 0), split);
        if (split < d.Size) value |= _memory.ReadSized(_f.StackGpa.At(v, 1), d.Size - split) << (split * 8);
        _f.StackValue[v] = value;
        Span<ulong> pend = _f.PendGprs.Row(v);
        State.Gprs(v).CopyTo(pend);
        pend[Gpr.Rsp] = StackOps.RspAfter(in d, pend[Gpr.Rsp], StackWidth(v));
        _f.PendFlags[v] = State.Rflags(v);
        _f.Row[v].Pend = true;
        _f.Row[v].PendRegs = true;
        return true;
    }

    /// <summary>
    /// The operand is in hand (PUSH: the value, CALL/JMP: the target): checks the target, writes the stack slot and
    /// commits rSP; the branch's RIP is loaded by FinishInstruction. False when a fault was injected (nothing committed).
    /// </summary>
    bool StackAfterRead(int cpu, int v, ulong value)
    {
        ref readonly var d = ref _f.Acc[v];
        if (d.Kind == AccessKind.Pop) return true;
        if (d.Kind is AccessKind.Call or AccessKind.Jmp)
        {
            ulong target = StackOps.Target(in d, value);
            if (StackOps.TargetFaults(d.Mode, target, _f.Fault[v].La57, State.SegAttributes(v, StateField.Cs), State.SegLimit(v, StateField.Cs)))
            {
                Followed(v)?.Step(v, $"branch target 0x{target:x} refused: #GP(0), nothing pushed");
                InjectException(cpu, v, VectorGp, 0);
                return false;
            }
            _f.BranchTarget[v] = target;
            _f.Branch[v] = true;
            if (d.Kind == AccessKind.Jmp) return true;
            value = StackOps.ReturnAddress(in d, State.Rip(v));
        }
        int split = _f.StackSplit[v];
        _memory.WriteSized(_f.StackGpa.At(v, 0), split, value);
        if (split < d.Size) _memory.WriteSized(_f.StackGpa.At(v, 1), d.Size - split, value >> (split * 8));
        State.Gpr(v, Gpr.Rsp) = StackOps.RspAfter(in d, State.Gpr(v, Gpr.Rsp), StackWidth(v));
        Followed(v)?.Step(v, $"stack: 0x{value:x} pushed at GPA 0x{_f.StackGpa.At(v, 0):x}, RSP now 0x{State.Gpr(v, Gpr.Rsp):x}");
        return true;
    }

    /// <summary>The RIP the instruction leaves: a CALL/JMP's target (consumed), else the next instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong NextRip(int v)
    {
        if (!_f.Branch[v]) return State.Rip(v) + _f.Acc[v].Length;
        _f.Branch[v] = false;
        return _f.BranchTarget[v];
    }

    int StackWidth(int v) => StackOps.StackWidth(_f.Acc[v].Mode, _f.Acc[v].Mode == CpuMode.Bits64 ? (ushort)0 : State.SegAttributes(v, StateField.Ss));

    /// <summary>SS:[slot] through the CPU's checks and the page walk into <see cref="_f.StackGpa"/>; false when a fault was injected.
    /// <paramref name="slotSize"/>: the slot's bytes when not the operand's (far CALL's two pushes, ExitPipeline.System.cs).</summary>
    bool StackTranslate(int cpu, int v, bool write, uint slotSize = 0)
    {
        ref readonly var d = ref _f.Acc[v];
        ref readonly var c = ref _f.Fault[v];
        int width = StackWidth(v);
        uint size = slotSize != 0 ? slotSize : d.Size;
        ulong offset = StackOps.SlotOffset(State.Gpr(v, Gpr.Rsp), (int)size, width, push: write);
        ulong linear;
        if (d.Mode == CpuMode.Bits64)
        {
            linear = offset;
            var f = Faults.Canonical(linear, size, stack: true, c.La57);
            if (f.Raised) { RaiseCheckFault(cpu, v, in f); return false; }
        }
        else
        {
            var f = Faults.Segment(c.Mode, c.Cpl, Seg.SS, State.SegSelector(v, Seg.SS), State.SegAttributes(v, Seg.SS), State.SegLimit(v, Seg.SS),
                offset, size, write ? MemUse.Write : MemUse.Read);
            if (f.Raised) { RaiseCheckFault(cpu, v, in f); return false; }
            linear = (State.SegBase(v, StateField.Ss) + offset) & 0xFFFF_FFFFUL;
        }
        int first = (int)Math.Min(size, Page.Size - (linear & Page.Mask));
        _f.StackSplit[v] = first;
        for (int part = 0; part < (first < size ? 2 : 1); part++)
        {
            ulong at = part == 0 ? linear : linear + (ulong)first;
            var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, at, DataAccess(v, write), out ulong gpa);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return false; }
            if (!_host.IsRam(v, gpa, part == 0 ? (uint)first : size - (uint)first))
            {
                Followed(v)?.Step(v, $"stack slot at GPA 0x{gpa:x} is not RAM: #GP(0)");
                InjectException(cpu, v, VectorGp, 0);
                return false;
            }
            _f.StackGpa.At(v, part) = gpa;
        }
        // #AC(0) on the stack slot (CPL 3, CR0.AM, RFLAGS.AC, rSP not a multiple of the operand size): after the walk, so
        // a #PF wins as on the CPU, and before the operand's side, so no device sees the access (SDM vol. 3 §6.15).
        if (Faults.Misaligned(in c, linear, size is 2 or 4 or 8 ? size : 1))
        {
            var ac = Fault.Ac;
            RaiseCheckFault(cpu, v, in ac);
            return false;
        }
        return true;
    }
}
