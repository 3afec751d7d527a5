using System.Runtime.CompilerServices;

namespace Copra.Hot.Guest;

/// <summary>What the access is for: a data read, a data write or an instruction fetch, optionally at CPL 3.</summary>
[Flags]
public enum AccessType : byte
{
    /// <summary>Supervisor data read.</summary>
    Read = 0,
    /// <summary>Data write.</summary>
    Write = 1,
    /// <summary>Instruction fetch.</summary>
    Execute = 2,
    /// <summary>The access is made at CPL 3 (combine with the others).</summary>
    User = 4,
    /// <summary>CR4.SMEP (bit 20) on a fetch: a supervisor-mode fetch from a user page is #PF; the error code reports I/D
    /// for every fetch (as it does with EFER.NXE).</summary>
    Smep = 8,
    /// <summary>CR4.SMAP (bit 21) with a supervisor-mode data access that RFLAGS.AC does not exempt (AC = 0, or an implicit
    /// supervisor access, which AC never exempts): an access to a user page is #PF.</summary>
    Smap = 16,
}

/// <summary>The access-type bits SMEP and SMAP add, derived once per access from CR4, the CPL and RFLAGS.AC.</summary>
public static class SupervisorProtection
{
    public const ulong Cr4Smep = 1UL << 20, Cr4Smap = 1UL << 21, RflagsAc = 1UL << 18;

    /// <summary>For an instruction fetch at <paramref name="cpl"/>: User at CPL 3; Smep whenever CR4.SMEP is set (the walk
    /// applies it to supervisor fetches; the error code's I/D bit follows it at any CPL, SDM vol. 3 §4.7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static AccessType Fetch(int cpl, ulong cr4) =>
        AccessType.Execute | (cpl == 3 ? AccessType.User : 0) | ((cr4 & Cr4Smep) != 0 ? AccessType.Smep : 0);

    /// <summary>For an explicit data access at <paramref name="cpl"/>: User at CPL 3; at CPL 0-2, Smap when CR4.SMAP is set
    /// and RFLAGS.AC is clear (SDM vol. 3 §4.6.1). An implicit supervisor access passes <paramref name="implicitAccess"/>:
    /// AC does not exempt it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static AccessType Data(bool write, int cpl, ulong cr4, ulong rflags, bool implicitAccess = false) =>
        (write ? AccessType.Write : AccessType.Read)
        | (cpl == 3 ? AccessType.User
            : (cr4 & Cr4Smap) != 0 && (implicitAccess || (rflags & RflagsAc) == 0) ? AccessType.Smap : 0);
}

/// <summary>Outcome of a translation.</summary>
public enum WalkStatus : byte
{
    /// <summary>Translated; the guest-physical address is valid (it may still lie outside RAM: MMIO).</summary>
    Ok = 0,
    /// <summary>The guest must see #PF with <see cref="WalkResult.ErrorCode"/> and CR2 = <see cref="WalkResult.Address"/>.</summary>
    PageFault = 1,
    /// <summary>The linear address is non-canonical: the guest must see #GP(0).</summary>
    GeneralProtection = 2,
}

/// <summary>
/// #PF error-code bits (SDM vol. 3 §4.7):
/// <code>
///  31            5    4     3      2     1     0
/// +-------------+-----+------+-----+-----+-----+
/// |  (0 here)   | I/D | RSVD | U/S | W/R |  P  |
/// +-------------+-----+------+-----+-----+-----+
/// </code>
/// P: 0 = not-present entry, 1 = protection or reserved-bit violation. W/R: the access was a write.
/// U/S: the access was at CPL 3. RSVD: a reserved bit was set in a present entry. I/D: the access was an
/// instruction fetch (reported only when the XD bit exists, i.e. PAE/4/5-level with EFER.NXE; SMEP is not modelled).
/// </summary>
public static class PageFaultError
{
    public const uint Present = 1u << 0;
    public const uint Write = 1u << 1;
    public const uint User = 1u << 2;
    public const uint Reserved = 1u << 3;
    public const uint Fetch = 1u << 4;
}

/// <summary>The result of <see cref="PageWalker.Translate"/>: Ok, or the exception the guest must see.</summary>
public readonly struct WalkResult : IEquatable<WalkResult>
{
    /// <summary>Ok, PageFault or GeneralProtection.</summary>
    public readonly WalkStatus Status;
    /// <summary>Paging-structure level of the entry that faulted (5..1), 0 for an access-rights fault or #GP.</summary>
    public readonly byte Level;
    /// <summary>True when the faulting entry's own address lay outside guest memory (reported as P|RSVD, as if it read all-ones).</summary>
    public readonly bool TableOutsideMemory;
    /// <summary>The #PF error code (see <see cref="PageFaultError"/>); 0 unless <see cref="Status"/> is PageFault.</summary>
    public readonly uint ErrorCode;
    /// <summary>The faulting linear address (the guest's CR2); 0 when Ok.</summary>
    public readonly ulong Address;

    WalkResult(WalkStatus status, uint errorCode, ulong address, int level, bool outside)
    {
        Status = status; ErrorCode = errorCode; Address = address; Level = (byte)level; TableOutsideMemory = outside;
    }

    /// <summary>The successful result.</summary>
    public static WalkResult Ok => default;
    /// <summary>A #PF for the guest.</summary>
    public static WalkResult PageFault(uint errorCode, ulong address, int level = 0, bool tableOutsideMemory = false) =>
        new(WalkStatus.PageFault, errorCode, address, level, tableOutsideMemory);
    /// <summary>A #GP(0) for a non-canonical address.</summary>
    public static WalkResult GeneralProtection(ulong address) => new(WalkStatus.GeneralProtection, 0, address, 0, false);

    /// <summary>True when the translation succeeded.</summary>
    public bool IsOk => Status == WalkStatus.Ok;

    public bool Equals(WalkResult o) =>
        Status == o.Status && ErrorCode == o.ErrorCode && Address == o.Address && Level == o.Level && TableOutsideMemory == o.TableOutsideMemory;
    public override bool Equals(object? obj) => obj is WalkResult r && Equals(r);
    public override int GetHashCode() => HashCode.Combine(Status, ErrorCode, Address, Level, TableOutsideMemory);
    public static bool operator ==(WalkResult a, WalkResult b) => a.Equals(b);
    public static bool operator !=(WalkResult a, WalkResult b) => !a.Equals(b);
    public override string ToString() => Status switch
    {
        WalkStatus.Ok => "Ok",
        WalkStatus.GeneralProtection => $"#GP(0) at {Address:X}",
        _ => $"#PF({ErrorCode:X}) at {Address:X} level {Level}{(TableOutsideMemory ? " (table outside memory)" : "")}",
    };
}
