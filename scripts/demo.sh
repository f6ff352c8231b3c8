#!/usr/bin/env bash
# Tandem's main job on a virtual testbed: a primary and a hot standby carry a
# live meeting of three participants through the loss of the primary.
#
#   bridge namespace:  br0 -- p0, p1, p2 (participants), na, nb (the nodes)
#   node na:           tandem-switch + tandem-control, the primary
#   node nb:           tandem-switch + tandem-control, the standby
#   backbone:          a veth between na and nb (replication, heartbeats)
#   participants:      198.18.0.10-12, each a kernel UDP socket on port 5000,
#                      sending to its VIP port on 198.18.0.100
#
# It installs what is missing and builds (scripts/setup.sh), starts the pair,
# creates a site and a meeting and joins three participants through
# `tandemctl --pair` (each command and its output are printed), streams UDP
# media at 50 packets/s for about 15 s, kills both processes of the primary
# with SIGKILL half-way, prints `tandemctl --pair ... status` of the pair
# after the takeover and, per participant, what it sent, what it received from
# each other participant and the media gap it heard at the takeover. Then it
# removes everything it made, also on Ctrl-C or failure.
#
# Usage (as root): scripts/demo.sh [SECONDS]     (default 15)
# The processes' logs are left in /tmp/tandem-demo.log.
set -euo pipefail

seconds="${1:-15}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $EUID -ne 0 ]]; then
  echo "demo: run as root (network namespaces, DPDK)" >&2
  exit 1
fi
# shellcheck source=scripts/setup.sh
source "$root/scripts/setup.sh"

for f in switch/tandem-switch control/tandem-control control/tandemctl; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || { echo "demo: $TANDEM_BUILD_DIR/$f is not built" >&2; exit 1; }
done
export TANDEM_BUILD_DIR TANDEM_HUGEPAGES TANDEM_EAL_MEM

driver=""
cleanup() {
  set +e
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    # The driver removes its testbed on SIGTERM; give it the time to.
    kill -TERM "$driver" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
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

# In the background and in a session of its own, so that Ctrl-C reaches only
# this shell, whose trap asks the driver (SIGTERM) to remove the testbed in
# order, instead of reaching every daemon of the pair at once.
setsid /usr/bin/python3 "$root/scripts/demo/pair_demo.py" --seconds "$seconds" &
driver=$!
rc=0
wait "$driver" || rc=$?
exit "$rc"  # cleanup() then sweeps anything left under the driver's prefix
