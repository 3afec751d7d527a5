#!/usr/bin/env bash
# bench/scaling.sh [BIN] [N]: Copra's two-CPU scaling beside this host's parallel ceiling (PERF.md, "Scaling").
# Five interleaved rounds of wall time, medians:
#   c1  two-vms.json on one CPU, N exits        c2  two-vms.json on two CPUs, N exits: Copra's scaling is c1 / c2
#   a   one-vm.json (one of those VMs) alone on one CPU, N/2 exits
#   p   two one-vm.json processes at once, N/2 exits each: they share nothing, not even the kernel, so 2a / p is what
#       this host gives two busy threads (the ceiling), and p / c2 is Copra's two CPUs against two separate processes.
# Why wall time of whole processes: start-up is in every figure alike (~0.2 s; c2 and p pay it once per process).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../artifacts/aot/copra}; n=${2:-2000000}; h=$((n / 2))
s2=$here/scenarios/two-vms.json; s1=$here/scenarios/one-vm.json
[ -x "$bin" ] || { echo "scaling.sh: no copra binary at $bin (./build.sh aot builds it)" >&2; exit 2; }
ns() { date +%s%N; }
t() { local s; s=$(ns); "$@" >/dev/null 2>&1 || { echo "scaling.sh: failed: $*" >&2; exit 1; }; echo $(( $(ns) - s )); }
pair() { "$bin" run --scenario "$s1" --exits "$h" --quiet & "$bin" run --scenario "$s1" --exits "$h" --quiet; wait; }
c1=(); c2=(); a=(); p=()
for r in 1 2 3 4 5; do
  c1+=("$(t "$bin" run --scenario "$s2" --cpus 1 --exits "$n" --quiet)")
  c2+=("$(t "$bin" run --scenario "$s2" --cpus 2 --exits "$n" --quiet)")
  a+=("$(t "$bin" run --scenario "$s1" --exits "$h" --quiet)")
  p+=("$(t pair)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
show() { local name=$1; shift; printf '%-34s' "$name"; for x in "$@"; do printf ' %.3f' "$(awk "BEGIN{print $x/1e9}")"; done; printf '   median %.3f s\n' "$(awk "BEGIN{print $(med "$@")/1e9}")"; }
show "c1 two-vms, 1 CPU, $n exits" "${c1[@]}"
show "c2 two-vms, 2 CPUs, $n exits" "${c2[@]}"
show "a  one-vm alone, $h exits" "${a[@]}"
show "p  one-vm x2 at once, $h each" "${p[@]}"
m1=$(med "${c1[@]}"); m2=$(med "${c2[@]}"); ma=$(med "${a[@]}"); mp=$(med "${p[@]}")
awk "BEGIN{printf \"scaling c1/c2 %.2fx; host ceiling 2a/p %.2fx; Copra's 2 CPUs against 2 processes p/c2 %.2fx\n\", $m1/$m2, 2*$ma/$mp, $mp/$m2}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
