using System.Reflection;
using Copra.Hot.Decode;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.Layout;
using Copra.Hot.Lookup;
using Copra.Hot.Rings;
using Copra.Hot.State;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Layout;

/// <summary>
/// No two vCPUs share a cache line in any per-vCPU table the exit path writes (hot/Layout/VcpuColumn.cs): two VMs on
/// two CPUs made every column's shared line bounce on every exit. Checked by address, not by timing: for every column
/// of every table, each vCPU's entries lie in 128-byte-aligned blocks (the adjacent-line prefetcher's pair) that no
/// other vCPU's entries touch; and no table holds a plain array (dense, vCPUs side by side) unless listed below with
/// the reason it is not written per exit.
/// </summary>
public class VcpuColumnLayoutTests
{
    const int Vcpus = 3;

    /// <summary>Array fields that are allowed, with why.</summary>
    static readonly Dictionary<string, string> s_arraysAllowed = new()
    {
        ["VcpuStateStore._acct"] = "128-byte explicit-layout slots, checked by address in its own test",
        ["ReplayBackend._programs"] = "read only after construction",
        ["ReplayBackend.<ExceptionsByVector>k__BackingField"] = "indexed by vector, written only when an exception is raised",
    };

    static IEnumerable<object> Tables(CopraSystem sys)
    {
        yield return new InFlight(Vcpus);
        var store = new VcpuStateStore(Vcpus, StateAccessCost.Tdx);
        yield return store;
        // The x87/MMX/MXCSR columns sit in a nested object of the store.
        yield return typeof(VcpuStateStore).GetField("_x87", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(store)!;
        yield return new DecodeCache(Vcpus);
        yield return new DataTlb(Vcpus);
        yield return new InstructionFetcher(Vcpus);
        yield return new MmioRangeTable(Vcpus);
        yield return sys.Replay!;
    }

    static long Block(nint address) => address / CacheLine.Separation;

    [Fact]
    public void No_two_vcpus_share_a_cache_line_in_any_per_vcpu_column()
    {
        var sc = Scenario.Default() with { Vms = [Scenario.Default().Vms[0] with { Vcpus = Vcpus }] };
        using var sys = new CopraSystem(sc);
        int columns = 0;
        foreach (object table in Tables(sys))
        {
            foreach (FieldInfo f in table.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                string name = $"{table.GetType().Name}.{f.Name}";
                if (f.FieldType.IsArray)
                {
                    Assert.True(s_arraysAllowed.ContainsKey(name), $"{name} is a plain array: vCPUs side by side share cache lines (use VcpuColumn/VcpuWays)");
                    continue;
                }
                if (f.GetValue(table) is not IVcpuColumn col) continue;
                columns++;
                Assert.True(col.Count >= Vcpus, $"{name}: {col.Count} rows");
                var owner = new Dictionary<long, int>();
                for (int v = 0; v < Vcpus; v++)
                {
                    nint first = col.Address(v, 0), last = col.Address(v, col.Ways - 1) + col.ElementSize - 1;
                    for (long b = Block(first); b <= Block(last); b++)
                    {
                        Assert.False(owner.TryGetValue(b, out int other) && other != v,
                            $"{name}: vCPU {other} and vCPU {v} share the 128-byte block at 0x{b * CacheLine.Separation:x}");
                        owner[b] = v;
                    }
                    if (v > 0) Assert.NotEqual(col.Address(v - 1, 0) / CacheLine.Size, first / CacheLine.Size);
                }
            }
        }
        Assert.True(columns >= 60, $"only {columns} columns found: the tables' fields moved out of sight of this test");
    }

    /// <summary>The exit's scalars share one line pair per vCPU (InFlight.Row): a field that pushed the row past 128 bytes
    /// would double what every exit touches.</summary>
    [Fact]
    public void The_in_flight_row_is_one_line_pair() => Assert.Equal(CacheLine.Separation, VcpuColumn<InFlightRow>.Stride);

    [Fact]
    public void The_state_stores_accounting_slots_keep_vcpus_128_bytes_apart()
    {
        var st = new VcpuStateStore(Vcpus, StateAccessCost.Tdx);
        var acct = (Array)typeof(VcpuStateStore).GetField("_acct", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(st)!;
        Type slot = acct.GetType().GetElementType()!;
        Assert.Equal(128, System.Runtime.InteropServices.Marshal.SizeOf(slot));
        foreach (string field in new[] { "Valid", "Dirty", "Reads", "Writes" })
            Assert.InRange((int)System.Runtime.InteropServices.Marshal.OffsetOf(slot, field), 64, 128 - 8);
    }

    [Fact]
    public void A_column_starts_on_a_separation_boundary_and_strides_by_whole_pairs()
    {
        var one = new VcpuColumn<ulong>(4);
        Assert.Equal(0, one.Address(0, 0) % CacheLine.Separation);
        Assert.Equal(CacheLine.Separation, (int)(one.Address(1, 0) - one.Address(0, 0)));
        var ways = new VcpuWays<ulong>(4, 20);   // 160 bytes a vCPU: two pairs
        Assert.Equal(0, ways.Address(0, 0) % CacheLine.Separation);
        Assert.Equal(2 * CacheLine.Separation, (int)(ways.Address(1, 0) - ways.Address(0, 0)));
        Assert.Equal(8, (int)(ways.Address(1, 1) - ways.Address(1, 0)));
        ways.At(3, 19) = 7; ways.Row(2).Fill(5);
        Assert.Equal(7UL, ways.At(3, 19));
        Assert.Equal(0UL, ways.At(3, 18));
        Assert.Equal(5UL, ways.At(2, 19));
        Assert.Equal(0UL, ways.At(1, 19));
    }
}
