#!/usr/bin/python3
"""Failover benchmark of the pair in routed mode across two data centers
(issue 17, docs/routed.md "Figures of the routed pair").

One two-DC test bed (tests/integration/helpers/dc.py): the pair in routed
mode, a meeting of two participants made through the active's API. Each run
kills (kill -9) the active node's tandem-switch (kill-switch), or it and its
tandem-control and BIRD (kill-node), while p0 and p1 stream to each other
through the VIP at 200 packets/s; the standby takes over and the edge router
moves the VIP to its DC by BGP. Then the killed processes are restarted (BIRD
withdrawn, as after a reboot), the node rejoins as the standby and catches
up, and the next run kills the node now active (the roles alternate). Per
run:

  moved    kill -> the edge router's kernel routes the VIP to the other DC
           (polled every 5 ms from Python: a few ms of tool time included);
  gap      the longest silence a receiver heard (participant.py max_gap_ms,
           the worst of the two directions; 5 ms is one packet);
  lost     the longest run of packets lost after the kill, in ms;
  dups     packets delivered twice (must be 0).

Writes OUT/failover_dc.csv and .json, the plot docs/failover_dc.png (--plot),
and prints median, p99 (nearest rank: with fewer than 100 runs it is the
largest value) and max. --from-json FILE measures nothing and draws the plot
of a saved run again.
Run by scripts/bench_failover.sh --dc; needs root.
"""
import argparse
import csv
import datetime
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from failover import plot  # noqa: E402
from helpers.dc import DcBed  # noqa: E402
from helpers.dc_media import start_pair_meeting, stream, vip, wait_pair_synced  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def percentile(values, q):
    v = sorted(values)
    return v[max(1, math.ceil(q / 100 * len(v))) - 1] if v else None


def active_dc(bed):
    roles = {dc: n.pair_status()["role"] for dc, n in bed.nodes.items()}
    return next(dc for dc, r in roles.items() if r == "active")


def kill(node, kind):
    procs = [node.switch.proc]
    if kind == "kill-node":
        procs += [node.control.proc, node.bird.proc]
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)


def restore(node, kind):
    """The killed node comes back (as after a reboot: its BIRD started
    withdrawn) and rejoins as the standby."""
    node.switch.kill()  # reaps it
    if kind == "kill-node":
        node.control.proc.wait()
        node.bird.proc.wait()
        node.start_bird()
    node.switch.start()
    if kind == "kill-node":
        node.control.start()
    deadline = time.monotonic() + 30
    while True:
        st = node.pair_status()
        if st["role"] == "standby" and st["pair"]["routing_announced"] == "standby":
            return
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def one_run(bed, family, kind):
    dc = active_dc(bed)
    other = "b" if dc == "a" else "a"
    node = bed.nodes[dc]

    def fail():
        t0 = time.monotonic()
        kill(node, kind)
        bed.wait_edge(vip(family), other, timeout=10)
        return (time.monotonic() - t0) * 1000
    media, moved_ms = stream(bed, family, fail, seconds=2.5, at=1.2)
    restore(node, kind)
    wait_pair_synced(bed, active=other, timeout=30)
    bed.wait_edge(vip(family), other, timeout=10)
    return {"kind": kind, "killed": node.name, "moved_ms": round(moved_ms, 1),
            "gap_ms": media.gap_ms, "lost_ms": media.lost_ms, "baseline_ms": media.baseline_ms,
            "dups": media.dups, "received_last_s": round(media.recovered, 3)}


def commit():
    p = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def draw(result, path):
    s, rows = result["summary"], result["runs"]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    when = ", ".join(str(s[k]) for k in ("date", "commit") if k in s)
    plot(rows, kinds, path,
         f"Tandem routed pair across two DCs, IPv{s['family']}, heartbeat 10 ms x "
         f"{s['multiplier']}, BFD 10 ms x 3, {s['runs_per_kind']} runs per kind"
         + (f", {when}" if when else ""),
         metrics=[("moved_ms", "edge routes via the other DC (ms)"),
                  ("gap_ms", "media gap at the receivers (ms)"),
                  ("lost_ms", "media lost after the kill (ms)")],
         goals=((150, "red", "goal p99 150 ms"), (80, "orange", "goal median 80 ms")))
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="runs of each kind (default 20)")
    ap.add_argument("--kinds", default="kill-switch,kill-node",
                    help="kill-switch (the active's tandem-switch), kill-node (its switch, "
                         "tandem-control and BIRD); default both")
    ap.add_argument("--multiplier", type=int, default=3,
                    help="heartbeat multiplier: detection after 10 ms x N (default 3, the "
                         "product's default; the test suite uses 30 for loaded machines)")
    ap.add_argument("--family", type=int, choices=(4, 6), default=4)
    ap.add_argument("--out", default=str(REPO / "out" / "bench"))
    ap.add_argument("--plot", default=str(REPO / "docs" / "failover_dc.png"), help="plot file")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: draw the plot of a saved failover_dc.json again")
    args = ap.parse_args()
    if args.from_json:
        draw(json.loads(pathlib.Path(args.from_json).read_text()), args.plot)
        return 0
    kinds = args.kinds.split(",")
    assert set(kinds) <= {"kill-switch", "kill-node"}, kinds
    signal.signal(signal.SIGTERM, _interrupt)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with DcBed(participants=2) as bed:
        start_pair_meeting(bed, args.family, multiplier=args.multiplier)
        for kind in kinds:
            for i in range(args.runs):
                r = one_run(bed, args.family, kind)
                rows.append(r)
                print(f"{kind} run {i + 1}/{args.runs} ({r['killed']}): edge moved after "
                      f"{r['moved_ms']:.1f} ms, gap {r['gap_ms']:.1f} ms, lost "
                      f"{r['lost_ms']:.0f} ms, duplicates {r['dups']}", flush=True)
    with open(out / "failover_dc.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = {"runs_per_kind": args.runs, "multiplier": args.multiplier,
               "family": args.family, "loadavg": os.getloadavg(),
               "duplicates": sum(r["dups"] for r in rows),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "commit": commit(), "command": " ".join(sys.argv)}
    print(f"\nrouted pair, IPv{args.family}, heartbeat 10 ms x {args.multiplier}, BFD 10 ms x 3, "
          f"{args.runs} runs per kind (load average at the end "
          f"{summary['loadavg'][0]:.1f}); median / p99 / max:")
    print("| kind | edge routes via the other DC after | media gap heard | media lost |")
    print("| --- | --- | --- | --- |")
    for kind in kinds:
        cells = []
        for key in ("moved_ms", "gap_ms", "lost_ms"):
            v = [r[key] for r in rows if r["kind"] == kind]
            st = {"median": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
            summary[f"{kind} {key}"] = st
            cells.append(f"{st['median']:.1f} / {st['p99']:.1f} / {st['max']:.1f} ms")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print(f"packets delivered twice: {summary['duplicates']}")
    result = {"summary": summary, "runs": rows}
    (out / "failover_dc.json").write_text(json.dumps(result, indent=1))
    try:
        draw(result, args.plot)
    except Exception as e:  # the figures stand without the picture
        print(f"plot failed: {e}")
    return 1 if summary["duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
