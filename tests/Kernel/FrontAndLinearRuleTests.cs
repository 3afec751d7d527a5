using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Copra.User.Programs;
using Xunit;
using static Iced.Intel.AssemblerRegisters;

namespace Copra.Tests.Kernel;

/// <summary>
/// The exit's front and the general start's operand address (hot/Exit/ExitPipeline.cs FetchAndDecode and LinearOf):
/// a followed exit narrates its mode and its fetch (the linear RIP, the code-page cache's answer, the bytes); and a
/// RIP-relative operand of a form the plain stage does not take (an ALU load, POP m) is relative to the next
/// instruction, in 64-bit mode through a page the guest maps to the test device near its code.
/// </summary>
public class FrontAndLinearRuleTests
{
    const ulong Dev = 0xFEB0_0000;

    [Fact]
    public void A_followed_exit_narrates_its_mode_and_its_fetch_with_the_instruction_bytes()
    {
        ulong rip = 0;
        using var sys = StageNarrationRuleTests.Boot((r, l) =>
        {
            rip = r.Add("mov eax, [ebx]", a => a.mov(eax, __dword_ptr[ebx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], StageNarrationRuleTests.Flat()).Rip;
        }, out var t);
        Assert.True(sys.Run().Quiescent);
        Assert.True(sys.Replay!.Desyncs == 0 && sys.Replay.DataMismatches == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Contains(t.Lines, s => s.StartsWith("mode: CR0=0x", StringComparison.Ordinal) && s.Contains("-> Bits32, paging ", StringComparison.Ordinal));
        // The first exit: the code page was never walked; the bytes start with MOV's 8B 03.
        Assert.Contains(t.Lines, s => s.StartsWith($"fetch: linear 0x{rip:x}, code-page cache miss (page walk), ", StringComparison.Ordinal)
            && s.Contains(" bytes: 8b03", StringComparison.Ordinal));
    }

    /// <summary>Boots 64-bit mode with a 4 KiB page 16 MiB past RAM mapped to the device; returns the page's linear address via <paramref name="near"/>.</summary>
    static CopraSystem BootNear(Action<ReplayRig, VmLayout, ulong> build, Action<GuestMemory, VmLayout>? ram = null) =>
        FaultSemanticsTests.Boot((r, l) => build(r, l, l.MemBase + l.MemLength + 0x100_0000), longMode: true, paging: (pt, mem, l) =>
        {
            pt.Map(l.MemBase + l.MemLength + 0x100_0000, Dev, 0x1000, PageSize.Size4K, writable: true, executable: false, user: true);
            ram?.Invoke(mem, l);
        });

    static byte[] RipRel(byte[] opcode, ulong target, ulong next)
    {
        long disp = (long)(target - next);
        Assert.InRange(disp, int.MinValue, int.MaxValue);
        return [.. opcode, .. BitConverter.GetBytes((int)disp)];
    }

    [Fact]
    public void A_rip_relative_alu_load_reads_the_operand_named_from_the_next_instruction()
    {
        using var sys = BootNear((r, l, near) =>
            // add eax, [rip+disp32] (03 05, 6 bytes): an ALU load, started by StartElement, addressed by LinearOf.
            r.Add("add eax, [rip+disp32] (the ID register)", a => a.db(RipRel([0x03, 0x05], near, l.Code + 6)), ExitReason.Mmio, Dev, 4, false, [(0, 0)], [],
                expect: TestDeviceRegs.IdValue));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(1, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(TestDeviceRegs.IdValue, sys.Kernel.State.Gpr(0, 0) & 0xFFFF_FFFF);
    }

    [Fact]
    public void A_rip_relative_pop_stores_to_the_operand_named_from_the_next_instruction()
    {
        const ulong Value = 0x1234_5678_9ABC_DEF0;
        ulong slot = 0;
        using var sys = BootNear((r, l, near) =>
        {
            slot = l.StackTop(0) - 0x100;
            // pop qword [rip+disp32] (8F 05, 6 bytes) to the device's Scratch64, then read it back the same way.
            ulong at = l.Code;
            r.Add("pop qword [rip+disp32] (Scratch64)", a => a.db(RipRel([0x8F, 0x05], near + TestDeviceRegs.Scratch64, at + 6)), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 8, true,
                [(4, slot)], []);
            r.Add("mov rax, [rip+disp32] (Scratch64 back)", a => a.db(RipRel([0x48, 0x8B, 0x05], near + TestDeviceRegs.Scratch64, at + 7 + 7)), ExitReason.Mmio, Dev + TestDeviceRegs.Scratch64, 8, false,
                [(0, 0)], [], expect: Value & 0xFFFF_FFFF);
        }, (mem, l) => mem.WriteU64(l.StackTop(0) - 0x100, Value));
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(2, sys.Kernel.Stats.DeviceRoundTrips);
        Assert.Equal(Value, sys.Kernel.State.Gpr(0, 0));
        Assert.Equal(slot + 8, sys.Kernel.State.Gpr(0, 4));
    }

    /// <summary>
    /// InvalidateCaches drops the fetcher's code-page entry: after the code page is remapped under the same CR3 (to a copy
    /// whose second instruction is the one the replay expects, the old frame's being overwritten with PUSH ES, #UD in 64-bit
    /// mode) and the caches invalidated, the next exit fetches from the new frame.
    /// </summary>
    [Fact]
    public void After_invalidation_a_remapped_code_page_is_fetched_from_its_new_frame()
    {
        ulong pte = 0, code = 0, second = 0;
        int length = 0;
        using var sys = FaultSemanticsTests.Boot((r, l) =>
        {
            r.Add("mov eax, [rbx] (the ID register)", a => a.mov(eax, __dword_ptr[rbx]), ExitReason.Mmio, Dev, 4, false, [(3, Dev)], [],
                expect: TestDeviceRegs.IdValue);
            var s2 = r.Add("mov eax, [rbx+4] (the version register, fetched from the new frame)", a => a.mov(eax, __dword_ptr[rbx + 4]), ExitReason.Mmio,
                Dev + TestDeviceRegs.Version, 4, false, [(3, Dev)], [], expect: TestDeviceRegs.VersionValue);
            (second, length) = (s2.Rip, s2.Length);
        }, longMode: true, paging: (pt, mem, l) => (pte, code) = (pt.EntryAddress(l.Code, 1), l.Code));
        var k = sys.Kernel;
        int n = 0;
        k.OnExitTaken = _ =>
        {
            if (++n != 2) return;
            ulong page = code & ~0xFFFUL, frame = code + 0x40000;   // a RAM page no code or table uses
            for (ulong o = 0; o < 0x1000; o += 8) k.Memory.WriteU64(frame + o, k.Memory.ReadU64(page + o));
            for (int i = 0; i < length; i++) k.Memory.WriteU8(second + (ulong)i, 0x06);
            k.Memory.WriteU64(pte, (k.Memory.ReadU64(pte) & ~0x000F_FFFF_FFFF_F000UL) | frame);
            k.InvalidateCaches(0);
        };
        Assert.True(sys.Run().Quiescent);
        FaultSemanticsTests.AssertClean(sys);
        Assert.Equal(0, sys.Replay!.ExceptionsSeen);
        Assert.Equal(2, k.Stats.DeviceRoundTrips);
        Assert.Equal(TestDeviceRegs.VersionValue, k.State.Gpr(0, 0) & 0xFFFF_FFFF);
    }
}
