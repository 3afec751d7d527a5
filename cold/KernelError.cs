namespace Copra.Cold;

/// <summary>
/// What went wrong, in the kernel's terms (upstream's <c>SvsmError</c> leaves, kernel/src/error.rs). The syscall
/// table turns a kind into an ABI code in one place (<c>SysCallTable.ToAbi</c>); kinds upstream leaves without a
/// code (a directory where a file was wanted, a file where a directory was, a directory that is not empty) come
/// back as UNKNOWN there too, so a program written for upstream sees the same RAX.
/// </summary>
public enum KernelErrorKind
{
    Inval, NoMem, Perm, Fault, Busy, NotFound, NotSupp, Exists, ReadOnly, WriteOnly,
    /// <summary>upstream FsError::IsDir (UNLINK of a directory): no ABI code.</summary>
    IsDir,
    /// <summary>upstream FsError::IsFile (RMDIR of a file): no ABI code.</summary>
    IsFile,
    /// <summary>upstream FsError::NotEmpty (RMDIR of a directory with entries): no ABI code.</summary>
    NotEmpty,
}

/// <summary>
/// The one error type of the user/kernel boundary. Cold code throws it; the syscall table catches it and maps
/// its <see cref="Kind"/> to the ABI code in one place. Nothing else crosses the gate.
/// </summary>
public sealed class KernelError(KernelErrorKind kind, string why) : Exception(why)
{
    public KernelErrorKind Kind { get; } = kind;

    public static KernelError Inval(string why) => new(KernelErrorKind.Inval, why);
    public static KernelError NotFound(string why) => new(KernelErrorKind.NotFound, why);
    public static KernelError Busy(string why) => new(KernelErrorKind.Busy, why);
    public static KernelError Fault(string why) => new(KernelErrorKind.Fault, why);
    public static KernelError NotSupp(string why) => new(KernelErrorKind.NotSupp, why);
    public static KernelError Exists(string why) => new(KernelErrorKind.Exists, why);
    public static KernelError NoMem(string why) => new(KernelErrorKind.NoMem, why);
    public static KernelError Perm(string why) => new(KernelErrorKind.Perm, why);
    public static KernelError ReadOnly(string why) => new(KernelErrorKind.ReadOnly, why);
    public static KernelError WriteOnly(string why) => new(KernelErrorKind.WriteOnly, why);
    public static KernelError IsDir(string why) => new(KernelErrorKind.IsDir, why);
    public static KernelError IsFile(string why) => new(KernelErrorKind.IsFile, why);
    public static KernelError NotEmpty(string why) => new(KernelErrorKind.NotEmpty, why);
}
