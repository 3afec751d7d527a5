using System.Runtime.CompilerServices;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>
/// The exit path's call sites into hot/Emulate/Faults.cs: the segment, canonical, alignment and port-permission checks
/// before an element is performed, and the single-step trap after an instruction. Only on the kernel-emulated path:
/// a hardware backend that finishes the instruction has made the checks itself.
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    FaultContext FaultContextOf(int v, CpuMode cpuMode, ulong cr0, ulong cr4, ushort csAttr, in ExitRecord rec)
    {
        ulong rflags = State.Rflags(v);
        var mode = FaultContext.ModeOf(cpuMode, cr0, rflags);
        int cpl = FaultContext.CplOf(mode, FaultContext.CplNeedsSs(mode, csAttr) ? State.SegAttributes(v, StateField.Ss) : csAttr);
        return new FaultContext(mode, cpl, cr0, rflags, (cr4 & FaultContext.Cr4La57) != 0, rec.Port, rec.Reason == ExitReason.Io ? rec.Size : (byte)0, cr4);
    }

    /// <summary>
    /// The page walk's access type for a data side of the kernel-emulated instruction: at CPL 3 (virtual-8086 mode
    /// included) the walk checks the U/S bit as the CPU would, so a user-mode guest's MMIO instruction never reaches
    /// memory its page tables reserve for the supervisor (#PF with the U bit in the error code); at CPL 0-2 with CR4.SMAP
    /// and RFLAGS.AC clear (at the instruction's start) a user page is #PF (SupervisorProtection.Data). Every side the
    /// exit path emulates is an explicit access (the operand, the string elements, the stack of PUSH/POP/CALL).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    AccessType DataAccess(int v, bool write) =>
        SupervisorProtection.Data(write, _f.Fault[v].Cpl, _f.Fault[v].Cr4, _f.Fault[v].Rflags);

    /// <summary>True when the element must not be performed: the fault (or the #PF that outranks an #AC) is pending.</summary>
    bool ElementFaults(int cpu, int v)
    {
        ref readonly var d = ref _f.Acc[v];
        var f = Faults.CheckElement(State, v, in d, in _f.Fault[v], State.Rip(v) + d.Length, _f.Row[v].SegBase, _f.Row[v].EsBase, out ulong misaligned, out bool write);
        if (!f.Raised) return false;
        Followed(v)?.Step(v, $"fault check: {f}; nothing reaches a device");
        if (f.Cause == FaultCause.Alignment)
        {
            var walk = PageWalker.Translate(_memory, _f.Mode[v], _f.Row[v].Cr3, misaligned, DataAccess(v, write), out _);
            if (!walk.IsOk) { InjectWalkFault(cpu, v, walk); return true; }
        }
        RaiseCheckFault(cpu, v, in f);
        return true;
    }

    /// <summary>
    /// 64-bit mode, kernel-emulated: the whole access must be canonical before it is walked (the walk checks only its
    /// first byte, and a not-present page there would report #PF where the CPU reports #GP(0)). SS-based references
    /// were checked in <see cref="ElementFaults"/> (#SS).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // every memory side: the common answer is two compares
    bool CanonicalFaults(int cpu, int v, ulong linear)
    {
        ref readonly var d = ref _f.Acc[v];
        if (d.Mode != CpuMode.Bits64) return false;
        // The common case in two compares: first and last byte in the same 48-bit canonical half (canonical with 4-level
        // paging is canonical with 5-level too); anything else takes the full check.
        long first = (long)linear >> 47, last = (long)(linear + d.Size - 1) >> 47;
        if (first == last && (first == 0 || first == -1)) return false;
        return CanonicalFaultsFull(cpu, v, linear);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    bool CanonicalFaultsFull(int cpu, int v, ulong linear)
    {
        ref readonly var d = ref _f.Acc[v];
        var f = Faults.Canonical(linear, d.Size, stack: false, _f.Fault[v].La57);
        if (!f.Raised) return false;
        RaiseCheckFault(cpu, v, in f);
        return true;
    }

    void RaiseCheckFault(int cpu, int v, in Fault f)
    {
        Stats.Add(cpu, f.Cause switch
        {
            FaultCause.Alignment => Counter.AlignmentFaults,
            FaultCause.IoPrivilege => Counter.IoPrivilegeFaults,
            _ => Counter.SegmentFaults,
        });
        InjectException(cpu, v, f.Vector, f.HasErrorCode ? f.ErrorCode : null);
    }

    /// <summary>TF was set when the instruction started: #DB (a trap, after RIP moved) with DR6.BS set.</summary>
    void SingleStepTrap(int cpu, int v)
    {
        State.SetDr6(v, Faults.Dr6AfterSingleStep(State.Dr6(v)));
        State.SetPendingEvent(v, PendingEventValid | EventTypeException | Fault.VectorDb);
        Stats.Add(cpu, Counter.SingleStepTraps);
        _host.TraceFault(cpu, v, Fault.VectorDb);
        Followed(v)?.Step(v, $"RFLAGS.TF: single-step #DB pending, DR6 0x{State.Dr6(v):x}");
    }
}
