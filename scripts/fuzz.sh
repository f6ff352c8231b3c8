#!/usr/bin/env bash
# Runs Tandem's libFuzzer targets (tests/fuzz/) for a while each.
#
# Usage: scripts/fuzz.sh [--seconds N] [--targets a,b,...] [--jobs N] [--parallel N]
#                        [--summary FILE] [--build-only | --no-build]
#   --seconds N     time per target (default 600; scripts/test.sh uses 30)
#   --targets LIST  subset of: packet heartbeat wire switch_config control_config tables
#                   datapath
#   --jobs N        parallel fuzzing processes per target (libFuzzer -fork; default 1)
#   --parallel N    targets fuzzed at the same time (default 1)
#   --summary FILE  write one line per target: "NAME ok|crash|error RUNS" (for test.sh)
#   --build-only    configure and build the targets, fuzz nothing
#   --no-build      fuzz what was built (scripts/test.sh builds first, then runs
#                   another build in the same directory while the targets fuzz)
# Environment: TANDEM_FUZZ_BUILD_DIR (default build-fuzz/), TANDEM_NINJA_JOBS.
#
# It configures a clang build with AddressSanitizer and UndefinedBehaviorSanitizer
# in TANDEM_FUZZ_BUILD_DIR once, builds only the fuzz targets, then fuzzes each
# target from its seed corpus (tests/fuzz/corpus/<target>, never modified) into
# a working corpus $BUILD/fuzz-corpus/<target>. A crash input lands in
# $BUILD/fuzz-artifacts/<target>/; keep it as a regression case by copying it
# to tests/fuzz/corpus/<target>/regress-<what>.bin (the fuzz_replay_<target>
# meson test replays the corpus in every build). Exits 1 if any target crashed,
# 2 if clang is missing or the build failed.
set -uo pipefail

seconds=600
targets=(packet heartbeat wire switch_config control_config tables datapath)
jobs=1
parallel=1
summary=""
build_step=1
fuzz_step=1
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    --targets) IFS=, read -r -a targets <<<"$2"; shift ;;
    --jobs) jobs="$2"; shift ;;
    --parallel) parallel="$2"; shift ;;
    --summary) summary="$2"; shift ;;
    --build-only) fuzz_step=0 ;;
    --no-build) build_step=0 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_FUZZ_BUILD_DIR:-$root/build-fuzz}"
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ is not installed (apt-get install clang)" >&2
  exit 2
fi
if ((build_step)) && [[ ! -f "$build/build.ninja" ]]; then
  echo "fuzz.sh: configuring $build (clang, address+undefined sanitizers)" >&2
  wipe=()
  [[ -d "$build/meson-private" ]] && wipe=(--wipe)
  # shellcheck source=scripts/lib/ccache.sh
  source "$root/scripts/lib/ccache.sh"
  CC="$(tandem_ccache clang)" CXX="$(tandem_ccache clang++)" meson setup "${wipe[@]}" "$build" "$root" \
    -Db_sanitize=address,undefined -Db_lundef=false >"$build.setup.log" 2>&1 || {
    cat "$build.setup.log" >&2
    exit 2
  }
fi
ninja_jobs=()
[[ -n "${TANDEM_NINJA_JOBS:-}" ]] && ninja_jobs=(-j "$TANDEM_NINJA_JOBS")
build_targets=()
for t in "${targets[@]}"; do build_targets+=("tests/fuzz/fuzz_$t"); done
if ((build_step)) &&
  ! ninja -C "$build" "${ninja_jobs[@]}" "${build_targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log" >&2
  echo "fuzz.sh: build failed" >&2
  exit 2
fi
((fuzz_step)) || exit 0
for t in "${targets[@]}"; do
  if [[ ! -x "$build/tests/fuzz/fuzz_$t" ]]; then
    echo "fuzz.sh: $build/tests/fuzz/fuzz_$t is not built" >&2
    exit 2
  fi
done

[[ -n "$summary" ]] && : >"$summary"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# Fuzzes one target; its verdict goes to $build/fuzz-<t>.result ("ok RUNS" or
# "crash RUNS") and a line to stderr.
fuzz_one() {
  local t="$1"
  local work="$build/fuzz-corpus/$t"
  local artifacts="$build/fuzz-artifacts/$t"
  local seeds="$root/tests/fuzz/corpus/$t"
  mkdir -p "$work" "$artifacts"
  local log="$build/fuzz-$t.log"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$artifacts/")
  case "$t" in
    switch_config | control_config) args+=(-max_len=4096 -dict="$root/tests/fuzz/toml.dict") ;;
    tables) args+=(-max_len=256) ;;
    datapath) args+=(-max_len=16384) ;;  # several frames; over 12 kB reaches a bit-rate policer
    *) args+=(-max_len=9100) ;;
  esac
  ((jobs > 1)) && args+=(-fork="$jobs" -ignore_crashes=0)
  echo "=== fuzz $t for ${seconds}s" >&2
  (cd "$artifacts" && "$build/tests/fuzz/fuzz_$t" "${args[@]}" "$work" "$seeds") >"$log" 2>&1
  local rc=$?
  local runs
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  runs=${runs:-?}
  if ((rc == 0)); then
    echo "fuzz $t: ok, $runs runs, corpus $(ls "$work" | wc -l) inputs" >&2
    echo "ok $runs" >"$build/fuzz-$t.result"
  else
    echo "fuzz $t: CRASH (exit $rc), input in $artifacts; log $log:" >&2
    grep -E "ERROR|runtime error|check failed|SUMMARY|Test unit written" "$log" | head -8 >&2
    echo "crash $runs" >"$build/fuzz-$t.result"
  fi
}

running=0
for t in "${targets[@]}"; do
  rm -f "$build/fuzz-$t.result"
  if ((running >= parallel)); then
    wait -n
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait
crashed=0
for t in "${targets[@]}"; do
  read -r verdict runs <"$build/fuzz-$t.result" 2>/dev/null || { verdict=crash runs="?"; }
  [[ "$verdict" == ok ]] || crashed=1
  [[ -n "$summary" ]] && echo "$t $verdict $runs" >>"$summary"
done
exit $crashed
