#!/usr/bin/env bash
# Runs every test suite of Tandem and ends with one line of its own:
#   N passed, N failed[, N skipped]
# First scripts/setup.sh: packages, then scripts/lib/check_tools.sh (every
# program the suite runs, each missing one named with its package: the run
# stops there), then the build.
# Suites: the scripts' own tests (pytest scripts/), every test registered with
# meson (GoogleTest executables are counted case by case), a short run of each
# libFuzzer target, the unit tests under AddressSanitizer +
# UndefinedBehaviorSanitizer, the tables and mirror unit tests under
# ThreadSanitizer, the release build (build-rel/, one case) with the
# benchmark's forwarding check on it (scripts/bench.sh --quick, a case per
# scenario), and the pytest integration suite in tests/integration (each test
# bounded by pytest-timeout, tests/integration/pytest.ini).
# Exits non-zero when any case failed or errored, or when a suite could not
# run at all (that counts as a failure, never as zero tests).
#
# Usage: scripts/test.sh [--unit-only | --integration-only | --tsan] [-k EXPR]
#                        [--sanitize] [--no-fuzz] [--no-asan] [--no-tsan]
#                        [--no-bench]
#   -k EXPR     passed to pytest to select integration tests
#   --sanitize  build with AddressSanitizer + UndefinedBehaviorSanitizer in
#               build-sanitize/ (default) and run the suites on that build
#   --no-fuzz   skip the short libFuzzer run (run with the unit tests when
#               clang is installed: scripts/fuzz.sh, each target counts as a case;
#               built in the ASan build, build-fuzz/ with --no-asan)
#   --no-asan   skip the unit tests under ASan + UBSan (run with the unit tests
#               when clang is installed, built in build-asan/, counted case by
#               case; --sanitize runs every suite on a sanitized build instead)
#   --no-tsan   skip the ThreadSanitizer suite (run with the unit tests when
#               clang is installed: the tables and mirror unit tests built in
#               build-tsan/, counted case by case like the unit tests)
#   --tsan      run only the ThreadSanitizer suite
#   --no-bench  skip the release build and the benchmark's forwarding check
#               (run when both the unit and the integration suites run)
# Environment: TANDEM_BUILD_DIR (default build/ or build-sanitize/),
# TANDEM_TSAN_BUILD_DIR (default build-tsan/), TANDEM_ASAN_BUILD_DIR (build-asan/),
# TANDEM_RELEASE_BUILD_DIR (build-rel/),
# TANDEM_TEST_TIMEOUT_S (whole integration suite, default 2400),
# TANDEM_FUZZ_SECONDS (per fuzz target, default 30; two targets at a time).
set -uo pipefail

run_unit=1
run_integration=1
pytest_select=()
run_fuzz=1
run_tsan=1
run_asan=1
tsan_only=0
sanitize=0
run_bench=1
usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --unit-only) run_integration=0 ;;
    --integration-only) run_unit=0 ;;
    -k)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      pytest_select=(-k "$2")
      shift
      ;;
    --sanitize) sanitize=1 ;;
    --no-fuzz) run_fuzz=0 ;;
    --no-tsan) run_tsan=0 ;;
    --no-asan) run_asan=0 ;;
    --no-bench) run_bench=0 ;;
    --tsan) tsan_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1

if ((tsan_only)); then
  # Only the ThreadSanitizer suite: packages yes, the main build no.
  run_integration=0
  run_fuzz=0
  run_tsan=1
  run_asan=0
  export TANDEM_SKIP_BUILD=1
fi
# The release build and the benchmark check belong to a whole run.
((run_unit && run_integration)) || run_bench=0

if ((sanitize)); then
  run_asan=0  # every suite runs on the sanitized build already
  # A build of its own; werror off because GCC's sanitizer instrumentation
  # changes what its flow analysis warns about. Leaks are not checked: DPDK
  # and gRPC keep process-lifetime allocations. Every sanitizer report aborts
  # the process, so it fails its test.
  export TANDEM_BUILD_DIR="${TANDEM_BUILD_DIR:-$root/build-sanitize}"
  export TANDEM_MESON_OPTIONS="-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:halt_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
fi

