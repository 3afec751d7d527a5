// The floor for the exit path: a 64-bit guest that performs N identical port-I/O or MMIO
// accesses, driven by the thinnest possible user-space loop (KVM_RUN, complete the access,
// KVM_RUN again), timed as full cycles from one KVM_RUN start to the next with the one clock
// (hot/Timing/Tsc). The guest runs the backend's own access loop (KvmGuestBuilder.EmitAccessLoop),
// so the comparison in kvmbench is like for like. No decode, no lookup, no device model: what
// is left is KVM's own exit + user-space round trip.
//
// Guest layout (guest-physical, inside the first 64 KiB, which must be mapped RAM):
//   0x1000 PML4 -> 0x2000 PDPT -> 0x3000..0x6FFF four PDs: 4 GiB identity-mapped in 2 MiB pages
//   0x7000 GDT (null, 64-bit code 0x08, data 0x10)
//   0x8000 code
//   0xA000 initial RSP (stack in 0x9000..0x9FFF)
using System.Buffers.Binary;
using Copra.Hot.Timing;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Kernel.Kvm;

/// <summary>What the bare-loop guest does N times.</summary>
public enum KvmBareAccess
{
    /// <summary><c>out dx, al</c> to <see cref="KvmBareLoop.Port"/>.</summary>
    PortOut,
    /// <summary><c>in al, dx</c> from <see cref="KvmBareLoop.Port"/>, completed with the iteration number.</summary>
    PortIn,
    /// <summary><c>mov [rdi], eax</c> to <see cref="KvmBareLoop.MmioGpa"/> (unbacked, so every access exits).</summary>
    MmioWrite,
    /// <summary><c>mov eax, [rdi]</c> from <see cref="KvmBareLoop.MmioGpa"/>, completed with the iteration number.</summary>
    MmioRead,
}

/// <summary>
/// One bare-loop measurement. <see cref="Samples"/> holds one KVM_RUN round trip per access, in
/// TSC cycles when <see cref="SamplesAreTsc"/> (see <see cref="Tsc"/>), else Stopwatch ticks.
/// </summary>
public sealed record KvmBareLoopResult(
    KvmBareAccess Access,
    int Accesses,
    ulong[] Samples,
    bool SamplesAreTsc,
    double TicksPerNanosecond,
    long InterruptedRuns,
    TimeSpan Wall)
{
    /// <summary>Median round trip in samples' units (cycles or ticks).</summary>
    public double MedianTicks => Percentile(0.5);

    /// <summary>Median round trip in nanoseconds.</summary>
    public double MedianNs => MedianTicks / TicksPerNanosecond;

    /// <summary>Mean round trip from the wall clock around the whole loop, in nanoseconds (includes the loop's own overhead).</summary>
    public double MeanWallNs => Wall.TotalNanoseconds / Accesses;

    /// <summary>The <paramref name="q"/> quantile (0..1) of the samples, nearest rank.</summary>
    public double Percentile(double q)
    {
        if (Samples.Length == 0) return double.NaN;
        var sorted = (ulong[])Samples.Clone();
        Array.Sort(sorted);
        int i = (int)Math.Clamp(Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1);
        return sorted[i];
    }
}

/// <summary>The raw KVM exit loop, for measurement.</summary>
public static class KvmBareLoop
{
    /// <summary>The port the I/O variants use.</summary>
    public const ushort Port = 0x80;

    /// <summary>The unbacked guest-physical address the MMIO variants use.</summary>
    public const ulong MmioGpa = 0xD000_0000;

    /// <summary>Guest RAM the loop needs mapped at guest-physical 0.</summary>
    public const int MemoryBytes = 0x1_0000;

    const ulong Pml4 = 0x1000, Pdpt = 0x2000, Pd = 0x3000, Gdt = 0x7000, Code = 0x8000, StackTop = 0xA000;
    const ulong PtePresent = 1, PteWrite = 2, PteLarge = 0x80;

    /// <summary>
    /// Creates its own VM with <see cref="MemoryBytes"/> of RAM and one vCPU, runs <paramref name="accesses"/>
    /// accesses of kind <paramref name="access"/>, and tears everything down.
    /// </summary>
    public static unsafe KvmBareLoopResult Run(int accesses, KvmBareAccess access)
    {
        void* memory = NativeMemory.AlignedAlloc(MemoryBytes, (nuint)KvmVm.PageSize);
        try
        {
            NativeMemory.Clear(memory, MemoryBytes);
            using var vm = KvmVm.Create();
            vm.MapMemory((nint)memory, MemoryBytes, 0);
            using var vcpu = vm.CreateVcpu(0);
            return Run(vcpu, accesses, access);
        }
        finally
        {
            // The VM (and so the slot) is gone by now: the using above disposed it first.
            NativeMemory.AlignedFree(memory);
        }
    }

