#!/usr/bin/env bash
# Instructions per exit and per decoded instruction, counted (not timed): NativeAOT copra under valgrind --tool=cachegrind
# --cache-sim=no, each figure the difference of two runs' totals over the difference of their exits,
# so start-up, warm-up and output that does not scale with exits cancel. The rigs use a 30,000-exit
# difference: start-up spins for a time (TSC calibration), which varies a run's total by ~1-2 M.
#   ./build.sh bench --instructions            build NativeAOT, print the table
#   ./build.sh bench --instructions --check    also fail when a count is above bench/instructions.limits
#   COPRA_AOT=path/to/copra skips the build (the binary is copied without its .dbg; publish it with -p:StripSymbols=false
#   for the kernel's part, which is summed by function name).
set -euo pipefail
shopt -s inherit_errexit   # a valgrind failure inside $(...) must end the script, not count as 0
cd "$(dirname "$0")/.."
check=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    *) echo "instructions: unknown option $a (--check)" >&2; exit 2 ;;
  esac
done
if ! command -v valgrind >/dev/null 2>&1; then
  echo "instructions: valgrind missing, installing it"
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null 2>&1 || true
fi
if ! command -v valgrind >/dev/null 2>&1; then
  echo "instructions: SKIPPED: valgrind is not installed and could not be installed"; exit 0
fi
if ! valgrind --tool=none true >/dev/null 2>&1; then
  echo "instructions: SKIPPED: valgrind cannot run on this host"; exit 0
fi
if [ -z "${COPRA_AOT:-}" ]; then
  # With its symbol table (the kernel's part below is summed by function name); the code is the same either way.
  dotnet publish kernel -c Release -p:CopraAot=true -p:StripSymbols=false -o artifacts/aot -v quiet -nologo >/dev/null
  COPRA_AOT=artifacts/aot/copra
