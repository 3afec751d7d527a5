using Copra.Abi;

namespace Copra.Cold;

/// <summary>
/// The one error type of the user/kernel boundary. Cold code throws it; the syscall gate catches
/// it and maps it to the ABI code in one place (<see cref="Code"/>). Nothing else crosses the gate.
/// </summary>
public sealed class KernelError(long code, string why) : Exception(why)
{
    public long Code { get; } = code;

    public static KernelError Inval(string why) => new(Errno.EINVAL, why);
    public static KernelError NotFound(string why) => new(Errno.ENOTFOUND, why);
    public static KernelError Busy(string why) => new(Errno.EBUSY, why);
    public static KernelError Fault(string why) => new(Errno.EFAULT, why);
    public static KernelError NotSupp(string why) => new(Errno.ENOTSUPP, why);
    public static KernelError Exists(string why) => new(Errno.EEXIST, why);
    public static KernelError NoMem(string why) => new(Errno.ENOMEM, why);
    public static KernelError Perm(string why) => new(Errno.EPERM, why);
}
