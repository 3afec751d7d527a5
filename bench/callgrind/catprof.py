#!/usr/bin/env python3
"""catprof.py LOW.cg HIGH.cg NEXITS BINARY: per-exit instructions by category (frames, calls, column-base loads, ...)
over every function of the main binary, from two callgrind --dump-instr=yes runs."""
import sys, re, subprocess, collections
import os
# instrprof.py's parser (the part before its command line), shared rather than copied.
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'instrprof.py')).read().split('lo, hi, n, sub')[0]
ns = {}; exec(src, ns); parse = ns['parse']
lo, hi, n = sys.argv[1], sys.argv[2], int(sys.argv[3]); binary = sys.argv[4]
a = parse(lo); b = parse(hi)
per = collections.defaultdict(lambda: collections.defaultdict(float))
for k, v in b.items():
    d = (v - a.get(k, 0)) / n
    if abs(d) > 0.001 and k[0]: per[k[0]][k[1]] += d
nm = {}
for l in subprocess.run(['nm', binary], capture_output=True, text=True).stdout.splitlines():
    p = l.split(' ', 2)
    if not p[0]: continue
    if len(p) == 3 and p[1] in 'tT': nm[p[2]] = int(p[0], 16)
cats = collections.Counter(); total = 0; unmapped = 0
for fn, costs in per.items():
    name = fn.split(' [')[0].replace('???:', '')
    if name not in nm: unmapped += sum(costs.values()); continue
    start = nm[name]; off = min(costs) - start
    # assume function entry is the min address executed (true for these: the prologue runs)
    lo_a, hi_a = start, max(costs) - off
    dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', '-M', 'intel', f'--start-address={lo_a:#x}', f'--stop-address={hi_a+16:#x}', binary], capture_output=True, text=True).stdout
    for line in dis.splitlines():
        m = re.match(r'\s*([0-9a-f]+):\s*(\S+)\s*(.*)', line)
        if not m: continue
        c = costs.get(int(m.group(1), 16) + off, 0.0)
        if not c: continue
        op, args = m.group(2), m.group(3)
        total += c
        if op in ('push', 'pop') or (op in ('sub', 'add') and args.startswith('rsp')) or (op == 'lea' and args.startswith('rbp,[rsp')) or op == 'ret': k = 'frame (push/pop/rsp/ret)'
        elif op == 'call' or op == 'jmp' and 'rax' in args: k = 'call'
        elif op.startswith('j'): k = 'branch'
        elif op == 'cmp' or op == 'test': k = 'compare/test'
        elif op == 'mov' and re.match(r'r\w+,QWORD PTR \[r\w+\+0x[0-9a-f]+\]$', args): k = 'load qword [reg+const] (field/column base)'
        elif op.startswith('mov') and 'PTR [' in args.split(',',1)[0]: k = 'store'
        elif op.startswith('mov') and 'PTR [' in args: k = 'other load'
        elif op.startswith('mov'): k = 'reg move'
        elif 'lock' in op: k = 'locked'
        else: k = 'alu/other'
        cats[k] += c
for k, v in cats.most_common(): print(f'{v:8.1f} {k}')
print(f'{total:8.1f} total mapped; {unmapped:.1f} in functions not in the symbol table')
