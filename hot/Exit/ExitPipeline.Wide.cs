using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;

namespace Copra.Hot.Exit;

/// <summary>
/// The exit path's wide and locked elements (docs/emulation.md, "Wide accesses" and "LOCK").
///
/// Wide: an element of more than 8 bytes (SSE moves and CMPXCHG16B: 16, MOVDIR64B: 64) carries its data in two
/// per-vCPU 64-byte buffers, the value read and the value to write, instead of the ulong the narrow path uses. RAM
/// moves them at once; a device model gets the whole access as one event (Payload), never a sequence of 8-byte
/// pieces: MOVDIR64B's point is a single 64-byte write (a work descriptor to a device portal), and a model that saw
/// eight writes could act on a half-written descriptor.
///
/// Pending state: a read-modify-write (ALU/BTx with a memory destination, XCHG, CMPXCHG16B) computes its registers and
/// flags into a per-vCPU copy that becomes the vCPU's only when the write is done, so a write that fails, is refused
/// by a locked device, or faults leaves the instruction wholly undone.
///
/// LOCK on RAM: a compare-and-swap of the aligned 8-byte word that holds the operand, retried with the value it found
/// (another vCPU, emulated or native, may write the same word between the read and the write). An operand that is
/// not inside one aligned 8-byte word, and CMPXCHG16B (.NET has no 16-byte CAS), runs under one kernel-wide bus lock:
/// atomic against every other emulated access, not against a natively running vCPU's plain store (what a split lock
/// on real hardware prevents by locking the bus).
///
/// LOCK on a device: the read goes out with EventFlags.Locked; when the model answers it, the kernel keeps the event
/// object for this vCPU (no other vCPU's access is delivered) until the write is answered, and the write carries the
/// value read as Expected. A model whose own state moved on answers Mismatch with the current value; the kernel
/// recomputes from it and writes again, at most <see cref="MaxLockRetries"/> times, then ends the exit with RIP
/// unchanged and nothing committed (the guest runs the instruction again).
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    const int MaxLockRetries = ExitRules.MaxLockRetries;

    // The wide buffers, the pending copy, CMPS's source and the retry count are InFlight columns (_f); the device object
    // a locked read holds is the kernel's (IExitHost.ReleaseHeld).
    static readonly object s_busLock = new();

    Span<byte> WideRead(int v) => _f.WideRead(v);
    Span<byte> WideWrite(int v) => _f.WideWrite(v);

    /// <summary>
    /// A read-modify-write form that writes a general register as well as memory: XCHG and XADD. The others write memory
    /// and the flags alone; the CMPXCHGs load their accumulator only when they do not write memory, which commits at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool RmwWritesRegister(in DecodedAccess d) => d.Kind == AccessKind.Xchg || d.Op == AluOp.Xadd;

    /// <summary>True for the forms whose element reads, then writes memory and may change registers: their state update waits for the write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]   // a few compares, made on every RMW side
    static bool IsRmw(in DecodedAccess d) =>
        d.Kind == AccessKind.Xchg || (d.Kind == AccessKind.Alu && d.MemIsDest) || (d.Kind == AccessKind.Bt && d.Op != AluOp.None);

    /// <summary>
    /// The state update of one element once its read value is in hand (the wide value, if any, is in <see cref="WideRead"/>).
    /// Returns false when the instruction faulted (#DE, already injected); otherwise whether memory is written, with
    /// the narrow value in <paramref name="toWrite"/> or the wide one in <see cref="WideWrite"/>.
    /// </summary>
    bool Compute(int cpu, int v, ulong value, bool writeSide, out bool write, out ulong toWrite)
    {
        ref readonly var d = ref _f.Acc[v];
        toWrite = 0;
        write = writeSide;
        switch (d.Kind)
        {
            case AccessKind.Movs: case AccessKind.Ins: case AccessKind.Outs:
                toWrite = value;
                return true;
            case AccessKind.Cmps:
            {
                ulong fl = State.Rflags(v);
                Executor.Cmps(in d, ref fl, _f.CmpsSource[v], value);
                State.Rflags(v) = fl;
                write = false;
                return true;
            }
            case AccessKind.ReadVec:
                State.SetXmm(v, d.Reg, BinaryPrimitives.ReadUInt128LittleEndian(WideRead(v)));
                write = false;
                return true;
            case AccessKind.WriteVec:
                BinaryPrimitives.WriteUInt128LittleEndian(WideWrite(v), State.Xmm(v, d.Reg));
                return true;
            case AccessKind.Movdir64b:
                WideRead(v).CopyTo(WideWrite(v));
                return true;
            case AccessKind.Fnstcw: case AccessKind.Fnstsw: case AccessKind.MmxRead: case AccessKind.MmxWrite:
            case AccessKind.Fxsave: case AccessKind.Fxrstor:
                ComputeX87(v, value, out bool w87, out toWrite);   // ExitPipeline.X87.cs
                write = writeSide && w87;
                return true;
            case AccessKind.SysStore or AccessKind.SysLoad or AccessKind.SegLoad or AccessKind.FarJmp or AccessKind.FarCall or AccessKind.LoadFarPtr:
                return SystemCompute(cpu, v, value, out write, out toWrite);   // ExitPipeline.System.cs
        }
        bool rmw = IsRmw(in d);
        // The registers wait for the write only when the form writes one with it (XCHG, XADD). The others (ALU, shift and
        // bit-test forms into memory, a CMPXCHG whose compare holds) change memory and the flags alone, so they run on the
        // vCPU's own registers and only the flags wait (two copies of sixteen registers fewer per such exit).
        bool pendRegs = RmwWritesRegister(in d);   // both are read-modify-writes
        Span<ulong> gprs = State.Gprs(v);
        if (pendRegs)
        {
            gprs.CopyTo(_f.PendGprs.Row(v));
            gprs = _f.PendGprs.Row(v);
        }
        ulong flags = State.Rflags(v);
        ExecResult res;
        if (d.Op == AluOp.Cmpxchg16b && d.Kind == AccessKind.Alu)
        {
            res = Executor.Execute16(gprs, ref flags, BinaryPrimitives.ReadUInt128LittleEndian(WideRead(v)), out UInt128 w);
            BinaryPrimitives.WriteUInt128LittleEndian(WideWrite(v), w);
        }
        else res = Executor.Execute(in d, gprs, ref flags, value, out toWrite);
        if (res == ExecResult.DivideError) { InjectException(cpu, v, VectorDe, null); return false; }
        if (writeSide) write = res == ExecResult.Write;
        // What waits is committed by AfterWrite (CommitPending), whether the element wrote or not; XCHG and XADD always
        // write, so pending registers are never committed anywhere else.
        if (rmw && write || pendRegs) { _f.PendFlags[v] = flags; _f.Row[v].Pend = true; _f.Row[v].PendRegs = pendRegs; return true; }
        State.Rflags(v) = flags;
        return true;
    }

    /// <summary>The element's write is done: the registers and flags of a read-modify-write become the vCPU's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void CommitPending(int v)
    {
        if (_f.Row[v].Pend) CommitPendingNow(v);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    void CommitPendingNow(int v)
    {
        ref var row = ref _f.Row[v];
        row.Pend = false;
        if (row.PendRegs) _f.PendGprs.Row(v).CopyTo(State.Gprs(v));
        State.Rflags(v) = _f.PendFlags[v];
    }

    /// <summary>
    /// A locked read-modify-write whose operand is guest RAM at <paramref name="gpa"/>: read, compute and write as one
    /// atomic step (CAS on the aligned word, retried; or the bus lock), then the element ends.
    /// </summary>
    void LockedRam(int cpu, int v, ulong gpa)
    {
        ref readonly var d = ref _f.Acc[v];
        int size = d.Size;
        ulong word = gpa & ~7UL;
        int shift = (int)(gpa & 7) * 8;
        if (size <= 8 && (gpa & 7) + (ulong)size <= 8)
        {
            ulong mask = size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
            while (true)
            {
                ulong old = _memory.ReadU64Volatile(word);
                if (!Compute(cpu, v, (old >> shift) & mask, writeSide: true, out bool write, out ulong toWrite)) return;
                if (!write) break;
                ulong next = (old & ~(mask << shift)) | ((toWrite & mask) << shift);
                if (_memory.CompareExchangeU64(word, next, old) == old) break;
                _f.Row[v].Pend = false;   // another writer got there first: recompute from what it left
                Stats.Add(cpu, Counter.LockRetries);
            }
            AfterWrite(cpu, v);
            return;
        }
        lock (s_busLock)
        {
            ulong value = 0;
            if (size > 8) _memory.Read(gpa, WideRead(v)[..size]);
            else value = _memory.ReadSized(gpa, size);
            if (!Compute(cpu, v, value, writeSide: true, out bool write, out ulong toWrite)) return;
            if (write)
            {
                if (size > 8) _memory.Write(gpa, WideWrite(v)[..size]);
                else _memory.WriteSized(gpa, size, toWrite);
            }
        }
        AfterWrite(cpu, v);
    }

    /// <summary>A RAM side that is wide or locked (kept out of Access so the common path stays as it was).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void SpecialRam(int cpu, int v, ulong gpa, bool write)
    {
        ref readonly var d = ref _f.Acc[v];
        if (d.Lock && !write) { LockedRam(cpu, v, gpa); return; }   // kernel-emulated only: ExitPipeline.Hardware.cs never comes here
        int size = (int)ElementSize(v);
        if (size <= 8)
        {
            if (write) { _memory.WriteSized(gpa, size, _f.Row[v].WriteValue); AfterWrite(cpu, v); }
            else AfterRead(cpu, v, _memory.ReadSized(gpa, size));
            return;
        }
        if (write) { _memory.Write(gpa, WideWrite(v)[..size]); AfterWrite(cpu, v); }
        else { _memory.Read(gpa, WideRead(v)[..size]); AfterRead(cpu, v, 0); }
    }

    /// <summary>A locked device write was answered Mismatch: recompute from the device's current value and write again, or give up.</summary>
    public void LockMismatch(int cpu, int v, ulong current)
    {
        ref var row = ref _f.Row[v];
        row.Pend = false;
        Stats.Add(cpu, Counter.LockRetries);
        if (++row.LockRetries <= MaxLockRetries)
        {
            row.Phase = ElementPhase.Read;
            AfterRead(cpu, v, current);
            return;
        }
        // Why: the guest re-executes the whole instruction (RIP unchanged, nothing committed), as after a REP bound.
        EndExit(cpu, v, ExitKind.MmioAlu, countCompleted: true);
    }

    /// <summary>Gives up the device object a locked read held (no write followed, or the exit ended early): the host's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void ReleaseHeld(int v) => _host.ReleaseHeld(v);
}
