using Copra.Abi;
using Copra.Hot.Exit;
using Copra.Hot.Guest;
using Copra.Kernel.Backends;
using Copra.Kernel.Exit;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// What a guest sees of the host behind forwarded exits (nobody registered the port or address, the VM forwards):
/// the POST-code port, the CMOS index/data pair, the scratch MMIO page, and all-ones from an unknown port. Driven
/// through the replay exit path, so each value is the one the guest's RAX holds after its instruction.
/// </summary>
public class ForwardedHostTests
{
    const ulong Scratch = ModelledHost.ScratchBase;

    sealed record Op(string Hex, ExitReason Reason, ulong Rax, ushort Port = 0, ulong Gpa = 0, byte Size = 1,
        bool Write = false, ulong? Expect = null, ulong Rbx = 0,
        (ulong Field, ulong Value)[]? Fields = null, (ulong Field, ulong Value, ulong Mask)[]? ExpectFields = null);

    static CopraSystem Run(params Op[] ops)
    {
        var sc = Scenario.Default() with { Vms = [new VmScenario(Vcpus: 1)] };
        return new CopraSystem(sc, backend: (k, layouts) =>
        {
            var l = layouts[0];
            var wb = new WorkloadBuilder(k.Memory, l);
            ulong rip = l.Code;
            var p = new ReplayProgram { Iterations = 1 };
            foreach (var op in ops)
            {
                byte[] bytes = Convert.FromHexString(op.Hex.Replace(" ", "", StringComparison.Ordinal));
                k.Memory.Write(rip, bytes);
                var s = new Step
                {
                    Kind = StepKind.Access, Rip = rip, Length = bytes.Length, Text = op.Hex, Reason = op.Reason,
                    Port = op.Port, Gpa = op.Gpa, Size = op.Size, Flags = op.Write ? ExitFlags.Write : ExitFlags.None,
                    Presets = [(0, op.Rax), (3, op.Rbx)], StatePresets = [], ExpectRax = op.Expect,
                    ExpectMask = op.Size >= 8 ? ulong.MaxValue : (1UL << (op.Size * 8)) - 1,
                    PresetFields = op.Fields ?? [], ExpectFields = op.ExpectFields ?? [],
                };
                rip += (ulong)bytes.Length;
                s.Next = rip;
                p.Steps.Add(s);
            }
            k.Memory.WriteU8(rip, 0xF4);
            var hlt = new Step { Kind = StepKind.Halt, Rip = rip, Length = 1, Reason = ExitReason.Hlt, ClearIf = true, Text = "hlt" };
            hlt.Next = rip + 1;
            p.Steps.Add(hlt);
            p.LoopStart = p.LoopEnd = p.Steps.Count;
            wb.InitialState(l.Code, 0).ApplyTo(k.State, 0);
            k.State.OnEntry(0);
            return new ReplayBackend(k.State, [p]);
        });
    }

    static void AssertClean(CopraSystem sys, int requests)
    {
        Assert.True(sys.Run().Quiescent);
        var r = sys.Replay!;
        Assert.True(r.Desyncs == 0 && r.DataMismatches == 0, string.Join("\n", r.Problems));
        Assert.Empty(r.Exceptions);
        Assert.Equal(requests, sys.Kernel.Host.Requests);
        Assert.Equal(0, sys.Kernel.InternalErrors);
    }

    [Fact]
    public void The_CMOS_pair_keeps_a_byte_per_index_and_ignores_the_NMI_mask_bit_of_the_index()
    {
        using var sys = Run(
            new Op("e6 70", ExitReason.Io, 0x0A, Port: 0x70, Write: true),          // out 0x70, al: index 0x0A
            new Op("e6 71", ExitReason.Io, 0x5A, Port: 0x71, Write: true),          // out 0x71, al: CMOS[0x0A] = 0x5A
            new Op("e6 70", ExitReason.Io, 0x0B, Port: 0x70, Write: true),          // index 0x0B
            new Op("e6 71", ExitReason.Io, 0xA5, Port: 0x71, Write: true),          // CMOS[0x0B] = 0xA5
            new Op("e6 70", ExitReason.Io, 0x8A, Port: 0x70, Write: true),          // index 0x0A with bit 7 (NMI off) set
            new Op("e4 70", ExitReason.Io, 0, Port: 0x70, Expect: 0x0A),             // in al, 0x70: the index, bit 7 dropped
            new Op("e4 71", ExitReason.Io, 0, Port: 0x71, Expect: 0x5A));            // in al, 0x71: CMOS[0x0A], not [0x0B]
        AssertClean(sys, 7);
    }

