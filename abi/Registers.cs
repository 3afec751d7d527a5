using System.Runtime.InteropServices;

namespace Copra.Abi;

/// <summary>
/// The registers a syscall reads and writes: number in RAX, arguments in RDI, RSI, R8, R9,
/// R10, result in RAX; RCX and R11 are clobbered (as a SYSCALL entry would). The gate takes
/// this struct and hands it back with RAX (and the clobbers) written.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 8)]
public struct SysCallRegs
{
    public ulong Rax;
    public ulong Rdi;
    public ulong Rsi;
    public ulong R8;
    public ulong R9;
    public ulong R10;
    public ulong Rcx;
    public ulong R11;

    public static SysCallRegs Make(ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0)
        => new() { Rax = nr, Rdi = a0, Rsi = a1, R8 = a2, R9 = a3, R10 = a4 };
}

/// <summary>One BATCH submission entry (56 bytes). <see cref="UserData"/> is copied to the matching <see cref="SysCallOut"/> untouched.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 8, Size = 56)]
public struct SysCallIn
{
    public ulong Nr;
    public ulong A0;
    public ulong A1;
    public ulong A2;
    public ulong A3;
    public ulong A4;
    public ulong UserData;

    public const int Size = 56;
}

/// <summary>One BATCH completion entry (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 8, Size = 16)]
public struct SysCallOut
{
    public long Result;
    public ulong UserData;

    public const int Size = 16;
}
