#!/usr/bin/env bash
# Runs every test suite of Tandem and ends with one line of its own:
#   N passed, N failed[, N skipped]
# Suites: every test registered with meson (GoogleTest executables are counted
# case by case), a short run of each libFuzzer target, the unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer, the tables and mirror unit
# tests under ThreadSanitizer, and the pytest integration suite in
# tests/integration.
# Exits non-zero when any case failed or errored, or when a suite could not
# run at all (that counts as a failure, never as zero tests).
#
# Usage: scripts/test.sh [--unit-only | --integration-only | --tsan] [-k EXPR]
#                        [--sanitize] [--no-fuzz] [--no-asan] [--no-tsan]
#   -k EXPR     passed to pytest to select integration tests
#   --sanitize  build with AddressSanitizer + UndefinedBehaviorSanitizer in
#               build-sanitize/ (default) and run the suites on that build
#   --no-fuzz   skip the short libFuzzer run (run with the unit tests when
#               clang is installed: scripts/fuzz.sh, each target counts as a case)
#   --no-asan   skip the unit tests under ASan + UBSan (run with the unit tests
#               when clang is installed, built in build-asan/, counted case by
#               case; --sanitize runs every suite on a sanitized build instead)
#   --no-tsan   skip the ThreadSanitizer suite (run with the unit tests when
#               clang is installed: the tables and mirror unit tests built in
#               build-tsan/, counted case by case like the unit tests)
#   --tsan      run only the ThreadSanitizer suite
# Environment: TANDEM_BUILD_DIR (default build/ or build-sanitize/),
# TANDEM_TSAN_BUILD_DIR (default build-tsan/), TANDEM_ASAN_BUILD_DIR (build-asan/),
# TANDEM_TEST_TIMEOUT_S (whole integration suite, default 1080),
# TANDEM_FUZZ_SECONDS (per fuzz target, default 60; two targets at a time).
set -uo pipefail

run_unit=1
run_integration=1
pytest_select=()
run_fuzz=1
run_tsan=1
run_asan=1
tsan_only=0
sanitize=0
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
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
finish() {
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
  echo "test.sh: set-up or build failed; no suite can run" >&2
  failed=$((failed + 1))
  finish
fi
results="$TANDEM_BUILD_DIR/test-results"
mkdir -p "$results"
summary=(/usr/bin/python3 "$root/scripts/lib/junit_summary.py")

if ((run_unit && !tsan_only)); then
  echo "=== unit tests (meson test -C $TANDEM_BUILD_DIR)"
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

asan_build="${TANDEM_ASAN_BUILD_DIR:-$root/build-asan}"
tsan_build="${TANDEM_TSAN_BUILD_DIR:-$root/build-tsan}"
# The sanitizer builds compile while the fuzzers run, at the lowest priority:
# the fuzz runs are timed, and with 7 targets two at a time a core is often
# idle. The sanitizer suites below wait for it, then build what is left (and
# report any build error) and run.
prebuild_pid=""
if ((run_unit && run_fuzz && (run_asan || run_tsan))) && command -v clang++ >/dev/null; then
  (
    if ((run_asan)); then sanitizer_suite "" "$asan_build" address,undefined unit build-only; fi
    if ((run_tsan)); then sanitizer_suite "" "$tsan_build" thread tsan build-only; fi
  ) >/dev/null 2>&1 &
  prebuild_pid=$!
  renice -n 19 -p "$prebuild_pid" >/dev/null 2>&1
fi

# A short libFuzzer run of every target (clang builds only, in build-fuzz/):
# each target is one case, failed when it found a crash.
if ((run_unit && run_fuzz)); then
  if command -v clang++ >/dev/null; then
    echo "=== fuzz targets (scripts/fuzz.sh, ${TANDEM_FUZZ_SECONDS:-60}s each, two at a time)"
    fuzz_summary="$results/fuzz-summary.txt"
    rm -f "$fuzz_summary"
    "$root/scripts/fuzz.sh" --seconds "${TANDEM_FUZZ_SECONDS:-60}" --parallel 2 \
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
          echo "FAILED  fuzz_$name: crash input in build-fuzz/fuzz-artifacts/$name/" >&2
          failed=$((failed + 1))
        fi
      done <"$fuzz_summary"
    fi
  else
    echo "test.sh: clang++ not installed: no fuzz run" >&2
  fi
fi

# Unit tests in a clang sanitizer build of their own, only the targets they
# need: counted case by case like the unit tests; a sanitizer report fails its
# test (non-zero exit), which counts as a failure even when every case passed.
#   sanitizer_suite LABEL BUILD_DIR SANITIZE WHICH
# WHICH: "unit" (every test of meson suite unit) or "tsan" (tables, mirror_*).
sanitizer_suite() {
  local label="$1" build="$2" sanitize="$3" which="$4" mode="${5:-}"
  [[ "$mode" == build-only ]] || echo "=== $label (meson test -C $build)"
  if [[ ! -f "$build/build.ninja" ]]; then
    local wipe=()
    [[ -d "$build/meson-private" ]] && wipe=(--wipe)
    CC=clang CXX=clang++ meson setup "${wipe[@]}" "$build" "$root" \
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
        files.add(t["cmd"][0])
        for d in t.get("depends", []):
            files.update(targets[d]["filename"] if d in targets else [])
for f in sorted(files):
    print("target", os.path.relpath(f, build))' "$build" "$which")
  fi
  local jobs=()
  [[ -n "${TANDEM_NINJA_JOBS:-}" ]] && jobs=(-j "$TANDEM_NINJA_JOBS")
  if [[ "$mode" == build-only ]]; then
    ((${#targets[@]})) && ninja -C "$build" "${jobs[@]}" "${targets[@]}" >"$build/sanitizer-prebuild.log" 2>&1
    return 0
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

[[ -n "$prebuild_pid" ]] && wait "$prebuild_pid"
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

if ((run_integration)); then
  echo "=== integration tests (pytest tests/integration)"
  junit="$results/integration.junit.xml"
  rm -f "$junit"
  # SIGINT lets pytest run every fixture's clean-up and write its report.
  PYTHONDONTWRITEBYTECODE=1 timeout -s INT -k 60 "${TANDEM_TEST_TIMEOUT_S:-1080}" \
    /usr/bin/python3 -m pytest "$root/tests/integration" -v -rfEs \
    -p no:cacheprovider --junitxml="$junit" "${pytest_select[@]}"
  rc=$?
  if [[ ! -s "$junit" ]]; then
    echo "test.sh: pytest did not run (exit $rc)" >&2
    failed=$((failed + 1))
  else
    add_counts "$("${summary[@]}" "$junit")"
    case $rc in
      0 | 1) ;;
      5) echo "test.sh: pytest collected no tests" >&2; failed=$((failed + 1)) ;;
      *) echo "test.sh: pytest ended abnormally (exit $rc)" >&2; failed=$((failed + 1)) ;;
    esac
  fi
fi

finish
