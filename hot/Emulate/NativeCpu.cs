// Design note — the host CPU as an oracle for the executor.
//
// Runs one instruction natively: the bytes are copied between a prologue and an epilogue (assembled once with
// Iced's Assembler) into an executable page from mmap; the prologue loads the 15 GPRs other than RSP and RFLAGS
// from a state block, the epilogue stores them back. Memory operands must point into Data, a host buffer below
// 4 GiB (MAP_32BIT), so 67-prefixed (32-bit address) forms work too. It lives in hot/ because unsafe code is
// allowed only in hot/ and kernel/, and hot/ is the executor's own project; nothing on the exit path uses it.
//
// The caller owns safety: an instruction that faults (#DE, a wild address, a privileged opcode) kills the process,
// so the CPU-oracle property decides #DE independently and builds every address inside Data before calling Run.
// RFLAGS is loaded with the status flags and DF only (never TF or AC). One instance per thread.
//
// RunX87 (the x87/MMX/FXSAVE forms): the prologue saves the runtime's own x87/SSE state (FXSAVE64) and loads the case's
// from a 512-byte image (FXRSTOR64, which loads XMM0-15 and MXCSR too); the epilogue stores the state the instruction
// left (FXSAVE64) and restores the runtime's. The caller keeps FSW.ES clear and MXCSR within the host's MXCSR_MASK,
// or the instruction (or the FXRSTOR) faults.

using System.Runtime.InteropServices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Hot.Emulate;

/// <summary>Executes single instructions on the host processor over a host buffer.</summary>
public sealed unsafe partial class NativeCpu : IDisposable
{
    const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 0x02, MapAnonymous = 0x20, Map32Bit = 0x40;
    const int CodeSize = 4096, StateOffset = 0;
    /// <summary>Byte offset of XMM0 in the state block (16-byte slots after the 16 GPRs and RFLAGS).</summary>
    const int XmmOffset = 18 * 8;
    /// <summary>The case's FXSAVE image and the runtime's own, in the state page (16-byte aligned).</summary>
    const int GuestFxOffset = 1024, HostFxOffset = 1536;

    static readonly byte[] s_prologue = Assemble(prologue: true);
    static readonly byte[] s_epilogue = Assemble(prologue: false);
    static readonly byte[] s_prologueX87 = Assemble(prologue: true, x87: true);
    static readonly byte[] s_epilogueX87 = Assemble(prologue: false, x87: true);

    readonly byte* _code;
    readonly byte* _data;
    readonly int _dataSize;
    readonly ulong* _state;
    bool _disposed;

    /// <summary>True where this runner works: Linux on x86-64.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>
    /// The host processor has MOVDIRI (CPUID.(EAX=7,ECX=0):ECX[27]) and MOVDIR64B (ECX[28]). Why it matters: run natively
    /// on a processor without them they raise #UD, which kills the process (not every x86-64 host has them: this
    /// project's build machines have had both kinds).
    /// </summary>
    public static readonly bool HasMovdiri = CpuidEcx7(27), HasMovdir64b = CpuidEcx7(28);

