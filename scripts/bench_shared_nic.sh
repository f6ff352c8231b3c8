#!/bin/bash
# Shared-NIC benchmark (issue 6): tandem-switch relaying one leg's media to
# another on the same veth pair, once with net_af_packet and once with
# net_af_xdp + the XDP steering program (xdp_steering = true), in one run.
#
#   scripts/bench_shared_nic.sh [SECONDS_PER_MODE] [FRAME_BYTES]
#
# BUILD=<dir> picks the meson build directory (default: build); the switch,
# its XDP program and tandem-tables must be built there.
#
# Topology (namespaces named xbn<pid>-*, removed on exit):
#   gen ns:  gen0 198.18.0.10 + 198.18.0.11 (kernel, answers ARP for the
#            receiver), dpdk-testpmd txonly on gen0 (net_af_packet) sending
#            198.18.0.10:5000 -> VIP 198.18.0.100:20000 as fast as it can
#   node ns: sw0 198.18.0.2/24 (the host's own address) + tandem-switch
# The switch forwards each packet to the second leg, 198.18.0.11:5000, back
# over the same veth, where a kernel socket that never reads drops them.
# Sender on CPU 0, switch worker on CPU 1. Figures: the switch's own
# counters (rx/tx packets per second over the window).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SECS=${1:-10}
FRAME=${2:-200}
SWITCH=$BUILD/switch/tandem-switch
TABLES=$BUILD/common/tables/tool/tandem-tables
PROG=$BUILD/switch/xdp/tandem_steer.bpf.o
if [[ $EUID -ne 0 ]]; then echo "bench_shared_nic.sh: needs root" >&2; exit 1; fi
for f in "$SWITCH" "$TABLES" "$PROG"; do
  [[ -e $f ]] || { echo "bench_shared_nic.sh: $f is not built (BUILD=$BUILD)" >&2; exit 1; }
done
command -v dpdk-testpmd >/dev/null || { echo "bench_shared_nic.sh: dpdk-testpmd missing" >&2; exit 1; }

