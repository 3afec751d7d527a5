#!/usr/bin/env python3
"""cgsplit.py LOW.out HIGH.out NLO NHI: the kernel's part of the instructions per exit, from two cachegrind output files
(valgrind --tool=cachegrind --cache-sim=no) of the same binary at NLO and NHI exits. Prints one integer.

bench/instructions.sh prints it beside each whole-cycle figure; the parts are partprof.py's (kernel, device model,
runtime, replay guest, harness), read from the raw files so the script needs no callgrind run."""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from partprof import split

def per_function(path):
    """Instructions per function name in one cachegrind output file (fn= lines, then 'line count' pairs)."""
    d = {}; fn = None
    with open(path) as f:
        for line in f:
            if line.startswith('fn='): fn = line[3:].rstrip('\n'); continue
            if fn is None or not line[:1].isdigit(): continue
            parts = line.split()
            if len(parts) >= 2: d[fn] = d.get(fn, 0) + int(parts[1])
    return d

def kernel_per_exit(lo, hi, nlo, nhi):
    a, b = per_function(lo), per_function(hi)
    rows = [(k, (v - a.get(k, 0)) / (nhi - nlo)) for k, v in b.items()]
    return int(split(rows)['kernel'])

if __name__ == '__main__':
    n = kernel_per_exit(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    if n <= 0: sys.exit(f"cgsplit: the kernel's part came out as {n}: no Copra symbols in the binary?")
    print(n)
