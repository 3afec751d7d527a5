namespace Copra.Hot.Lookup;

/// <summary>
/// Who owns an I/O port: a flat 64K-entry table of owner ids (0 = nobody). One load per lookup;
/// the table is 256 KiB, written only by (cold) registration, read by the exit path without a lock
/// (an int store is atomic; a registration racing an exit sees either the old or the new owner).
/// </summary>
public sealed class PortTable
{
    readonly int[] _owner = new int[65536];
    readonly object _writeLock = new();

    public int Lookup(ushort port) => Volatile.Read(ref _owner[port]);

    /// <summary>Claims [port, port+count). False if empty, past 0xFFFF, or any port is taken.</summary>
    public bool TryAdd(ulong port, ulong count, int owner)
    {
        if (count == 0 || port > 0xFFFF || port + count > 0x10000 || owner <= 0) return false;
        lock (_writeLock)
        {
            for (ulong p = port; p < port + count; p++) if (_owner[p] != 0) return false;
            for (ulong p = port; p < port + count; p++) Volatile.Write(ref _owner[p], owner);
            return true;
        }
    }

    public int RemoveOwner(int owner)
    {
        lock (_writeLock)
        {
            int n = 0;
            for (int p = 0; p < _owner.Length; p++) if (_owner[p] == owner) { Volatile.Write(ref _owner[p], 0); n++; }
            return n;
        }
    }
}
