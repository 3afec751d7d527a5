// Design note — SubmissionRing: the BATCH submission queue (io_uring's SQ) between one user
// thread (producer) and the kernel (consumer), holding SysCallIn entries struct-of-arrays.
//
// Who may call what:
//   user thread (producer): TryPush, Publish, Unpublished.
//   kernel (consumer):      TryPop, PeekCount.
//   any thread:             Capacity.
// A user-side builder wraps the producer half; the kernel drains the consumer half on its
// entry path. Nothing checks the caller.
//
// Invariant: see SpscCursor. Pushed entries are invisible to the kernel until Publish; a batch
// of k pushes costs k slot writes and one release store of Tail. TryPop releases each entry as
// it reads it, so the producer gets space back without waiting for the whole batch.
//
// Memory ordering: the seven columns of a slot are plain stores, all ordered before the release
// store of Tail in Publish; the kernel's acquire load of Tail orders its column loads after it.
// The kernel's release store of Head after loading the columns orders those loads before the
// user's next acquire of Head and its overwrite of the slot.
//
// Layout: struct-of-arrays, one column per SysCallIn field (Nr, A0..A4, UserData), each
// Capacity long, so the kernel's dispatch on Nr streams through one dense array.
// Allocation: columns are allocated once in the constructor; no method allocates.
// The push/pop skeleton is SoaRing's; this file is the columns.

using Copra.Abi;

namespace Copra.Hot.Rings;

/// <summary>
/// BATCH submission ring: a user thread pushes <see cref="SysCallIn"/> entries and publishes them
/// in one store; the kernel pops them in order. Struct-of-arrays, power-of-two capacity.
/// </summary>
public sealed class SubmissionRing(int capacity) : SoaRing<SysCallIn, SubmissionRing.Columns>(capacity, n => new Columns(n))
{
    /// <summary>One column per SysCallIn field, each Capacity long.</summary>
    public readonly struct Columns(int capacity) : IRingColumns<SysCallIn>
    {
        readonly ulong[] _nr = new ulong[capacity], _a0 = new ulong[capacity], _a1 = new ulong[capacity],
            _a2 = new ulong[capacity], _a3 = new ulong[capacity], _a4 = new ulong[capacity], _userData = new ulong[capacity];

        public void Write(int i, in SysCallIn e)
        {
            At(_nr, i) = e.Nr; At(_a0, i) = e.A0; At(_a1, i) = e.A1; At(_a2, i) = e.A2;
            At(_a3, i) = e.A3; At(_a4, i) = e.A4; At(_userData, i) = e.UserData;
        }

        public void Read(int i, out SysCallIn e)
        {
            e.Nr = At(_nr, i); e.A0 = At(_a0, i); e.A1 = At(_a1, i); e.A2 = At(_a2, i);
            e.A3 = At(_a3, i); e.A4 = At(_a4, i); e.UserData = At(_userData, i);
        }
    }
}
