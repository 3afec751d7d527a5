using Copra.Abi;
using Copra.Kernel.Machine;

namespace Copra.Kernel.Core;

/// <summary>
/// The kernel's part of the wide and locked elements (the elements themselves are hot/Exit/ExitPipeline.Wide.cs): the
/// device object a locked read-modify-write holds from its read to its write (no other vCPU's access is delivered to
/// it meanwhile), and the wide data's trip between the vCPU's buffers and an event area's payload.
/// </summary>
public sealed partial class Kernel
{
    EventObject?[] _held = [];    // the device object this vCPU's locked read-modify-write holds

    void InitWide(int n) => _held = new EventObject?[n];

    Span<byte> WideRead(int v) => _f.WideRead(v);
    Span<byte> WideWrite(int v) => _f.WideWrite(v);

    /// <summary>Gives up the device object a locked read held (no write followed, or the exit ended early) and delivers what queued behind it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    void ReleaseHeld(int v)
    {
        if (Hot.Layout.Unchecked.At(_held, v) is { } e) ReleaseHeld(v, e);   // v: the exit's vCPU (VcpuAt says why in range)
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    void ReleaseHeld(int v, EventObject e)
    {
        _held[v] = null;
        _f.Row[v].Holds = false;
        KThread? wake = null;
        int next = -1;
        e.Seize();   // the object's claim (Kernel.Devices.cs): off the common path
        if (e.HeldBy != v) { e.Publish(); return; }
        e.HeldBy = -1;
        if (e.Inflight < 0 && !e.Dead && e.TryDequeue(out next))
        {
            FillArea(e, next);
            wake = e.Waiter;
            e.Waiter = null;
            if (wake is not null) e.Handed = e.Area.Sequence;
        }
        e.Publish();
        if (wake is not null) WakeThread(wake, 1, _vcpus[next].Cpu);
    }

    /// <summary>Moves a wide access's <paramref name="size"/> bytes between the vCPU's buffers and the event area (caller
    /// holds the event object's claim). The size is the kernel's (the request row's), never the area's: the area is the
    /// model's memory, and what the model writes there is only ever its answer.</summary>
    void WideToArea(int v, int size, ref EventArea a) => WideWrite(v)[..size].CopyTo(a.Payload);

    void WideFromArea(int v, int size, in EventArea a) => ((ReadOnlySpan<byte>)a.Payload)[..size].CopyTo(WideRead(v));
}