passed=0
failed=0
skipped=0
# Each suite's heading says when it started: what each costs is in the log.
clock() { printf '%dm%02ds' $((SECONDS / 60)) $((SECONDS % 60)); }
phase() { echo "=== [$(clock)] $*"; }
finish() {
  echo "test.sh: took $(clock)" >&2
  local line="$passed passed, $failed failed"
  if ((skipped > 0)); then line+=", $skipped skipped"; fi
  echo "$line"
  if ((failed > 0)); then exit 1; fi
  exit 0
}
# Adds "P F S" (as printed by junit_summary.py) to the totals.
add_counts() {
  local p f s
  read -r p f s <<<"$1"
  if [[ ! "$p$f$s" =~ ^[0-9]+$ ]]; then
    echo "test.sh: could not count results ($1)" >&2
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

# shellcheck source=scripts/setup.sh
if ! source "$root/scripts/setup.sh"; then
  echo "test.sh: set-up, the check of the programs the suite runs, or the build failed" \
    "(above); no suite can run" >&2
  failed=$((failed + 1))
  finish
fi
results="$TANDEM_BUILD_DIR/test-results"
mkdir -p "$results"
summary=(/usr/bin/python3 "$root/scripts/lib/junit_summary.py")

# Runs pytest on PATHS with a JUnit report and adds its cases to the totals.
#   pytest_suite NAME PATHS... -- PYTEST OPTIONS
pytest_suite() {
  local name="$1" junit="$results/$1.junit.xml" rc
  shift
  rm -f "$junit"
  # SIGINT lets pytest run every fixture's clean-up and write its report.
  PYTHONDONTWRITEBYTECODE=1 timeout -s INT -k 60 "$pytest_cap" \
    /usr/bin/python3 -m pytest "$@" -p no:cacheprovider --junitxml="$junit"
  rc=$?
  if [[ ! -s "$junit" ]]; then
    echo "test.sh: pytest did not run (exit $rc)" >&2
    failed=$((failed + 1))
    return
  fi
  add_counts "$("${summary[@]}" "$junit")"
  case $rc in
    0 | 1) ;;
    5) echo "test.sh: pytest collected no tests" >&2; failed=$((failed + 1)) ;;
    *) echo "test.sh: pytest ended abnormally (exit $rc)" >&2; failed=$((failed + 1)) ;;
  esac
}

# The tests of the scripts themselves: the captures, the benchmark's and the
# soak's verdicts, the programs check, pytest's per-test bound.
if ((run_unit && !tsan_only)); then
  phase "the scripts' own tests (pytest scripts)"
  pytest_cap=300 pytest_suite scripts "$root/scripts" -q -rfEs
fi

