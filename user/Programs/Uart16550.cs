using System.Text;
using Copra.Abi;

namespace Copra.User.Programs;

/// <summary>
/// A 16550 UART on 8 ports (handle 1: its IOIO event object). Transmit is always ready (LSR THRE
/// and TEMT set); what the guest writes to THR goes to this process's console a line at a time.
/// The divisor latch, IER, LCR, MCR and scratch registers hold what is written.
/// </summary>
public sealed class Uart16550 : IUserProgram
{
    const byte LsrThre = 0x20, LsrTemt = 0x40, LcrDlab = 0x80;
    readonly byte[] _regs = new byte[8];
    byte _dll = 1, _dlm;
    readonly StringBuilder _line = new();
    long _accesses;

    /// <summary>Fault injection: from this access on, never answer (the vCPU waits); -1 never.</summary>
    public long SilentFrom { get; init; } = -1;

    public async Task Main(IUserContext ctx)
    {
        const uint events = 1;
        var area = ctx.View<EventArea>(Sys.Mmap(ctx, events, 0, Page.Size));   // read directly on every access
        while (true)
        {
            long r = await Sys.WaitForEvent(ctx, events);
            if (Errno.IsError(r)) break;
            ref var a = ref area.Value;
            if (a.State != EventState.Pending) continue;
            if (++_accesses >= SilentFrom && SilentFrom > 0) continue;   // hold the access, answer nothing
            int reg = (int)(a.Address & 7);
            if (a.Direction == AccessDirection.Write) Write(ctx, reg, (byte)a.Data);
            else a.Data = Read(reg);
            a.PublishState(EventState.Done);   // the next WAIT_FOR_EVENT hands the answer to the kernel
        }
    }

    byte Read(int reg)
    {
        bool dlab = (_regs[3] & LcrDlab) != 0;
        return reg switch
        {
            0 => dlab ? _dll : (byte)0,
            1 => dlab ? _dlm : _regs[1],
            2 => 0x01,                       // IIR: no interrupt pending
            5 => LsrThre | LsrTemt,
            6 => 0xB0,                       // MSR: CTS, DSR, DCD
            _ => _regs[reg],
        };
    }

    void Write(IUserContext ctx, int reg, byte value)
    {
        bool dlab = (_regs[3] & LcrDlab) != 0;
        if (reg == 0 && dlab) { _dll = value; return; }
        if (reg == 1 && dlab) { _dlm = value; return; }
        if (reg == 0)
        {
            if (value == '\n') { Sys.Print(ctx, _line.Append('\n').ToString()); _line.Clear(); }
            else if (value != '\r') _line.Append((char)value);
            return;
        }
        _regs[reg] = value;
    }
}