    /// <summary>
    /// Writes the loop guest into the first <see cref="MemoryBytes"/> of <paramref name="vcpu"/>'s VM (which
    /// must be mapped RAM at guest-physical 0), puts the vCPU in long mode at its entry, and runs it to HLT,
    /// timing every KVM_RUN. Any exit other than the expected access or the final HLT throws.
    /// </summary>
    public static KvmBareLoopResult Run(KvmVcpu vcpu, int accesses, KvmBareAccess access)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(accesses, 1);
        WriteGuest(vcpu.Vm.GuestMemory(0, MemoryBytes), access, accesses);
        vcpu.LoadLongMode(new LongModeState(Cr3: Pml4, GdtBase: Gdt, GdtLimit: 3 * 8 - 1));
        vcpu.SetRegs(new KvmRegs { Rip = Code, Rsp = StackTop, Rflags = 2 });

        bool tsc = Tsc.IsHardware;
        double ticksPerNs = Tsc.Hz / 1e9;   // the one clock's measured rate (Stopwatch's where RDTSC is unreachable)
        var expected = access is KvmBareAccess.PortIn or KvmBareAccess.PortOut ? KvmExitReason.Io : KvmExitReason.Mmio;
        bool isRead = access is KvmBareAccess.PortIn or KvmBareAccess.MmioRead;
        var samples = new ulong[accesses];
        long interruptedBefore = vcpu.InterruptedRuns;
        int done = 0;

        long wallStart = Stopwatch.GetTimestamp();
        ulong lastStart = 0;
        while (true)
        {
            // One sample per access: a full cycle, from this KVM_RUN's start to the next one's (completion included),
            // as the backend's KvmBackend.Cycles measures it.
            ulong t0 = Tsc.Read();
            if (done > 0) samples[done - 1] = t0 - lastStart;
            lastStart = t0;
            var exit = vcpu.Run();
            if (exit.Reason == expected && done < accesses)
            {
                done++;
                if (isRead)
                {
                    if (expected == KvmExitReason.Io) vcpu.CompleteIn((ulong)done);
                    else vcpu.CompleteMmioRead((ulong)done);
                }
                continue;
            }
            if (exit.Reason == KvmExitReason.Hlt && done == accesses) break;
            throw new InvalidOperationException($"bare loop ({access}): unexpected {exit} after {done} of {accesses} accesses");
        }
        var wall = Stopwatch.GetElapsedTime(wallStart);

        return new KvmBareLoopResult(access, accesses, samples, tsc, ticksPerNs, vcpu.InterruptedRuns - interruptedBefore, wall);
    }

    /// <summary>The workload mix entry that performs <paramref name="access"/>.</summary>
    public static string MixOf(KvmBareAccess access) => access switch
    {
        KvmBareAccess.PortOut => "port_out",
        KvmBareAccess.PortIn => "port_in",
        KvmBareAccess.MmioWrite => "write",
        KvmBareAccess.MmioRead => "read",
        _ => throw new ArgumentOutOfRangeException(nameof(access)),
    };

    static void WriteGuest(Span<byte> mem, KvmBareAccess access, int accesses)
    {
        mem.Clear();
        // Page tables: one PML4 entry -> one PDPT with four entries -> four PDs of 512 large pages.
        BinaryPrimitives.WriteUInt64LittleEndian(mem[(int)Pml4..], Pdpt | PtePresent | PteWrite);
        for (int i = 0; i < 4; i++)
        {
            ulong pd = Pd + (ulong)i * 0x1000;
            BinaryPrimitives.WriteUInt64LittleEndian(mem[(int)(Pdpt + (ulong)i * 8)..], pd | PtePresent | PteWrite);
            for (int j = 0; j < 512; j++)
            {
                ulong frame = ((ulong)i << 30) | ((ulong)j << 21);
                BinaryPrimitives.WriteUInt64LittleEndian(mem[(int)(pd + (ulong)j * 8)..], frame | PtePresent | PteWrite | PteLarge);
            }
        }
        BinaryPrimitives.WriteUInt64LittleEndian(mem[(int)(Gdt + 8)..], LongModeState.GdtCode64);
        BinaryPrimitives.WriteUInt64LittleEndian(mem[(int)(Gdt + 16)..], LongModeState.GdtData);

        // The same access loop as the backend's guest (KvmGuestBuilder.EmitAccessLoop): kvmbench compares like for like.
        var a = new Assembler(64);
        Backends.KvmGuestBuilder.EmitAccessLoop(a, [MixOf(access)], accesses, random: false, MmioGpa, Port, Port, movsSource: 0);
        a.hlt();
        using var code = new MemoryStream();
        a.Assemble(new StreamCodeWriter(code), Code);
        var bytes = code.GetBuffer().AsSpan(0, (int)code.Length);
        if (bytes.Length > (int)(StackTop - 0x1000 - Code)) throw new InvalidOperationException("bare-loop code does not fit its page");
        bytes.CopyTo(mem[(int)Code..]);
    }
}
