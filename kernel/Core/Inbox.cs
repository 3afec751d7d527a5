namespace Copra.Kernel.Core;

public enum CpuMessageKind : byte { RunThread, RunVcpu, Answer }

/// <summary>What other CPUs post to a CPU: run this (woken or migrated) thread, enter this vCPU, apply a device's answer to this vCPU's access.</summary>
public readonly record struct CpuMessage(CpuMessageKind Kind, int Id);
