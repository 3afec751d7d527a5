using System.Reflection;
using BenchmarkDotNet.Attributes;
using Copra.Bench;
using Xunit;
using Xunit.Abstractions;

namespace Copra.Tests.Bench;

/// <summary>
/// Every exit-path benchmark's measured operation allocates nothing in steady state (DESIGN: "No
/// allocation on this path in steady state"). Counted with the current thread's allocation counter
/// around many invocations; the deterministic driver runs the kernel, the guest backend and the device
/// models' green threads all on this thread, so everything an exit does is counted. Never timed.
/// </summary>
public class ExitPathAllocationTests(ITestOutputHelper output)
{
    const int Invocations = 2000;

    public static TheoryData<string> ExitBenchmarks()
    {
        var d = new TheoryData<string>();
        foreach (var m in typeof(ExitPathBench).GetMethods())
            if (m.GetCustomAttribute<BenchmarkAttribute>() is not null && m.Name.Contains("Exit", StringComparison.Ordinal)) d.Add(m.Name);
        return d;
    }

    [Fact]
    public void TheSuiteHasFiveExitBenchmarks() => Assert.Equal(5, ExitBenchmarks().Count);   // read, write, read-modify-write, port, forwarded

    [Theory]
    [MemberData(nameof(ExitBenchmarks))]
    public void ExitBenchmarkAllocatesNothingPerExit(string name)
    {
        var bench = new ExitPathBench();
        var method = typeof(ExitPathBench).GetMethod(name)!;
        var setup = typeof(ExitPathBench).GetMethods()
            .Single(m => m.GetCustomAttribute<GlobalSetupAttribute>() is { } g && g.Targets.Contains(name));
        setup.Invoke(bench, null);
        try
        {
            var run = method.CreateDelegate<Func<long>>(bench);
            for (int i = 0; i < 256; i++) run();   // past any first-use work
            // Steady state: some round of exits allocates nothing (see EveryBenchmarkAllocationTests).
            long allocated = long.MaxValue, steps = 0;
            for (int round = 0; round < 4 && allocated != 0; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < Invocations; i++) steps += run();
                allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            output.WriteLine($"{name}: {allocated} bytes over {Invocations} exits ({steps:N0} driver steps in all)");
            Assert.Equal(0, allocated);
        }
        finally
        {
            bench.Cleanup();
        }
    }
}
