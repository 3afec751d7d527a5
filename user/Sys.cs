using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Copra.Abi;

namespace Copra.User;

/// <summary>A syscall that returned an ABI error, raised by the checked wrappers.</summary>
public sealed class SysCallException(ulong nr, long code)
    : Exception($"{SysNr.Name(nr)} failed: {Errno.Name(code)}")
{
    public ulong Number { get; } = nr;
    public long Code { get; } = code;
}

/// <summary>
/// The user-space library: thin wrappers that marshal arguments into the caller's own memory and
/// call the gate. Raw wrappers return the RAX value (negative = error); <c>Check</c> turns errors
/// into <see cref="SysCallException"/>. Memory for arguments comes from <see cref="Heap"/>, a bump
/// allocator whose cursor lives in the process's own data segment (threads share it atomically).
/// </summary>
public static class Sys
{
    /// <summary>Synchronous calls never block: the task is already complete.</summary>
    public static long Call(IUserContext ctx, ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0)
    {
        var vt = ctx.SysCall(SysCallRegs.Make(nr, a0, a1, a2, a3, a4));
        if (!vt.IsCompleted) throw new InvalidOperationException($"{SysNr.Name(nr)} blocked; await it with CallAsync");
        return vt.Result;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ValueTask<long> CallAsync(IUserContext ctx, ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0)
        => ctx.SysCall(SysCallRegs.Make(nr, a0, a1, a2, a3, a4));

    public static long Check(ulong nr, long rax) => Errno.IsError(rax) ? throw new SysCallException(nr, rax) : rax;
    public static long CallChecked(IUserContext ctx, ulong nr, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0)
        => Check(nr, Call(ctx, nr, a0, a1, a2, a3, a4));

    // ---- memory ------------------------------------------------------------------------------

    /// <summary>Allocates from the process's data segment (never freed: programs here are small and long-lived).</summary>
    public static ulong Alloc(IUserContext ctx, int bytes, int align = 8)
    {
        ref ulong cursor = ref MemoryMarshal.Cast<byte, ulong>(ctx.Memory(ctx.DataBase, 8))[0];
        while (true)
        {
            ulong seen = Volatile.Read(ref cursor);
            ulong cur = seen == 0 ? ctx.DataBase + 64 : seen;   // the first 64 bytes hold the cursor
            ulong start = (cur + (ulong)align - 1) & ~((ulong)align - 1);
            ulong end = start + (ulong)bytes;
            if (end > ctx.DataBase + (ulong)ctx.DataSize) throw new OutOfMemoryException("user heap exhausted");
            if (Interlocked.CompareExchange(ref cursor, end, seen) == seen) return start;
        }
    }

    public static ulong CString(IUserContext ctx, string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        ulong va = Alloc(ctx, n + 1, 1);
        var span = ctx.Memory(va, n + 1);
        Encoding.UTF8.GetBytes(s, span);
        span[n] = 0;
        return va;
    }

    public static ulong Bytes(IUserContext ctx, ReadOnlySpan<byte> data)
    {
        ulong va = Alloc(ctx, Math.Max(1, data.Length));
        data.CopyTo(ctx.Memory(va, data.Length));
        return va;
    }

    public static ref T Ref<T>(IUserContext ctx, ulong va) where T : unmanaged =>
        ref MemoryMarshal.AsRef<T>(ctx.Memory(va, Unsafe.SizeOf<T>()));   // the ABI layouts are blittable: managed size = ABI size

    // ---- class 0 -----------------------------------------------------------------------------

    public static ValueTask<long> Exit(IUserContext ctx, int code) => CallAsync(ctx, SysNr.Exit, (ulong)code);
    public static ValueTask<long> ThreadExit(IUserContext ctx) => CallAsync(ctx, SysNr.ThreadExit);

    public static long ThreadCreate(IUserContext ctx, ThreadEntry entry, ulong arg) =>
        CallChecked(ctx, SysNr.ThreadCreate, ctx.DefineEntry(entry), arg);

    /// <summary>
    /// EXEC: starts <paramref name="path"/> with root directory "/" and returns its task id. With handles, sets
    /// Copra's <see cref="ExecFlags.PassHandles"/> and lists them in R9/R10: they move into the child at 1..n.
    /// Without, the registers are exactly upstream's (RDI file, RSI root, R8 flags 0).
    /// </summary>
    public static long Exec(IUserContext ctx, string path, params uint[] handles)
    {
        if (handles.Length == 0) return CallChecked(ctx, SysNr.Exec, CString(ctx, path), CString(ctx, "/"), 0);
        ulong list = Alloc(ctx, handles.Length * 4, 4);
        MemoryMarshal.AsBytes(handles.AsSpan()).CopyTo(ctx.Memory(list, handles.Length * 4));
        return CallChecked(ctx, SysNr.Exec, CString(ctx, path), CString(ctx, "/"), ExecFlags.PassHandles, list, (ulong)handles.Length);
    }

    // Inlined into the caller's loop (a device model's one call per access), as a C library's syscall stub would be: no
    // frame and no call of its own; the registers' block is a slot of the caller's frame (−11).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ValueTask<long> WaitForEvent(IUserContext ctx, uint handle) => CallAsync(ctx, SysNr.WaitForEvent, handle);
    public static long Close(IUserContext ctx, uint handle) => Call(ctx, SysNr.Close, handle);

    // ---- class 1 -----------------------------------------------------------------------------

    public static uint Open(IUserContext ctx, string path, ulong mode, ulong flags = 0) =>
        (uint)CallChecked(ctx, SysNr.Open, CString(ctx, path), mode, flags);

    public static long Write(IUserContext ctx, uint handle, ReadOnlySpan<byte> data) =>
        CallChecked(ctx, SysNr.Write, handle, Bytes(ctx, data), (ulong)data.Length);

    /// <summary>Writes text to the console (handle 0).</summary>
    public static void Print(IUserContext ctx, string text) => Write(ctx, 0, Encoding.UTF8.GetBytes(text));

    public static byte[] Read(IUserContext ctx, uint handle, int max)
    {
        ulong buf = Alloc(ctx, Math.Max(1, max));
        long n = CallChecked(ctx, SysNr.Read, handle, buf, (ulong)max);
        return ctx.Memory(buf, (int)n).ToArray();
    }

    /// <summary>MMAP with PR #945's registers: RDI handle, RSI hint (0: the kernel chooses), R8 offset, R9 length, R10 flags (READ, plus WRITE when asked).</summary>
    public static ulong Mmap(IUserContext ctx, uint handle, ulong offset, ulong length, bool write = true) =>
        (ulong)CallChecked(ctx, SysNr.Mmap, handle, 0, offset, length, MapFlags.Read | (write ? MapFlags.Write : 0));

    /// <summary>Anonymous zeroed memory (handle 0), readable and writable.</summary>
    public static ulong MmapAnonymous(IUserContext ctx, ulong length) =>
        (ulong)CallChecked(ctx, SysNr.Mmap, MapFlags.AnonymousHandle, 0, 0, length, MapFlags.Read | MapFlags.Write | MapFlags.Private | MapFlags.Anonymous);

    /// <summary>MUNMAP: RDI address, RSI length (passed as PR #945's wrapper does; the kernel ignores it).</summary>
    public static long Munmap(IUserContext ctx, ulong va, ulong length) => CallChecked(ctx, SysNr.Munmap, va, length);

    // ---- Copra's own: memory, VMs, events ------------------------------------------------------

    public static uint OpenPhysMem(IUserContext ctx) => (uint)CallChecked(ctx, SysNr.OpenPhysMem);
    public static ulong Capabilities(IUserContext ctx, ulong index) => (ulong)CallChecked(ctx, SysNr.Capabilities, index);
    public static uint VmOpen(IUserContext ctx, ulong index) => (uint)CallChecked(ctx, SysNr.VmOpen, index);
    public static ulong VmCapabilities(IUserContext ctx, uint vm, ulong index) => (ulong)CallChecked(ctx, SysNr.VmCapabilities, vm, index);
    public static uint VcpuCreate(IUserContext ctx, uint vm, ulong index) => (uint)CallChecked(ctx, SysNr.VcpuCreate, vm, index);
    public static uint MmioEvent(IUserContext ctx, uint vm, ulong gpa, ulong length) => (uint)CallChecked(ctx, SysNr.MmioEvent, vm, gpa, length);
    public static uint IoioEvent(IUserContext ctx, uint vm, ulong port, ulong count) => (uint)CallChecked(ctx, SysNr.IoioEvent, vm, port, count);
    public static uint IrqEvent(IUserContext ctx, uint vm, ulong vector) => (uint)CallChecked(ctx, SysNr.IrqEvent, vm, vector);
    public static long EventSignal(IUserContext ctx, uint handle) => CallChecked(ctx, SysNr.EventSignal, handle);
    public static long VmControl(IUserContext ctx, uint vm, ulong op, ulong value) => CallChecked(ctx, SysNr.VmControl, vm, op, value);
}
