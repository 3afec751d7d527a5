namespace Copra.User.Programs;

/// <summary>Where the standard programs are installed in the filesystem.</summary>
public static class Paths
{
    public const string Init = "/init";
    public const string Vmm = "/bin/vmm";
    public const string Uart = "/bin/uart16550";
    public const string TestDevice = "/bin/testdev";
}

/// <summary>The test device's register map (offsets in its 8 KiB MMIO range).</summary>
public static class TestDeviceRegs
{
    public const ulong Id = 0x00, Version = 0x04, Scratch = 0x08, Scratch64 = 0x10, Status = 0x18, Doorbell = 0x1C;
    public const ulong IrqCount = 0x20, Checksum = 0x24, DoorbellCount = 0x28;
    /// <summary>A counter the device advances on its own after every read of it (so a locked read-modify-write of it sees it move).</summary>
    public const ulong Ticker = 0x30;
    public const ulong Window = 0x1000, WindowSize = 0x1000, RangeSize = 0x2000;
    /// <summary>CHECKSUM covers the window's first 256 bytes; loop traffic stays above them.</summary>
    public const int ChecksumBytes = 256;
    public const uint IdValue = 0xC0B2_A001, VersionValue = 0x0001_0002;
    public const uint StatusReady = 1;
    /// <summary>After a doorbell the device is busy for this many STATUS reads (so a guest's poll loop must really loop).</summary>
    public const int BusyReads = 2;
}

/// <summary>Per-VM configuration the kernel writes to /etc/vmN.conf for the VMM.</summary>
/// <remarks>
/// <see cref="StateFields"/> and <see cref="Batch"/> turn on the tuning workload: on every exit it handles, each vCPU
/// thread reads <see cref="StateFields"/> state fields (one GET_STATE each) and writes every fourth back (one SET_STATE
/// each), submitting those calls <see cref="Batch"/> at a time through BATCH (1 = plain syscalls).
/// </remarks>
public sealed record VmmConfig(ulong UartPort, ulong TestDeviceBase, ulong IrqVector, bool Reinject, int StateFields = 0, int Batch = 1)
{
    public string Serialize() =>
        $"uart=0x{UartPort:x}\ntestdev=0x{TestDeviceBase:x}\nirq=0x{IrqVector:x}\nunhandled={(Reinject ? "reinject" : "forward")}\n" +
        $"state_fields={StateFields}\nbatch={Batch}\n";

    public static VmmConfig Parse(string text)
    {
        var kv = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2)
            .ToDictionary(p => p[0].Trim(), p => p[1].Trim());
        static ulong Num(string s) => s.StartsWith("0x") ? Convert.ToUInt64(s[2..], 16) : ulong.Parse(s);
        return new VmmConfig(
            kv.TryGetValue("uart", out var u) ? Num(u) : 0,
            kv.TryGetValue("testdev", out var t) ? Num(t) : 0,
            kv.TryGetValue("irq", out var i) ? Num(i) : 0,
            kv.TryGetValue("unhandled", out var r) && r == "reinject",
            kv.TryGetValue("state_fields", out var f) ? int.Parse(f) : 0,
            kv.TryGetValue("batch", out var b) ? int.Parse(b) : 1);
    }
}
