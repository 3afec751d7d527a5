using System.Text;
using Copra.Abi;
using Copra.Cold;
using Copra.Kernel.Core;
using Copra.User;
using Xunit;
using KernelT = Copra.Kernel.Core.Kernel;

namespace Copra.Tests.Kernel;

/// <summary>A user program whose main is a lambda: the test's code running as a process.</summary>
public sealed class LambdaProgram(Func<IUserContext, Task> main) : IUserProgram
{
    public Task Main(IUserContext ctx) => main(ctx);
}

/// <summary>
/// Boots small kernels (no guest backend: nothing here enters a guest) and runs test code in them as
/// user processes. Assertions made inside a program would only crash that process, so
/// <see cref="Run"/> fails the test with the crash reason, and tests mostly record results into
/// locals and assert after the run.
/// </summary>
public static class KernelHarness
{
    public const ulong VmBase = 8UL << 20, VmLength = 8UL << 20;

    public static KernelT Boot(PlatformType platform = PlatformType.Snp, int vms = 1, int cpus = 2, bool keepTrace = false)
    {
        var specs = new List<VmSpec>();
        for (int i = 0; i < vms; i++) specs.Add(new VmSpec(2, VmBase + (ulong)i * VmLength, VmLength));
        return new KernelT(new KernelConfig { Cpus = cpus, Platform = platform, Vms = specs, KeepTrace = keepTrace });
    }

    /// <summary>Installs <paramref name="main"/> at <paramref name="path"/>, spawns it on <paramref name="cpu"/> and runs to quiescence.</summary>
    public static Process Run(KernelT k, Func<IUserContext, Task> main, string path = "/t", int cpu = 0)
    {
        var p = Start(k, main, path, cpu);
        Drive(k);
        return p;
    }

    public static Process Run(KernelT k, Action<IUserContext> main, string path = "/t", int cpu = 0) =>
        Run(k, ctx => { main(ctx); return Task.CompletedTask; }, path, cpu);

    public static Process Start(KernelT k, Func<IUserContext, Task> main, string path, int cpu = 0)
    {
        k.Install(path, () => new LambdaProgram(main));
        return k.Spawn(path, null, cpu);
    }

    /// <summary>Runs the deterministic driver to quiescence and checks that no process crashed and no kernel bug was caught.</summary>
    public static void Drive(KernelT k)
    {
        var r = k.RunDeterministic(1_000_000);
        Assert.True(r.Quiescent, "the kernel did not become quiescent");
        Assert.True(k.InternalErrors == 0, $"kernel internal error: {k.LastInternalError}");
        foreach (var p in k.Processes)
            Assert.False(p.ExitReason?.StartsWith("crash", StringComparison.Ordinal) ?? false, $"process {p} {p.ExitReason}");
    }

    public static long Call(IUserContext ctx, ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0) =>
        Sys.Call(ctx, nr, a0, a1, a2, a3, a4);

    public static ulong Path(IUserContext ctx, string s) => Sys.CString(ctx, s);

    /// <summary>Creates (or truncates) a file with the given text and returns a read/write handle positioned at 0.</summary>
    public static uint FileWith(IUserContext ctx, string path, string text)
    {
        uint h = Sys.Open(ctx, path, OpenMode.Read | OpenMode.Write | OpenMode.Trunc, OpenMode.FlagCreate);
        Sys.Write(ctx, h, Encoding.UTF8.GetBytes(text));
        Sys.CallChecked(ctx, SysNr.Seek, h, 0, SeekWhence.Set);
        return h;
    }

    /// <summary>READ into a fresh buffer; the text read, or the error code as text.</summary>
    public static string ReadText(IUserContext ctx, uint h, int max = 256)
    {
        ulong buf = Sys.Alloc(ctx, max);
        long n = Sys.Call(ctx, SysNr.Read, h, buf, (ulong)max);
        return n < 0 ? Errno.Name(n) : Encoding.UTF8.GetString(ctx.Memory(buf, (int)n));
    }
}
