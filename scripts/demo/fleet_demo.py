#!/usr/bin/python3
"""A fleet: meetings placed across pairs through etcd, one pair's primary
killed, its meetings carried on by its standby, new meetings placed (issue 18,
docs/fleet.md).

    etcd:    e0 e1 e2, a three-member cluster on the access bridge
    pair-1:  na (dc1) and nb (dc2), each tandem-switch + tandem-control, a
             backbone veth between them; participants p0 and p1
    pair-2, pair-3, ...: two tandem-control daemons each (a in dc1 active,
             b in dc2 standby), without switches: they place and hold
             meetings, media is pair-1's part

Every tandem-control registers its node in etcd ([fleet]). Meetings are placed
with `tandemctl fleet place` (weighted rendezvous hashing, compare-and-swap in
etcd) and made on the active node of the pair each was placed on. p0 and p1
join a meeting of pair-1 and stream UDP media through its VIP; in the middle
both processes of na are killed with SIGKILL. nb takes over, the media goes on,
the directory names nb as pair-1's active node, the meetings placed before stay
on pair-1, and new meetings are placed, those on pair-1 made on nb.
Everything is removed at the end, on Ctrl-C or on failure.

Run by scripts/demo.sh --fleet (which builds first); needs root.
"""
import argparse
import contextlib
import json
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from control_helpers.control import ctl_binary  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.etcd import EtcdCluster  # noqa: E402
from helpers.fleet import fleet_ctl, fleet_daemon, fleet_toml, link_to_etcd  # noqa: E402
from helpers.fleet import wait_registered  # noqa: E402
from helpers.meeting import own_endpoint, sender_id  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

RATE = 50.0  # packets per second per participant (20 ms audio frames)
SIZE = 160
MEDIA_PAIR = "pair-1"
REFRESH_S = 1.2  # [fleet] refresh_ms (1 s): a node's record shows its load this late
NODE_ETCD_IP = {"na": "198.18.0.41", "nb": "198.18.0.42"}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def section(text):
    print(f"\n== {text}", flush=True)


class Fleet:
    """The bed: pair-1 with switches, the other pairs without, etcd."""

    def __init__(self, pairs, members, multiplier, quiet):
        self.quiet = quiet
        self.bed = PairBed(participants=2, multiplier=multiplier)
        self.others = {}
        tb = self.bed.testbed
        self.etcd = EtcdCluster(tb, members=members)
        self.host = self.etcd.client  # where tandemctl fleet runs
        eps = self.etcd.endpoints
        # Every pair offers the same capacity: an even spread.
        offer = "legs = 4096\nmeetings = 256\n"
        for node, dc in ((self.bed.a, "dc1"), (self.bed.b, "dc2")):
            link_to_etcd(tb, node, NODE_ETCD_IP[node.name])
            cfg = node.control.config
            cfg.write_text(cfg.read_text() + fleet_toml(eps, MEDIA_PAIR, dc, offer))
        for k in range(2, pairs + 1):
            pair = f"pair-{k}"
            self.others[pair] = [
                fleet_daemon(tb, self.host, eps, "a", pair, "dc1", extra=offer),
                fleet_daemon(tb, self.host, eps, "b", pair, "dc2", role="standby", extra=offer)]

    def start(self):
        with self.quiet():
            self.bed.start()
        for nodes in self.others.values():
            for d in nodes:
                d.start()
        for pair in [MEDIA_PAIR, *self.others]:
            wait_registered(self.bed.testbed, self.host, self.etcd.endpoints, pair, 2, timeout=10)

    def fleet(self, *args, show=True):
        """tandemctl fleet ...: printed as typed (without --etcd) and its output."""
        tb, eps = self.bed.testbed, self.etcd.endpoints
        if show:
            print(f"\n$ tandemctl fleet {' '.join(map(str, args))}", flush=True)
            shown = tb.run_in(self.host, [ctl_binary(), "fleet", *args, "--etcd", eps])
            print(shown.stdout.rstrip(), flush=True)
        return json.loads(fleet_ctl(tb, self.host, eps, "fleet", *args).stdout)

    def api_of(self, pair):
        """How to reach a pair: tandemctl's address options."""
        if pair == MEDIA_PAIR:
            return ["--pair", f"{self.bed.a.control.api},{self.bed.b.control.api}"]
        return ["--api", self.others[pair][0].api]

    def close(self):
        with self.quiet():
            for nodes in self.others.values():
                for d in nodes:
                    d.close()
            self.bed.close()


