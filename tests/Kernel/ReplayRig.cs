using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Iced.Intel;

namespace Copra.Tests.Kernel;

/// <summary>
/// Builds a one-vCPU replay program one exiting instruction at a time: each step's code is assembled into guest RAM
/// at the next free address and the step records what exit it causes, the registers and state its glue sets, and
/// what it must leave. The code runs at offset <c>rip</c> from a code-segment base <paramref name="csBase"/> (0 for flat
/// code), so 16-bit code can sit above 1 MiB behind a cached CS base, as after a far jump from protected mode.
/// </summary>
internal sealed class ReplayRig(GuestBuilder gb, ulong code, int bits, ulong csBase = 0)
{
    public readonly List<Step> Steps = [];
    ulong _rip = code - csBase;

    public Step Add(string text, Action<Assembler> insn, ExitReason reason, ulong gpa, byte size, bool write, (int, ulong)[] regs, (ulong, ulong)[] state, ushort port = 0, ulong? expect = null)
    {
        var asm = new Assembler(bits);
        var after = asm.CreateLabel();
        insn(asm);
        asm.Label(ref after);
        asm.nop();
        var assembled = gb.Assemble(_rip, csBase + _rip, asm);
        var s = new Step
        {
            Kind = StepKind.Access, Rip = _rip, Length = (int)(assembled.LabelAddress(after) - _rip), Text = text,
            Reason = reason, Gpa = gpa, Port = port, Size = size, Flags = write ? ExitFlags.Write : 0,
            Presets = regs, StatePresets = state, ExpectRax = expect, ExpectMask = 0xFFFF_FFFF,
        };
        s.Next = s.Rip + (ulong)s.Length;
        _rip = assembled.End;
        Steps.Add(s);
        return s;
    }

    public ReplayProgram Program()
    {
        var asm = new Assembler(bits);
        asm.hlt();
        var assembled = gb.Assemble(_rip, csBase + _rip, asm);
        var halt = new Step { Kind = StepKind.Halt, Rip = _rip, Length = (int)(assembled.End - _rip), Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" };
        halt.Next = assembled.End;
        var p = new ReplayProgram { Iterations = 1 };
        p.Steps.AddRange(Steps);
        p.Steps.Add(halt);
        p.LoopStart = p.LoopEnd = p.Steps.Count;
        return p;
    }
}
