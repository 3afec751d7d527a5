using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Copra.Hot.Layout;

/// <summary>
/// An array element without the bounds check, for the exit path's indices that are in range by construction (a vCPU
/// index the kernel stamped after its own checked lookup, a CPU index a driver passes, a kind an enum gives); each
/// caller says why its index is in range. Why: ~25 checked lookups per MMIO exit were a compare and a branch each.
/// Debug builds still check.
/// </summary>
public static class Unchecked
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref T At<T>(T[] array, int index)
    {
        Debug.Assert((uint)index < (uint)array.Length);
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(array), (nint)(uint)index);
    }
}
