using System.Buffers.Binary;
using Copra.Abi;

namespace Copra.User.Programs;

/// <summary>
/// An MMIO test device (handle 1: its MMIO event object, handle 2: its IRQ object, both received by
/// EXEC). Registers: identity, version, a 32-bit and a 64-bit scratch register, a status register
/// whose ready bit drops for a few reads after each doorbell, a doorbell that raises the IRQ, an
/// IRQ counter, a checksum of the data window's first 256 bytes, a ticker that moves on after every read of it, and a
/// 4 KiB data window taking any access size (up to 64 bytes: wide accesses arrive whole in the area's Payload).
/// Locked writes are compare-and-write: applied only if the location still holds Expected, else answered Mismatch
/// with its current value (the window, the scratch registers and the ticker hold state; other registers always match).
/// </summary>
public sealed class TestDevice : IUserProgram
{
    readonly byte[] _window = new byte[TestDeviceRegs.WindowSize];
    uint _scratch;
    ulong _scratch64;
    int _busy;
    uint _irqs, _doorbells, _ticker;
    long _accesses;

    /// <summary>Fault injection: crash (throw, with the access unanswered) on this access; -1 never.</summary>
    public long CrashAt { get; init; } = -1;

    public async Task Main(IUserContext ctx)
    {
        const uint events = 1, irq = 2;
        var area = ctx.View<EventArea>(Sys.Mmap(ctx, events, 0, Page.Size));   // read directly on every access
        while (true)
        {
            long r = await Sys.WaitForEvent(ctx, events);
            if (Errno.IsError(r)) break;
            ref var a = ref area.Value;
            if (a.State != EventState.Pending) continue;
            if (++_accesses == CrashAt) throw new InvalidOperationException($"injected crash at access {_accesses}");
            ulong off = a.Address & (TestDeviceRegs.RangeSize - 1);
            int size = (int)a.Size;
            if (a.Direction == AccessDirection.Write && (a.Flags & EventFlags.Locked) != 0 && !StillHolds(off, ref a))
            {
                a.Result = LockResult.Mismatch;   // current value already in Data/Payload
            }
            else if (a.Direction == AccessDirection.Write)
            {
                if (size > 8) WindowWrite(off, a.Payload[..size]);
                else if (Write(off, size, a.Data)) { _irqs++; Sys.EventSignal(ctx, irq); }
            }
            else if (size > 8) WindowRead(off, a.Payload[..size]);
            else a.Data = Read(off, size);
            a.PublishState(EventState.Done);
        }
    }

    /// <summary>
    /// A locked write: true when the location still holds the value the locked read returned. Otherwise puts the
    /// current value where a read's answer goes (Data, or Payload for 16 bytes) and returns false.
    /// </summary>
    bool StillHolds(ulong off, ref EventArea a)
    {
        int size = (int)a.Size;
        if (size > 8)
        {
            Span<byte> now = stackalloc byte[16];
            WindowRead(off, now[..size]);
            Span<byte> expected = stackalloc byte[16];
            BitConverter.TryWriteBytes(expected, a.Expected);
            BitConverter.TryWriteBytes(expected[8..], a.ExpectedHigh);
            if (now[..size].SequenceEqual(expected[..size])) return true;
            now[..size].CopyTo(a.Payload);
            return false;
        }
        ulong mask = size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        ulong? current = off >= TestDeviceRegs.Window ? Read(off, size)
            : off switch
            {
                TestDeviceRegs.Scratch => _scratch,
                TestDeviceRegs.Scratch64 => _scratch64,
                TestDeviceRegs.Ticker => _ticker,
                _ => null,
            };
        if (current is not { } c || (c & mask) == (a.Expected & mask)) return true;
        a.Data = c & mask;
        return false;
    }

    void WindowRead(ulong off, Span<byte> dest)
    {
        dest.Clear();
        if (off < TestDeviceRegs.Window) return;
        int o = (int)(off - TestDeviceRegs.Window);
        for (int i = 0; i < dest.Length && o + i < _window.Length; i++) dest[i] = _window[o + i];
    }

