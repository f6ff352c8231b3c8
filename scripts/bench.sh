#!/bin/bash
# Tandem's benchmark (issue 5): tandem-switch against dpdk-testpmd io and 5tswap
# on the same net_pcap -> drop devices. Prints a table; writes out/bench/.
#
#   scripts/bench.sh [--quick] [--only TEXT] [--no-huge] [--duration S] [--no-build] [--profile] ...
#
# TANDEM_BUILD_DIR=<dir> (or BUILD=<dir>) picks the meson build directory
# (default: build/, as scripts/setup.sh and scripts/test.sh). Without --no-build
# the two binaries it needs are built there first (ninja -j2).
# Exits 1, naming each scenario, when a run failed or did not forward what
# its scenario expects (scripts/bench/verdict.py). --quick replays every
# scenario for half a second through the switch alone, with a short paced
# memif run: a check that the benchmark forwards, not of speed (about a
# minute; scripts/test.sh runs it on the release build).
# docs/performance.md describes the method and the figures of this machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/check_tools.sh
source "$ROOT/scripts/lib/check_tools.sh"
tandem_check_tools || exit 1
BUILD=${TANDEM_BUILD_DIR:-${BUILD:-$ROOT/build}}
build=1
args=()
for a in "$@"; do
  if [[ $a == --no-build ]]; then build=0; else args+=("$a"); fi
done
if [[ $EUID -ne 0 ]]; then
  echo "bench.sh: DPDK needs root (hugepages, vdevs); run with sudo" >&2
  exit 1
fi
if ((build)); then
  [[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" "$ROOT" >/dev/null
  # Build what exists; the benchmark measures testpmd alone when the switch
  # does not build, and fails.
  ninja -C "$BUILD" -j2 common/tables/tool/tandem-tables switch/tandem-switch >&2 ||
    echo "bench.sh: build failed; measuring what is built" >&2
fi
exec /usr/bin/python3 "$ROOT/scripts/bench/bench.py" --build "$BUILD" "${args[@]}"
