using System.Runtime.CompilerServices;
using Copra.Hot.Layout;

namespace Copra.Hot.Lookup;

/// <summary>
/// Who owns a guest-physical address: sorted, non-overlapping ranges, searched by binary search
/// behind a per-vCPU last-hit cache (a driver hammering one device hits the cache every time).
///
/// Concurrency: registration (cold, rare) builds a new immutable <see cref="Snapshot"/> and
/// publishes it with one release store; the exit path reads the current snapshot with one acquire
/// load and never locks. The cache holds an index into a snapshot plus that snapshot's version, so a
/// stale hit after a re-registration is detected and falls back to the search.
/// Owners are small positive ints chosen by the caller (0 means "nobody").
/// </summary>
public sealed class MmioRangeTable
{
    /// <summary>The ranges sorted by start, as rows (the cache hit reads one row: one bounds check, not one per field).</summary>
    sealed class Snapshot(Range[] ranges, int version)
    {
        public readonly Range[] Ranges = ranges;
        public readonly int Version = version;
    }

    /// <summary>[Start, End) and its owner.</summary>
    readonly record struct Range(ulong Start, ulong End, int Owner);

    Snapshot _snap = new([], 0);
    readonly VcpuColumn<int> _lastHit;       // per vCPU: index into the snapshot named by _lastVersion (own cache-line pair)
    readonly VcpuColumn<int> _lastVersion;
    readonly object _writeLock = new();

    // Per vCPU: the gap [_gapLo, _gapHi) between ranges its last miss fell in, valid in the snapshot named by _gapVersion.
    // Why: an address nobody registered (forwarded to the host, or re-injected) missed the last-hit cache and searched
    // on every exit; a driver polling one such register now answers from the gap as it does from a range.
    readonly VcpuColumn<ulong> _gapLo, _gapHi;
    readonly VcpuColumn<int> _gapVersion;

    public MmioRangeTable(int vcpus)
    {
        _lastHit = new(Math.Max(1, vcpus));
        _lastVersion = new(Math.Max(1, vcpus));
        _lastVersion.Fill(-1);
        _gapLo = new(Math.Max(1, vcpus)); _gapHi = new(Math.Max(1, vcpus));
        _gapVersion = new(Math.Max(1, vcpus));
        _gapVersion.Fill(-1);
        _hits = new(Math.Max(1, vcpus)); _misses = new(Math.Max(1, vcpus));
    }

    readonly VcpuColumn<long> _hits, _misses;   // per vCPU: a VM's vCPUs may run on two CPUs
    /// <summary>Lookups served by a vCPU's last range or last gap, and lookups that searched, summed over the vCPUs.</summary>
    public long Hits { get { long n = 0; for (int v = 0; v < _hits.Count; v++) n += _hits[v]; return n; } }
    public long Misses { get { long n = 0; for (int v = 0; v < _misses.Count; v++) n += _misses[v]; return n; } }

    public int Count => Volatile.Read(ref _snap).Ranges.Length;

