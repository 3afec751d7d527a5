using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Emulate;
using Copra.Hot.Guest;
using Copra.Hot.Layout;

namespace Copra.Hot.Exit;

/// <summary>Which side of an element a vCPU's instruction is on (<see cref="InFlightRow.Phase"/>).</summary>
public enum ElementPhase : byte { None, Read, Write, Read2 }   // Read2: a second read in one element (CMPS's ES:rDI side)

/// <summary>
/// The per-vCPU state of the instruction in flight, struct-of-arrays with the global vCPU index as the identity
/// (<c>Acc[v]</c>, <c>Exit[v]</c>, ...). Ownership: the CPU the vCPU is bound to owns its row. Only the exit path
/// running on that CPU writes it; a device model's answer from another CPU is posted to that CPU's inbox and
/// applied there, so no row is ever written by two host threads and none needs a lock. A vCPU has at most one
/// instruction in flight, and its row survives while the access waits behind another vCPU's in a device's queue.
/// Allocated once at boot; nothing here allocates afterwards.
/// Why a struct: held inline by the pipeline (and copied once into the kernel), a column's base is one load from the
/// holder, where a class would add a load of the reference before every column access (the JIT cannot keep it in a
/// register across the exit path's stores through pointers). Every copy shares the same pinned storage.
/// </summary>
public readonly struct InFlight
{
    public InFlight(int vcpus)
    {
        int n = Math.Max(1, vcpus);
        Count = n;
        Row = new(n); Acc = new(n); Exit = new(n); Mode = new(n); Fault = new(n);
        HwRead = new(n); HwGprs = new(n, 16); HwFlags = new(n); HwReadEnd = new(n); TdRead0 = new(n);
        Answer = new(n); AnswerMismatch = new(n);
        Wide = new(n, 128); PendGprs = new(n, 16); PendFlags = new(n); CmpsSource = new(n); RmwGpa = new(n);
        FxImage = new(n, X87.ImageSize); FxPiece = new(n);
        Memo = new(n, MemoWays);
        StackGpa = new(n, 2); StackSplit = new(n); StackValue = new(n); BranchTarget = new(n); Branch = new(n);
    }

    /// <summary>vCPUs (rows).</summary>
    public int Count { get; }

    /// <summary>
    /// The scalars of the instruction in flight that nearly every exit reads or writes, one <see cref="InFlightRow"/>
    /// per vCPU. Why one column for them and not one each: an exit touched ~28 of these, each a base load from this
    /// struct and a 128-byte line pair of its own; a stage now takes <c>ref _f.Row[v]</c> once and reaches each field at a
    /// constant offset (one line pair per vCPU, still apart from every other vCPU's). The wider, rarer columns stay below.
    /// </summary>
    public readonly VcpuColumn<InFlightRow> Row;

    // ---- the instruction ------------------------------------------------------------------------
    /// <summary>The decoded instruction.</summary>
    public readonly VcpuColumn<DecodedAccess> Acc;
    /// <summary>The exit record the backend filled.</summary>
    public readonly VcpuColumn<ExitRecord> Exit;
    /// <summary>Paging mode read at the start of the exit (the data side walks with it and <see cref="InFlightRow.Cr3"/>).</summary>
    public readonly VcpuColumn<PagingMode> Mode;
    /// <summary>What the fault checks need, fixed at the start of the instruction (hot/Emulate/Faults.cs).</summary>
    public readonly VcpuColumn<FaultContext> Fault;

    // ---- accounting ------------------------------------------------------------------------------
    /// <summary>The value the last hardware-completed read returned (checks an ALU's write).</summary>
    public readonly VcpuColumn<ulong> HwRead;
    /// <summary>
    /// The registers and RFLAGS at that read exit, and the end of its instruction (RIP + length; 0: none). Why: the
    /// hardware reports a read-modify-write's write after the instruction's register writes (XADD's source, XCHG's
    /// register, the flags ADC reads), so the write's expected data is computed from the state its read saw.
    /// </summary>
    public readonly VcpuWays<ulong> HwGprs;
    public readonly VcpuColumn<ulong> HwFlags, HwReadEnd;
    /// <summary>The vCPU's TDG.VP.RD count already charged to this exit.</summary>
    public readonly VcpuColumn<long> TdRead0;

    // ---- the request to a device (kept so it can queue behind another vCPU's) ----------------------
    /// <summary>A device's answer posted from another CPU, applied when the owning CPU takes the message.</summary>
    public readonly VcpuColumn<ulong> Answer;
    /// <summary>With <see cref="Answer"/>: the model answered a locked write with a mismatch (compare-and-write failed).</summary>
    public readonly VcpuColumn<bool> AnswerMismatch;

    // ---- plain MOV, IN and OUT exits, replayed (ExitPipeline.Plain.cs) ---------------------------------------
    /// <summary>
    /// Memo entries per vCPU, one per instruction address's low six bits (<see cref="MemoSlot"/>), as the decode cache:
    /// a driver loop's exiting instructions within 64 bytes never evict each other. Why more than one: a vCPU that
    /// cycles through several registers (the default run mix: eight instructions) exits at a different RIP each time.
    /// </summary>
    public const int MemoWays = DecodeCache.Ways;
    /// <summary>The memo entry of the instruction at <paramref name="rip"/>.</summary>
    public static int MemoSlot(ulong rip) => DecodeCache.Slot(rip);
    /// <summary>What vCPU v's plain MOV, IN and OUT exits were derived from and derived, one entry per slot.</summary>
    public readonly VcpuWays<PlainMemo> Memo;
    /// <summary>The memo entry of vCPU <paramref name="v"/>'s instruction at <paramref name="rip"/> (tests, tools).</summary>
    public ref PlainMemo MemoAt(int v, ulong rip) => ref Memo.At(v, MemoSlot(rip));

    // ---- PUSH/POP/CALL/JMP m: the stack slot and the branch (ExitPipeline.Stack.cs) -----------------------
    /// <summary>v*2: GPA of the stack slot's first byte, and of its first byte on the next page when it crosses.</summary>
    public readonly VcpuWays<ulong> StackGpa;
    /// <summary>Bytes of the slot on its first page (the operand size when it does not cross).</summary>
    public readonly VcpuColumn<int> StackSplit;
    /// <summary>POP: the value read from the stack.</summary>
    public readonly VcpuColumn<ulong> StackValue;
    /// <summary>CALL/JMP: the RIP the instruction loads, and whether it loads one.</summary>
    public readonly VcpuColumn<ulong> BranchTarget;
    public readonly VcpuColumn<bool> Branch;

    // ---- wide elements, pending state, LOCK (ExitPipeline.Wide.cs) --------------------------------------
    /// <summary>Bytes [0,64): the wide element's value read; [64,128): the value to write.</summary>
    public readonly VcpuWays<byte> Wide;
    /// <summary>The value read and the value to write of vCPU <paramref name="v"/>'s wide element.</summary>
    public Span<byte> WideRead(int v) => Wide.Row(v)[..64];
    public Span<byte> WideWrite(int v) => Wide.Row(v)[64..];
    /// <summary>The registers a read-modify-write commits when its write is done, and its flags.</summary>
    public readonly VcpuWays<ulong> PendGprs;
    public readonly VcpuColumn<ulong> PendFlags;
    /// <summary>CMPS: the rSI element, read first.</summary>
    public readonly VcpuColumn<ulong> CmpsSource;
    /// <summary>
    /// The GPA a read-modify-write element's read side took to a device (<see cref="NoGpa"/>: none in this element), where
    /// its write side goes too (ExitPipeline.cs AfterRead). Its own column, not the row: only RMW exits touch it.
    /// </summary>
    public readonly VcpuColumn<ulong> RmwGpa;
    /// <summary>No GPA: an address no guest can have (physical addresses are at most 52 bits).</summary>
    public const ulong NoGpa = ulong.MaxValue;

    // ---- FXSAVE/FXRSTOR as 64-byte pieces (ExitPipeline.X87.cs) ----------------------------------------------
    /// <summary>The FXSAVE image being written, or the FXRSTOR image being read.</summary>
    public readonly VcpuWays<byte> FxImage;
    /// <summary>The piece in flight.</summary>
    public readonly VcpuColumn<byte> FxPiece;
}

