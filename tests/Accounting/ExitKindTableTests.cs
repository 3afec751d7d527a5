using Copra.Hot.Decode;
using Copra.Hot.Exit;
using Xunit;

namespace Copra.Tests.Accounting;

/// <summary>The kind an exit is counted under comes from a table made from the form's rule (ExitRules.KindOf): the table
/// must give what the rule gives for every byte an AccessKind can hold, and the rule what the per-kind tables mean.</summary>
public sealed class ExitKindTableTests
{
    [Fact]
    public void The_table_gives_the_rule_for_every_byte()
    {
        for (int k = 0; k < 256; k++)
            Assert.Equal(ExitRules.KindOfForm((AccessKind)k), ExitRules.KindOf((AccessKind)k));
    }

    [Theory]
    [InlineData(AccessKind.Read, ExitKind.MmioRead)]
    [InlineData(AccessKind.ReadZx, ExitKind.MmioRead)]
    [InlineData(AccessKind.Write, ExitKind.MmioWrite)]
    [InlineData(AccessKind.WriteImm, ExitKind.MmioWrite)]
    [InlineData(AccessKind.In, ExitKind.PortIn)]
    [InlineData(AccessKind.Out, ExitKind.PortOut)]
    [InlineData(AccessKind.Outs, ExitKind.PortString)]
    [InlineData(AccessKind.Stos, ExitKind.MmioString)]
    [InlineData(AccessKind.Xchg, ExitKind.MmioAlu)]
    [InlineData(AccessKind.Pop, ExitKind.MmioWrite)]
    public void A_form_is_counted_under_its_kind(AccessKind form, ExitKind kind) => Assert.Equal(kind, ExitRules.KindOf(form));
}
