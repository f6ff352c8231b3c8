#!/usr/bin/env bash
# Failover benchmark of a Tandem pair (issue 4): runs each failure N times on
# the namespace testbed, while three participants stream UDP media at 50
# packets/s, and measures detection time, takeover time (first gratuitous ARP
# of the new active) and the media gap at the receivers. Prints median, p99
# and max per failure kind; writes out/bench/failover.{csv,json} and
# docs/failover.png. See docs/failover.md.
#
# Usage (as root, after scripts/setup.sh has built build/):
#   scripts/bench_failover.sh [--runs N] [--kinds kill-switch,kill-node,access-down]
#                             [--multiplier M] [--reuse] [--out DIR] [--plot FILE]
#   scripts/bench_failover.sh --dc [--runs N] [--family 4|6] [--out DIR] [--plot FILE]
#     the pair in routed mode across two data centers (scripts/bench/failover_dc.py):
#     the active's switch (or its whole node) killed N times each (default 20),
#     the VIP moved by BGP; [--kinds kill-switch,kill-node] [--multiplier M];
#     writes out/bench/failover_dc.{csv,json} and docs/failover_dc.png (docs/routed.md)
# TANDEM_BUILD_DIR selects another build directory. --help lists every option.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_BUILD_DIR="${TANDEM_BUILD_DIR:-$root/build}"
script="$root/scripts/bench/failover.py"
built=(switch/tandem-switch control/tandem-control control/tandemctl)
if [[ "${1:-}" == "--dc" ]]; then
  shift
  script="$root/scripts/bench/failover_dc.py"
  built+=(control/tandem-routing)
  command -v bird >/dev/null || { echo "bench_failover: --dc needs BIRD 2 (scripts/setup.sh)" >&2; exit 1; }
fi
for f in "${built[@]}"; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || {
    echo "bench_failover: $TANDEM_BUILD_DIR/$f is not built (run scripts/setup.sh)" >&2
    exit 1
  }
done
if [[ $EUID -ne 0 ]]; then
  echo "bench_failover: run as root (network namespaces, DPDK)" >&2
  exit 1
fi

source "$root/scripts/lib/driver.sh"
# On SIGTERM the driver writes what it measured, then removes the testbed.
run_driver 10 "$script" "$@"
