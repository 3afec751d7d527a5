namespace Copra.Fuzz.Core;

/// <summary>SplitMix64: a case is a pure function of its seed, so any seed replays exactly. Not thread-safe.</summary>
public sealed class Rng(ulong seed)
{
    ulong _s = seed;

    public ulong Next64()
    {
        ulong z = _s += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n).</summary>
    public int Next(int n) => (int)((Next64() >> 32) * (ulong)n >> 32);
    public int Next(int lo, int hi) => lo + Next(hi - lo);
    public byte Byte() => (byte)Next64();
    public bool Chance(int percent) => Next(100) < percent;
    public T Pick<T>(ReadOnlySpan<T> items) => items[Next(items.Length)];
    public T Pick<T>(T[] items) => items[Next(items.Length)];
}
