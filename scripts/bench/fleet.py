#!/usr/bin/python3
"""The fleet's figures (docs/fleet.md): placements per second and etcd's write
rate per pair, on a three-member etcd cluster in namespaces (the test bed of
tests/integration/test_fleet.py), pairs registered by tandem-fleet-tool.

    scripts/bench_fleet.sh [--pairs 8] [--meetings 4000] [--rest-seconds 20]

Prints one table. Write rate: raft proposals committed (every write etcd
makes durable: puts, lease grants and revocations) and lease renewals (which
etcd's leader keeps in memory, without a proposal), read from the leader's
/metrics before and after a quiet period, divided by the number of pairs.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from helpers import netns  # noqa: E402
from helpers.etcd import EtcdCluster  # noqa: E402
from helpers.paths import build_dir  # noqa: E402

TOOL = build_dir() / "tests" / "tools" / "tandem-fleet-tool"
METRICS = {"proposals": "etcd_server_proposals_committed_total",
           "fsyncs": "etcd_disk_wal_fsync_duration_seconds_count",
           "renewals": "etcd_debugging_lease_renewed_total"}


def place(bed, host, endpoints, first, count, threads, reverse=False):
    argv = [TOOL, "place", "--etcd", endpoints, "--from", first, "--count", count,
            "--threads", threads] + (["--reverse"] if reverse else [])
    return bed.popen(host, argv, stdout=subprocess.PIPE, text=True)


def summary(proc):
    out = proc.communicate(timeout=900)[0]
    return json.loads(out.strip().splitlines()[-1])


def counters(etcd):
    leader = etcd.leader()
    return leader, {k: etcd.metric(leader, m) for k, m in METRICS.items()}


def rest_rates(etcd, pairs, seconds, during=None):
    leader, before = counters(etcd)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if during:
            during()
        time.sleep(1)
    elapsed = time.monotonic() - start
    leader2, after = counters(etcd)
    if leader2 != leader:
        raise RuntimeError("the etcd leader changed during the measurement; run again")
    return {k: (after[k] - before[k]) / elapsed / pairs for k in METRICS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--meetings", type=int, default=4000)
    ap.add_argument("--rest-seconds", type=int, default=20)
    args = ap.parse_args()
    rows = []
    with netns.Testbed() as bed:
        etcd = EtcdCluster(bed, members=3)
        host = etcd.client
        spec = [f"pair-{i}={1000 + 500 * i}" for i in range(args.pairs)]
        reg = bed.popen(host, [TOOL, "register", "--etcd", etcd.endpoints, *spec],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert reg.stdout.readline().strip() == "ready"
        n = args.meetings
        for threads in (1, 4):
            s = summary(place(bed, host, etcd.endpoints, threads * 10**6, n, threads))
            rows.append((f"placements/s, one placer, {threads} thread(s), new meetings",
                         f"{s['per_second']:.0f}"))
        s = summary(place(bed, host, etcd.endpoints, 10**6, n, 4))
        rows.append(("placements/s, one placer, 4 threads, meetings placed before",
                     f"{s['per_second']:.0f}"))
        a = place(bed, host, etcd.endpoints, 9 * 10**6, n, 4)
        b = place(bed, host, etcd.endpoints, 9 * 10**6, n, 4, reverse=True)
        sa, sb = summary(a), summary(b)
        rows.append(("placements/s, two placers x 4 threads, same meetings (sum)",
                     f"{sa['per_second'] + sb['per_second']:.0f}"))
        time.sleep(2)  # the placements' writes are over
        rest = rest_rates(etcd, args.pairs, args.rest_seconds)
        rows.append(("etcd proposals (durable writes)/s per pair at rest", f"{rest['proposals']:.3f}"))
        rows.append(("etcd WAL fsyncs/s per pair at rest (leader)", f"{rest['fsyncs']:.3f}"))
        rows.append(("etcd lease renewals/s per pair at rest (in memory)", f"{rest['renewals']:.3f}"))
        step = [0]

        def change_load():
            step[0] += 1
            for i in range(args.pairs):
                reg.stdin.write(f"load pair-{i} {2000 + step[0] % 50}\n")
                reg.stdin.flush()
                reg.stdout.readline()

        busy = rest_rates(etcd, args.pairs, 10, during=change_load)
        rows.append(("etcd proposals/s per pair, load changing every second",
                     f"{busy['proposals']:.3f}"))
        reg.stdin.close()
        reg.wait(timeout=10)
    print(f"\n{'figure':66} value")
    for name, value in rows:
        print(f"{name:66} {value}")
    print(f"\npairs {args.pairs} (two nodes each, lease TTL 6 s, renewed every 2 s), "
          f"{args.meetings} meetings per placement run; load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