TAG=xbn$$
GEN=$TAG-gen
NODE=$TAG-node
WORK=$(mktemp -d /dev/shm/$TAG-XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$GEN" 2>/dev/null || true
  ip netns del "$NODE" 2>/dev/null || true
  if [[ -n ${KEEP:-} ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  rm -rf /var/run/dpdk/$TAG-*
}
trap cleanup EXIT INT TERM

ip netns add "$GEN"
ip netns add "$NODE"
ip -n "$GEN" link add gen0 type veth peer name sw0 netns "$NODE"
for ns in "$GEN" "$NODE"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n "$GEN" link set gen0 up
ip -n "$NODE" link set sw0 up
ip -n "$GEN" addr add 198.18.0.10/24 dev gen0
ip -n "$GEN" addr add 198.18.0.11/24 dev gen0
ip -n "$NODE" addr add 198.18.0.2/24 dev sw0
ip netns exec "$GEN" ethtool -K gen0 tx off >/dev/null 2>&1 || true
ip netns exec "$NODE" ethtool -K sw0 gro off >/dev/null 2>&1 || true
# The forwarded copies come back to gen0: a socket that never reads takes
# them (no ICMP port unreachable for each; this kernel has no tc actions).
ip netns exec "$GEN" /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("198.18.0.11", 5000))
time.sleep(3600)' &
PIDS+=($!)
SW_MAC=$(ip -n "$NODE" -br link show sw0 | awk '{print $3}')

EAL_MEM=(--no-huge -m 512)
if [[ ${TANDEM_HUGEPAGES:-0} == 1 ]]; then EAL_MEM=(); fi

# run_mode NAME DEVARGS XDP_STEERING -> prints "NAME rx_pps tx_pps offered_pps"
run_mode() {
  local name=$1 devargs=$2 steering=$3
  local shm=$WORK/shm-$name cfg=$WORK/$name.toml log=$WORK/$name.log
  mkdir -p -m 700 "$shm"
  local eal_args
  eal_args=$(printf '"%s", ' "${EAL_MEM[@]}" --file-prefix "$TAG-$name" --no-pci)
  cat >"$cfg" <<EOF
node = "b"
shm_dir = "$shm"
[tables]
legs = 1024
meetings = 256
[eal]
args = [${eal_args%, }]
main_lcore = 0
worker_lcores = [1]
[switch]
idle_sleep_us = 0
mbufs = 8191
[[port]]
name = "access"
devargs = "$devargs"
xdp_steering = $steering
[access]
prefixes = ["198.18.0.0/24"]
[telemetry]
enabled = false
EOF
  ip netns exec "$NODE" "$SWITCH" --config "$cfg" >"$log" 2>&1 &
  local sw=$!
  PIDS+=("$sw")
  for _ in $(seq 100); do grep -q "tandem-switch: forwarding" "$log" && break; sleep 0.1; done
  grep -q "tandem-switch: forwarding" "$log" || { cat "$log" >&2; return 1; }
  "$TABLES" --shm-dir "$shm" --node b --legs 1024 --meetings 256 apply - >/dev/null <<EOF
role active 1
vip 198.18.0.100
meeting 1 1
leg 101 1 audio 198.18.0.10:5000 198.18.0.100:20000 send,recv 1
leg 102 1 audio 198.18.0.11:5000 198.18.0.100:20001 recv 2
EOF
  # The switch resolves the receiver (ARP through the kernel of the gen ns).
  ip netns exec "$GEN" ping -c 1 -W 1 198.18.0.100 >/dev/null 2>&1 || true
  ip netns exec "$GEN" dpdk-testpmd "${EAL_MEM[@]}" --file-prefix "$TAG-gen-$name" --no-pci \
    --lcores 0@0,1@0 --vdev "net_af_packet0,iface=gen0,qpairs=1" -- \
    --forward-mode=txonly --txpkts="$FRAME" --tx-ip=198.18.0.10,198.18.0.100 \
    --tx-udp=5000,20000 --eth-peer=0,"$SW_MAC" --nb-cores=1 --txq=1 --rxq=1 \
    --total-num-mbufs=16384 --stats-period 1 >"$WORK/gen-$name.log" 2>&1 </dev/null &
  local gen=$!
  PIDS+=("$gen")
  sleep 2  # warm-up: the sender starts, the receiver is resolved
  local s0 s1
  s0=$("$TABLES" --shm-dir "$shm" --node b --legs 1024 --meetings 256 stats --json)
  sleep "$SECS"
  s1=$("$TABLES" --shm-dir "$shm" --node b --legs 1024 --meetings 256 stats --json)
  kill -INT "$gen"; wait "$gen" 2>/dev/null || true
  kill -TERM "$sw"; wait "$sw" 2>/dev/null || true
  /usr/bin/python3 - "$name" "$SECS" "$s0" "$s1" "$WORK/gen-$name.log" <<'EOF'
import json, re, sys
name, secs, a, b, genlog = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
ta, tb = a["totals"], b["totals"]
rx = (tb["rx_packets"] - ta["rx_packets"]) / secs
tx = (tb["tx_packets"] - ta["tx_packets"]) / secs
drops = {k: tb["drops"][k] - ta["drops"][k] for k in tb["drops"] if tb["drops"][k] - ta["drops"][k]}
pa, pb = a["ports"][0], b["ports"][0]
missed = (pb.get("imissed", 0) - pa.get("imissed", 0)) / secs  # lost before the switch's RX
if missed:
    drops["port_imissed_pps"] = round(missed)
rates = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", open(genlog).read())]
offered = sorted(rates)[len(rates) // 2] if rates else 0
print(f"{name} {rx:.0f} {tx:.0f} {offered} {json.dumps(drops).replace(' ', '')}")
EOF
  grep -E "XDP steering program|xdp steering on sw0: pass|left with no XDP" "$log" >&2 || true
}

echo "bench_shared_nic: ${SECS}s per mode, ${FRAME}-byte frames, 1 worker, veth gen0 <-> sw0" >&2
r1=$(run_mode af_packet "net_af_packet0,iface=sw0,qpairs=1" false)
r2=$(run_mode af_xdp_steer "net_af_xdp0,iface=sw0,start_queue=0,queue_count=1" true)
printf '\n%-14s %14s %14s %14s  %s\n' "mode" "switch_rx_pps" "switch_tx_pps" "offered_pps" "drops"
for r in "$r1" "$r2"; do
  read -r n rx tx off dr <<<"$r"
  printf '%-14s %14s %14s %14s  %s\n' "$n" "$rx" "$tx" "$off" "$dr"
done
