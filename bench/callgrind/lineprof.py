#!/usr/bin/env python3
"""lineprof.py LOW.cg HIGH.cg NEXITS FUNC_SUBSTR BINARY [--asm]: one function's instructions per exit by source line.

instrprof.py's per-instruction counts, each put on the source line the binary's line table gives it (objdump -dl; the
binary must keep its DWARF: publish with -p:StripSymbols=false and pass that file, not the stripped copy valgrind ran).
NativeAOT puts an inlined callee's code on the caller's line that called it, so a line's figure is that call's whole
inlined body. --asm prints each executed instruction under its line instead of the totals.
"""
import sys, re, subprocess, io, contextlib, runpy

args = [a for a in sys.argv[1:] if a != '--asm']
asm = '--asm' in sys.argv
if len(args) != 5: sys.exit(__doc__)
binary = args[4]
# instrprof prints "COUNT ADDR: insn"; run it and keep those lines.
out = io.StringIO()
sys.argv = ['instrprof.py'] + args
with contextlib.redirect_stdout(out):
    runpy.run_path(__file__.replace('lineprof.py', 'instrprof.py'), run_name='__main__')
prof = {}
for l in out.getvalue().splitlines():
    m = re.match(r'\s*([\d.]+) ([0-9a-f]+):(.*)', l)
    if m and float(m.group(1)) > 0: prof[int(m.group(2), 16)] = (float(m.group(1)), m.group(3).strip())
if not prof: sys.exit('no executed instructions found for ' + args[3])
lo, hi = min(prof), max(prof) + 16
dis = subprocess.run(['objdump', '-dl', '--no-show-raw-insn', '-M', 'intel', f'--start-address={lo:#x}',
                      f'--stop-address={hi:#x}', binary], capture_output=True, text=True).stdout
line, order, total = '?', {}, 0.0
for l in dis.splitlines():
    m = re.match(r'^(/\S+):(\d+)', l)
    if m:
        line = re.sub(r'^.*?/(hot|kernel|user|cold|abi)/', r'\1/', m.group(1)) + ':' + m.group(2)
        continue
    m = re.match(r'\s*([0-9a-f]+):', l)
    if not m or int(m.group(1), 16) not in prof: continue
    c, insn = prof[int(m.group(1), 16)]
    total += c
    if asm: print(f'{line:>40} {c:6.2f} {insn[:100]}')
    else: order[line] = order.get(line, 0.0) + c
for k, v in order.items():
    if v >= 0.5: print(f'{v:7.1f} {k}')
print(f'{total:7.1f} total')
