using System.Runtime.CompilerServices;
using Copra.Hot.Decode;
using Copra.Hot.Guest;

namespace Copra.Hot.Exit;

public sealed partial class ExitPipeline<THost>
{
    // ---- narration (copra trace): the text of a followed exit's stages, built here so the stages carry no string
    // building (its locals would be zeroed on every call, followed or not) ---------------------------------------

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateFront(IExitNarrator t, int v, ulong cr0, ulong cr4, ulong efer, ushort csAttr, CpuMode cpuMode, PagingMode pmode, ulong cr3,
        ulong linear, bool cached, FetchResult fr, ReadOnlySpan<byte> bytes)
    {
        t.Step(v, $"mode: CR0=0x{cr0:x} CR4=0x{cr4:x} EFER=0x{efer:x} CS.attr=0x{csAttr:x} -> {cpuMode}, paging {pmode}, CR3=0x{cr3:x}{(_tdp ? $" (TDX: {State.TdReads[v] - _f.TdRead0[v]} TDG.VP.RD so far in this exit)" : "")}");
        t.Step(v, $"fetch: linear 0x{linear:x}, code-page cache {(cached ? "hit" : "miss (page walk)")}, {fr}, {bytes.Length} bytes: {Convert.ToHexString(bytes).ToLowerInvariant()}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void NarrateDecode(IExitNarrator t, int v, in DecodedAccess d) =>
        t.Step(v, $"decode: len {d.Length} kind {d.Kind} size {d.Size} reg {d.Reg}{(d.RegHigh8 ? "(high8)" : "")} imm {(d.HasImm ? $"0x{d.Imm:x}" : "-")} op {d.Op} rep {d.Rep} base {d.Base} index {d.Index} scale {d.Scale} disp 0x{d.Disp:x} seg {d.Segment} asz {d.AddressSize}{(d.PortIsDx ? " port=dx" : d.Kind is AccessKind.In or AccessKind.Out ? $" port=0x{d.Port:x}" : "")}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateSide(IExitNarrator t, int v, bool write, ulong gpa, uint size, string whose) =>
        t.Step(v, $"{(write ? "write" : "read")} side{whose}: GPA 0x{gpa:x} ({(_host.IsRam(v, gpa, size) ? "the VM's RAM" : "not RAM: device lookup")})");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateValue(IExitNarrator t, int v, ulong value, bool write, ulong toWrite) =>
        t.Step(v, $"value 0x{value:x} in hand; write-back done, RAX now 0x{State.Gpr(v, 0):x}, RFLAGS 0x{State.Rflags(v):x}{(write ? $"; next: write 0x{toWrite:x}" : "")}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    void NarrateDone(IExitNarrator t, int v, ExitKind kind) =>
        t.Step(v, $"done as {kind}: RIP=0x{State.Rip(v):x}; kernel software {_f.Row[v].Measured} TSC ticks (measured, and inflated here by the narration itself), platform {_f.Row[v].Modelled} cycles (modelled); vCPU back on cpu {_host.CpuOf(v)}");
}