/// <summary>
/// One vCPU's entry of <see cref="InFlight.Row"/>: the scalars of its instruction in flight that the common exit reads or
/// writes, together in 125 bytes (one 128-byte line pair: tests/Layout/VcpuColumnLayoutTests.cs). Owned, as every InFlight column, by the vCPU's CPU.
/// </summary>
public struct InFlightRow
{
    // ---- the instruction ------------------------------------------------------------------------
    /// <summary>The value read in this element, and the value to write in it.</summary>
    public ulong Value, WriteValue;
    /// <summary>Base of the memory operand's segment (string sources), and ES's (string destinations).</summary>
    public ulong SegBase, EsBase;
    /// <summary>CR3 read at the start of the exit (the data side walks with it and <see cref="InFlight.Mode"/>).</summary>
    public ulong Cr3;

    // ---- accounting ------------------------------------------------------------------------------
    /// <summary>TSC ticks of kernel code for this exit, and the start of the segment now running (0: none).</summary>
    public long Measured, SegStart;
    /// <summary>Modelled platform cycles of this exit.</summary>
    public long Modelled;
    /// <summary>The hardware round trip (KVM: TSC around KVM_RUN), else 0.</summary>
    public long Hardware;

    // ---- the request to a device (kept so it can queue behind another vCPU's) ----------------------
    public ulong ReqAddr, ReqData;
    public int ReqOwner;
    public EventKind ReqKind;

