using System.Reflection;
using System.Runtime.CompilerServices;
using Copra.Hot.Exit;

namespace Copra.Kernel.Run;

/// <summary>
/// Compiles the exit path before a run, so no measured exit pays for the JIT compiling the code it
/// runs for the first time (a kind seen twice in a run would otherwise report the JIT's milliseconds
/// as its median). Under NativeAOT there is nothing to do.
/// </summary>
public static class Prejit
{
    public static void ExitPath()
    {
        if (!RuntimeFeature.IsDynamicCodeSupported) return;
        Prepare(typeof(Core.Kernel));
        Prepare(typeof(Core.SysCallGate));
        Prepare(typeof(Core.KThread));
        Prepare(typeof(Core.Cpu));
        Prepare(typeof(Core.Trace));
        Prepare(typeof(ExitStats));
        Prepare(typeof(ExitPipeline<Core.Kernel.KernelExitHost>));
        Prepare(typeof(InFlight));
        Prepare(typeof(Exit.ModelledHost));
        Prepare(typeof(Backends.ReplayBackend));
        Prepare(typeof(Hot.Decode.X86Decoder));
        Prepare(typeof(Hot.Decode.IcedFallback));
        Prepare(typeof(Hot.Decode.WriteBack));
        Prepare(typeof(Hot.Decode.EffectiveAddress));
        Prepare(typeof(Hot.Guest.PageWalker));
        Prepare(typeof(Hot.Guest.InstructionFetcher));
        Prepare(typeof(Hot.Guest.GuestMemory));
        Prepare(typeof(Hot.Lookup.MmioRangeTable));
        Prepare(typeof(Hot.Lookup.PortTable));
        Prepare(typeof(Hot.State.VcpuStateStore));
    }

    static void Prepare([System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(
        System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicMethods | System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.NonPublicMethods)] Type t)
    {
        // A closed generic (the exit pipeline over the kernel's host) is prepared for its type arguments.
        RuntimeTypeHandle[]? instantiation = t.IsConstructedGenericType ? Array.ConvertAll(t.GenericTypeArguments, a => a.TypeHandle) : null;
        foreach (var m in t.GetMethods(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        {
            if (m.IsAbstract || m.ContainsGenericParameters) continue;
            try { RuntimeHelpers.PrepareMethod(m.MethodHandle, instantiation); }
            catch (ArgumentException) { }   // methods the runtime cannot prepare ahead (e.g. some interop stubs)
        }
    }
}
