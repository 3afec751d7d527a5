namespace Copra.Kernel.Core;

public enum CpuMessageKind : byte { RunThread, RunVcpu }

/// <summary>What other CPUs post to a CPU: run this (woken or migrated) thread, enter this vCPU.</summary>
public readonly record struct CpuMessage(CpuMessageKind Kind, int Id);
