#!/usr/bin/python3
"""Failover benchmark of a Tandem pair (issue 4, "Figures").

Each failure kind is injected --runs times into a pair on the namespace
testbed of tests/integration (helpers/pair.py: participants p0..p2 on an
access bridge, nodes na and nb, a backbone veth), while the three participants
stream kernel UDP media at 50 packets/s to their VIP ports. For each run:

  detection  injection -> the standby's decision to become active: its
             `tandemctl status` pair.last_takeover_unix_ns minus the wall
             time of the injection;
  takeover   injection -> the first gratuitous ARP for the VIP sent by the
             new active, captured by tcpdump on the bridge (br0);
  gap        the longest silence between two packets of one sender at one
             receiver (participant.py max_gap_ms), the worst over the six
             (receiver, sender) pairs of the run. Packets come every 20 ms,
             so a run without any loss shows about 20 ms.

Failure kinds: kill-switch (kill -9 of the active's tandem-switch),
kill-node (kill -9 of both its processes), access-down (its port on the
access bridge set down).

By default each run gets a new pair (start, meeting of three, replication
caught up), so no run inherits anything from the one before. --reuse keeps
one pair: after a failure the failed node is restored (switch or both
processes restarted, link set up), rejoins as the standby and catches up,
and the next run fails the node that is now active (roles alternate). That
is faster, and it also measures the return of a failed node: how many
gratuitous ARPs for the VIP the returning node sent (it should send none)
and takeovers that nobody injected. Because such stray announcements point
the participants at the standby, --reuse flushes the participants' ARP
entry for the VIP after each return, so that each run starts as on a new
pair.

Writes OUT/failover.csv and OUT/failover.json, a plot (--plot), and prints
a table of median, p99 (nearest rank: with fewer than 100 runs it is the
largest value) and max per kind.
"""
import argparse
import contextlib
import csv
import datetime
import json
import math
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from helpers import netns  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.netns import VIP4  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

