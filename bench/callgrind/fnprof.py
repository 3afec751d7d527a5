#!/usr/bin/env python3
# fnprof.py A B NA NB [top]: exclusive instructions per exit by function, the difference of two callgrind runs
import subprocess,re,sys
def prof(f):
    out=subprocess.run(['callgrind_annotate','--inclusive=no','--threshold=100',f],capture_output=True,text=True).stdout
    d={}
    for l in out.splitlines():
        m=re.match(r'\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)',l)
        if m and not l.strip().startswith('Ir'):
            d[m.group(2)]=d.get(m.group(2),0)+int(m.group(1).replace(',',''))
    return d

def per_exit(lo, hi, nlo, nhi):
    """(function, instructions per exit) for every function, the difference of the two runs over the difference of exits."""
    a=prof(lo);b=prof(hi);n=nhi-nlo
    return [(k,(b.get(k,0)-a.get(k,0))/n) for k in b if 'PROGRAM TOTALS' not in k]

if __name__=='__main__':
    rows=per_exit(sys.argv[1],sys.argv[2],int(sys.argv[3]),int(sys.argv[4]))
    top=int(sys.argv[5]) if len(sys.argv)>5 else 45
    rows.sort(key=lambda r:-r[1])
    for k,v in rows[:top]:
        print(f"{v:8.1f} {k[:160]}")
    print("total", sum(v for k,v in rows))