    /// <summary>The current snapshot's version: every registration and removal publishes a new one, so an answer read from
    /// a snapshot holds for as long as this is the version it had.</summary>
    public int Version
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _snap).Version;
    }

    /// <summary>
    /// The range holding <paramref name="gpa"/> in the current snapshot, with the snapshot's version, read without the
    /// per-vCPU caches and without counting (a memo entry records it once; ExitPipeline.Plain.cs). False in a gap.
    /// </summary>
    public bool TryFind(ulong gpa, out int version, out ulong start, out ulong end, out int owner)
    {
        var s = Volatile.Read(ref _snap);
        version = s.Version;
        int i = StartingAtOrBelow(s.Ranges, gpa) - 1;
        if (i < 0 || gpa >= s.Ranges[i].End) { start = end = 0; owner = 0; return false; }
        (start, end, owner) = (s.Ranges[i].Start, s.Ranges[i].End, s.Ranges[i].Owner);
        return true;
    }

    /// <summary>Adds [start, start+length). False if it wraps, is empty, or overlaps a registered range.</summary>
    public bool TryAdd(ulong start, ulong length, int owner)
    {
        if (length == 0 || start + length < start || owner <= 0) return false;
        ulong end = start + length;
        lock (_writeLock)
        {
            var r = _snap.Ranges;
            int i = StartingAtOrBelow(r, start);   // a range starting at start too is i - 1, and overlaps
            if (i > 0 && r[i - 1].End > start) return false;
            if (i < r.Length && r[i].Start < end) return false;
            Publish([.. r.AsSpan(..i), new Range(start, end, owner), .. r.AsSpan(i..)]);
            return true;
        }
    }

    /// <summary>Removes every range of <paramref name="owner"/>; returns how many.</summary>
    public int RemoveOwner(int owner)
    {
        lock (_writeLock)
        {
            var r = _snap.Ranges;
            var keep = r.Where(x => x.Owner != owner).ToArray();
            int removed = r.Length - keep.Length;
            if (removed > 0) Publish(keep);
            return removed;
        }
    }

    /// <summary>The next snapshot, under the write lock: a version no earlier snapshot had, so no cache entry names it.</summary>
    void Publish(Range[] ranges) => Volatile.Write(ref _snap, new Snapshot(ranges, _snap.Version + 1));

    /// <summary>How many ranges start at or below <paramref name="address"/> (the index of the first that starts above it).</summary>
    static int StartingAtOrBelow(Range[] r, ulong address)
    {
        int lo = 0, hi = r.Length;
        while (lo < hi) { int mid = (lo + hi) >>> 1; if (r[mid].Start <= address) lo = mid + 1; else hi = mid; }
        return lo;
    }

    /// <summary>
    /// The owner of [gpa, gpa+size) and its range, or 0. An access that starts in a range but runs
    /// past its end reports the owner with <paramref name="straddles"/> set (the caller refuses it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(int vcpu, ulong gpa, uint size, out ulong rangeStart, out bool straddles)
    {
        var s = Volatile.Read(ref _snap);
        int i = _lastHit[vcpu];
        if (_lastVersion[vcpu] == s.Version)
        {
            ref readonly var r = ref s.Ranges[i];
            if (gpa - r.Start < r.End - r.Start)
            {
                _hits[vcpu]++;
                rangeStart = r.Start;
                straddles = gpa + size > r.End;
                return r.Owner;
            }
        }
        // In the gap the last miss found, and ending there too (an access running into the next range is a straddle).
        if (_gapVersion[vcpu] == s.Version && gpa >= _gapLo[vcpu] && gpa < _gapHi[vcpu] && size <= _gapHi[vcpu] - gpa)
        {
            _hits[vcpu]++;
            rangeStart = 0; straddles = false;
            return 0;
        }
        return LookupSlow(s, vcpu, gpa, size, out rangeStart, out straddles);
    }

    int LookupSlow(Snapshot s, int vcpu, ulong gpa, uint size, out ulong rangeStart, out bool straddles)
    {
        _misses[vcpu]++;
        rangeStart = 0; straddles = false;
        var r = s.Ranges;
        int lo = StartingAtOrBelow(r, gpa), i = lo - 1;   // i: the last range starting at or below gpa
        if (i < 0 || gpa >= r[i].End)
        {
            // The access may start below a range and run into it: that is a straddle too.
            if (lo < r.Length && gpa + size > r[lo].Start) { straddles = true; rangeStart = r[lo].Start; return r[lo].Owner; }
            _gapLo[vcpu] = i < 0 ? 0 : r[i].End;
            _gapHi[vcpu] = lo < r.Length ? r[lo].Start : ulong.MaxValue;
            _gapVersion[vcpu] = s.Version;
            return 0;
        }
        _lastHit[vcpu] = i;
        _lastVersion[vcpu] = s.Version;
        rangeStart = r[i].Start;
        straddles = gpa + size > r[i].End;
        return r[i].Owner;
    }
}
