using Copra.Abi;
using Copra.Hot.Decode;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

/// <summary>Which side of an element a vCPU's instruction is on (<see cref="InFlight.Phase"/>).</summary>
public enum ElementPhase : byte { None, Read, Write, Read2 }   // Read2: a second read in one element (CMPS's ES:rDI side)

/// <summary>
/// The per-vCPU state of the instruction in flight, struct-of-arrays with the global vCPU index as the identity
/// (<c>Acc[v]</c>, <c>Exit[v]</c>, ...). Ownership: the CPU the vCPU is bound to owns its row. Only the exit path
/// running on that CPU writes it; a device model's answer from another CPU is posted to that CPU's inbox and
/// applied there, so no row is ever written by two host threads and none needs a lock. A vCPU has at most one
/// instruction in flight, and its row survives while the access waits behind another vCPU's in a device's queue.
/// Allocated once at boot; nothing here allocates afterwards.
/// </summary>
public sealed class InFlight
{
    public InFlight(int vcpus)
    {
        int n = Math.Max(1, vcpus);
        Count = n;
        Acc = new DecodedAccess[n]; Exit = new ExitRecord[n]; Phase = new ElementPhase[n];
        Value = new ulong[n]; WriteValue = new ulong[n]; SegBase = new ulong[n]; EsBase = new ulong[n];
        Mode = new PagingMode[n]; Cr3 = new ulong[n];
        Measured = new long[n]; SegStart = new long[n]; Modelled = new long[n]; Hardware = new long[n]; HwRead = new ulong[n];
        FirstElement = new bool[n]; HardwareCompletes = new bool[n]; Follow = new byte[n]; RepElements = new int[n]; Forwarded = new bool[n]; TdRead0 = new long[n];
        ReqKind = new EventKind[n]; ReqAddr = new ulong[n]; ReqSize = new byte[n]; ReqWrite = new bool[n]; ReqData = new ulong[n]; ReqOwner = new int[n];
        Answer = new ulong[n]; AnswerMismatch = new bool[n];
        StackGpa = new ulong[n * 2]; StackSplit = new int[n]; StackValue = new ulong[n]; BranchTarget = new ulong[n]; Branch = new bool[n];
    }

    /// <summary>vCPUs (rows).</summary>
    public int Count { get; }

    // ---- the instruction ------------------------------------------------------------------------
    /// <summary>The decoded instruction.</summary>
    public readonly DecodedAccess[] Acc;
    /// <summary>The exit record the backend filled.</summary>
    public readonly ExitRecord[] Exit;
    /// <summary>The hardware finishes this exit's instruction (KVM: <c>ExitFlags.HardwareCompletes</c>): read once at the exit, it picks the pipeline.</summary>
    public readonly bool[] HardwareCompletes;
    /// <summary>Which tracers follow this exit (bit flags the kernel defines), decided once when the exit is taken.</summary>
    public readonly byte[] Follow;
    /// <summary>The element's side now running.</summary>
    public readonly ElementPhase[] Phase;
    /// <summary>The value read in this element, and the value to write in it.</summary>
    public readonly ulong[] Value, WriteValue;
    /// <summary>Base of the memory operand's segment (string sources), and ES's (string destinations).</summary>
    public readonly ulong[] SegBase, EsBase;
    /// <summary>Paging mode and CR3 read at the start of the exit (the data side walks with them).</summary>
    public readonly PagingMode[] Mode;
    public readonly ulong[] Cr3;
    /// <summary>True until the first element is done (re-injection is only allowed before anything happened).</summary>
    public readonly bool[] FirstElement;
    /// <summary>REP elements run in this exit (bounded per exit).</summary>
    public readonly int[] RepElements;
    /// <summary>Some side of this instruction went to the host.</summary>
    public readonly bool[] Forwarded;

    // ---- accounting ------------------------------------------------------------------------------
    /// <summary>TSC ticks of kernel code for this exit, and the start of the segment now running (0: none).</summary>
    public readonly long[] Measured, SegStart;
    /// <summary>Modelled platform cycles of this exit.</summary>
    public readonly long[] Modelled;
    /// <summary>The hardware round trip (KVM: TSC around KVM_RUN), else 0.</summary>
    public readonly long[] Hardware;
    /// <summary>The value the last hardware-completed read returned (checks an ALU's write).</summary>
    public readonly ulong[] HwRead;
    /// <summary>The vCPU's TDG.VP.RD count already charged to this exit.</summary>
    public readonly long[] TdRead0;

    // ---- the request to a device (kept so it can queue behind another vCPU's) ----------------------
    public readonly EventKind[] ReqKind;
    public readonly ulong[] ReqAddr;
    public readonly byte[] ReqSize;
    public readonly bool[] ReqWrite;
    public readonly ulong[] ReqData;
    public readonly int[] ReqOwner;
    /// <summary>A device's answer posted from another CPU, applied when the owning CPU takes the message.</summary>
    public readonly ulong[] Answer;
    /// <summary>With <see cref="Answer"/>: the model answered a locked write with a mismatch (compare-and-write failed).</summary>
    public readonly bool[] AnswerMismatch;

    // ---- PUSH/POP/CALL/JMP m: the stack slot and the branch (kernel/Exit/Kernel.Stack.cs) -----------------------
    /// <summary>v*2: GPA of the stack slot's first byte, and of its first byte on the next page when it crosses.</summary>
    public readonly ulong[] StackGpa;
    /// <summary>Bytes of the slot on its first page (the operand size when it does not cross).</summary>
    public readonly int[] StackSplit;
    /// <summary>POP: the value read from the stack.</summary>
    public readonly ulong[] StackValue;
    /// <summary>CALL/JMP: the RIP the instruction loads, and whether it loads one.</summary>
    public readonly ulong[] BranchTarget;
    public readonly bool[] Branch;
}