    /// <summary>REP elements run in this exit (bounded per exit).</summary>
    public int RepElements;
    /// <summary>Slot + 1 of the memo entry this exit's front end stored a key in, for its MMIO or port side to complete; 0: none.</summary>
    public int MemoArmed;
    /// <summary>Slot + 1 of the memo entry whose derivation the columns (Acc, Mode, Cr3, Fault, ...) hold; 0: none.</summary>
    public int MemoHeld;
    /// <summary>Compare-and-write attempts against a device in this exit.</summary>
    public int LockRetries;

    /// <summary>The hardware finishes this exit's instruction (KVM: <c>ExitFlags.HardwareCompletes</c>): read once at the exit, it picks the pipeline.</summary>
    public bool HardwareCompletes;
    /// <summary>Which tracers follow this exit (bit flags the kernel defines), decided once when the exit is taken.</summary>
    public byte Follow;
    /// <summary>The element's side now running.</summary>
    public ElementPhase Phase;
    /// <summary>True until the first element is done (re-injection is only allowed before anything happened).</summary>
    public bool FirstElement;
    /// <summary>Some side of this instruction went to the host.</summary>
    public bool Forwarded;
    /// <summary><see cref="FaultContext.ChecksNeeded"/> for this instruction: the elements run the fault checks.</summary>
    public bool CheckElements;
    /// <summary>This exit is timed (<see cref="ExitStats.TimeThis"/>): its segments read the TSC and it keeps a sample.</summary>
    public bool Timed;
    /// <summary>A read-modify-write's state update is waiting for its write: the flags (<see cref="InFlight.PendFlags"/>), and with <see cref="PendRegs"/> the registers.</summary>
    public bool Pend;
    /// <summary>The pending copy includes the registers (<see cref="InFlight.PendGprs"/>); without it only the flags wait.</summary>
    public bool PendRegs;
    /// <summary>MOV SS/LSS: the kernel set the interrupt shadow when it completed this vCPU's last instruction.</summary>
    public bool Shadow;
    public byte ReqSize;
    public bool ReqWrite;
    /// <summary>A locked read of this vCPU holds its device's object (the kernel's held object, set and cleared with it):
    /// the exit's end tests this byte of the row in hand before asking the kernel to give the object up.</summary>
    public bool Holds;
}
