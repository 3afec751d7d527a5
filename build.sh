#!/usr/bin/env bash
# Copra's one entry point. Verbs: build, test, run, copra, bench, fuzz, corpus, aot, mutate. Needs only the .NET 10 SDK.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
verb="${1:-build}"; shift || true
case "$verb" in
  build) dotnet build Copra.slnx -c Release "$@" ;;
  test)
    dotnet build Copra.slnx -c Release
    # Both test projects (tests/ and fuzz/) run; the TRX files feed .ci/run's total.
    dotnet test Copra.slnx -c Release --no-build --logger "trx" --results-directory "${COPRA_TEST_RESULTS:-artifacts/test-results}" "$@" ;;
  run) dotnet run --project kernel -c Release -- run "$@" ;;
  copra) dotnet run --project kernel -c Release -- "$@" ;;
  bench)
    # --instructions: instructions per exit counted under valgrind on the NativeAOT build (bench/instructions.sh).
    if [ "${1:-}" = "--instructions" ]; then shift; exec bench/instructions.sh "$@"; fi
    dotnet run --project bench -c Release -- "$@" ;;
  fuzz) dotnet run --project fuzz -c Release -- "$@" ;;
  # The Linux corpus check: fetches a Debian kernel package with apt (~70 MB); not in CI's default run.
  corpus) exec fuzz/corpus.sh "$@" ;;
  mutate)
    # Mutation testing (Stryker.NET, a local tool pinned in .config/dotnet-tools.json); not in CI's default run: slow.
    # One config per area in stryker/ (cold and decode test their own small test projects, tests/Cold and tests/Decode,
    # so each per-mutant test host loads a small assembly). Concurrency 1 unless --concurrency N (a shared 2-core machine).
    # Reports land in artifacts/mutation/AREA. Run it under a terminal (e.g. script -qfc) to see the progress bar.
    # --mutate SPEC (repeatable) narrows the config's files to a chunk: Stryker's -m, a file or a span of one in characters
    # (not lines), e.g. 'Exit/ExitPipeline.cs{0..23185}'.
    area=cold; conc=(); spans=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --project) area="${2:-}"; shift 2 || { echo "mutate: --project needs cold|decode|gate|pipeline[-host|-exit|-devices]|caches|report" >&2; exit 2; } ;;
        --concurrency)
          case "${2:-}" in [1-9]|[1-9][0-9]) conc=(--concurrency "$2"); shift 2 ;;
            *) echo "mutate: --concurrency needs a number of test hosts (1-99)" >&2; exit 2 ;; esac ;;
        --mutate) [ -n "${2:-}" ] || { echo "mutate: --mutate needs a file or span, e.g. 'Exit/ExitPipeline.cs{0..23185}' (characters)" >&2; exit 2; }
          spans+=(-m "$2"); shift 2 ;;
        *) echo "mutate: unknown option $1 (usage: ./build.sh mutate [--project cold|decode|gate|pipeline[-host|-exit|-devices]|caches|report] [--concurrency N] [--mutate SPEC]...)" >&2; exit 2 ;;
      esac
    done
    # Stryker runs in the test project's folder (from the root it would see Copra.slnx and switch to solution mode).
    # pipeline is the whole exit path (2-2.5 h here); pipeline-host, -exit and -devices split its files (docs/testing.md).
    case "$area" in cold) dir=tests/Cold ;; decode) dir=tests/Decode ;; gate|pipeline|pipeline-host|pipeline-exit|pipeline-devices|caches|report) dir=tests ;;
      *) echo "mutate: unknown project '$area' (cold|decode|gate|pipeline|pipeline-host|pipeline-exit|pipeline-devices|caches|report)" >&2; exit 2 ;; esac
    dotnet tool restore >/dev/null
    # Stryker's progress bar cuts its line to the terminal's width: on a terminal of width 0 (script -qfc started from a
    # background job) it crashes after the last mutant, before any report is written. Give such a terminal a size.
    if [ -t 0 ] && [ "$(stty size 2>/dev/null | cut -d' ' -f2)" = "0" ]; then stty cols 160 rows 50 2>/dev/null || true; fi
    out="$PWD/artifacts/mutation/$area"
    mkdir -p "$out"
    (cd "$dir" && dotnet tool run dotnet-stryker -- --config-file "$OLDPWD/stryker/$area.json" --output "$out" --skip-version-check "${conc[@]}" "${spans[@]}") ;;
  aot)
    # NativeAOT stands in for bflat (which wraps the same compiler and cannot be installed here).
    # The folder then holds copra (the whole program, self-contained) and libSkiaSharp.so + libHarfBuzzSharp.so (the
    # native half of plotting: copra plots with it beside it, and without it refuses --plot up front with a one-line message).
    rm -rf artifacts/aot
    dotnet publish kernel -c Release -p:CopraAot=true -o artifacts/aot "$@"
    rm -f artifacts/aot/*.pdb artifacts/aot/*.dbg
    echo "native copra: artifacts/aot/copra ($(ls artifacts/aot | tr '\n' ' '))" ;;
  *) echo "usage: ./build.sh build|test|run|copra|bench|fuzz|corpus|aot|mutate [args...]" >&2; exit 2 ;;
esac
