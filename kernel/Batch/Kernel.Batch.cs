using Copra.Abi;
using Copra.Cold;

namespace Copra.Kernel.Core;

public sealed partial class Kernel
{
    // ---- BATCH -------------------------------------------------------------------------------

    /// <summary>
    /// BATCH: runs the entries in order in this one kernel entry, one SysCallOut each; user_data is
    /// copied untouched; an entry's error does not stop the rest; blocking calls are refused (EINVAL);
    /// results are written only when all entries have run, so nothing counts as done before BATCH returns.
    /// </summary>
    internal long RunBatch(KThread t, ulong inVa, ulong outVa, ulong count)
    {
        if (count == 0) return 0;
        if (count > MaxBatch) throw KernelError.Inval($"at most {MaxBatch} entries per BATCH");
        var input = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, SysCallIn>(UserMemory.Span(t, inVa, count * SysCallIn.Size, write: false));
        UserMemory.Span(t, outVa, count * SysCallOut.Size, write: true);   // checked before anything runs
        int n = (int)count;
        // Pooled so a batch allocates nothing in steady state. The submission is copied first:
        // user memory may change under us, and what runs is what was submitted.
        var entries = System.Buffers.ArrayPool<SysCallIn>.Shared.Rent(n);
        var results = System.Buffers.ArrayPool<SysCallOut>.Shared.Rent(n);
        try
        {
            input.CopyTo(entries);
            int done = 0;
            for (; done < n; done++)
            {
                ref readonly var e = ref entries[done];
                var vt = Gate.Dispatch(t, SysCallRegs.Make(e.Nr, e.A0, e.A1, e.A2, e.A3, e.A4), inBatch: true);
                results[done] = new SysCallOut { Result = SysCallGate.Completed(vt), UserData = e.UserData };
                if (t.State == ThreadState.Dead) return 0;
            }
            var output = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, SysCallOut>(UserMemory.Span(t, outVa, count * SysCallOut.Size, write: true));
            results.AsSpan(0, n).CopyTo(output);
            return (long)count;
        }
        finally
        {
            System.Buffers.ArrayPool<SysCallIn>.Shared.Return(entries);
            System.Buffers.ArrayPool<SysCallOut>.Shared.Return(results);
        }
    }

    public const int MaxBatch = 4096;
}