    void WindowWrite(ulong off, ReadOnlySpan<byte> src)
    {
        if (off < TestDeviceRegs.Window) return;
        int o = (int)(off - TestDeviceRegs.Window);
        for (int i = 0; i < src.Length && o + i < _window.Length; i++) _window[o + i] = src[i];
    }

    ulong Read(ulong off, int size)
    {
        if (off >= TestDeviceRegs.Window)
        {
            int o = (int)(off - TestDeviceRegs.Window);
            // Whole inside the window (every access of the workloads): one little-endian load, not a loop of byte loads.
            if ((uint)o <= (uint)(_window.Length - size))
                switch (size)
                {
                    case 1: return _window[o];
                    case 2: return BinaryPrimitives.ReadUInt16LittleEndian(_window.AsSpan(o));
                    case 4: return BinaryPrimitives.ReadUInt32LittleEndian(_window.AsSpan(o));
                    case 8: return BinaryPrimitives.ReadUInt64LittleEndian(_window.AsSpan(o));
                }
            ulong v = 0;
            for (int i = 0; i < size && o + i < _window.Length; i++) v |= (ulong)_window[o + i] << (8 * i);
            return v;
        }
        return off switch
        {
            TestDeviceRegs.Id => TestDeviceRegs.IdValue,
            TestDeviceRegs.Version => TestDeviceRegs.VersionValue,
            TestDeviceRegs.Scratch => _scratch,
            TestDeviceRegs.Scratch64 => _scratch64,
            TestDeviceRegs.Status => ReadStatus(),
            TestDeviceRegs.IrqCount => _irqs,
            TestDeviceRegs.Checksum => Checksum(),
            TestDeviceRegs.DoorbellCount => _doorbells,
            TestDeviceRegs.Ticker => _ticker++,
            _ => 0,
        };
    }

    /// <summary>Busy (0) for <see cref="TestDeviceRegs.BusyReads"/> reads after a doorbell, then ready.</summary>
    ulong ReadStatus()
    {
        if (_busy == 0) return TestDeviceRegs.StatusReady;
        _busy--;
        return 0;
    }

    /// <summary>Sum of the first <see cref="TestDeviceRegs.ChecksumBytes"/> bytes of the window (the rest is scratch for other vCPUs).</summary>
    uint Checksum()
    {
        uint s = 0;
        for (int i = 0; i < TestDeviceRegs.ChecksumBytes; i++) s += _window[i];
        return s;
    }

    /// <summary>Returns true when the write rang the doorbell (raise the IRQ).</summary>
    bool Write(ulong off, int size, ulong value)
    {
        if (off >= TestDeviceRegs.Window)
        {
            int o = (int)(off - TestDeviceRegs.Window);
            if ((uint)o <= (uint)(_window.Length - size))
                switch (size)
                {
                    case 1: _window[o] = (byte)value; return false;
                    case 2: BinaryPrimitives.WriteUInt16LittleEndian(_window.AsSpan(o), (ushort)value); return false;
                    case 4: BinaryPrimitives.WriteUInt32LittleEndian(_window.AsSpan(o), (uint)value); return false;
                    case 8: BinaryPrimitives.WriteUInt64LittleEndian(_window.AsSpan(o), value); return false;
                }
            for (int i = 0; i < size && o + i < _window.Length; i++) _window[o + i] = (byte)(value >> (8 * i));
            return false;
        }
        switch (off)
        {
            case TestDeviceRegs.Scratch: _scratch = (uint)value; return false;
            case TestDeviceRegs.Scratch64: _scratch64 = value; return false;
            case TestDeviceRegs.Ticker: _ticker = (uint)value; return false;
            case TestDeviceRegs.Doorbell:
                _doorbells++;
                _busy = TestDeviceRegs.BusyReads;
                return true;
            default: return false;
        }
    }
}
