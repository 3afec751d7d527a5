// A one-vCPU VM over a small native buffer of guest RAM at guest-physical 0, and the
// scaffolding the guest tests need: real-mode entry, or a flat long-mode image built here
// by hand (identity-mapped 4-level page tables with 2 MiB pages, a GDT, an IDT).
//
// Long-mode layout (guest-physical):
//   0x1000 PML4 -> 0x2000 PDPT -> 0x3000..0x6FFF four PDs (4 GiB identity, 2 MiB pages)
//   0x7000 GDT: null, 0x08 64-bit code, 0x10 data
//   0x8000 IDT: 256 16-byte gates
//   0x9000 code
//   0x10000 initial RSP (top of RAM)
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Copra.Kernel.Kvm;
using Iced.Intel;
using Xunit;

namespace Copra.Tests.Kvm;

sealed unsafe class KvmTestMachine : IDisposable
{
    public const int RamBytes = 0x1_0000;
    public const ulong Pml4 = 0x1000, Pdpt = 0x2000, PdBase = 0x3000, Gdt = 0x7000, Idt = 0x8000, LongCode = 0x9000;
    public const ulong StackTop = RamBytes;
    public const ulong RealCode = 0x1000;

    readonly void* _ram;

    public KvmTestMachine()
    {
        _ram = NativeMemory.AlignedAlloc(RamBytes, (nuint)KvmVm.PageSize);
        NativeMemory.Clear(_ram, RamBytes);
        try
        {
            Vm = KvmVm.Create();
            Vm.MapMemory((nint)_ram, RamBytes, 0);
            Vcpu = Vm.CreateVcpu(0);
        }
        catch
        {
            Vm?.Dispose();
            NativeMemory.AlignedFree(_ram);
            throw;
        }
    }

    public KvmVm Vm { get; }
    public KvmVcpu Vcpu { get; }

    /// <summary>All of guest RAM, as the host sees it.</summary>
    public Span<byte> Ram => new(_ram, RamBytes);

    /// <summary>Real mode, CS = 0, code at <see cref="RealCode"/>.</summary>
    public void LoadRealMode(ReadOnlySpan<byte> code)
    {
        code.CopyTo(Ram[(int)RealCode..]);
        var s = Vcpu.GetSregs();
        s.Cs.Base = 0;
        s.Cs.Selector = 0;
        Vcpu.SetSregs(s);
        Vcpu.SetRegs(new KvmRegs { Rip = RealCode, Rflags = 2 });
    }

    /// <summary>
    /// Builds the long-mode image, assembles <paramref name="a"/> at <see cref="LongCode"/>, points the IDT
    /// gates in <paramref name="gates"/> at their labels, and enters at the code's start with RFLAGS = 2 (IF clear).
    /// </summary>
    public void LoadLongMode(Assembler a, params (byte Vector, Label Handler)[] gates)
    {
        var ram = Ram;
        Put(ram, Pml4, Pdpt | 3);
        for (ulong i = 0; i < 4; i++)
        {
            ulong pd = PdBase + i * 0x1000;
            Put(ram, Pdpt + i * 8, pd | 3);
            for (ulong j = 0; j < 512; j++)
                Put(ram, pd + j * 8, (i << 30 | j << 21) | 0x83); // present, writable, 2 MiB page
        }
        Put(ram, Gdt + 0x08, LongModeState.GdtCode64);
        Put(ram, Gdt + 0x10, LongModeState.GdtData);

        using var code = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(code), LongCode, BlockEncoderOptions.ReturnNewInstructionOffsets);
        Assert.True(code.Length <= (long)(StackTop - 0x1000 - LongCode), "test guest code too large");
        code.GetBuffer().AsSpan(0, (int)code.Length).CopyTo(ram[(int)LongCode..]);
        foreach (var (vector, handler) in gates) SetInterruptGate(vector, result.GetLabelRIP(handler));

        Vcpu.LoadLongMode(new LongModeState(Cr3: Pml4, GdtBase: Gdt, GdtLimit: 3 * 8 - 1, IdtBase: Idt, IdtLimit: 256 * 16 - 1));
        Vcpu.SetRegs(new KvmRegs { Rip = LongCode, Rsp = StackTop, Rflags = 2 });
    }

    /// <summary>A 64-bit interrupt gate (present, DPL 0, type 0xE) to <paramref name="handler"/> through selector 0x08.</summary>
    void SetInterruptGate(byte vector, ulong handler)
    {
        var gate = Ram.Slice((int)(Idt + vector * 16UL), 16);
        BinaryPrimitives.WriteUInt16LittleEndian(gate, (ushort)handler);
        BinaryPrimitives.WriteUInt16LittleEndian(gate[2..], LongModeState.DefaultCodeSelector);
        gate[4] = 0;    // IST
        gate[5] = 0x8E; // P, DPL 0, 64-bit interrupt gate
        BinaryPrimitives.WriteUInt16LittleEndian(gate[6..], (ushort)(handler >> 16));
        BinaryPrimitives.WriteUInt32LittleEndian(gate[8..], (uint)(handler >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(gate[12..], 0);
    }

    static void Put(Span<byte> ram, ulong at, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(ram[(int)at..], value);

    public void Dispose()
    {
        Vm.Dispose();
        NativeMemory.AlignedFree(_ram);
    }
}
