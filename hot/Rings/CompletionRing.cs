// Design note — CompletionRing: the BATCH completion queue (io_uring's CQ) from the kernel
// (producer) back to one user thread (consumer), holding SysCallOut entries struct-of-arrays.
//
// Who may call what:
//   kernel (producer):      TryPush, Publish, Unpublished.
//   user thread (consumer): TryPop, PeekCount.
//   any thread:             Capacity.
// Nothing checks the caller.
//
// Invariant: see SpscCursor. Completions written by the kernel stay invisible until Publish, so
// a BATCH's results appear together ("nothing in a batch counts as done until BATCH returns")
// with one release store of Tail.
//
// Memory ordering: the two columns of a slot are plain stores ordered before the release store
// of Tail in Publish; the user's acquire load of Tail orders its column loads after it, and its
// release store of Head orders those loads before the kernel reuses the slot.
//
// Layout: struct-of-arrays, one column for Result and one for UserData, each Capacity long.
// Allocation: columns are allocated once in the constructor; no method allocates.
// The push/pop skeleton is SoaRing's; this file is the columns.

using Copra.Abi;

namespace Copra.Hot.Rings;

/// <summary>
/// BATCH completion ring: the kernel pushes <see cref="SysCallOut"/> entries and publishes them
/// in one store; the user thread pops them in order. Struct-of-arrays, power-of-two capacity.
/// </summary>
public sealed class CompletionRing(int capacity) : SoaRing<SysCallOut, CompletionRing.Columns>(capacity, n => new Columns(n))
{
    /// <summary>One column for Result and one for UserData, each Capacity long.</summary>
    public readonly struct Columns(int capacity) : IRingColumns<SysCallOut>
    {
        readonly long[] _result = new long[capacity];
        readonly ulong[] _userData = new ulong[capacity];

        public void Write(int i, in SysCallOut e) { At(_result, i) = e.Result; At(_userData, i) = e.UserData; }
        public void Read(int i, out SysCallOut e) { e.Result = At(_result, i); e.UserData = At(_userData, i); }
    }
}