def pair_ctl(fleet, pair, *args, json_out=True):
    argv = [str(ctl_binary()), *fleet.api_of(pair), "--timeout", "10"]
    if json_out:
        argv.append("--json")
    p = subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"tandemctl {' '.join(map(str, args))} on {pair} exited "
                           f"{p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout) if json_out else p.stdout


def place_and_make(fleet, names, sites):
    """Places each meeting and makes it live on the active node of its pair:
    {meeting: (pair, the pair's own meeting id, the API that answered)}."""
    out = {}
    for name in names:
        where = fleet.fleet("place", name, show=False)
        pair = where["pair_id"]
        if pair not in sites:
            sites[pair] = pair_ctl(fleet, pair, "site", "create", "--name", "acme")["site_id"]
        m = pair_ctl(fleet, pair, "meeting", "schedule", "--site", sites[pair], "--title", name)
        pair_ctl(fleet, pair, "meeting", "start", m["meeting_id"])
        out[name] = (pair, m["meeting_id"], where["active_api"])
        print(f"{name:10} -> {pair:8} made live there as meeting {m['meeting_id']} "
              f"(active node {where['active_api']})", flush=True)
    return out


def meetings_until(prefix, first, want, on_pair, placed_on, limit=40):
    """Meeting names from `first` on: `want` of them, more while none is on
    `on_pair` (placed_on(name) asks the fleet), at most `limit`."""
    names = []
    for i in range(first, first + limit):
        names.append(f"{prefix}-{i}")
        if len(names) >= want and on_pair in {placed_on(n) for n in names}:
            break
    return names