    [Fact]
    public void The_POST_code_port_keeps_the_last_byte_written_and_an_unknown_port_reads_all_ones()
    {
        using var sys = Run(
            new Op("e6 80", ExitReason.Io, 0x1242, Port: 0x80, Write: true),        // out 0x80, al: AL = 0x42
            new Op("e4 80", ExitReason.Io, 0, Port: 0x80, Expect: 0x42),
            new Op("e6 60", ExitReason.Io, 0x33, Port: 0x60, Write: true),          // dropped
            new Op("e4 60", ExitReason.Io, 0, Port: 0x60, Expect: 0xFF),
            new Op("66 e5 60", ExitReason.Io, 0, Port: 0x60, Size: 2, Expect: 0xFFFF));   // in ax, 0x60
        AssertClean(sys, 5);
        Assert.Equal(0x42, sys.Kernel.Host.LastPostCode);
    }

    [Fact]
    public void The_scratch_page_keeps_what_is_written_up_to_its_last_byte()
    {
        ulong last = Scratch + ModelledHost.ScratchLength - 4;
        using var sys = Run(
            new Op("89 03", ExitReason.Mmio, 0x1122_3344, Gpa: last, Size: 4, Write: true, Rbx: last),   // mov [rbx], eax
            new Op("8b 03", ExitReason.Mmio, 0, Gpa: last, Size: 4, Expect: 0x1122_3344, Rbx: last),        // mov eax, [rbx]
            new Op("8a 03", ExitReason.Mmio, 0, Gpa: last + 1, Size: 1, Expect: 0x33, Rbx: last + 1));      // mov al, [rbx]
        AssertClean(sys, 3);
    }

    [Fact]
    public void A_sixteen_byte_SSE_store_and_load_are_forwarded_whole_through_the_scratch_page()
    {
        ulong at = Scratch + 0x40;
        ulong x0 = StateField.Xmm(0, high: false), x0h = StateField.Xmm(0, high: true);
        ulong x1 = StateField.Xmm(1, high: false), x1h = StateField.Xmm(1, high: true);
        using var sys = Run(
            new Op("f3 0f 7f 03", ExitReason.Mmio, 0, Gpa: at, Size: 16, Write: true, Rbx: at,          // movdqu [rbx], xmm0
                Fields: [(x0, 0x0807_0605_0403_0201), (x0h, 0x100F_0E0D_0C0B_0A09)]),
            new Op("f3 0f 6f 0b", ExitReason.Mmio, 0, Gpa: at, Size: 16, Rbx: at,                        // movdqu xmm1, [rbx]
                ExpectFields: [(x1, 0x0807_0605_0403_0201, ulong.MaxValue), (x1h, 0x100F_0E0D_0C0B_0A09, ulong.MaxValue)]),
            new Op("8a 03", ExitReason.Mmio, 0, Gpa: at + 15, Size: 1, Expect: 0x10, Rbx: at + 15));    // its last byte, alone
        AssertClean(sys, 3);
    }

    [Fact]
    public void A_failed_request_reads_all_ones_drops_the_write_and_is_counted()
    {
        using var sys = Run(
            new Op("e6 80", ExitReason.Io, 0x42, Port: 0x80, Write: true),                  // out 0x80, al: lost
            new Op("e4 80", ExitReason.Io, 0, Port: 0x80, Expect: 0xFF));                    // in al, 0x80: all-ones, not 0
        sys.Kernel.Host.FailRate = 1;   // after boot: the scenario's fault injection sets it there
        AssertClean(sys, 2);
        Assert.Equal(0, sys.Kernel.Host.LastPostCode);
        Assert.Equal(2, sys.Kernel.Host.Failures);
        Assert.Equal(2, sys.Kernel.Stats.Get(Counter.ForwardFailures));
    }

    // The host's rules on their own (what the two exit-path tests above reach only in part).

