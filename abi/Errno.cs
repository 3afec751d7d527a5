namespace Copra.Abi;

/// <summary>
/// Error results in RAX (upstream's <c>SysCallError</c>, syscall/src/call.rs): -1..-11, and UNKNOWN (-128) for
/// any kernel error that has no code of its own. User code treats every RAX above 2^64 - 65536 as an error
/// (<see cref="IsError"/>), so a kernel may add codes without breaking old programs.
/// </summary>
public static class Errno
{
    public const long EINVAL = -1;
    public const long ENOSYS = -2;
    public const long ENOMEM = -3;
    public const long EPERM = -4;
    public const long EFAULT = -5;
    public const long EBUSY = -6;
    public const long ENOTFOUND = -7;
    public const long ENOTSUPP = -8;
    public const long EEXIST = -9;
    public const long ERDONLY = -10;
    public const long EWRONLY = -11;
    public const long UNKNOWN = -128;

    /// <summary>The error window as upstream's user library checks it: RAX &gt; u64::MAX - 65535, i.e. -65535..-1.</summary>
    public const ulong ErrorFloor = ulong.MaxValue - ushort.MaxValue;

    public static bool IsError(long rax) => (ulong)rax > ErrorFloor;

    /// <summary>What upstream's user library makes of an error RAX: the code itself for -1..-11, UNKNOWN for the rest.</summary>
    public static long Normalize(long rax) => rax is >= EWRONLY and <= EINVAL ? rax : UNKNOWN;

    public static string Name(long rax) => rax switch
    {
        EINVAL => "EINVAL", ENOSYS => "ENOSYS", ENOMEM => "ENOMEM", EPERM => "EPERM", EFAULT => "EFAULT",
        EBUSY => "EBUSY", ENOTFOUND => "ENOTFOUND", ENOTSUPP => "ENOTSUPP", EEXIST => "EEXIST",
        ERDONLY => "ERDONLY", EWRONLY => "EWRONLY", UNKNOWN => "UNKNOWN", _ => rax.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
