#!/usr/bin/python3
"""Two data centers: a live meeting moved from DC A to DC B by BGP when the
primary node dies (issue 17, docs/routed.md).

    participants p0 p1 -- edge router (BIRD, AS 65000)
                            /                       \\
           DC A router (BIRD, AS 65010)    DC B router (BIRD, AS 65020)
                   |                                |
           node na: tandem-switch,          node nb: tandem-switch,
           tandem-control, BIRD             tandem-control, BIRD
                   +------------ backbone ----------+

The pair runs in routed mode (`[access] mode = "routed"`): each node's
tandem-control drives its own BIRD; the active announces the VIPs, the
standby announces them with its AS prepended. The meeting is made through
na's API and replicated to nb over the backbone. p0 and p1 stream to each
other through the VIP; in the middle every process of na (switch, control,
BIRD) is killed with SIGKILL. DC A's router drops na's routes (BFD), nb
takes over and announces, the edge routes the VIP to DC B, the media goes on.
Everything is removed at the end, on Ctrl-C or on failure.

Run by scripts/demo.sh --dc (which builds first); needs root.
"""
import argparse
import contextlib
import os
import pathlib
import signal
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from helpers import netns  # noqa: E402
from helpers.dc import DcBed  # noqa: E402
from helpers.dc_media import RATE, start_pair_meeting, stream, vip  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def section(text):
    print(f"\n== {text}", flush=True)


def edge_route(bed, v):
    fam = "-6" if ":" in v else "-4"
    route = netns.run(["ip", "-n", bed.edge, fam, "route", "show", v], check=False).stdout.strip()
    return f"edge router: {route}  (DC {bed.edge_next_hop(v)})"


def show_pair(bed, nodes):
    for n in nodes:
        st = n.pair_status()
        p = st["pair"]
        print(f"{n.name}: {st['role']} in epoch {st['epoch']}, announces "
              f"{p.get('routing_announced')} ({p.get('routing_sessions_up')}/"
              f"{p.get('routing_sessions')} BGP sessions up), replication "
              f"{p.get('replication')}, alarms {p.get('alarms')}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of media")
    ap.add_argument("--family", type=int, choices=(4, 6), default=4)
    ap.add_argument("--log", default="/tmp/tandem-demo-dc.log",
                    help="where the helpers' own output goes (default %(default)s)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()
    v = vip(args.family)
    t_begin = time.monotonic()
    section("building the two data centers: edge router, DC A and DC B routers, nodes na and "
            "nb, a backbone between the nodes, participants p0 and p1 behind the edge")
    bed = DcBed(participants=2)
    log = open(args.log, "w")
    try:
        section("starting every BIRD, then the pair in routed mode (na active, nb standby); "
                "a meeting of p0 and p1 made through na's API, replicated to nb")
        with contextlib.redirect_stdout(log):
            # The product's detection (10 ms x 3), not the test suite's
            # slower one for busy machines (helpers/pair.py MULTIPLIER).
            m = start_pair_meeting(bed, args.family, multiplier=3)
        print(f"meeting {m}: p0 {bed.participants[0].ip4 if args.family == 4 else bed.participants[0].ip6}"
              f" and p1 {bed.participants[1].ip4 if args.family == 4 else bed.participants[1].ip6}"
              f" send to the VIP {v}")
        show_pair(bed, (bed.a, bed.b))
        print(edge_route(bed, v))
        print(bed.birds["ed"].cmd(f"show route for {v} all").stdout.rstrip())

        kill_at = args.seconds / 2
        section(f"media: p0 and p1 send to each other through the VIP at {RATE:.0f} packets/s "
                f"for {args.seconds:.0f} s; na is killed after {kill_at:.1f} s")
        events = []

        def kill_na():
            procs = {"tandem-switch": bed.a.switch.proc, "tandem-control": bed.a.control.proc,
                     "bird": bed.a.bird.proc}
            t0 = time.monotonic()
            for p in procs.values():
                os.kill(p.pid, signal.SIGKILL)
            events.append("t=0 ms: kill -9 on na: " +
                          ", ".join(f"{k} {p.pid}" for k, p in procs.items()))
            while bed.b.pair_status()["role"] != "active":
                time.sleep(0.005)
            events.append(f"t={(time.monotonic() - t0) * 1000:.0f} ms: nb is active")
            bed.wait_edge(v, "b", timeout=10)
            events.append(f"t={(time.monotonic() - t0) * 1000:.0f} ms: the edge routes {v} "
                          "to DC B")
        media, _ = stream(bed, args.family, kill_na, seconds=args.seconds, at=kill_at)
        print("\n".join(events))

        section("after the takeover")
        show_pair(bed, (bed.b,))
        print(edge_route(bed, v))
        print(bed.birds["ed"].cmd(f"show route for {v} all").stdout.rstrip())
        section("what the participants heard")
        print(f"{media}\n(a packet every {1000 / RATE:.0f} ms; the gap is the longest silence "
              "a receiver heard, at the takeover)")
        ok = media.dups == 0 and media.recovered >= 0.5
        print(f"\nThe meeting {'moved' if ok else 'did NOT move'} from DC A to DC B by BGP. "
              f"(demo took {time.monotonic() - t_begin:.0f} s)")
        return 0 if ok else 1
    finally:
        section("removing the test bed")
        with contextlib.redirect_stdout(log):
            bed.close()
        log.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the test bed is removed", file=sys.stderr)
        sys.exit(130)
