using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

/// <summary>
/// The syscall gate: the one entry from user space. <see cref="Run"/> (behind <see cref="Enter"/> and <see cref="Dispatch"/>) looks the number up in
/// <see cref="SysCallTable"/> (the one table from number to handler), runs the handler, and turns what went wrong
/// into an ABI code in <see cref="ToAbi(Exception)"/>, the one mapping: a <see cref="KernelError"/> by its kind,
/// anything else (a kernel bug, counted in <see cref="Kernel.InternalErrors"/>) as UNKNOWN.
/// </summary>
public sealed class SysCallGate(Kernel k)
{
    // Per CPU (Cpu.GateCalls, Cpu.GateTransitions): two VMs' models on two CPUs wrote these two shared fields on
    // every call. Calls from outside the drivers (tests, the VMM's synchronous setup) add here atomically.
    long _calls, _transitions;
    /// <summary>Calls dispatched (the gate, BATCH entries, polled rings), summed over the CPUs.</summary>
    public long Calls { get { long n = Volatile.Read(ref _calls); foreach (var c in k.Cpus) n += c.GateCalls; return n; } }
    /// <summary>User-to-kernel transitions (gate entries), summed over the CPUs.</summary>
    public long Transitions { get { long n = Volatile.Read(ref _transitions); foreach (var c in k.Cpus) n += c.GateTransitions; return n; } }

    public ValueTask<long> Enter(KThread t, in SysCallRegs r)
    {
        var cpu = Kernel.CurrentCpu;
        if (cpu is not null) { cpu.GateTransitions++; cpu.GateCalls++; cpu.Clock += k.SyscallCyclesNow; }
        else { Interlocked.Increment(ref _transitions); Interlocked.Increment(ref _calls); }
        // WAIT_FOR_EVENT, a device model's one call per exit (its answer and its next access), skips the table's lookup and
        // the handler's delegate: the same call its row makes, with Run's checks and error mapping (docs/design.md, "IPC").
        // Its part that completes in place answers a long, and the one ValueTask is built here, outside the protected
        // region: a ValueTask returned through it was copied through stack slots the frame zeroed on entry (−13).
        if (r.Rax == SysNr.WaitForEvent && t.State != ThreadState.Dead)
        {
            long now;
            try { now = k.WaitForEventNow(t, (uint)r.Rdi, cpu); }
            catch (Exception e) when (e is not ThreadKilledException) { now = ToAbi(e); }
            return now != Kernel.WaitNotNow ? new(now) : WaitLater(t);
        }
        return Run(t, r, inBatch: false);
    }

    /// <summary>WAIT_FOR_EVENT's rest when it did not complete in place (<see cref="Kernel.WaitForEventLater"/>), with
    /// <see cref="Run"/>'s error mapping. Out of line: its ValueTask is no slot of the gate's frame.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    ValueTask<long> WaitLater(KThread t)
    {
        try { return k.WaitForEventLater(t); }
        catch (Exception e) when (e is not ThreadKilledException) { return new(ToAbi(e)); }
    }

    /// <summary>One call from a BATCH entry or a polled ring's entry.</summary>
    internal ValueTask<long> Dispatch(KThread t, in SysCallRegs r, bool inBatch)
    {
        if (Kernel.CurrentCpu is { } cpu) cpu.GateCalls++; else Interlocked.Increment(ref _calls);
        return Run(t, r, inBatch);
    }

    /// <summary>The call itself, counted by the caller (the gate reads the current CPU once for both counters).</summary>
    ValueTask<long> Run(KThread t, in SysCallRegs r, bool inBatch)
    {
        if (t.State == ThreadState.Dead) return t.Block("dead");
        try
        {
            // Unknown numbers are EINVAL, as upstream's dispatcher answers them (kernel/src/cpu/idt/svsm.rs).
            var handler = SysCallTable.Find(r.Rax) ?? throw Unknown(r.Rax);
            if (inBatch && SysNr.MayBlock(r.Rax)) throw MayBlock(r.Rax);
            return handler(k, t, r);
        }
        catch (Exception e) when (e is not ThreadKilledException)
        {
            return new(ToAbi(e));
        }
    }

    // The errors' messages out of line: their interpolated strings would give every call's frame more to zero.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static KernelError Unknown(ulong nr) => KernelError.Inval($"unknown syscall 0x{nr:x}");

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static KernelError MayBlock(ulong nr) => KernelError.Inval($"{SysNr.Name(nr)} may block: refused in a batch");

    /// <summary>A batch or ring entry's result: what the call returned, or EINVAL for one that did not complete in place.</summary>
    internal static long Completed(ValueTask<long> vt) => vt.IsCompleted ? vt.Result : ToAbi(KernelErrorKind.Inval);

    /// <summary>
    /// The one place a kernel error becomes an ABI code, kind by kind as upstream's <c>From&lt;SvsmError&gt; for
    /// SysCallError</c> (kernel/src/error.rs) does; kinds without a code there are UNKNOWN here.
    /// </summary>
    public static long ToAbi(KernelErrorKind kind) => kind switch
    {
        KernelErrorKind.Inval => Errno.EINVAL,
        KernelErrorKind.NoMem => Errno.ENOMEM,
        KernelErrorKind.Perm => Errno.EPERM,
        KernelErrorKind.Fault => Errno.EFAULT,
        KernelErrorKind.Busy => Errno.EBUSY,
        KernelErrorKind.NotFound => Errno.ENOTFOUND,
        KernelErrorKind.NotSupp => Errno.ENOTSUPP,
        KernelErrorKind.Exists => Errno.EEXIST,
        KernelErrorKind.ReadOnly => Errno.ERDONLY,
        KernelErrorKind.WriteOnly => Errno.EWRONLY,
        _ => Errno.UNKNOWN,
    };

    long ToAbi(Exception e)
    {
        switch (e)
        {
            case KernelError ke:
                return ToAbi(ke.Kind);
            case UserFaultException:
                return ToAbi(KernelErrorKind.Fault);
            default:
                Interlocked.Increment(ref k.InternalErrors);
                k.LastInternalError = e;
                return Errno.UNKNOWN;   // no kernel error kind: unmapped by definition
        }
    }
}
