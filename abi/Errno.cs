namespace Copra.Abi;

/// <summary>Error results: small negative values in RAX (COCONUT's <c>SysCallError</c>).</summary>
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

    /// <summary>The lowest error value; anything in [Min, -1] is an error.</summary>
    public const long Min = EWRONLY;

    public static bool IsError(long rax) => rax < 0 && rax >= Min;

    public static string Name(long rax) => rax switch
    {
        EINVAL => "EINVAL", ENOSYS => "ENOSYS", ENOMEM => "ENOMEM", EPERM => "EPERM", EFAULT => "EFAULT",
        EBUSY => "EBUSY", ENOTFOUND => "ENOTFOUND", ENOTSUPP => "ENOTSUPP", EEXIST => "EEXIST",
        ERDONLY => "ERDONLY", EWRONLY => "EWRONLY", _ => rax.ToString(),
    };
}
