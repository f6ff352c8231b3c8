#!/bin/bash
# Benchmarks of the control plane: the API's leg join/leave rate with batch
# calls against a real tandem-control on a temporary directory, then the
# tables library's update rate (tests/bench/tables_bench, when built).
#
#   scripts/bench_control.sh [BUILD_DIR] [-- tandem-control-bench flags]
#   e.g. scripts/bench_control.sh build -- --legs 400000 --batch 2000
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == "--" ]] && shift
daemon=$build/control/tandem-control
bench=$build/tests/bench/tandem-control-bench
for b in "$daemon" "$bench"; do
  [[ -x $b ]] || { echo "bench_control: $b not built (ninja -C $build control/tandem-control tests/bench/tandem-control-bench)" >&2; exit 1; }
done

dir=$(mktemp -d /dev/shm/tandem-bench.XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# Four VIPs x 64k ports: room for 250k legs at once. The store sits on the
# temp dir too (tmpfs): fsync is cheap there; on a disk, each batch call
# costs one fsync more (the rate per leg barely moves with batches of 1000).
cat > "$dir/control.toml" <<CONF
node = "bench"
shm_dir = "$dir"
role = "active"
[tables]
legs = 524288
meetings = 1024
[api]
listen = "unix:$dir/api.sock"
[store]
path = "${STORE_DIR:-$dir}/bench-control.db"
[metrics]
listen = "off"
[access]
vips = ["198.18.255.1", "198.18.255.2", "198.18.255.3", "198.18.255.4"]
[pool]
ports = "1024-65535"
CONF

"$daemon" --config "$dir/control.toml" 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 100); do [[ -S $dir/api.sock ]] && break; sleep 0.05; done
[[ -S $dir/api.sock ]] || { cat "$dir/daemon.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
echo "== control API (tandem-control-bench, batch calls over unix:$dir/api.sock)"
before=$(cpu_ticks)
"$bench" --api "unix:$dir/api.sock" "$@"
# The machine is shared: the daemon's own CPU time gives a rate that does not
# depend on what else runs.
after=$(cpu_ticks)
echo "daemon CPU: $(( (after - before) * 1000 / $(getconf CLK_TCK) )) ms for the run above" \
  "(load average $(cut -d' ' -f1 /proc/loadavg))"

tables_bench=$build/tests/bench/tables_bench
if [[ -x $tables_bench ]]; then
  echo "== tables library ($tables_bench)"
  "$tables_bench"
else
  echo "== tables library: $tables_bench not built, skipped"
fi
