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
    sealed class Snapshot(ulong[] starts, ulong[] ends, int[] owners, int version)
    {
        public readonly ulong[] Starts = starts;   // inclusive
        public readonly ulong[] Ends = ends;       // exclusive
        public readonly int[] Owners = owners;
        public readonly int Version = version;
        /// <summary>The same ranges as rows, for the cache hit: one bounds check for the row instead of one per array read.</summary>
        public readonly Range[] Ranges = [.. starts.Select((start, i) => new Range(start, ends[i], owners[i]))];
    }

    readonly record struct Range(ulong Start, ulong End, int Owner);

    Snapshot _snap = new([], [], [], 0);
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

    public int Count => Volatile.Read(ref _snap).Starts.Length;

    /// <summary>Adds [start, start+length). False if it wraps, is empty, or overlaps a registered range.</summary>
    public bool TryAdd(ulong start, ulong length, int owner)
    {
        if (length == 0 || start + length < start || owner <= 0) return false;
        ulong end = start + length;
        lock (_writeLock)
        {
            var s = _snap;
            int i = LowerBound(s.Starts, start);
            if (i > 0 && s.Ends[i - 1] > start) return false;
            if (i < s.Starts.Length && s.Starts[i] < end) return false;
            Publish(Insert(s.Starts, i, start), Insert(s.Ends, i, end), Insert(s.Owners, i, owner), s.Version + 1);
            return true;
        }
    }

    /// <summary>Removes every range of <paramref name="owner"/>; returns how many.</summary>
    public int RemoveOwner(int owner)
    {
        lock (_writeLock)
        {
            var s = _snap;
            var keep = Enumerable.Range(0, s.Starts.Length).Where(i => s.Owners[i] != owner).ToArray();
            int removed = s.Starts.Length - keep.Length;
            if (removed > 0)
                Publish(keep.Select(i => s.Starts[i]).ToArray(), keep.Select(i => s.Ends[i]).ToArray(),
                        keep.Select(i => s.Owners[i]).ToArray(), s.Version + 1);
            return removed;
        }
    }

    void Publish(ulong[] starts, ulong[] ends, int[] owners, int version) =>
        Volatile.Write(ref _snap, new Snapshot(starts, ends, owners, version));

    static T[] Insert<T>(T[] a, int i, T v)
    {
        var r = new T[a.Length + 1];
        Array.Copy(a, 0, r, 0, i);
        r[i] = v;
        Array.Copy(a, i, r, i + 1, a.Length - i);
        return r;
    }

    static int LowerBound(ulong[] a, ulong key)
    {
        int lo = 0, hi = a.Length;
        while (lo < hi) { int mid = (lo + hi) >>> 1; if (a[mid] < key) lo = mid + 1; else hi = mid; }
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
        // Last range whose start <= gpa.
        int lo = 0, hi = s.Starts.Length;
        while (lo < hi) { int mid = (lo + hi) >>> 1; if (s.Starts[mid] <= gpa) lo = mid + 1; else hi = mid; }
        int i = lo - 1;
        if (i < 0 || gpa >= s.Ends[i])
        {
            // The access may start below a range and run into it: that is a straddle too.
            if (lo < s.Starts.Length && gpa + size > s.Starts[lo]) { straddles = true; rangeStart = s.Starts[lo]; return s.Owners[lo]; }
            _gapLo[vcpu] = i < 0 ? 0 : s.Ends[i];
            _gapHi[vcpu] = lo < s.Starts.Length ? s.Starts[lo] : ulong.MaxValue;
            _gapVersion[vcpu] = s.Version;
            return 0;
        }
        _lastHit[vcpu] = i;
        _lastVersion[vcpu] = s.Version;
        rangeStart = s.Starts[i];
        straddles = gpa + size > s.Ends[i];
        return s.Owners[i];
    }
}
