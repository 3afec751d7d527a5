using Copra.Hot.State;
using Copra.Kernel.Backends;
using Copra.Kernel.Run;
using Xunit;

namespace Copra.Tests.Kernel;

/// <summary>
/// The system-state forms and segment loads through the real exit path (replay backend, the test device on the memory
/// side, the descriptor tables in guest RAM): WorkloadBuilder.SystemFamilies loads a GDT with LGDT from the device and
/// stores it back with SGDT, loads FS, LDTR and TR from it, far-jumps and far-calls between two code segments, and reads
/// every stored value back from the device; the replay checks each loaded register. Here: the faults each raised exactly
/// once (#NP for the absent descriptor, #GP for the call gate and the non-canonical LGDT base), and the descriptor bits
/// the loads write in guest RAM (accessed, TSS busy).
/// </summary>
public class SystemFamiliesTests
{
    [Fact]
    public void System_forms_through_the_exit_path_load_store_and_fault_whole()
    {
        using var sys = new CopraSystem(Scenario.Default() with
        {
            Workload = new WorkloadSpec { Iterations = 1, SystemFamilies = true },
        });
        var r = sys.Run();
        var k = sys.Kernel;
        Assert.True(r.Quiescent);
        Assert.True(sys.Replay!.DataMismatches == 0 && sys.Replay.Desyncs == 0, string.Join("\n", sys.Replay.Problems));
        Assert.Equal(1, sys.Replay.ExceptionsByVector[11]);   // #NP(0x38): MOV GS of a not-present descriptor
        Assert.Equal(2, sys.Replay.ExceptionsByVector[13]);   // #GP(0x70) call gate, #GP(0) non-canonical LGDT base
        var np = Assert.Single(sys.Replay.Exceptions, e => (e.Event & 0xFF) == 11);
        Assert.Equal((ulong)WorkloadBuilder.SelAbsent, np.Event >> 32);
        var gps = sys.Replay.Exceptions.Where(e => (e.Event & 0xFF) == 13).Select(e => e.Event >> 32).ToArray();
        Assert.Equal(new ulong[] { WorkloadBuilder.SelGate, 0 }, gps);
        Assert.Equal(0, sys.Replay.ExceptionsByVector[6]);    // no #UD: every form came from the tables
        Assert.Equal(0, k.Stats.IcedFallbacks);
        Assert.Equal(0, k.InternalErrors);

        ulong gdt = sys.Layouts[0].Data + 0xA00;
        ulong Type(ushort sel) => (k.Memory.ReadU64(gdt + sel) >> 40) & 0xF;
        Assert.Equal(0x3UL, Type(WorkloadBuilder.SelFsData));                     // data, accessed: set by MOV FS
        Assert.Equal((ulong)SegmentAttributes.TypeBusyTss, Type(WorkloadBuilder.SelTss));   // LTR made it busy
        Assert.Equal(0xBUL, Type(WorkloadBuilder.SelCode));                       // code, accessed: set by the far JMP
        Assert.Equal(0x2UL, Type(WorkloadBuilder.SelAbsent) & 0x3);               // the faulted load wrote nothing
    }
}
