#!/usr/bin/env bash
# Replication throughput and lag (issue 4, "Throughput"): a real
# ReplicationSource and ReplicationSink (HMAC, framing, acks) over loopback
# TCP, in tests/bench/mirror_bench. Prints its lines, then the goals as a table.
#   scripts/bench_mirror.sh [--seconds=5] [--records=1000000] [--record_bytes=100]
#
# With --backbone (issue 17, as root): a real pair (tandem-switch and
# tandem-control on each node) whose backbone runs through a user-space delay
# relay (20 ms each way), scripts/bench/pair_backbone.py: the standby's lag at
# 10,000 changes/s in async mode, then the latency of single sync writes
# against the relay's round trip. Fails if a change did not reach the standby.
#   scripts/bench_mirror.sh --backbone [--delay-ms 20] [--rate 10000] [--seconds 10]
#                                      [--writes 200]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
if [[ "${1:-}" == "--backbone" ]]; then
  shift
  export TANDEM_BUILD_DIR="$build"
  for f in switch/tandem-switch control/tandem-control control/tandemctl \
           tests/bench/tandem-churn control/client/tandem-app-example; do
    [[ -x "$build/$f" ]] || { echo "bench_mirror: $build/$f is not built (scripts/setup.sh)" >&2; exit 1; }
  done
  [[ $EUID -eq 0 ]] || { echo "bench_mirror: --backbone runs as root (namespaces, DPDK)" >&2; exit 1; }
  source "$root/scripts/lib/driver.sh"
  run_driver 15 "$root/scripts/bench/pair_backbone.py" "$@"
  exit $?
fi
[[ -x "$build/tests/bench/mirror_bench" ]] || "$root/scripts/setup.sh"
out="$("$build/tests/bench/mirror_bench" "$@")"
echo "$out"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
burst = float(re.search(r"= (\d+) changes/s", out).group(1))
paced = {int(m.group(1)): (int(m.group(2)), float(m.group(3)))
         for m in re.finditer(r"paced\s+(\d+) changes/s target: achieved\s+(\d+) changes/s.*?"
                              r"p99 ([\d.]+) ms", out)}
rows = [("burst throughput >= 100,000 changes/s", f"{burst:,.0f} changes/s", burst >= 100000),
        ("sustained 100,000 changes/s", f"{paced[100000][0]:,} changes/s achieved",
         paced[100000][0] >= 99000),
        ("lag p99 < 10 ms at 10,000 changes/s", f"{paced[10000][1]:.2f} ms",
         paced[10000][1] < 10)]
print(f"\n{'goal':42} {'measured':28} met")
for goal, value, ok in rows:
    print(f"{goal:42} {value:28} {'yes' if ok else 'NO'}")
sys.exit(0 if all(ok for _, _, ok in rows) else 1)
PY
