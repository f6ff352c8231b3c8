#!/usr/bin/env bash
# Tandem's main job on a virtual testbed: one meeting of three participants
# whose media tandem-switch switches.
#
#   bridge namespace:  br0 -- p0, p1, p2 (participants), node
#   participants:      198.18.0.10-12, each a kernel UDP socket on port 5000
#   node namespace:    sw0, no address: tandem-switch owns it (net_af_packet)
#   VIP:               198.18.0.100, participant i talks to VIP:(20000+i)
#
# It installs what is missing and builds (scripts/setup.sh), builds the
# testbed, starts the switch, fills its tables with tandem-tables, streams
# UDP media for about 10 s, prints what each participant sent and received
# and the switch's counters, then removes everything it made.
# Usage (as root): scripts/demo.sh [SECONDS]
set -euo pipefail

seconds="${1:-10}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup.sh
source "$root/scripts/setup.sh"

switch_bin="$TANDEM_BUILD_DIR/switch/tandem-switch"
tables_bin="$TANDEM_BUILD_DIR/common/tables/tool/tandem-tables"
participant="$root/tests/integration/tools/participant.py"
for f in "$switch_bin" "$tables_bin"; do
  [[ -x "$f" ]] || { echo "demo: $f is not built" >&2; exit 1; }
done

tag="tdemo$$"
br="$tag-br"
node="$tag-node"
work="$(mktemp -d "/dev/shm/$tag-XXXXXX")"
vip="198.18.0.100"
switch_pid=""

cleanup() {
  set +e
  if [[ -n "$switch_pid" ]] && kill -0 "$switch_pid" 2>/dev/null; then
    kill -TERM "$switch_pid"
    for _ in $(seq 50); do kill -0 "$switch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$switch_pid" 2>/dev/null
  fi
  for ns in "$tag-p0" "$tag-p1" "$tag-p2" "$node" "$br"; do
    if ip netns list | grep -qw "^$ns"; then
      for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns"
    fi
  done
  rm -rf "$work" "/var/run/dpdk/$tag"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

echo "== building the testbed ($tag)"
ip netns add "$br"
in_ns "$br" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$br" link set lo up
ip -n "$br" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$br" link set br0 up

attach() {  # attach NAME NS IFACE: a veth from the bridge to IFACE in NS
  ip -n "$br" link add "$1" type veth peer name "$3" netns "$2"
  ip -n "$br" link set "$1" master br0 up
  ip -n "$2" link set "$3" up
}

for i in 0 1 2; do
  ns="$tag-p$i"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  attach "p$i" "$ns" eth0
  ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
  in_ns "$ns" ethtool -K eth0 tx off >/dev/null 2>&1 || true
done

ip netns add "$node"
ip -n "$node" link set lo up
in_ns "$node" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
  net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
attach node "$node" sw0
in_ns "$node" ethtool -K sw0 gro off >/dev/null 2>&1 || true

read -r -a eal_mem <<<"${TANDEM_EAL_MEM:-}"
eal_args=""
for a in "${eal_mem[@]}" --file-prefix "$tag" --no-pci; do eal_args+="\"$a\", "; done
cat >"$work/switch.toml" <<EOF
node = "demo"
shm_dir = "$work"

[tables]
legs = 65536
meetings = 16384

[eal]
args = [${eal_args%, }]
main_lcore = 0
worker_lcores = [1]

[switch]
idle_sleep_us = 200
idle_polls = 100

[[port]]
name = "access"
devargs = "net_af_packet0,iface=sw0,qpairs=1"

[access]
prefixes = ["198.18.0.0/24"]

[telemetry]
enabled = true
EOF

echo "== starting tandem-switch in $node"
in_ns "$node" "$switch_bin" --config "$work/switch.toml" 2>"$work/switch.log" &
switch_pid=$!
for _ in $(seq 300); do
  grep -q "tandem-switch: forwarding" "$work/switch.log" && break
  kill -0 "$switch_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "tandem-switch: forwarding" "$work/switch.log"; then
  echo "demo: tandem-switch did not start:" >&2
  cat "$work/switch.log" >&2
  exit 1
fi

tables() { "$tables_bin" --shm-dir "$work" --node demo --legs 65536 --meetings 16384 "$@"; }
echo "== filling the tables: meeting 1, one audio leg per participant"
tables apply - <<EOF
role active 1
vip $vip
meeting 1 1
leg 1 1 audio 198.18.0.10:5000 $vip:20000 send,recv 1
leg 2 1 audio 198.18.0.11:5000 $vip:20001 send,recv 2
leg 3 1 audio 198.18.0.12:5000 $vip:20002 send,recv 3
EOF
tables show

rate=50
count=$((seconds * rate))
echo "== streaming for ${seconds}s: each participant sends $count packets of 200 bytes to its VIP port"
pids=()
for i in 0 1 2; do
  in_ns "$tag-p$i" /usr/bin/python3 "$participant" --id $((i + 1)) --bind "198.18.0.1$i:5000" \
    --to "$vip:2000$i" --count "$count" --rate "$rate" --size 200 \
    --duration "$((seconds + 3))" >"$work/p$i.json" &
  pids+=($!)
done
wait "${pids[@]}"

echo "== what each participant sent and received"
/usr/bin/python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
for i in range(3):
    rep = json.load(open(f"{work}/p{i}.json"))
    print(f"participant p{i} ({rep['bind']}): sent {rep['sent']}")
    for src, st in sorted(rep["sources"].items()):
        for sender, s in sorted(st["senders"].items()):
            print(f"  from participant {sender} via {src}: received {s['received']}/{s['count']}"
                  f", duplicates {s['duplicates']}, corrupt {s['corrupt']}")
EOF

echo "== switch counters"
tables stats
