using Copra.Abi;

namespace Copra.Kernel.Core;

/// <summary>Every syscall has this shape: kernel state, calling thread, registers in; RAX out (or a pending wait).</summary>
public delegate ValueTask<long> SysCallHandler(Kernel k, KThread t, in SysCallRegs r);

/// <summary>
/// The one table from number to handler. Each row turns registers into typed arguments (upstream's decoding:
/// handles and CAPABILITIES indices are truncated to u32, <c>rdi as u32</c>) and hands off to one kernel method;
/// the body throws <see cref="Cold.KernelError"/> for a user error and <see cref="SysCallGate"/> maps it. Numbers
/// live in <see cref="SysNr"/>; a number that is not here is EINVAL.
/// </summary>
public static class SysCallTable
{
    static ValueTask<long> Done(long rax) => new(rax);

    /// <summary>A handle from a register: the low 32 bits, as upstream's dispatcher takes them.</summary>
    static uint H(ulong reg) => (uint)reg;

    static readonly (ulong Nr, SysCallHandler Handler)[] Rows =
    [
        // ---- upstream: class 0 (syscall/src/def.rs; MMAP/MUNMAP from PR #945) ----------------------------------
        (SysNr.Exit,            static (Kernel k, KThread t, in SysCallRegs r) => k.SysExit(t, (uint)r.Rdi)),
        (SysNr.Mmap,            static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Mmap(t, H(r.Rdi), r.Rsi, r.R8, r.R9, r.R10))),
        (SysNr.Munmap,          static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Munmap(t, r.Rdi))),
        (SysNr.Exec,            static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Exec(t, r.Rdi, r.Rsi, r.R8, r.R9, r.R10))),
        (SysNr.Close,           static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Close(t, H(r.Rdi)))),
        // ---- upstream: class 1, files ----------------------------------------------------------------------------
        (SysNr.Open,            static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Open(t, r.Rdi, r.Rsi, r.R8))),
        (SysNr.Read,            static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Read(t, H(r.Rdi), r.Rsi, r.R8))),
        (SysNr.Write,           static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Write(t, H(r.Rdi), r.Rsi, r.R8))),
        (SysNr.Seek,            static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Seek(t, H(r.Rdi), r.Rsi, r.R8))),
        (SysNr.Truncate,        static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Truncate(t, H(r.Rdi), r.Rsi))),
        (SysNr.Unlink,          static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Unlink(t, r.Rdi))),
        (SysNr.OpenDir,         static (Kernel k, KThread t, in SysCallRegs r) => Done(k.OpenDir(t, r.Rdi))),
        (SysNr.ReadDir,         static (Kernel k, KThread t, in SysCallRegs r) => Done(k.ReadDir(t, H(r.Rdi), r.Rsi, r.R8))),
        (SysNr.MkDir,           static (Kernel k, KThread t, in SysCallRegs r) => Done(k.MkDir(t, r.Rdi))),
        (SysNr.RmDir,           static (Kernel k, KThread t, in SysCallRegs r) => Done(k.RmDir(t, r.Rdi))),
        // ---- upstream: class 3 ----------------------------------------------------------------------------------
        (SysNr.Capabilities,    static (Kernel k, KThread t, in SysCallRegs r) => Done(k.Capability((uint)r.Rdi))),
        // ---- Copra's own: class 0 (index 0x100 and up) ----------------------------------------------------------
        (SysNr.ThreadCreate,    static (Kernel k, KThread t, in SysCallRegs r) => Done(k.ThreadCreate(t, r.Rdi, r.Rsi))),
        (SysNr.ThreadExit,      static (Kernel k, KThread t, in SysCallRegs r) => k.SysThreadExit(t)),
        (SysNr.Batch,           static (Kernel k, KThread t, in SysCallRegs r) => Done(k.RunBatch(t, r.Rdi, r.Rsi, r.R8))),
        (SysNr.WaitForEvent,    static (Kernel k, KThread t, in SysCallRegs r) => k.WaitForEvent(t, H(r.Rdi))),
        (SysNr.RingPoll,        static (Kernel k, KThread t, in SysCallRegs r) => Done(k.RingPoll(t, r.Rdi, r.Rsi))),
        // ---- Copra's own: class 2, memory -------------------------------------------------------------------------
        (SysNr.OpenPhysMem,     static (Kernel k, KThread t, in SysCallRegs r) => Done(k.OpenPhysMem(t))),
        (SysNr.SetMemState,     static (Kernel k, KThread t, in SysCallRegs r) => Done(k.SetMemState(t, H(r.Rdi), r.Rsi, r.R8, r.R9))),
        // ---- Copra's own: class 3, VMs ---------------------------------------------------------------------------
        (SysNr.VmOpen,          static (Kernel k, KThread t, in SysCallRegs r) => Done(k.VmOpen(t, r.Rdi))),
        (SysNr.VmCapabilities,  static (Kernel k, KThread t, in SysCallRegs r) => Done(k.VmCapability(t, H(r.Rdi), r.Rsi))),
        (SysNr.VcpuCreate,      static (Kernel k, KThread t, in SysCallRegs r) => Done(k.VcpuCreate(t, H(r.Rdi), r.Rsi))),
        (SysNr.GetState,        static (Kernel k, KThread t, in SysCallRegs r) => Done(k.GetState(t, H(r.Rdi), r.Rsi, r.R8, r.R9))),
        (SysNr.SetState,        static (Kernel k, KThread t, in SysCallRegs r) => Done(k.SetState(t, H(r.Rdi), r.Rsi, r.R8, r.R9))),
        (SysNr.VmControl,       static (Kernel k, KThread t, in SysCallRegs r) => Done(k.VmControl(t, H(r.Rdi), r.Rsi, r.R8))),
        // ---- Copra's own: class 4, events ------------------------------------------------------------------------
        (SysNr.MmioEvent,       static (Kernel k, KThread t, in SysCallRegs r) => Done(k.RegisterEvent(t, H(r.Rdi), Abi.EventKind.Mmio, r.Rsi, r.R8))),
        (SysNr.IoioEvent,       static (Kernel k, KThread t, in SysCallRegs r) => Done(k.RegisterEvent(t, H(r.Rdi), Abi.EventKind.Ioio, r.Rsi, r.R8))),
        (SysNr.IrqEvent,        static (Kernel k, KThread t, in SysCallRegs r) => Done(k.IrqEvent(t, H(r.Rdi), r.Rsi))),
        (SysNr.EventSignal,     static (Kernel k, KThread t, in SysCallRegs r) => Done(k.EventSignal(t, H(r.Rdi)))),
    ];

    // Why arrays indexed by class then index, not a dictionary: every syscall (a device model's WAIT_FOR_EVENT on
    // every exit) looks its number up; two bounds-checked loads cost ~10 instructions, the frozen dictionary ~100.
    static readonly SysCallHandler?[][] s_byClass = Dense();

    static SysCallHandler?[][] Dense()
    {
        var t = new SysCallHandler?[(int)(Rows.Max(x => x.Nr >> 32) + 1)][];
        for (int c = 0; c < t.Length; c++)
            t[c] = new SysCallHandler?[Rows.Where(x => (int)(x.Nr >> 32) == c).Select(x => (int)(uint)x.Nr + 1).DefaultIfEmpty(0).Max()];
        foreach (var (nr, h) in Rows) t[(int)(nr >> 32)][(int)(uint)nr] = h;
        return t;
    }

    /// <summary>The handler for a number, or null (EINVAL at the gate).</summary>
    public static SysCallHandler? Find(ulong nr)
    {
        var t = s_byClass;
        ulong c = nr >> 32, i = (uint)nr;
        if (c >= (ulong)t.Length) return null;
        var row = t[c];
        return i < (ulong)row.Length ? row[i] : null;
    }

    /// <summary>The numbers in the table, for the test that it and <see cref="SysNr.All"/> agree.</summary>
    public static IEnumerable<ulong> Numbers => Rows.Select(x => x.Nr);
}