if ((run_unit && !tsan_only)); then
  phase "unit tests (meson test -C $TANDEM_BUILD_DIR)"
  # GoogleTest writes <name>.xml in the build directory and meson reads it
  # back; remove old ones so a crashed binary cannot report a stale run.
  n_tests=$(meson introspect --tests "$TANDEM_BUILD_DIR" | /usr/bin/python3 -c '
import json, os, sys
tests = json.load(sys.stdin)
for t in tests:
    if t.get("protocol") == "gtest":
        d = t.get("workdir") or sys.argv[1]
        p = os.path.join(d, t["name"] + ".xml")
        if os.path.exists(p):
            os.unlink(p)
print(len(tests))' "$TANDEM_BUILD_DIR")
  logs="$TANDEM_BUILD_DIR/meson-logs"
  rm -f "$logs/testlog.junit.xml" "$logs/testlog.json"
  if [[ -z "$n_tests" || "$n_tests" == 0 ]]; then
    echo "test.sh: no unit tests are registered with meson" >&2
    failed=$((failed + 1))
  else
    meson test -C "$TANDEM_BUILD_DIR" --no-rebuild --print-errorlogs
    rc=$?
    if [[ ! -s "$logs/testlog.junit.xml" ]]; then
      echo "test.sh: meson test did not run (exit $rc)" >&2
      failed=$((failed + 1))
    else
      cp "$logs/testlog.junit.xml" "$results/unit.junit.xml"
      add_counts "$("${summary[@]}" --meson-log "$logs/testlog.json" "$logs/testlog.junit.xml")"
    fi
  fi
fi

# Unit tests in a clang sanitizer build of their own, only the targets they
# need: counted case by case like the unit tests; a sanitizer report fails its
# test (non-zero exit), which counts as a failure even when every case passed.
#   sanitizer_suite LABEL BUILD_DIR SANITIZE WHICH
# WHICH: "unit" (every test of meson suite unit) or "tsan" (tables, mirror_*).
sanitizer_suite() {
  local label="$1" build="$2" sanitize="$3" which="$4" mode="${5:-}"
  [[ "$mode" == build-only ]] || phase "$label (meson test -C $build)"
  if [[ ! -f "$build/build.ninja" ]]; then
    local wipe=()
    [[ -d "$build/meson-private" ]] && wipe=(--wipe)
    CC="$(tandem_ccache clang)" CXX="$(tandem_ccache clang++)" meson setup "${wipe[@]}" "$build" "$root" \
      -Db_sanitize="$sanitize" -Db_lundef=false >"$build.setup.log" 2>&1 ||
      cat "$build.setup.log" >&2
  fi
  # The tests, their executables and what they depend on.
  local tests=() targets=() kind name
  if [[ -f "$build/build.ninja" ]]; then
    while read -r kind name; do
      if [[ "$kind" == test ]]; then tests+=("$name"); else targets+=("$name"); fi
    done < <(/usr/bin/python3 -c '
import json, os, subprocess, sys
build, which = sys.argv[1], sys.argv[2]
intro = lambda what: json.loads(subprocess.run(["meson", "introspect", what, build],
                                               capture_output=True, check=True).stdout)
targets = {t["id"]: t for t in intro("--targets")}
files = set()
for t in intro("--tests"):
    if which == "tsan":
        take = t["name"] == "tables" or t["name"].startswith("mirror_")
    else:
        take = any(s.split(":")[-1] == "unit" for s in t.get("suite", []))
    if take:
        print("test", t["name"])
        # A test may run an installed program (promtool): not a target.
        if os.path.realpath(t["cmd"][0]).startswith(os.path.realpath(build) + os.sep):
            files.add(t["cmd"][0])
        for d in t.get("depends", []):
            files.update(targets[d]["filename"] if d in targets else [])
for f in sorted(files):
    print("target", os.path.relpath(f, build))' "$build" "$which")
  fi
  local jobs=()
  [[ -n "${TANDEM_NINJA_JOBS:-}" ]] && jobs=(-j "$TANDEM_NINJA_JOBS")
  if [[ "$mode" == build-only ]]; then
    ((${#targets[@]})) || return 1
    echo "pre-building ${#targets[@]} targets in $build (log $build/sanitizer-prebuild.log)"
    ninja -C "$build" "${jobs[@]}" "${targets[@]}" >"$build/sanitizer-prebuild.log" 2>&1
    return
  fi
  local logs="$build/meson-logs" rc
  if ((${#tests[@]} == 0)); then
    echo "test.sh: no $label build or no tests in $build" >&2
    failed=$((failed + 1))
  elif ! ninja -C "$build" "${jobs[@]}" "${targets[@]}" >"$build/sanitizer-build.log" 2>&1; then
    tail -30 "$build/sanitizer-build.log" >&2
    echo "test.sh: the $label build failed" >&2
    failed=$((failed + 1))
  else
    for t in "${tests[@]}"; do rm -f "$build/$t.xml"; done
    rm -f "$logs/testlog.junit.xml" "$logs/testlog.json"
    meson test -C "$build" --no-rebuild --print-errorlogs "${tests[@]}"
    rc=$?
    if [[ ! -s "$logs/testlog.junit.xml" ]]; then
      echo "test.sh: the $label tests did not run (exit $rc)" >&2
      failed=$((failed + 1))
    else
      cp "$logs/testlog.junit.xml" "$results/$(basename "$build").junit.xml"
      add_counts "$("${summary[@]}" --meson-log "$logs/testlog.json" "$logs/testlog.junit.xml")"
    fi
  fi
}

asan_build="${TANDEM_ASAN_BUILD_DIR:-$root/build-asan}"
tsan_build="${TANDEM_TSAN_BUILD_DIR:-$root/build-tsan}"
# The fuzz targets and the ASan unit tests are configured alike (clang,
# address+undefined): one build serves both, so the libraries they share
# (the fleet's generated etcd client above all) compile once.
if [[ -n "${TANDEM_FUZZ_BUILD_DIR:-}" ]]; then
  fuzz_build="$TANDEM_FUZZ_BUILD_DIR"
elif ((run_asan)); then
  fuzz_build="$asan_build"
else
  fuzz_build="$root/build-fuzz"
fi
export TANDEM_FUZZ_BUILD_DIR="$fuzz_build"
have_clang=0
command -v clang++ >/dev/null && have_clang=1

# A short libFuzzer run of every target (clang builds only): each target is
# one case, failed when it found a crash. The targets are built first; the
# sanitizer builds then compile while the fuzzers run, at the lowest priority
# (the fuzz runs are timed, and with 7 targets two at a time a core is often
# idle), never two ninjas at once in one directory. Once the fuzzers are done
# the pre-build goes on at normal priority; the sanitizer suites below wait
# for it, then build what is left (and report any build error) and run.
# (sanitizer_suite must be defined above: it once was not, and this
# pre-build failed silently.)
fuzz_built=0
if ((run_unit && run_fuzz)); then
  if ((have_clang)); then
    phase "fuzz targets (scripts/fuzz.sh in $fuzz_build, ${TANDEM_FUZZ_SECONDS:-30}s each, two at a time)"
    if "$root/scripts/fuzz.sh" --build-only; then
      fuzz_built=1
    else
      echo "test.sh: the fuzz targets did not build" >&2
      failed=$((failed + 1))
    fi
  else
    echo "test.sh: clang++ not installed: no fuzz run" >&2
  fi
fi

prebuild_pid=""
prebuild_log="$results/sanitizer-prebuild.log"
# Sets the priority of a process and of every descendant (what they start
# later inherits it).
renice_tree() {
  local child
  for child in $(ps -o pid= --ppid "$2"); do renice_tree "$1" "$child"; done
  renice -n "$1" -p "$2" >/dev/null 2>&1
}
if ((run_unit && fuzz_built && (run_asan || run_tsan))); then
  (
    # Lowest priority before anything is forked: children inherit it.
    renice -n 19 -p "$BASHPID" >/dev/null
    rc=0
    if ((run_asan)); then sanitizer_suite "" "$asan_build" address,undefined unit build-only || rc=1; fi
    if ((run_tsan)); then sanitizer_suite "" "$tsan_build" thread tsan build-only || rc=1; fi
    exit "$rc"
  ) >"$prebuild_log" 2>&1 &
  prebuild_pid=$!
fi

if ((fuzz_built)); then
  fuzz_summary="$results/fuzz-summary.txt"
  rm -f "$fuzz_summary"
  "$root/scripts/fuzz.sh" --no-build --seconds "${TANDEM_FUZZ_SECONDS:-30}" --parallel 2 \
    --summary "$fuzz_summary"
  rc=$?
  if [[ ! -s "$fuzz_summary" ]]; then
    echo "test.sh: the fuzz targets did not run (exit $rc)" >&2
    failed=$((failed + 1))
  else
    while read -r name verdict runs; do
      if [[ "$verdict" == ok ]]; then
        passed=$((passed + 1))
      else
        echo "FAILED  fuzz_$name: crash input in $fuzz_build/fuzz-artifacts/$name/" >&2
        failed=$((failed + 1))
      fi
    done <"$fuzz_summary"
  fi
fi

# What is left of the pre-build goes on at normal priority: on a machine
# shared with other work, the lowest priority would starve it now.
[[ -n "$prebuild_pid" ]] && renice_tree 0 "$prebuild_pid"
if [[ -n "$prebuild_pid" ]] && ! wait "$prebuild_pid"; then
  echo "test.sh: the sanitizer pre-build failed (log $prebuild_log); the suites build again" >&2
fi
if ((run_unit && (run_tsan || run_asan))) && ! command -v clang++ >/dev/null; then
  echo "test.sh: clang++ not installed: no sanitizer builds" >&2
elif ((run_unit)); then
  # AddressSanitizer + UndefinedBehaviorSanitizer: every unit test. Leaks are
  # not checked (gRPC keeps process-lifetime allocations).
  if ((run_asan)); then
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:halt_on_error=1}" \
      UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}" \
      sanitizer_suite "AddressSanitizer + UBSan: unit tests" "$asan_build" address,undefined unit
  fi
  # ThreadSanitizer: the tables and mirror unit tests only, see
  # docs/hardening.md.
  if ((run_tsan)); then
    TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1}" \
      sanitizer_suite "ThreadSanitizer: tables and mirror unit tests" "$tsan_build" thread tsan
  fi
fi

# The release configuration, as a performance engineer builds it (-O3): the
# whole tree must compile without a warning (one case), and the benchmark's
# forwarding check runs on it: scripts/bench.sh --quick replays every
# scenario briefly through the switch, one case per scenario, failed when it
# forwards less than 99 % of what the scenario expects (not a speed check).
rel_build="${TANDEM_RELEASE_BUILD_DIR:-$root/build-rel}"
if ((run_bench)); then
  phase "release build (meson --buildtype=release in $rel_build)"
  if [[ ! -f "$rel_build/build.ninja" ]]; then
    wipe=()
    [[ -d "$rel_build/meson-private" ]] && wipe=(--wipe)
    meson setup "${wipe[@]}" --buildtype=release "$rel_build" "$root" \
      >"$results/release-setup.log" 2>&1 || cat "$results/release-setup.log" >&2
  fi
  jobs=()
  [[ -n "${TANDEM_NINJA_JOBS:-}" ]] && jobs=(-j "$TANDEM_NINJA_JOBS")
  if [[ -f "$rel_build/build.ninja" ]] &&
    ninja -C "$rel_build" "${jobs[@]}" >"$results/release-build.log" 2>&1; then
    passed=$((passed + 1))
    phase "benchmark check (scripts/bench.sh --quick on $rel_build)"
    bench_junit="$results/bench.junit.xml"
    rm -f "$bench_junit"
    TANDEM_BUILD_DIR="$rel_build" "$root/scripts/bench.sh" --no-build --quick \
      --out "$results/bench" --junit "$bench_junit"
    rc=$?
    if [[ ! -s "$bench_junit" ]]; then
      echo "test.sh: the benchmark check did not run (exit $rc)" >&2
      failed=$((failed + 1))
    else
      before=$failed
      add_counts "$("${summary[@]}" "$bench_junit")"
      if ((rc != 0 && failed == before)); then
        echo "test.sh: scripts/bench.sh --quick failed (exit $rc) without a failed scenario" >&2
        failed=$((failed + 1))
      fi
    fi
  else
    grep -E "error|FAILED" "$results/release-build.log" | head -20 >&2
    echo "FAILED  release build in $rel_build (log $results/release-build.log)" >&2
    failed=$((failed + 1))
  fi
fi

if ((run_integration && ${#pytest_select[@]} == 0)); then
  # The Debian package for test_package.py, built here (or reused: same
  # source tree) so that its build, minutes on a cold ccache, is not taken
  # from the integration suite's time cap (docs/operations.md).
  phase "the Debian package (scripts/package.sh)"
  if TANDEM_DEB_FLAGS=project nice "$root/scripts/package.sh" >"$results/package.log" 2>&1; then
    echo "ok      package $(tail -1 "$results/package.log")"
    passed=$((passed + 1))
  else
    tail -20 "$results/package.log" >&2
    echo "FAILED  package build (log $results/package.log)" >&2
    failed=$((failed + 1))
  fi
fi

if ((run_integration && ${#pytest_select[@]} == 0)); then
  # tandem-control of the next wire version, for test_pair_versions.py: built
  # here, like the package, so that its minutes are not the integration cap's.
  phase "the other wire version's tandem-control (scripts/build_wire_peer.sh)"
  if nice "$root/scripts/build_wire_peer.sh" >"$results/wire-peer.log" 2>&1; then
    echo "ok      wire peer $(tail -1 "$results/wire-peer.log")"
    passed=$((passed + 1))
  else
    tail -20 "$results/wire-peer.log" >&2
    echo "FAILED  the other wire version's build (log $results/wire-peer.log)" >&2
    failed=$((failed + 1))
  fi
fi

if ((run_integration)); then
  phase "integration tests (pytest tests/integration)"
  # A guard against a hang (each test has its own bound too), not a speed
  # check: the 232 tests take about 25 minutes on a quiet two-core machine
  # (real daemons, real timers), and CI's machine was a third slower.
  pytest_cap="${TANDEM_TEST_TIMEOUT_S:-2400}" pytest_suite integration \
    "$root/tests/integration" -v -rfEs "${pytest_select[@]}"
fi

finish
