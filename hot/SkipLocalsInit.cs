// Locals and stackalloc are not zeroed in this assembly (the exit path's frames would otherwise zero their spill
// area on every call). C# already requires every local to be assigned before use; a stackalloc buffer whose
// contents are read before they are written is cleared where it is made (each site says so).
[module: System.Runtime.CompilerServices.SkipLocalsInit]
