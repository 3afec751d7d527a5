using Copra.Kernel.Kvm;
using Xunit;

namespace Copra.Tests.Kvm;

/// <summary>Why KVM tests cannot run here, or null when /dev/kvm opens and works. Checked once per run.</summary>
static class KvmAvailability
{
    static readonly Lazy<string?> s_skipReason = new(() =>
        KvmSystem.IsAvailable(out string reason) ? null : $"KVM test skipped: {reason}");

    public static string? SkipReason => s_skipReason.Value;
}

/// <summary>A fact that needs /dev/kvm: reported as skipped, with the reason, where it cannot be opened.</summary>
public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute()
    {
        if (KvmAvailability.SkipReason is { } reason) Skip = reason;
    }
}

/// <summary>A theory that needs /dev/kvm: reported as skipped, with the reason, where it cannot be opened.</summary>
public sealed class KvmTheoryAttribute : TheoryAttribute
{
    public KvmTheoryAttribute()
    {
        if (KvmAvailability.SkipReason is { } reason) Skip = reason;
    }
}
