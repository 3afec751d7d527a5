#!/usr/bin/env python3
"""partprof.py A B NA NB: instructions per exit split by who runs them (the difference of two callgrind runs).

  kernel        the exit path and the syscall layer: Copra.Hot, Copra.Kernel (but not its backends or harness), Copra.Abi
  device model  the model's own code and its syscall wrappers: Copra.User
  runtime       .NET's own code the model's await and the kernel call into: CoreLib, the Rh* helpers, the GC, libc
  replay guest  the modelled hardware: the replay backend plays the guest and checks what the kernel did (Copra.Kernel.Backends)
  harness       the rig or driver around the exits (Copra.Kernel.Run, the exitbench command)

Why a split: the whole-cycle figure includes the replay guest, which stands in for the CPU and costs no kernel
instructions on hardware; the kernel's part is what a native port would carry."""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fnprof import per_exit

PARTS = ['kernel', 'device model', 'runtime', 'replay guest', 'harness']

def part(name):
    if 'Copra_Kernel_Backends_' in name: return 'replay guest'
    if 'Copra_Kernel_Run_' in name or 'ExitBenchCommand' in name: return 'harness'
    # MappedView: the model's view of its mapped event area (on hardware, its own loads and stores of shared memory).
    if 'Copra_User_' in name or 'MappedView' in name: return 'device model'
    if 'Copra_' in name or 'copra_Copra' in name: return 'kernel'
    return 'runtime'

def split(rows):
    totals = dict.fromkeys(PARTS, 0.0)
    for name, v in rows: totals[part(name)] += v
    return totals

if __name__ == '__main__':
    t = split(per_exit(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    whole = sum(t.values())
    for p in PARTS: print(f"{t[p]:8.1f}  {p}")
    print(f"{whole:8.1f}  whole cycle")
