using System.Reflection;
using BenchmarkDotNet.Attributes;
using Copra.Bench;
using Xunit;
using Xunit.Abstractions;

namespace Copra.Tests.Bench;

/// <summary>
/// Every benchmark of every suite allocates nothing on its measured path (issue 5): each [Benchmark]
/// method, at its first and last [Params] value, is set up as BenchmarkDotNet would, warmed, then
/// invoked many times between two reads of this thread's allocation counter. Never timed.
/// </summary>
public class EveryBenchmarkAllocationTests(ITestOutputHelper output)
{
    const int Invocations = 200, Rounds = 5;

    public static TheoryData<string, string, int> Benchmarks()
    {
        var d = new TheoryData<string, string, int>();
        foreach (var t in typeof(ExitPathBench).Assembly.GetTypes())
        {
            if (t.IsAbstract) continue;
            var paramProps = ParamMembers(t);
            int variants = paramProps.Count == 0 ? 1 : 2;
            foreach (var m in t.GetMethods())
                if (m.GetCustomAttribute<BenchmarkAttribute>() is not null)
                    for (int v = 0; v < variants; v++) d.Add(t.FullName!, m.Name, v);
        }
        return d;
    }

    static List<(MemberInfo Member, object?[] Values)> ParamMembers(Type t) =>
        t.GetMembers(BindingFlags.Public | BindingFlags.Instance)
         .Where(m => m.GetCustomAttribute<ParamsAttribute>() is not null)
         .Select(m => (m, m.GetCustomAttribute<ParamsAttribute>()!.Values))
         .ToList();

    [Fact]
    public void Every_suite_is_covered()
    {
        var suites = Benchmarks().Select(row => (string)row[0]).Distinct().ToList();
        Assert.True(suites.Count >= 9, $"{suites.Count} suites: {string.Join(", ", suites)}");
    }

    [Theory]
    [MemberData(nameof(Benchmarks))]
    public void Benchmark_allocates_nothing_on_its_measured_path(string type, string method, int variant)
    {
        var t = typeof(ExitPathBench).Assembly.GetType(type)!;
        object bench = Activator.CreateInstance(t)!;
        foreach (var (member, values) in ParamMembers(t))
        {
            object? value = variant == 0 ? values[0] : values[^1];
            if (member is PropertyInfo p) p.SetValue(bench, value); else ((FieldInfo)member).SetValue(bench, value);
        }
        bool Targets(MethodInfo m, Type attr)
        {
            var a = m.GetCustomAttribute(attr);
            if (a is null) return false;
            var targets = (string[]?)attr.GetProperty("Targets")?.GetValue(a);
            return targets is null || targets.Length == 0 || targets.Contains(method);
        }
        foreach (var s in t.GetMethods().Where(m => Targets(m, typeof(GlobalSetupAttribute)))) s.Invoke(bench, null);
        try
        {
            var run = Bind(t.GetMethod(method)!, bench);
            foreach (var s in t.GetMethods().Where(m => Targets(m, typeof(IterationSetupAttribute)))) s.Invoke(bench, null);
            for (int i = 0; i < 512; i++) run();   // past any first-use work (pools, tiering)
            long allocated = Support.SteadyState.BytesPerRound(() => { for (int i = 0; i < Invocations; i++) run(); }, Rounds);
            output.WriteLine($"{t.Name}.{method} (params variant {variant}): {allocated} bytes over {Invocations} invocations (best of up to {Rounds} rounds)");
            Assert.True(allocated == 0, $"{t.Name}.{method} allocated {allocated} bytes over {Invocations} invocations in every one of {Rounds} rounds");
        }
        finally
        {
            foreach (var c in t.GetMethods().Where(m => Targets(m, typeof(GlobalCleanupAttribute)))) c.Invoke(bench, null);
        }
    }

    /// <summary>
    /// A strongly typed call of the benchmark method, so invoking it boxes nothing (MethodInfo.Invoke
    /// would box a value-type result on every call and hide the method's own allocations in noise).
    /// </summary>
    static Action Bind(MethodInfo m, object target)
    {
        if (m.ReturnType == typeof(void)) return m.CreateDelegate<Action>(target);
        var helper = typeof(EveryBenchmarkAllocationTests).GetMethod(nameof(BindTyped), BindingFlags.NonPublic | BindingFlags.Static)!;
        return (Action)helper.MakeGenericMethod(m.ReturnType).Invoke(null, [m, target])!;
    }

    static Action BindTyped<T>(MethodInfo m, object target)
    {
        var f = m.CreateDelegate<Func<T>>(target);
        return () => Sink<T>.Value = f();
    }

    static class Sink<T> { public static T? Value; }
}
