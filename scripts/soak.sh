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
for f in switch/tandem-switch control/tandem-control control/tandemctl control/tandem-churn; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || {
    echo "soak: $TANDEM_BUILD_DIR/$f is not built (run scripts/setup.sh, or ninja -C $TANDEM_BUILD_DIR)" >&2
    exit 1
  }
done
if [[ $EUID -ne 0 ]]; then
  echo "soak: run as root (network namespaces, DPDK)" >&2
  exit 1
fi

driver=""
cleanup() {
  set +e
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    # The driver removes its testbed on SIGTERM; give it the time to.
    kill -TERM "$driver" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$driver" 2>/dev/null
  fi
  if [[ -n "$driver" ]]; then
    # Whatever a killed driver left: its names all start with tdi<its pid>-.
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
# the driver (SIGTERM) to stop and remove the testbed in order. The churn
# driver (tandem-churn) runs in the root namespace as the driver's child; it
# is killed with it.
setsid /usr/bin/python3 "$root/scripts/soak/soak.py" "$@" &
driver=$!
rc=0
wait "$driver" || rc=$?
exit "$rc"