KINDS = ("kill-switch", "kill-node", "access-down")
RATE = 50.0
VIP_PORT_BASE = 20000
HEARTBEAT_MS = 10  # helpers/pair.py


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.logfile = open(args.out / "failover.log", "a")
        self.bed = None
        self.expect_epoch = None

    def quiet(self):
        """The helpers print process logs on stop: into the log file."""
        return contextlib.redirect_stdout(self.logfile)

    # -- the pair ---------------------------------------------------------
    def new_bed(self):
        self.close_bed()
        with self.quiet():
            bed = PairBed(participants=3, multiplier=self.args.multiplier)
            self.bed = bed
            bed.start()
            active = bed.a
            site = active.ctl("site", "create", "--name", "bench")["site_id"]
            m = active.ctl("meeting", "schedule", "--site", site, "--title", "failover")
            active.ctl("meeting", "start", m["meeting_id"])
            for h in bed.participants:
                local = vip_endpoint(4, VIP_PORT_BASE + h.index)
                active.ctl("participant", "join", "--meeting", m["meeting_id"], "--name", h.name,
                           "--leg", f"audio,{own_endpoint(h, 4)},local={local}")
            bed.wait_synced()
        self.expect_epoch = int(bed.a.status()["epoch"])
        return bed

    def close_bed(self):
        if self.bed is not None:
            with self.quiet():
                self.bed.close()
            self.bed = None

    def mac(self, node):
        out = netns.run(["ip", "-n", node.host.ns, "-br", "link", "show", "sw0"]).stdout
        return out.split()[2]

    # -- one run ----------------------------------------------------------
    def inject(self, kind, node):
        """Injects the failure into `node`; returns the wall time it took effect."""
        if kind == "kill-switch":
            t = time.time()
            node.switch.proc.send_signal(signal.SIGKILL)
        elif kind == "kill-node":
            t = time.time()
            node.switch.proc.send_signal(signal.SIGKILL)
            node.control.proc.send_signal(signal.SIGKILL)
        elif kind == "access-down":
            # The time is taken before `ip` runs: its start-up (a few ms)
            # counts against the pair.
            t = time.time()
            netns.run(["ip", "-n", self.bed.testbed.bridge_ns, "link", "set", node.name, "down"])
        else:
            raise ValueError(kind)
        return t

    def restore(self, kind, node):
        """Brings the failed node back as the standby, caught up. Returns the
        gratuitous ARPs for the VIP the returning node sent meanwhile (it
        should send none: its peer is active in a higher epoch)."""
        bed = self.bed
        mac = self.mac(node)
        cap, pcap = self.arp_capture()
        t0 = time.time()
        with self.quiet():
            if kind == "kill-switch":
                node.switch.kill()  # reap
                node.switch.start()
            elif kind == "kill-node":
                node.kill_all()  # reap
                node.start()
            elif kind == "access-down":
                netns.run(["ip", "-n", bed.testbed.bridge_ns, "link", "set", node.name, "up"])
            bed.wait_role(node, "standby", timeout=20)
            bed.wait_synced(timeout=30)
        stray = self.garps(cap, pcap, mac, t0)
        # Stray announcements point the participants' ARP entry for the VIP
        # at the standby, which drops the media: forget it, so that every run
        # starts as on a fresh pair (the VIP resolved during the warm-up).
        for h in bed.participants:
            netns.run(["ip", "-n", h.ns, "neigh", "flush", "to", VIP4], check=False)
        self.expect_epoch = int(bed.active().status()["epoch"])
        return stray

    def arp_capture(self):
        pcap = self.bed.testbed.tmpdir("arp", root="/tmp") / "arp.pcap"
        proc = self.bed.testbed.popen(self.bed.testbed.bridge_ns,
                                      ["tcpdump", "-i", "br0", "-U", "-n", "-w", str(pcap), "arp"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        return proc, pcap

    def garps(self, proc, pcap, mac, after):
        """Wall times of the gratuitous ARPs for the VIP from `mac` after `after`."""
        time.sleep(0.2)
        proc.terminate()
        proc.wait(timeout=5)
        out = netns.run(["tcpdump", "-r", str(pcap), "-n", "-e", "-tt"], check=False).stdout
        times = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[1] != mac:
                continue
            if f"who-has {VIP4} tell {VIP4}" in line and float(parts[0]) >= after:
                times.append(float(parts[0]))
        return times

    def run_once(self, kind, index):
        a = self.args
        if a.fresh or self.bed is None:
            self.new_bed()
        bed = self.bed
        failed = bed.active()
        if failed is None:
            raise RuntimeError("no active node before the run")
        survivor = bed.b if failed is bed.a else bed.a
        before = survivor.status()
        takeovers_before = int(before["pair"].get("takeovers", 0))
        # Takeovers nobody asked for since the pair was last settled (a
        # starved process that looked dead): the epoch moved on by itself.
        epoch_start = int(failed.status()["epoch"])
        spurious_between = max(0, epoch_start - self.expect_epoch) if self.expect_epoch else 0
        new_mac = self.mac(survivor)
        count = int(a.seconds * RATE)
        flows = [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                      to=[vip_endpoint(4, VIP_PORT_BASE + h.index)], count=count, rate=RATE,
                      size=160) for h in bed.participants]
        cap, pcap = self.arp_capture()
        runner = FlowRun(bed.testbed, flows, start_delay=0.3, warmup=0.6, tail=1.0)
        injected = {}

        def later():
            time.sleep(runner.data_starts_after + a.at)
            try:
                injected["t"] = self.inject(kind, failed)
            except Exception as e:  # reported by the main thread
                injected["error"] = e
        th = threading.Thread(target=later, daemon=True)
        th.start()
        reports = runner.wait()
        th.join(timeout=10)
        if "error" in injected:
            raise injected["error"]
        t_inject = injected["t"]
        garp = min(self.garps(cap, pcap, new_mac, t_inject), default=None)
        status = survivor.status()
        pair = status["pair"]
        takeover_ns = int(pair.get("last_takeover_unix_ns", 0) or 0)
        took_over = (status["role"] == "active" and
                     int(pair.get("takeovers", 0)) > takeovers_before)
        gaps, lost, pairs, unrecovered, lost_before = [], 0, [], 0, 0
        inject_seq = int(a.at * RATE)
        for h in bed.participants:
            rep = reports[sender_id(h)]
            for other in bed.participants:
                if other is h:
                    continue
                got = rep.from_sender(sender_id(other))
                st = next(iter(got.values())) if got else {
                    "received": 0, "max_gap_ms": 0.0, "missing": list(range(count))}
                gap, recovered = stream_gap(st, count)
                # Media must flow before the failure, or the run measures
                # something else. The participants start a little later than
                # asked (Python start-up on a loaded machine), so the failure
                # lands a few packets before inject_seq: 300 ms of slack.
                lost_before += sum(1 for s in st.get("missing", []) if s < inject_seq - 15)
                unrecovered += not recovered
                gaps.append(gap)
                lost += count - st["received"]
                pairs.append({"receiver": h.name, "sender": other.name,
                              "received": st["received"], "gap_ms": round(gap, 2),
                              "recovered": recovered, "missing": st.get("missing", [])[:60]})
        row = {
            "kind": kind,
            "run": index,
            "failed_node": failed.name,
            "new_active": survivor.name if took_over else "",
            "multiplier": a.multiplier,
            "inject_unix": round(t_inject, 6),
            "detection_ms": round((takeover_ns / 1e9 - t_inject) * 1000, 2) if took_over else None,
            "takeover_ms": round((garp - t_inject) * 1000, 2) if garp else None,
            "gap_ms": round(max(gaps), 2),
            "gap_median_ms": round(sorted(gaps)[len(gaps) // 2], 2),
            "lost_packets": lost,
            "epoch": int(status.get("epoch", 0)),
            "unrecovered_streams": unrecovered,
            "lost_before_failure": lost_before,
            "spurious_takeovers_before": spurious_between,
            "epoch_jump": int(status.get("epoch", 0)) - epoch_start,
            "cause": pair.get("last_takeover_cause", "") if took_over else "",
            "ok": bool(took_over and garp and not unrecovered and not lost_before),
            "returning_node_garps": None,
            "streams": pairs,
        }
        if took_over and takeover_ns / 1e9 < t_inject:
            row["ok"] = False
            row["cause"] = "SPURIOUS (before injection): " + row["cause"]
        # Ready for the next run: the failed node back as the standby.
        if not a.fresh:
            try:
                row["returning_node_garps"] = len(self.restore(kind, failed))
            except Exception as e:  # a pair that did not heal: start afresh
                log(f"  restore after {kind} failed ({e}); a new pair for the next run")
                self.close_bed()
        else:
            self.close_bed()
        return row


def stream_gap(st, count):
    """(gap ms, recovered) of one sender at one receiver.

    participant.py's max_gap_ms is the longest silence between two packets
    that arrived; a stream that never came back ends in missing packets and
    shows no such silence. The longest run of missing sequence numbers, at
    one packet per 1/RATE s, bounds the gap from below in that case."""
    missing = sorted(st.get("missing", []))
    longest, run, prev = 0, 0, None
    for s in missing:
        run = run + 1 if prev is not None and s == prev + 1 else 1
        longest = max(longest, run)
        prev = s
    by_loss = (longest + 1) * 1000.0 / RATE if longest else 0.0
    tail = set(range(max(0, count - 5), count))
    recovered = not tail.issubset(set(missing))
    return max(st["max_gap_ms"], by_loss), recovered


def percentile(values, q):
    """Nearest-rank percentile; with fewer than 100 values p99 is the maximum."""
    v = sorted(values)
    if not v:
        return None
    k = max(1, math.ceil(q / 100 * len(v)))
    return v[k - 1]


def median(values):
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summarize(rows, kinds):
    out = {}
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        s = {"runs": len(rs), "ok": sum(1 for r in rs if r["ok"]),
             "errors": sum(1 for r in rs if r["cause"].startswith("ERROR")),
             "unrecovered_runs": sum(1 for r in rs if r.get("unrecovered_streams")),
             "runs_with_loss_before_failure": sum(1 for r in rs if r.get("lost_before_failure")),
             "spurious_takeovers": sum(r.get("spurious_takeovers_before") or 0 for r in rs) +
             sum(1 for r in rs if r["cause"].startswith("SPURIOUS")),
             "restores_with_stray_garps": sum(1 for r in rs if r.get("returning_node_garps")),
             "restores": sum(1 for r in rs if r.get("returning_node_garps") is not None)}
        # The figures come from the valid runs only: the injected failure
        # caused the takeover, media flowed before it and came back after.
        # The others are counted above and listed by the log and the CSV.
        for metric in ("detection_ms", "takeover_ms", "gap_ms"):
            vals = [r[metric] for r in rs
                    if r["ok"] and r[metric] is not None and math.isfinite(r[metric])]
            s[metric] = {"n": len(vals), "median": median(vals), "p99": percentile(vals, 99),
                         "max": max(vals) if vals else None}
        out[kind] = s
    return out


def fmt(v):
    return "-" if v is None else f"{v:.0f}"


def table(summary):
    lines = ["figures over the valid runs (ok)",
             "kind          runs  ok   detection ms          takeover ms           media gap ms",
             "                         median   p99   max   median   p99   max   median   p99   max"]
    for kind, s in summary.items():
        cells = []
        for metric in ("detection_ms", "takeover_ms", "gap_ms"):
            m = s[metric]
            cells.append(f"{fmt(m['median']):>6} {fmt(m['p99']):>5} {fmt(m['max']):>5}")
        lines.append(f"{kind:<13} {s['runs']:>4} {s['ok']:>3}   " + "   ".join(cells))
    lines.append("")
    for kind, s in summary.items():
        lines.append(f"{kind}: {s['errors']} errors, {s['unrecovered_runs']} runs where a stream "
                     f"never came back, {s['runs_with_loss_before_failure']} runs with media lost "
                     f"before the failure, {s['spurious_takeovers']} takeovers nobody injected, "
                     f"{s['restores_with_stray_garps']}/{s['restores']} returns of the failed "
                     f"node with gratuitous ARPs for the VIP")
    return "\n".join(lines)


L2_METRICS = [("detection_ms", "detection (ms)"), ("takeover_ms", "takeover: first GARP (ms)"),
              ("gap_ms", "media gap at the receivers (ms)")]
L2_GOALS = ((100, "red", "goal p99 100 ms"), (50, "orange", "goal median 50 ms"))


def plot(rows, kinds, path, title, metrics=L2_METRICS, goals=L2_GOALS):
    """Box (min to max) and points per kind for each metric; the goals are
    lines on the gap's panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(13, 4.2))
    for ax, (metric, label) in zip(axes, metrics):
        data = [[r[metric] for r in rows if r["kind"] == k and r.get("ok", True)
                 and r[metric] is not None and math.isfinite(r[metric])] for k in kinds]
        ax.boxplot([d if d else [float("nan")] for d in data], labels=list(kinds),
                   showfliers=False, whis=(0, 100))
        for i, d in enumerate(data, start=1):
            jitter = [i + (j % 7 - 3) * 0.03 for j in range(len(d))]
            ax.scatter(jitter, d, s=12, alpha=0.6, zorder=3)
        if metric == "gap_ms":
            for value, color, text in goals:
                ax.axhline(value, color=color, linestyle="--", linewidth=1, label=text)
            ax.legend(fontsize=8, loc="upper left")
        ax.set_title(label, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--runs", type=int, default=20, help="runs per failure kind (default 20)")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated failure kinds (default {','.join(KINDS)})")
    ap.add_argument("--multiplier", type=int, default=3,
                    help="heartbeat multiplier: detection after 10 ms x N (default 3, the "
                         "product default; the test suite uses helpers/pair.py MULTIPLIER)")
    ap.add_argument("--reuse", action="store_true",
                    help="one pair for every run, the failed node restored between runs")
    ap.add_argument("--seconds", type=float, default=2.5, help="seconds of media per run")
    ap.add_argument("--at", type=float, default=1.0, help="failure after this many seconds of media")
    ap.add_argument("--out", default=str(REPO / "out" / "bench"), help="output directory")
    ap.add_argument("--plot", default=str(REPO / "docs" / "failover.png"), help="plot file")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: print the table and redraw the plot of a saved "
                         "failover.json")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(pathlib.Path(args.from_json).read_text())
        kinds = list(saved["summary"])
        saved["summary"] = summarize(saved["runs"], kinds)
        pathlib.Path(args.from_json).write_text(json.dumps(saved, indent=1) + "\n")
        plot(saved["runs"], kinds, args.plot,
             f"Tandem pair failover, heartbeat {saved['heartbeat_ms']} ms x "
             f"{saved['multiplier']}, {saved['runs_per_kind']} runs per kind, {saved['date']}")
        print(f"{saved['command']}  ({saved['date']})")
        print(f"heartbeat {saved['heartbeat_ms']} ms x multiplier {saved['multiplier']}; "
              f"{saved['bed']}")
        print(table(saved["summary"]))
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            ap.error(f"unknown failure kind {k!r} (known: {', '.join(KINDS)})")
    args.fresh = not args.reuse
    args.out = pathlib.Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()

    command = "scripts/bench_failover.sh " + shlex.join(sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    log(f"failover bench: heartbeat {HEARTBEAT_MS} ms x multiplier {args.multiplier} "
        f"(detection after {HEARTBEAT_MS * args.multiplier} ms of silence), {args.runs} runs of "
        f"{', '.join(kinds)}, {'a new pair per run' if args.fresh else 'one pair, roles alternating'}")
    bench = Bench(args)
    rows = []
    try:
        for kind in kinds:
            for i in range(args.runs):
                t0 = time.monotonic()
                try:
                    row = bench.run_once(kind, i)
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    log(f"  {kind} run {i}: ERROR {e}; a new pair for the next run")
                    bench.close_bed()
                    row = {"kind": kind, "run": i, "failed_node": "", "new_active": "",
                           "multiplier": args.multiplier, "inject_unix": None,
                           "detection_ms": None, "takeover_ms": None, "gap_ms": None,
                           "gap_median_ms": None, "lost_packets": None,
                           "unrecovered_streams": None, "lost_before_failure": None,
                           "spurious_takeovers_before": None, "epoch_jump": None,
                           "returning_node_garps": None, "epoch": None,
                           "cause": f"ERROR: {e}"[:300], "ok": False}
                rows.append(row)
                log(f"  {kind} run {i}: {row['failed_node']} -> {row['new_active'] or '?'}  "
                    f"detection {fmt(row['detection_ms'])} ms, takeover "
                    f"{fmt(row['takeover_ms'])} ms, gap {fmt(row['gap_ms'])} ms, lost "
                    f"{row['lost_packets']} (before the failure {row['lost_before_failure']}), unrecovered "
                    f"{row['unrecovered_streams']}, spurious takeovers before "
                    f"{row['spurious_takeovers_before']}, GARPs of the returning node "
                    f"{row['returning_node_garps']}  ({row['cause'][:50]}; "
                    f"{time.monotonic() - t0:.1f} s)")
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        bench.close_bed()

    summary = summarize(rows, kinds)
    fields = ["kind", "run", "failed_node", "new_active", "multiplier", "inject_unix",
              "detection_ms", "takeover_ms", "gap_ms", "gap_median_ms", "lost_packets",
              "unrecovered_streams", "lost_before_failure", "spurious_takeovers_before",
              "epoch_jump", "returning_node_garps", "epoch", "cause", "ok"]
    with open(args.out / "failover.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    result = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "heartbeat_ms": HEARTBEAT_MS,
        "multiplier": args.multiplier,
        "runs_per_kind": args.runs,
        "bed": "fresh pair per run" if args.fresh else "one pair, roles alternating",
        "seconds_per_run": args.seconds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "summary": summary,
        "runs": rows,
    }
    (args.out / "failover.json").write_text(json.dumps(result, indent=1) + "\n")
    title = (f"Tandem pair failover, heartbeat {HEARTBEAT_MS} ms x {args.multiplier}, "
             f"{args.runs} runs per kind, {result['date']}")
    try:
        plot(rows, kinds, args.plot, title)
    except Exception as e:  # the numbers matter more than the picture
        log(f"plot failed: {e}")
    print(f"heartbeat {HEARTBEAT_MS} ms x multiplier {args.multiplier}; {result['bed']}; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(table(summary))
    print("(p99 is nearest-rank: with fewer than 100 runs it equals the max; a gap of 20 ms "
          "means no packet lost)")
    print(f"wrote {args.out / 'failover.csv'}, {args.out / 'failover.json'}, {args.plot}")
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