fi
# valgrind cannot read the .dbg NativeAOT writes beside the binary: run a copy without it.
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp "$COPRA_AOT" "$work/copra"
cp "$(dirname "$COPRA_AOT")"/*.so "$work/" 2>/dev/null || true
# A binary published once with -p:StripSymbols=false keeps its DWARF in later incremental publishes, and
# valgrind 3.19 gives up on DWARF 5: drop the debug sections (the symbol table stays, for callgrind).
if command -v objcopy >/dev/null 2>&1; then objcopy --strip-debug "$work/copra"; fi

irefs() {   # irefs ARGS...: "TOTAL FILE": total instructions of one copra run, and its cachegrind output file
  local out file; file=$(mktemp "$work/cg.XXXXXX")
  out=$(cd "$work" && valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$file" ./copra "$@" 2>&1 >/dev/null) || {
    echo "instructions: copra $* failed under valgrind:" >&2; echo "$out" | tail -20 >&2; exit 1; }
  local n; n=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' <<<"$out" | tr -d ,)
  if [ -z "$n" ] || [ "$n" -le 0 ]; then echo "instructions: copra $* gave no instruction count under valgrind" >&2; exit 1; fi
  echo "$n $file"
}
irefs_min() {   # irefs_min ARGS...: the smaller total of two runs (and its file). Why: the runtime's finalizer thread trims the shared
  # array pools after a start-up GC and can hold the allocator's lock while valgrind (which runs one thread at a time)
  # lets the main thread spin on it for a whole time slice: ~1.2 M instructions that land in a run at random (up to
  # ~40 per exit in a 30,000-exit difference). The spin only ever adds, so the smaller of two runs is the run without it.
  local a b; a=$(irefs "$@"); b=$(irefs "$@")
  if [ "${a%% *}" -lt "${b%% *}" ]; then echo "$a"; else echo "$b"; fi
}
kernel_part() {   # kernel_part LOW_FILE HIGH_FILE LOW HIGH: the kernel's instructions per exit (bench/callgrind/cgsplit.py), or - when
  # it cannot be had (no python3; a COPRA_AOT binary without its symbol table); the whole figure and the check stand either way
  if command -v python3 >/dev/null 2>&1; then python3 bench/callgrind/cgsplit.py "$@" 2>/dev/null || echo -; else echo -; fi
}
per_exit() {   # per_exit LOW HIGH ARGS... (ARGS get --exits N appended): "WHOLE KERNEL" instructions per exit
  local lo=$1 hi=$2; shift 2
  local a b; a=$(irefs_min "$@" --exits "$lo"); b=$(irefs_min "$@" --exits "$hi")
  local n=$(( (${b%% *} - ${a%% *}) / (hi - lo) ))
  if [ "$n" -le 0 ]; then echo "instructions: copra $* gave $n instructions per exit (totals ${a%% *} and ${b%% *})" >&2; exit 1; fi
  echo "$n $(kernel_part "${a#* }" "${b#* }" "$lo" "$hi")"
}

per_decode() {   # per_decode LOW HIGH FORMS ARGS... (ARGS get --reps N appended): instructions per decoded instruction
  local lo=$1 hi=$2 forms=$3; shift 3
  local a b; a=$(irefs decodebench "$@" --reps "$lo"); b=$(irefs decodebench "$@" --reps "$hi")
  a=${a%% *}; b=${b%% *}
  local n=$(( (b - a) / ((hi - lo) * forms) ))
  if [ "$n" -le 0 ]; then echo "instructions: copra decodebench $* gave $n instructions per decode (totals $a and $b)" >&2; exit 1; fi
  echo "$n"
}

declare -A got
# The kernel's part: the whole cycle less the device model's code, the runtime, the replay backend (the modelled CPU:
# on hardware the exit itself costs no instructions) and the harness (bench/callgrind/partprof.py says which is which).
echo "| figure | instructions per exit | the kernel's part |"
echo "|---|---:|---:|"
sum=0
row() {   # row NAME LABEL "WHOLE KERNEL"
  got[$1]=${3%% *}; echo "| $2 | ${3%% *} | ${3#* } |"
}
for rig in MmioRead MmioWrite PortOut Forwarded; do
  r=$(per_exit 2000 32000 exitbench --count --warm-ms 0 --rig "${rig,,}"); row "$rig" "exitbench $rig" "$r"; sum=$((sum + ${r%% *}))
done
got[RigAverage]=$((sum / 4)); echo "| exitbench average | ${got[RigAverage]} | |"
# The read-modify-write rig (two device round trips per exit) is counted beside the four, not in their average (issue
# 13's target is the four's).
row MmioAlu "exitbench MmioAlu (not in the average)" "$(per_exit 2000 32000 exitbench --count --warm-ms 0 --rig mmioalu)"
row RunQuiet "run --quiet (default mix)" "$(per_exit 20000 120000 run --quiet)"
row RunJson "run --quiet --json FILE" "$(per_exit 20000 120000 run --quiet --json "$work/run.json")"
row RunTables "run (tables printed)" "$(per_exit 20000 120000 run)"
# The decoder (issue 14): instructions per decoded instruction, Copra's and Iced's over the same sets (copra decodebench;
# 320,000 decodes of the 16-instruction MMIO mix, 328,960 of the 4,112-form corpus sample between the two runs).
echo
echo "| decoder | instructions per decoded instruction |"
echo "|---|---:|"
for set in mix corpus; do
  if [ "$set" = mix ]; then lo=2000; hi=22000; forms=16; else lo=8; hi=88; forms=4112; fi
  for dec in copra iced; do
    n=$(per_decode "$lo" "$hi" "$forms" --set "$set" --decoder "$dec"); got[Decode${set^}${dec^}]=$n
    echo "| $dec, $set | $n |"
  done
done

if [ "$check" = 1 ]; then
  fail=0
  while read -r name limit; do
    case "$name" in ''|\#*) continue ;; esac
    v=${got[$name]:-}
    if [ -z "$v" ]; then echo "instructions: no figure named $name" >&2; fail=1; continue; fi
    if [ "$v" -gt "$limit" ]; then echo "instructions: $name = $v per exit, above the limit $limit"; fail=1; fi
  done < bench/instructions.limits
  [ "$fail" = 0 ] && echo "instructions: every count within bench/instructions.limits"
  exit $fail
fi
