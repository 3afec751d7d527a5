#!/usr/bin/env python3
"""instrprof.py LOW.cg HIGH.cg NEXITS FUNC_SUBSTR BINARY: per-instruction self cost per exit of one function (callgrind --dump-instr=yes)."""
import sys, re, subprocess, collections
def parse(path):
    costs = collections.defaultdict(int)   # (fn, addr) -> Ir
    fnames = {}; fn = None; last = 0; skip_next = False
    for line in open(path):
        line = line.rstrip('\n')
        if line.startswith('fn='):
            m = re.match(r'fn=\((\d+)\)(?: (.*))?', line)
            if m.group(2): fnames[m.group(1)] = m.group(2)
            fn = fnames[m.group(1)]; continue
        if line.startswith('cfn='):
            m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line)
            if m.group(2): fnames[m.group(1)] = m.group(2)
            continue
        if line.startswith('calls='): skip_next = True; continue
        if not line or line[0] not in '0123456789+-*': continue
        parts = line.split()
        a = parts[0]
        if a.startswith('0x'): addr = int(a, 16)
        elif a[0] == '+': addr = last + int(a[1:], 16 if a[1:].startswith('0x') else 10)
        elif a[0] == '-': addr = last - int(a[1:], 16 if a[1:].startswith('0x') else 10)
        elif a == '*': addr = last
        else: continue
        last = addr
        if skip_next: skip_next = False; continue
        if len(parts) >= 3: costs[(fn, addr)] += int(parts[2])
    return costs
lo, hi, n, sub = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
binary = sys.argv[5]
a = parse(lo); b = parse(hi)
per = collections.defaultdict(float)
for k, v in b.items():
    if sub in (k[0] or ''): per[k[1]] += (v - a.get(k, 0)) / n
fns = {k[0] for k in b if sub in (k[0] or '')}
print('functions:', fns)
if not per: sys.exit()
fname = sorted(fns)[0]
nm = subprocess.run(['nm', binary], capture_output=True, text=True).stdout
start = [int(l.split()[0], 16) for l in nm.splitlines() if l.endswith(' ' + fname) and l.split()[1] in 'tT'][0]
off = min(per) - start
per = {k - off: v for k, v in per.items()}
lo_a, hi_a = min(per), max(per)
dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', '-M', 'intel', f'--start-address={lo_a:#x}', f'--stop-address={hi_a+16:#x}', binary], capture_output=True, text=True).stdout
tot = 0
for line in dis.splitlines():
    m = re.match(r'\s*([0-9a-f]+):\s*(.*)', line)
    if not m: continue
    addr = int(m.group(1), 16)
    c = per.get(addr, 0.0); tot += c
    print(f'{c:6.2f} {addr:x}: {m.group(2)[:110]}')
print('total', tot)
