using Copra.Kernel.Run;
using BenchmarkDotNet.Attributes;
using Copra.Hot.Decode;
using Iced.Intel;

namespace Copra.Bench;

/// <summary>
/// One whole exit through the real kernel with the replay backend, per operation: each invocation runs one
/// direct-switch slice of <see cref="ExitRig.Batch"/> exits (the model's WAIT enters the guest directly) and
/// BenchmarkDotNet divides (kernel and device model software only; the platform's modelled cycles are not in these times). The baseline is one
/// Iced decode of the same instruction (`mov eax, [rsi]`): the target is a whole software exit within
/// 3x of it.
/// </summary>
[MemoryDiagnoser]
public class ExitPathBench
{
    ExitRig? _rig;
    byte[] _movLoad = [];
    ByteArrayCodeReader _reader = null!;
    Decoder _iced = null!;

    [GlobalSetup(Target = nameof(IcedDecodeOfSameInstruction))]
    public void SetupIced()
    {
        _movLoad = MmioMix.MovLoad();
        _reader = new ByteArrayCodeReader(_movLoad);
        _iced = Decoder.Create(64, _reader);
    }

    [GlobalSetup(Target = nameof(MmioReadExit))] public void SetupRead() => _rig = new ExitRig(ExitFlavor.MmioRead);
    [GlobalSetup(Target = nameof(MmioWriteExit))] public void SetupWrite() => _rig = new ExitRig(ExitFlavor.MmioWrite);
    [GlobalSetup(Target = nameof(MmioAluExit))] public void SetupAlu() => _rig = new ExitRig(ExitFlavor.MmioAlu);
    [GlobalSetup(Target = nameof(PortExit))] public void SetupPort() => _rig = new ExitRig(ExitFlavor.PortOut);
    [GlobalSetup(Target = nameof(ForwardedExit))] public void SetupForward() => _rig = new ExitRig(ExitFlavor.Forwarded);

    [GlobalCleanup]
    public void Cleanup()
    {
        _rig?.Check();
        _rig?.Dispose();
        _rig = null;
    }

    [Benchmark(Baseline = true, Description = "Iced decode of mov eax,[rsi] (yardstick)")]
    public int IcedDecodeOfSameInstruction()
    {
        _reader.Position = 0;
        _iced.IP = 0x1000;
        _iced.Decode(out Instruction insn);
        return insn.Length;
    }

    [Benchmark(Description = "MMIO read exit, mov eax,[rsi] -> test device", OperationsPerInvoke = ExitRig.Batch)]
    public long MmioReadExit() => _rig!.StepExits(ExitRig.Batch);

    [Benchmark(Description = "MMIO write exit, mov [rsi],eax -> test device", OperationsPerInvoke = ExitRig.Batch)]
    public long MmioWriteExit() => _rig!.StepExits(ExitRig.Batch);

    [Benchmark(Description = "MMIO read-modify-write exit, or dword [rsi],1 -> test device (two round trips)", OperationsPerInvoke = ExitRig.Batch)]
    public long MmioAluExit() => _rig!.StepExits(ExitRig.Batch);

    [Benchmark(Description = "port exit, out dx,al -> UART model", OperationsPerInvoke = ExitRig.Batch)]
    public long PortExit() => _rig!.StepExits(ExitRig.Batch);

    [Benchmark(Description = "forwarded MMIO read exit -> modelled host", OperationsPerInvoke = ExitRig.Batch)]
    public long ForwardedExit() => _rig!.StepExits(ExitRig.Batch);
}
