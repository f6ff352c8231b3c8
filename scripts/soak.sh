#!/usr/bin/env bash
# Soak of a Tandem pair (issue 7): runs the pair on the namespace testbed for
# a long time (default 30 minutes) with three participants streaming UDP media
# at 50 packets/s, a churn driver joining and leaving legs at 1,000/s through
# whichever node is active, and a takeover every few minutes (kill -9 of the
# active switch, kill -9 of both active processes, `tandemctl pair switchover`,
# in turn; the killed processes are restarted as the standby). Samples RSS,
# legs, replication lag and churn counts every 10 s (a table on stdout and a
# CSV); at the end checks that no leg was lost or duplicated, that the site
# data and the media legs' usage counters agree between the nodes and with
# what the participants sent, and that memory stayed flat. Exits 0 only if
# every check passes. See docs/hardening.md ("Soak").
#
# Usage (as root, after scripts/setup.sh has built the build directory):
#   scripts/soak.sh [--minutes 30] [--rate 1000] [--takeover-every 3] [--csv out/soak/soak.csv]
# TANDEM_BUILD_DIR selects another build directory. --help lists every option.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_BUILD_DIR="${TANDEM_BUILD_DIR:-$root/build}"
for a in "$@"; do
  if [[ "$a" == "-h" || "$a" == "--help" ]]; then
    exec /usr/bin/python3 "$root/scripts/soak/soak.py" --help
  fi
done
for f in switch/tandem-switch control/tandem-control control/tandemctl tests/bench/tandem-churn; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || {
    echo "soak: $TANDEM_BUILD_DIR/$f is not built (run scripts/setup.sh, or ninja -C $TANDEM_BUILD_DIR)" >&2
    exit 1
  }
done
if [[ $EUID -ne 0 ]]; then
  echo "soak: run as root (network namespaces, DPDK)" >&2
  exit 1
fi

source "$root/scripts/lib/driver.sh"
# The churn driver (tandem-churn) runs in the root namespace as the
# driver's child; it is killed with it.
run_driver 15 "$root/scripts/soak/soak.py" "$@"
