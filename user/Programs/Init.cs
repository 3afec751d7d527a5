using Copra.Abi;

namespace Copra.User.Programs;

/// <summary>
/// The first process: asks which VMs the platform offers and starts one VMM per VM. It passes
/// nothing: each VMM opens its own VM (VM_OPEN is exclusive, so each VMM takes the next free one).
/// </summary>
public sealed class Init : IUserProgram
{
    public Task Main(IUserContext ctx)
    {
        ulong bitmap = Sys.Capabilities(ctx, Cap.VmBitmap);
        ulong platform = Sys.Capabilities(ctx, Cap.Features) & Cap.PlatformMask;
        int vms = System.Numerics.BitOperations.PopCount(bitmap);
        Sys.Print(ctx, $"init: platform {(PlatformType)platform}, {vms} VM(s) (bitmap 0x{bitmap:x})\n");
        for (int i = 0; i < vms; i++) Sys.Exec(ctx, Paths.Vmm);
        return Task.CompletedTask;
    }
}
