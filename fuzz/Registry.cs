using Copra.Fuzz.Core;
using Copra.Fuzz.Targets;

namespace Copra.Fuzz;

/// <summary>Every campaign target by name. <c>mode</c> narrows the decoder targets to one CPU mode.</summary>
public static class Registry
{
    public static List<IFuzzTarget> Create(int? mode)
    {
        var list = new List<IFuzzTarget>();
        foreach (var m in Modes.All)
            if (mode is null || Modes.Bits(m) == mode) list.Add(new DecoderTarget(m));
        foreach (var m in Modes.All)
            if (mode is null || Modes.Bits(m) == mode) list.Add(new DecoderSweepTarget(m));
        list.Add(new WriteBackTarget());
        list.Add(new PageWalkTarget());
        list.Add(new RingTarget());
        list.Add(new SyscallTarget());
        list.Add(new MemStateTarget());
        foreach (var f in Enum.GetValues<OracleFamily>()) list.Add(new CpuOracleTarget(f));
        list.Add(new X87OracleTarget());
        return list;
    }
}
