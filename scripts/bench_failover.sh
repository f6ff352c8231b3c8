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
# TANDEM_BUILD_DIR selects another build directory. --help lists every option.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_BUILD_DIR="${TANDEM_BUILD_DIR:-$root/build}"
for f in switch/tandem-switch control/tandem-control control/tandemctl; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || {
    echo "bench_failover: $TANDEM_BUILD_DIR/$f is not built (run scripts/setup.sh)" >&2
    exit 1
  }
done
if [[ $EUID -ne 0 ]]; then
  echo "bench_failover: run as root (network namespaces, DPDK)" >&2
  exit 1
fi

driver=""
cleanup() {
  set +e
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$driver" 2>/dev/null
  fi
  if [[ -n "$driver" ]]; then
    for ns in $(ip netns list | awk '{print $1}' | grep "^tdi$driver-"); do
      for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    done
    rm -rf /dev/shm/tdi"$driver"-* /tmp/tdi"$driver"-* /var/run/dpdk/tdi"$driver"-*
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# In a session of its own: Ctrl-C reaches only this shell, whose trap asks
# the driver (SIGTERM) to write what it measured and remove the testbed.
setsid /usr/bin/python3 "$root/scripts/bench/failover.py" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
exit "$rc"
