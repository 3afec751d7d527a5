using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>
/// The second, short pipeline: exits the hardware finishes itself (KVM, <see cref="ExitFlags.HardwareCompletes"/>).
/// The hardware reports each side of an instruction as its own exit (an ALU or MOVS first reads, then writes), names
/// the side's address (the GPA) and, for a write, its data; it advances RIP, writes registers and flags and raises
/// its own faults once given the value. So after the shared front (mode, fetch, decode: <see cref="BeginAccess"/>) an
/// exit here is: check the decode against the record, perform the one side at the address the hardware named, hand
/// the hardware the value, end the exit. No fault checks, no executor, no REP loop, no pending state and no LOCK
/// protocol: the kernel-emulated pipeline (ExitPipeline.cs) keeps those, and the two meet only where a side comes back from
/// a device model or the host (<see cref="SideDone"/>, one test): the flag is read once when the exit is taken, picks
/// this pipeline after the decode, and no stage of either pipeline tests it.
/// </summary>
public sealed partial class ExitPipeline<THost>
{
    /// <summary>After the decode: the one side this exit is.</summary>
    void HardwareElement(int cpu, int v)
    {
        ref var row = ref _f.Row[v];
        CheckHardware(v);
        ref readonly var rec = ref _f.Exit[v];
        // Why: the element is the fragment the hardware reports (KVM hands a wider access over in pieces of at most 8
        // bytes, kvm_run.mmio.data), so the rest of the exit (the owner lookup, the delivery's size, a forward) sees its size.
        // Where the decode's size disagrees (counted above), the hardware's wins too, as its address and data do.
        _f.Acc[v].Size = rec.Size;
        var (read, writeSide) = SidesOf(in _f.Acc[v]);
        bool write = rec.IsWrite;
        var side = write ? writeSide : read;
        row.Phase = write ? ElementPhase.Write : ElementPhase.Read;
        row.WriteValue = write ? rec.Data : 0;
        // The decode has no side in the direction the hardware reported (counted by CheckHardware): nothing to perform.
        if (side == Side.None) { HardwareDone(cpu, v, 0, write); return; }
        if (side == Side.Port) { PortSide(cpu, v, write, rec.Data); return; }
        // The hardware names the element's address; a wide access arrives in fragments of at most 8 bytes (kvm_run.mmio.data).
        ulong gpa = rec.Gpa;
        uint size = Math.Min(ElementSize(v), 8u);
        if (Followed(v) is { } t) NarrateSide(t, v, write, gpa, size, " (the hardware's)");
        if (_host.IsRam(v, gpa, size))
        {
            if (write) { _memory.WriteSized(gpa, (int)size, rec.Data); HardwareDone(cpu, v, 0, write: true); }
            else HardwareDone(cpu, v, _memory.ReadSized(gpa, (int)size), write: false);
            return;
        }
        MmioSide(cpu, v, gpa, size, write, rec.Data);
    }

    /// <summary>The side is done (at once, or when the device answered): the hardware gets the value and finishes the instruction.</summary>
    void HardwareDone(int cpu, int v, ulong value, bool write)
    {
        ref var row = ref _f.Row[v];
        row.Phase = ElementPhase.None;
        row.FirstElement = false;
        row.Value = value;
        if (!write)
        {
            _f.HwRead[v] = value;
            State.Gprs(v).CopyTo(_f.HwGprs.Row(v));
            _f.HwFlags[v] = State.Rflags(v);
            _f.HwReadEnd[v] = State.Rip(v) + _f.Acc[v].Length;
        }
        Followed(v)?.Step(v, write ? "write done; the hardware finishes the instruction" : $"value 0x{value:x} in hand; the hardware finishes the instruction");
        _host.CompleteAccess(v, write ? 0 : value);
        EndInstruction(cpu, v);
    }

