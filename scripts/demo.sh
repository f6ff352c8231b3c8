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
#
# scripts/demo.sh --dc [SECONDS]   (default 10): two data centers instead
# (scripts/demo/dc_demo.py, docs/routed.md): the pair in routed mode, each node
# with its BIRD behind its DC's router, participants behind an edge router;
# every process of the primary node is killed and the meeting moves to DC B
# by BGP. The helpers' output is left in /tmp/tandem-demo-dc.log.
#
# scripts/demo.sh --fleet [SECONDS]   (default 10): a fleet instead
# (scripts/demo/fleet_demo.py, docs/fleet.md): a three-member etcd cluster,
# three pairs registered in its directory (pair-1 with switches and two
# participants, the others control daemons only), meetings placed across them
# with `tandemctl fleet place`; pair-1's primary is killed during its media,
# its standby carries its meetings on, new meetings are placed. Exits 0 only if
# all of that happened. The helpers' output is left in /tmp/tandem-demo-fleet.log.
set -euo pipefail

demo=pair_demo.py
case "${1:-}" in
  --dc) demo=dc_demo.py; shift ;;
  --fleet) demo=fleet_demo.py; shift ;;
esac
seconds="${1:-$([[ $demo == pair_demo.py ]] && echo 15 || echo 10)}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $EUID -ne 0 ]]; then
  echo "demo: run as root (network namespaces, DPDK)" >&2
  exit 1
fi
# shellcheck source=scripts/setup.sh
source "$root/scripts/setup.sh"

built=(switch/tandem-switch control/tandem-control control/tandemctl)
[[ $demo == dc_demo.py ]] && built+=(control/tandem-routing)
for f in "${built[@]}"; do
  [[ -x "$TANDEM_BUILD_DIR/$f" ]] || { echo "demo: $TANDEM_BUILD_DIR/$f is not built" >&2; exit 1; }
done
export TANDEM_BUILD_DIR TANDEM_HUGEPAGES TANDEM_EAL_MEM

source "$root/scripts/lib/driver.sh"
run_driver 10 "$root/scripts/demo/$demo" --seconds "$seconds"
