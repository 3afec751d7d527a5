using Copra.Abi;
using Copra.Hot.Guest;
using Copra.Hot.State;

namespace Copra.Tests.Support;

/// <summary>Puts a vCPU at CPL 3 in 64-bit mode, as the hardware would have it on an exit from user code: CS and SS with
/// RPL and DPL 3 (the GDT's flat 64-bit code and data descriptors). Written through the state store, so on TDX the writes
/// are charged like any other.</summary>
public static class Ring3
{
    const ushort Dpl3 = 3 << SegmentAttributes.DplShift;

    public static void Enter(VcpuStateStore state, int v)
    {
        state.TryWrite(v, StateField.Seg(StateField.Cs, StateField.Selector), Gdt.Code64 | 3);
        state.TryWrite(v, StateField.Seg(StateField.Cs, StateField.Attributes), SegmentAttributes.Code64 | Dpl3);
        state.TryWrite(v, StateField.Seg(StateField.Ss, StateField.Selector), Gdt.Data | 3);
        state.TryWrite(v, StateField.Seg(StateField.Ss, StateField.Attributes), SegmentAttributes.Data | Dpl3);
    }
}
