using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Kernel.Backends;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// Which segment bases the exit path adds to an operand's offset (hot/Exit/ExitPipeline.cs, SegmentBaseFor and the ES base
/// of BeginAccess): outside 64-bit mode every segment's base, DS's and ES's included; in 64-bit mode only FS's and GS's, and
/// never DS's or ES's (a nonzero base left in them from an earlier mode is ignored, as the CPU ignores it).
/// </summary>
public class SegmentBaseRuleTests
{
    const ulong Dev = 0xFEB0_0000, Window = Dev + 0x1000;
    static (ulong, ulong) Base(int seg, ulong value) => (StateField.Seg(seg, StateField.Base), value);

    [Fact]
    public void Outside_64_bit_mode_ds_and_es_bases_are_added()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov dword [ebx+8], 0x4321 (DS base 0)", a => a.mov(__dword_ptr[ebx + 8], 0x4321), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], []);
            r.Add("mov eax, [ebx+8] (DS base = the device, EBX 0)", a => a.mov(eax, __dword_ptr[ebx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, 0)], [Base(StateField.Ds, Dev)], expect: 0x4321);
            var st = r.Add("stosd (ES base = the window, EDI 0x10)", a => a.stosd(), ExitReason.Mmio, Window + 0x10, 4, true, [(7, 0x10), (0, 0x7788)], [Base(StateField.Ds, 0), Base(StateField.Es, Window)]);
            st.Flags |= ExitFlags.String;
            r.Add("mov eax, [ebx+0x10] (the window, flat)", a => a.mov(eax, __dword_ptr[ebx + 0x10]), ExitReason.Mmio, Window + 0x10, 4, false, [(3, Window)], [Base(StateField.Es, 0)], expect: 0x7788);
        });
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(4, sys.Kernel.Stats.DeviceRoundTrips);
    }

    [Fact]
    public void In_64_bit_mode_only_fs_and_gs_bases_are_added()
    {
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            (ulong, ulong)[] stale = [Base(StateField.Ds, 0x40), Base(StateField.Es, 0x40)];
            r.Add("mov dword [rbx+8], 0x5a5a (DS base 0x40: ignored)", a => a.mov(__dword_ptr[rbx + 8], 0x5A5A), ExitReason.Mmio, Dev + 8, 4, true, [(3, Dev)], stale);
            r.Add("mov eax, fs:[rbx+8] (FS base = the device, RBX 0)", a => a.mov(eax, __dword_ptr.fs[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, 0)], [Base(StateField.Fs, Dev)], expect: 0x5A5A);
            r.Add("mov eax, gs:[rbx+8] (GS base = the device, RBX 0)", a => a.mov(eax, __dword_ptr.gs[rbx + 8]), ExitReason.Mmio, Dev + 8, 4, false, [(3, 0), (0, 0)], [Base(StateField.Gs, Dev)], expect: 0x5A5A);
            var st = r.Add("stosd (ES base 0x40: ignored)", a => a.stosd(), ExitReason.Mmio, Window + 0x20, 4, true, [(7, Window + 0x20), (0, 0x99)], stale);
            st.Flags |= ExitFlags.String;
            r.Add("mov eax, [rbx+0x20] (the window: what STOSD wrote)", a => a.mov(eax, __dword_ptr[rbx + 0x20]), ExitReason.Mmio, Window + 0x20, 4, false, [(3, Window)], stale, expect: 0x99);
        }, longMode: true);
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(5, sys.Kernel.Stats.DeviceRoundTrips);
    }
}