def join_and_stream(fleet, meeting_id, seconds, kill):
    """p0 and p1 join `meeting_id` of pair-1 and stream; kill() runs in the
    middle. Returns (packets each should get, lost, worst gap ms, lines)."""
    bed = fleet.bed
    vip_ports = {}
    for h in bed.participants:
        out = pair_ctl(fleet, MEDIA_PAIR, "participant", "join", "--meeting", meeting_id,
                       "--name", h.name, "--leg", f"audio,{own_endpoint(h, 4)}", json_out=False)
        m = re.search(re.escape(netns.VIP4) + r":(\d+)", out)
        if not m:
            raise RuntimeError(f"no VIP port in the join reply: {out}")
        vip_ports[h.name] = int(m.group(1))
        print(f"{h.name} {own_endpoint(h, 4)} joined: sends to {netns.VIP4}:{m.group(1)}")
    with fleet.quiet():
        bed.wait_synced()
    count = int(seconds * RATE)
    flows = [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                  to=[f"{netns.VIP4}:{vip_ports[h.name]}"], count=count, rate=RATE, size=SIZE)
             for h in bed.participants]
    runner = FlowRun(bed.testbed, flows)
    killer = threading.Thread(target=lambda: (time.sleep(runner.data_starts_after + seconds / 2),
                                              kill()), daemon=True)
    killer.start()
    reports = runner.wait()
    killer.join(timeout=20)
    lines, lost, worst = [], 0, 0.0
    for h in bed.participants:
        rep = reports[sender_id(h)]
        for other in bed.participants:
            if other is h:
                continue
            got = rep.from_sender(sender_id(other))
            st = next(iter(got.values())) if got else {"received": 0, "max_gap_ms": float("inf")}
            lost += count - st["received"]
            worst = max(worst, st["max_gap_ms"])
            lines.append(f"{h.name} received {st['received']}/{count} from {other.name}, "
                         f"longest gap {st['max_gap_ms']:.0f} ms")
    return count, lost, worst, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of media")
    ap.add_argument("--pairs", type=int, default=3, help="pairs in the fleet (default 3)")
    ap.add_argument("--etcd-members", type=int, default=3)
    ap.add_argument("--multiplier", type=int, default=3,
                    help="pair-1's heartbeat multiplier (detection = 10 ms x this)")
    ap.add_argument("--log", default="/tmp/tandem-demo-fleet.log",
                    help="where the helpers' own output goes (default %(default)s)")
    args = ap.parse_args()
    if args.pairs < 2:
        ap.error("--pairs: at least 2")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()
    log = open(args.log, "w")
    t_begin = time.monotonic()
    section(f"building the fleet: a {args.etcd_members}-member etcd cluster, {MEDIA_PAIR} "
            f"(na in dc1, nb in dc2, with switches, participants p0 p1) and "
            f"{args.pairs - 1} more pairs of two tandem-control daemons")
    fleet = Fleet(args.pairs, args.etcd_members, args.multiplier,
                  lambda: contextlib.redirect_stdout(log))
    try:
        fleet.start()
        print(f"etcd: {fleet.etcd.endpoints}  (each command below ran with --etcd and these)")
        fleet.fleet("list")

        section("meetings placed across the fleet, each made live on its pair's active node")
        sites = {}
        first = meetings_until("conf", 1, 6, MEDIA_PAIR,
                               lambda n: fleet.fleet("place", n, show=False)["pair_id"])
        fleet.fleet("place", first[0])
        before = place_and_make(fleet, first, sites)
        time.sleep(REFRESH_S)  # the nodes' records show their new load
        fleet.fleet("list")

        media_name = next(n for n, (p, _, _) in before.items() if p == MEDIA_PAIR)
        a_ctl, a_sw = fleet.bed.a.control.proc, fleet.bed.a.switch.proc
        events = []

        def kill_na():
            t0 = time.monotonic()
            a_sw.send_signal(signal.SIGKILL)
            a_ctl.send_signal(signal.SIGKILL)
            events.append(f"t=0 ms: kill -9 {a_sw.pid} (tandem-switch) {a_ctl.pid} "
                          f"(tandem-control) on na, {MEDIA_PAIR}'s primary")
            while fleet.bed.b.role() != "active" and time.monotonic() - t0 < 10:
                time.sleep(0.005)
            events.append(f"t={(time.monotonic() - t0) * 1000:.0f} ms: nb is active")
            while time.monotonic() - t0 < 10:
                shown = fleet.fleet("show", MEDIA_PAIR, show=False)
                if shown.get("active") == "nb":
                    events.append(f"t={(time.monotonic() - t0) * 1000:.0f} ms: the directory "
                                  f"names nb {MEDIA_PAIR}'s active node")
                    return
                time.sleep(0.1)

        section(f"media: p0 and p1 in {media_name} on {MEDIA_PAIR}, {RATE:.0f} packets/s for "
                f"{args.seconds:.0f} s; na is killed half-way")
        count, lost, worst, lines = join_and_stream(fleet, before[media_name][1], args.seconds,
                                                    kill_na)
        print("\n".join(events + lines))
        with fleet.quiet():
            fleet.bed.a.kill_all()

        section(f"{MEDIA_PAIR} after the takeover: nb active in the directory, the meetings "
                "placed before still there")
        shown = fleet.fleet("show", MEDIA_PAIR)
        again = fleet.fleet("place", media_name)
        live = {m["title"]: m for m in pair_ctl(fleet, MEDIA_PAIR, "meeting", "list")["meetings"]}
        kept = [n for n, (p, _, _) in before.items() if p == MEDIA_PAIR]
        print(f"meetings of {MEDIA_PAIR} live on nb: {', '.join(sorted(live))}")

        section("new meetings placed, those on pair-1 made on nb")
        new = place_and_make(fleet, meetings_until(
            "conf", 100, 4, MEDIA_PAIR, lambda n: fleet.fleet("place", n, show=False)["pair_id"]),
            sites)
        time.sleep(REFRESH_S)
        listed = fleet.fleet("list")
        on_b = [n for n, (p, _, api) in new.items() if p == MEDIA_PAIR and
                api == fleet.bed.b.control.api]

        checks = {
            "the media went on after the kill": lost < count,
            "the directory names nb pair-1's active node": shown.get("active") == "nb",
            "the meetings placed before stay on pair-1": again["pair_id"] == MEDIA_PAIR and
            not again["placed_now"] and all(n in live for n in kept),
            "new meetings placed, pair-1's made on nb": bool(on_b) and all(
                n in {m["title"] for m in pair_ctl(fleet, MEDIA_PAIR, "meeting", "list")[
                    "meetings"]} for n in on_b),
            "new meetings spread over more than one pair": len({p for p, _, _ in new.values()}) > 1 and all(
                p["state"] == "room" for p in listed["pairs"]),
        }
        section("what happened")
        print(f"{lost} of {count * 2} media packets lost, longest gap {worst:.0f} ms "
              f"(a packet every {1000 / RATE:.0f} ms; the takeover is in the gap)")
        for what, ok in checks.items():
            print(f"{'yes' if ok else 'NO '}  {what}")
        ok = all(checks.values())
        print(f"\nThe fleet {'carried' if ok else 'did NOT carry'} {MEDIA_PAIR}'s meetings "
              f"through the loss of its primary. (demo took {time.monotonic() - t_begin:.0f} s; "
              f"helpers' output: {args.log})")
        return 0 if ok else 1
    finally:
        section("removing the test bed")
        fleet.close()
        log.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the test bed is removed", file=sys.stderr)
        sys.exit(130)