    /// <summary>
    /// A hardware exit (KVM): checks the kernel's decode against what the hardware reported (address,
    /// length, direction, data for writes). Disagreements are counted, by kind and in
    /// <see cref="ExitStats.DecodeMismatch"/>; the access then proceeds with the hardware's values, since the
    /// hardware finishes the instruction whatever the kernel thinks.
    /// </summary>
    void CheckHardware(int v)
    {
        ref var row = ref _f.Row[v];
        ref readonly var d = ref _f.Acc[v];
        ref readonly var rec = ref _f.Exit[v];
        Stats.Add(_host.Here, Counter.HardwareChecked);
        var gprs = State.Gprs(v);
        ulong ones = AllOnes(d.Size);
        // Why: KVM hands a wider-than-8-byte access to user space in 8-byte fragments (kvm_run.mmio.data is 8 bytes).
        bool addr = true, size = d.Size > 8 ? rec.Size <= 8 : d.Size == rec.Size, dir, data = true;
        if (rec.Reason == ExitReason.Io)
        {
            bool write = d.Kind is AccessKind.Out or AccessKind.Outs;
            dir = write == rec.IsWrite;
            addr = (d.PortIsDx ? (ushort)gprs[2] : d.Port) == rec.Port;
            if (rec.IsWrite && d.Kind == AccessKind.Out) data = (WriteBack.StoreValue(d, gprs) & ones) == (rec.Data & ones);
        }
        else
        {
            dir = d.Kind switch
            {
                AccessKind.Bt => d.Op != AluOp.None || !rec.IsWrite,
                AccessKind.Read or AccessKind.ReadZx or AccessKind.ReadSx or AccessKind.Cmov or AccessKind.Lods or AccessKind.Scas
                    or AccessKind.Cmps or AccessKind.ReadVec or AccessKind.Push or AccessKind.Call or AccessKind.Jmp
                    or AccessKind.SysLoad or AccessKind.SegLoad or AccessKind.FarJmp or AccessKind.FarCall or AccessKind.LoadFarPtr => !rec.IsWrite,
                AccessKind.Write or AccessKind.WriteImm or AccessKind.Stos or AccessKind.Setcc or AccessKind.WriteVec or AccessKind.Pop
                    or AccessKind.SysStore or AccessKind.Fnstcw or AccessKind.Fnstsw or AccessKind.MmxWrite or AccessKind.Fxsave => rec.IsWrite,
                AccessKind.MmxRead or AccessKind.Fxrstor => !rec.IsWrite,
                AccessKind.Movdir64b => true,
                AccessKind.Alu => !rec.IsWrite || d.Op is not (AluOp.Cmp or AluOp.Test),
                AccessKind.Xchg or AccessKind.Movs => true,
                _ => false,
            };
            ulong linear = LinearOf(v, rec.IsWrite);
            var walk = PageWalker.Translate(_memory, _f.Mode[v], row.Cr3, linear, rec.IsWrite ? AccessType.Write : AccessType.Read, out ulong gpa);
            // Why: FXSAVE/FXRSTOR's fragments fall anywhere in the 512-byte image (d.Size is its first piece's).
            ulong span = IsFx(d.Kind) ? (ulong)X87.ImageSize : d.Size;
            addr = walk.IsOk && (d.Size > 8 ? rec.Gpa - gpa < span : gpa == rec.Gpa);
            // Why: CMPS reads two operands and the hardware exits for each that is not RAM (rSI's first): an exit may be ES:rDI's.
            if (!addr && d.Kind == AccessKind.Cmps)
            {
                var es = PageWalker.Translate(_memory, _f.Mode[v], row.Cr3, row.EsBase + Masked(gprs[7], d.AddressSize), AccessType.Read, out ulong esGpa);
                addr = es.IsOk && esGpa == rec.Gpa;
            }
            if (rec.IsWrite && dir)
            {
                ulong expect = 0;
                bool known = true;
                Span<ulong> copy = stackalloc ulong[16];
                // The write of an instruction whose read this vCPU's last hardware read was: the state that read saw
                // (the hardware has written the instruction's registers and flags by the time it reports the write).
                bool ofRead = _f.HwReadEnd[v] == State.Rip(v) + d.Length;
                _f.HwReadEnd[v] = 0;
                (ofRead ? _f.HwGprs.Row(v) : gprs).CopyTo(copy);
                ulong flagsBefore = ofRead ? _f.HwFlags[v] : State.Rflags(v);
                switch (d.Kind)
                {
                    case AccessKind.Write: case AccessKind.WriteImm: expect = WriteBack.StoreValue(d, copy); break;
                    case AccessKind.WriteVec: case AccessKind.Movdir64b: known = false; break;   // an 8-byte fragment of a wide store
                    case AccessKind.Fnstcw: expect = State.Fcw(v); break;
                    case AccessKind.Fnstsw: expect = State.Fsw(v); break;
                    case AccessKind.MmxWrite: case AccessKind.Fxsave: known = false; break;   // MMX state and the image: the hardware's, read before the exit
                    case AccessKind.Stos: expect = copy[0]; break;
                    case AccessKind.Pop: known = false; break;   // the value popped is the guest stack's, which KVM read
                    case AccessKind.SysStore: known = false; break;   // SGDT/SIDT/SMSW/SLDT/STR: a piece of KVM's own register image
                    case AccessKind.Xchg: expect = WriteBack.Xchg(d, copy, _f.HwRead[v]); break;
                    case AccessKind.Alu: case AccessKind.Bt: case AccessKind.Setcc:
                    {
                        ulong fl = flagsBefore;
                        known = Executor.Execute(in d, copy, ref fl, _f.HwRead[v], out expect) == ExecResult.Write;
                        break;
                    }
                    case AccessKind.Movs:
                    {
                        var src = PageWalker.Translate(_memory, _f.Mode[v], row.Cr3, LinearOf(v, false), AccessType.Read, out ulong sg);
                        known = src.IsOk && _host.IsRam(v, sg, d.Size);
                        if (known) expect = _memory.ReadSized(sg, d.Size);
                        break;
                    }
                }
                data = !known || (expect & ones) == (rec.Data & ones);
            }
        }
        if (!addr) Stats.Add(_host.Here, Counter.MismatchAddress);
        if (!size) Stats.Add(_host.Here, Counter.MismatchSize);
        if (!dir) Stats.Add(_host.Here, Counter.MismatchDirection);
        if (!data) Stats.Add(_host.Here, Counter.MismatchData);
        if (!(addr && size && dir && data)) Stats.Add(_host.Here, Counter.DecodeMismatch);
    }
}