    static bool CpuidEcx7(int bit) =>
        System.Runtime.Intrinsics.X86.X86Base.IsSupported && System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0).Eax >= 7
        && (System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 0).Ecx & (1 << bit)) != 0;

    /// <summary>Maps the code page, the state block and a <paramref name="dataSize"/>-byte data buffer.</summary>
    public NativeCpu(int dataSize = 8192)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("the native CPU oracle needs Linux on x86-64");
        _dataSize = dataSize;
        _code = (byte*)Map(CodeSize, ProtRead | ProtWrite | ProtExec);
        _state = (ulong*)Map(4096, ProtRead | ProtWrite) + StateOffset;
        _data = (byte*)Map((ulong)dataSize, ProtRead | ProtWrite);
    }

    /// <summary>The host buffer instructions may address.</summary>
    public Span<byte> Data => new(_data, _dataSize);

    /// <summary>Linear address of <see cref="Data"/>[0] (below 4 GiB).</summary>
    public ulong DataAddress => (ulong)_data;

    /// <summary>
    /// Runs <paramref name="instruction"/> with <paramref name="gprs"/> (RSP ignored and left as given) and the status
    /// flags and DF of <paramref name="rflags"/>; on return both hold what the CPU left (RFLAGS masked the same way).
    /// </summary>
    public void Run(ReadOnlySpan<byte> instruction, Span<ulong> gprs, ref ulong rflags)
    {
        Span<UInt128> xmm = stackalloc UInt128[16];
        xmm.Clear();   // SkipLocalsInit: the registers start at zero, as before
        Run(instruction, gprs, ref rflags, xmm);
    }

    /// <summary>As <see cref="Run(ReadOnlySpan{byte}, Span{ulong}, ref ulong)"/>, with XMM0..15 loaded from and stored back to <paramref name="xmm"/>.</summary>
    public void Run(ReadOnlySpan<byte> instruction, Span<ulong> gprs, ref ulong rflags, Span<UInt128> xmm)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (xmm.Length < 16) throw new ArgumentException("16 XMM registers needed", nameof(xmm));
        var xs = new Span<UInt128>((byte*)_state + XmmOffset, 16);
        xmm[..16].CopyTo(xs);
        if (gprs.Length < 16) throw new ArgumentException("16 GPRs needed", nameof(gprs));
        if (instruction.Length > 15) throw new ArgumentException("longer than 15 bytes", nameof(instruction));
        Invoke(s_prologue, s_epilogue, instruction, gprs, ref rflags);
        xs.CopyTo(xmm);
    }

    /// <summary>Assembles prologue + <paramref name="instruction"/> + epilogue into the code page and runs it with the
    /// GPRs and the loadable RFLAGS bits in the state block; copies them back (RSP excepted). Callers check the lengths.</summary>
    void Invoke(byte[] prologue, byte[] epilogue, ReadOnlySpan<byte> instruction, Span<ulong> gprs, ref ulong rflags)
    {
        var code = new Span<byte>(_code, CodeSize);
        prologue.CopyTo(code);
        instruction.CopyTo(code[prologue.Length..]);
        epilogue.CopyTo(code[(prologue.Length + instruction.Length)..]);
        for (int i = 0; i < 16; i++) _state[i] = gprs[i];
        const ulong loadable = Executor.StatusFlags | Executor.DF;
        _state[16] = (rflags & loadable) | 2;
        ((delegate* unmanaged<ulong*, void>)_code)(_state);
        for (int i = 0; i < 16; i++) if (i != 4) gprs[i] = _state[i];
        rflags = (rflags & ~loadable) | (_state[16] & loadable);
    }

    /// <summary>
    /// Runs <paramref name="instruction"/> with the x87/MMX/SSE state of the FXSAVE64 image <paramref name="fxImage"/>
    /// (512 bytes) loaded; on return the image holds the state the instruction left (FXSAVE64), GPRs and RFLAGS as for
    /// <see cref="Run(ReadOnlySpan{byte}, Span{ulong}, ref ulong)"/>.
    /// </summary>
    public void RunX87(ReadOnlySpan<byte> instruction, Span<ulong> gprs, ref ulong rflags, Span<byte> fxImage)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (fxImage.Length < 512) throw new ArgumentException("a 512-byte FXSAVE image needed", nameof(fxImage));
        if (gprs.Length < 16) throw new ArgumentException("16 GPRs needed", nameof(gprs));
        if (instruction.Length > 15) throw new ArgumentException("longer than 15 bytes", nameof(instruction));
        var image = new Span<byte>((byte*)_state + GuestFxOffset, 512);
        fxImage[..512].CopyTo(image);
        Invoke(s_prologueX87, s_epilogueX87, instruction, gprs, ref rflags);
        image.CopyTo(fxImage);
    }

    static byte[] Assemble(bool prologue, bool x87 = false)
    {
        var a = new Assembler(64);
        AssemblerRegister64[] regs = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15];
        AssemblerRegisterXMM[] xmms = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
        if (prologue)
        {
            a.push(rbx); a.push(rbp); a.push(r12); a.push(r13); a.push(r14); a.push(r15);
            a.push(rdi);
            if (x87)
            {
                // Why: the runtime's x87 control word and MXCSR must survive the case; FXRSTOR64 also loads XMM0-15.
                a.fxsave64(__[rdi + HostFxOffset]);
                a.fxrstor64(__[rdi + GuestFxOffset]);
            }
            // Why: SysV makes every XMM register caller-saved, so the harness may load all sixteen.
            else for (int i = 0; i < 16; i++) a.movdqu(xmms[i], __xmmword_ptr[rdi + XmmOffset + i * 16]);
            a.push(__qword_ptr[rdi + 16 * 8]);
            a.popfq();
            for (int i = 0; i < 16; i++)
                if (i != 4 && i != 7) a.mov(regs[i], __qword_ptr[rdi + i * 8]);
            a.mov(rdi, __qword_ptr[rdi + 7 * 8]);
        }
        else
        {
            a.pushfq();                                  // [rsp] flags, [rsp+8] state pointer
            a.push(rdi);                                 // [rsp] rdi, [rsp+8] flags, [rsp+16] state pointer
            a.mov(rdi, __qword_ptr[rsp + 16]);
            for (int i = 0; i < 16; i++)
                if (i != 4 && i != 7) a.mov(__qword_ptr[rdi + i * 8], regs[i]);
            if (x87)
            {
                a.fxsave64(__[rdi + GuestFxOffset]);
                a.fxrstor64(__[rdi + HostFxOffset]);
            }
            else for (int i = 0; i < 16; i++) a.movdqu(__xmmword_ptr[rdi + XmmOffset + i * 16], xmms[i]);
            a.pop(rax); a.mov(__qword_ptr[rdi + 7 * 8], rax);
            a.pop(rax); a.mov(__qword_ptr[rdi + 16 * 8], rax);
            a.pop(rdi);
            a.cld();
            a.pop(r15); a.pop(r14); a.pop(r13); a.pop(r12); a.pop(rbp); a.pop(rbx);
            a.ret();
        }
        var w = new CodeWriterImpl();
        a.Assemble(w, 0);
        return [.. w.Bytes];
    }

    sealed class CodeWriterImpl : CodeWriter
    {
        public readonly List<byte> Bytes = [];
        public override void WriteByte(byte value) => Bytes.Add(value);
    }

    static void* Map(ulong length, int prot)
    {
        void* p = MMap(null, (nuint)length, prot, MapPrivate | MapAnonymous | Map32Bit, -1, 0);
        if (p == (void*)-1) throw new InvalidOperationException($"mmap of {length} bytes failed (errno {Marshal.GetLastPInvokeError()})");
        return p;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _ = MUnmap(_code, CodeSize);
        _ = MUnmap(_state - StateOffset, 4096);
        _ = MUnmap(_data, (nuint)_dataSize);
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* MMap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int MUnmap(void* addr, nuint length);
}
