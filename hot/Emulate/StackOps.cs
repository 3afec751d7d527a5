// Design note — the stack and branch side of PUSH m, POP m, CALL m and JMP m (KVM's group5 and group1A forms).
//
// The memory operand of these forms is the MMIO side (the device answers the value PUSH pushes, the target CALL/JMP
// load, or takes the value POP pops); the other side is the guest's own stack, which is RAM: the exit path reads or
// writes it at once through the page walk (hot/Exit/ExitPipeline.Stack.cs). This unit is the pure arithmetic: the stack
// pointer's width, the stack slot's offset, rSP after the instruction, the return address and the branch target, and
// the target's fault. Nothing here touches state; the exit path commits rSP and RIP only when every side is done, so
// the guest never sees half an instruction (SDM vol. 2: PUSH, POP, CALL, JMP).

using System.Runtime.CompilerServices;
using Copra.Hot.Decode;
using Copra.Hot.Guest;

namespace Copra.Hot.Emulate;

/// <summary>Stack-pointer and branch arithmetic of PUSH m, POP m, CALL m (near) and JMP m (near).</summary>
public static class StackOps
{
    /// <summary>True for the forms with a stack or branch side.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsStackForm(AccessKind k) => k is AccessKind.Push or AccessKind.Pop or AccessKind.Call or AccessKind.Jmp;

    /// <summary>The width of the stack pointer: 8 in 64-bit mode, else 4 when SS.B (the Db attribute) is set, else 2.</summary>
    public static int StackWidth(CpuMode mode, ushort ssAttributes) =>
        mode == CpuMode.Bits64 ? 8 : (ssAttributes & Copra.Hot.State.SegmentAttributes.Db) != 0 ? 4 : 2;

    /// <summary>rSP moved by <paramref name="delta"/> at the stack width: a 16-bit stack keeps bits 63:16 of rSP, a
    /// 32-bit one keeps bits 63:32 (they are not part of ESP outside 64-bit mode).</summary>
    public static ulong Moved(ulong rsp, long delta, int width) => width switch
    {
        2 => (rsp & ~0xFFFFUL) | (ushort)((long)rsp + delta),
        4 => (rsp & ~0xFFFF_FFFFUL) | (uint)((long)rsp + delta),
        _ => (ulong)((long)rsp + delta),
    };

    /// <summary>The stack slot's offset in SS: for a push (PUSH, CALL) rSP - size, for POP rSP itself, at the stack width.</summary>
    public static ulong SlotOffset(ulong rsp, int size, int width, bool push) =>
        (push ? Moved(rsp, -size, width) : rsp) & X86Decoder.SizeMask(width);

    /// <summary>rSP once the instruction is done: PUSH and CALL move it down by the operand size, POP up; JMP leaves it.</summary>
    public static ulong RspAfter(in DecodedAccess d, ulong rsp, int width) => d.Kind switch
    {
        AccessKind.Push or AccessKind.Call => Moved(rsp, -d.Size, width),
        AccessKind.Pop => Moved(rsp, d.Size, width),
        _ => rsp,
    };

    /// <summary>CALL's return address: the next instruction's RIP at the operand size (IP, EIP or RIP).</summary>
    public static ulong ReturnAddress(in DecodedAccess d, ulong rip) => (rip + d.Length) & X86Decoder.SizeMask(d.Size);

    /// <summary>The RIP a near CALL/JMP m loads: the operand's value at the operand size (a 16-bit target clears 63:16).</summary>
    public static ulong Target(in DecodedAccess d, ulong value) => value & X86Decoder.SizeMask(d.Size);

    /// <summary>
    /// POP m: the destination's offset. When rSP is the base, the CPU computes the address after incrementing rSP
    /// (SDM vol. 2, POP), so the offset is the ModRM offset plus the operand size, at the address size.
    /// </summary>
    public static ulong PopDestinationOffset(in DecodedAccess d, ulong modrmOffset) =>
        d.Base == Gpr.Rsp ? (modrmOffset + d.Size) & X86Decoder.SizeMask(d.AddressSize) : modrmOffset;

    /// <summary>
    /// #GP(0) for a branch target the CPU refuses: in 64-bit mode a non-canonical RIP (48 or, with LA57, 57 bits),
    /// elsewhere an offset past CS's limit. False when the target may be loaded.
    /// </summary>
    public static bool TargetFaults(CpuMode mode, ulong target, bool la57, ushort csAttributes, uint csLimit) =>
        mode == CpuMode.Bits64
            ? !PageWalker.IsCanonical(target, la57 ? 57 : 48)
            : !Faults.WithinLimit(csAttributes, csLimit, target, 1);
}
