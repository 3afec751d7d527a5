using Copra.Abi;

namespace Copra.User.Programs;

/// <summary>
/// A hostile process for fault injection: a seeded stream of garbage syscalls (real numbers with
/// garbage arguments, garbage numbers, pointers into nowhere and into the kernel half). It prints
/// how many calls returned each result class; the kernel must answer every one with success or a
/// defined error.
/// </summary>
public sealed class Rogue(int calls, ulong seed) : IUserProgram
{
    public Task Main(IUserContext ctx)
    {
        ulong s = seed | 1;
        ulong Next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
        ulong Arg()
        {
            return (Next() % 6) switch
            {
                0 => Next() % 8,                                  // small ints, plausible handles
                1 => ctx.DataBase + Next() % (ulong)ctx.DataSize, // inside its own memory
                2 => 0xFFFF_8000_0000_0000 + Next() % 0x1000_0000,// the kernel half
                3 => ulong.MaxValue - Next() % 64,                // wraps
                4 => (Next() % 0x10000) << 16 | Next() % 16,      // handle-shaped with generations
                _ => Next(),
            };
        }
        // No VM_OPEN: the rogue attacks the syscall surface, not the VMM's ownership of its VM.
        var nrs = SysNr.All.ToArray().Where(n => !SysNr.MayBlock(n) && n is not (SysNr.Exec or SysNr.ThreadCreate or SysNr.VmOpen)).ToArray();
        long ok = 0, errors = 0, undefined = 0;
        for (int i = 0; i < calls; i++)
        {
            ulong nr = Next() % 4 == 0 ? Next() : nrs[Next() % (ulong)nrs.Length];
            if (SysNr.MayBlock(nr) || nr is SysNr.Exec or SysNr.ThreadCreate or SysNr.VmOpen) continue;
            ulong a0 = Arg();
            if (nr == SysNr.Close && (uint)a0 == 0) continue;   // closing the console would silence the report below
            var r = ctx.SysCall(SysCallRegs.Make(nr, a0, Arg(), Arg(), Arg(), Arg()));
            if (!r.IsCompleted) { undefined++; continue; }
            long v = r.Result;
            if (v >= 0) ok++; else if (Errno.IsError(v)) errors++; else undefined++;
        }
        Sys.Print(ctx, $"rogue: {calls} calls: {ok} succeeded, {errors} defined errors, {undefined} undefined\n");
        return Task.CompletedTask;
    }
}