    [Theory]
    [InlineData(1, 0xFFUL)]
    [InlineData(2, 0xFFFFUL)]
    [InlineData(4, 0xFFFF_FFFFUL)]
    [InlineData(8, ulong.MaxValue)]
    public void An_address_with_nothing_behind_it_reads_all_ones_of_the_access_size(uint size, ulong ones)
    {
        var host = new ModelledHost();
        Assert.True(host.Access(EventKind.Mmio, 0xFEB0_0000, size, write: false, 0, out ulong value));
        Assert.Equal(ones, value);
        Assert.True(host.Access(EventKind.Ioio, 0x3F8, size, write: false, 0, out value));
        Assert.Equal(ones, value);
        Assert.True(host.Access(EventKind.Mmio, 0xFEB0_0000, size, write: true, 0x1234, out value));
        Assert.Equal(0UL, value);                                                       // a write returns nothing
        Assert.True(host.Access(EventKind.Ioio, 0x3F8, size, write: true, 0x1234, out value));
        Assert.Equal(0UL, value);
        Assert.Equal(4, host.Requests);
    }

    [Fact]
    public void An_access_that_runs_past_the_scratch_page_is_not_the_scratch_page()
    {
        var host = new ModelledHost();
        ulong end = Scratch + ModelledHost.ScratchLength;
        host.Access(EventKind.Mmio, end - 4, 4, write: true, 0x4433_2211, out _);
        host.Access(EventKind.Mmio, end - 2, 4, write: true, 0xDDCC_BBAA, out _);                 // straddles the end: dropped
        host.Access(EventKind.Mmio, end - 4, 4, write: false, 0, out ulong kept);
        Assert.Equal(0x4433_2211UL, kept);
        host.Access(EventKind.Mmio, end - 2, 4, write: false, 0, out ulong past);
        Assert.Equal(0xFFFF_FFFFUL, past);
        host.Access(EventKind.Mmio, Scratch - 1, 2, write: false, 0, out ulong before);
        Assert.Equal(0xFFFFUL, before);
        host.Access(EventKind.Mmio, Scratch, 2, write: true, 0xBEEF, out _);                    // the page's first byte is the page's
        host.Access(EventKind.Mmio, Scratch, 2, write: false, 0, out ulong first);
        Assert.Equal(0xBEEFUL, first);
    }

    [Fact]
    public void A_wide_access_keeps_its_bytes_in_the_scratch_page_and_reads_all_ones_elsewhere_or_on_failure()
    {
        var host = new ModelledHost();
        byte[] data = [.. Enumerable.Range(1, 16).Select(i => (byte)i)];
        Assert.True(host.AccessWide(Scratch + 0x100, data, write: true, out _));
        var back = new byte[16];
        Assert.True(host.AccessWide(Scratch + 0x100, back, write: false, out _));
        Assert.Equal(data, back);
        host.Access(EventKind.Mmio, Scratch + 0x10F, 1, write: false, 0, out ulong last);   // all 16 bytes went in, not 8
        Assert.Equal(16UL, last);

        var outside = new byte[16];
        Assert.True(host.AccessWide(Scratch + ModelledHost.ScratchLength - 8, outside, write: false, out _));   // runs past the page
        Assert.All(outside, b => Assert.Equal(0xFF, b));

        var failing = new ModelledHost { FailRate = 1 };
        var lost = new byte[16];
        Assert.False(failing.AccessWide(Scratch, lost, write: false, out _));
        Assert.All(lost, b => Assert.Equal(0xFF, b));
        Assert.Equal(1, failing.Failures);
        Assert.False(failing.AccessWide(Scratch, data, write: true, out _));

        // The page's first and last 16 bytes are the page's (a fresh page reads zeros, not all-ones).
        var edge = new ModelledHost();
        Assert.True(edge.AccessWide(Scratch, back, write: false, out _));
        Assert.All(back, b => Assert.Equal(0, b));
        Assert.True(edge.AccessWide(Scratch + ModelledHost.ScratchLength - 16, data, write: true, out _));
        Assert.True(edge.AccessWide(Scratch + ModelledHost.ScratchLength - 16, back, write: false, out _));
        Assert.Equal(data, back);
    }

    [Theory]
    [InlineData(0.0, 0, 0)]
    [InlineData(0.25, 2_250, 2_750)]
    [InlineData(1.0, 10_000, 10_000)]
    public void The_fail_rate_is_the_share_of_requests_that_fail(double rate, int low, int high)
    {
        var host = new ModelledHost { FailRate = rate };
        int failed = 0;
        for (int i = 0; i < 10_000; i++)
            if (!host.Access(EventKind.Ioio, 0x80, 1, write: false, 0, out _)) failed++;
        Assert.InRange(failed, low, high);
        Assert.Equal(failed, host.Failures);
        Assert.Equal(10_000, host.Requests);
    }
}
