#!/usr/bin/python3
"""Tandem's main job on a virtual testbed: a pair carries a live meeting
through the loss of its primary.

    bridge ns:  br0 -- p0, p1, p2 (participants), na, nb (the two nodes)
    node na:    tandem-switch + tandem-control, the primary (node id 1)
    node nb:    tandem-switch + tandem-control, the hot standby (node id 2)
    backbone:   a veth between na and nb (198.19.0.1/30 <-> 198.19.0.2/30)

The meeting is set up through `tandemctl --pair A,B`, as a meeting
application would: every call goes to whichever node is active. The three
participants stream UDP media at 50 packets/s to their VIP ports; in the
middle, both processes of the primary are killed with SIGKILL. The standby
detects it, takes over with a higher epoch, announces the VIP and carries the
meeting on. Everything it made is removed at the end, on Ctrl-C (SIGINT,
SIGTERM) or on failure.

Run by scripts/demo.sh (which builds first); needs root and Debian's Python.
"""
import argparse
import contextlib
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from control_helpers.control import ctl_binary  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import own_endpoint, sender_id  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

RATE = 50.0  # packets per second per participant (20 ms audio frames)
SIZE = 160   # bytes of UDP payload


def _interrupt(signum, frame):
    # SIGTERM and SIGHUP end the demo the way Ctrl-C does: through the
    # finally blocks that remove the testbed.
    raise KeyboardInterrupt(f"signal {signum}")


class Quiet:
    """Sends the helpers' own prints (process logs dumped on stop) to a file."""

    def __init__(self, path):
        self.file = open(path, "a")

    def __call__(self):
        return contextlib.redirect_stdout(self.file)


def section(text):
    print(f"\n== {text}", flush=True)


class PairCtl:
    """tandemctl --pair A,B, printed as a newcomer would type it."""

    def __init__(self, bed):
        self.addrs = f"{bed.a.control.api},{bed.b.control.api}"
        self.binary = str(ctl_binary())

    def explain(self):
        print(f"PAIR={self.addrs}")
        print("(the API sockets of tandem-control on na and nb; `tandemctl --pair $PAIR ...`\n"
              " sends each call to whichever node of the pair is active)")

    def __call__(self, *args, show=True):
        argv = [self.binary, "--pair", self.addrs, "--timeout", "10", *map(str, args)]
        if show:
            print(f"\n$ tandemctl --pair $PAIR {shlex.join(map(str, args))}", flush=True)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"tandemctl {' '.join(map(str, args))} exited {p.returncode}: "
                               f"{p.stderr.strip()}")
        if show:
            print(p.stdout.rstrip(), flush=True)
        return p.stdout


def takeover_line(log_path, since):
    """The standby's "node ... is now active" line, once it is logged."""
    try:
        text = log_path.read_text(errors="replace")[since:]
    except OSError:
        return None
    for line in text.splitlines():
        if "is now active" in line:
            return line.strip()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds of media")
    ap.add_argument("--log", default="/tmp/tandem-demo.log",
                    help="where the processes' logs go (default %(default)s)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()
    pathlib.Path(args.log).write_text("")
    quiet = Quiet(args.log)
    t_begin = time.monotonic()

    section("building the testbed: an access bridge, participants p0 p1 p2, nodes na and nb, "
            "a backbone veth")
    # The product's default detection (multiplier 3 x 10 ms), not the test
    # suite's slower one (helpers/pair.py MULTIPLIER, for busy CI machines).
    bed = PairBed(participants=3, multiplier=3)
    try:
        section("starting the pair: tandem-switch and tandem-control on na (the primary), "
                "then on nb (the standby, which copies everything from na over the backbone)")
        bed.start()
        a_sw, b_sw = bed.a.switch.pid, bed.b.switch.pid
        print(f"na: tandem-switch pid {a_sw}, tandem-control pid {bed.a.control.proc.pid}")
        print(f"nb: tandem-switch pid {b_sw}, tandem-control pid {bed.b.control.proc.pid}")
        ctl = PairCtl(bed)
        ctl.explain()

        section("a site and a live meeting, created through the pair")
        ctl("site", "create", "--id", 1, "--name", "acme", "--look", "logo=acme.svg",
            "--pref", "lang=en")
        ctl("meeting", "schedule", "--site", 1, "--id", 1, "--title", "weekly sync")
        ctl("meeting", "start", 1)
        vip_ports = {}
        for h in bed.participants:
            out = ctl("participant", "join", "--meeting", 1, "--name", h.name, "--leg",
                      f"audio,{own_endpoint(h, 4)}")
            # The reply names the VIP:port the pair allocated for the leg.
            m = re.search(re.escape(netns.VIP4) + r":(\d+)", out)
            if not m:
                raise RuntimeError(f"no VIP port in the join reply: {out}")
            vip_ports[h.name] = int(m.group(1))
        bed.wait_synced()
        ctl("status")

        seconds = args.seconds
        count = int(seconds * RATE)
        kill_at = seconds / 2
        section(f"media: each participant sends {count} packets ({RATE:.0f}/s, {SIZE} bytes) "
                f"to its VIP port for {seconds:.0f} s; the primary is killed after "
                f"{kill_at:.1f} s")
        flows = [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                      to=[f"{netns.VIP4}:{vip_ports[h.name]}"], count=count, rate=RATE, size=SIZE)
                 for h in bed.participants]
        for f in flows:
            print(f"{f.host.name} {f.bind} -> {f.to[0]}")
        b_log = bed.b.control.workdir / f"control.{bed.b.control.starts}.log"
        b_log_start = len(b_log.read_text(errors="replace"))
        runner = FlowRun(bed.testbed, flows)
        t_start = time.monotonic()
        killed = {}

        def kill_primary():
            time.sleep(runner.data_starts_after + kill_at)
            sw, ctl_proc = bed.a.switch.proc, bed.a.control.proc
            killed["t"] = time.monotonic()
            # Both at once, as a host crash would: SIGKILL, no goodbye.
            sw.send_signal(signal.SIGKILL)
            ctl_proc.send_signal(signal.SIGKILL)
            print(f"t={killed['t'] - t_start:5.2f} s  kill -9 {sw.pid} (tandem-switch) "
                  f"{ctl_proc.pid} (tandem-control) on na, the primary", flush=True)
            with quiet():
                bed.a.kill_all()  # reaps both
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                line = takeover_line(b_log, b_log_start)
                if line:
                    print(f"t={time.monotonic() - t_start:5.2f} s  nb: {line}", flush=True)
                    return
                time.sleep(0.005)
            print("nb did not log a takeover within 5 s", flush=True)

        killer = threading.Thread(target=kill_primary, daemon=True)
        killer.start()
        reports = runner.wait()
        killer.join(timeout=10)
        print(f"t={time.monotonic() - t_start:5.2f} s  the participants stopped")

        section("the pair after the takeover (asked through the pair: nb answers)")
        ctl("status")
        ctl("participant", "list", "--meeting", 1)

        section("what each participant sent and received")
        print("gap: the longest silence between two packets of a sender, as the receiver "
              f"heard it\n(packets come every {1000 / RATE:.0f} ms; the takeover is in "
              "the longest gap)")
        worst = 0.0
        lost = 0
        for h in bed.participants:
            rep = reports[sender_id(h)]
            print(f"{h.name} ({own_endpoint(h, 4)}): sent {rep.sent}")
            for other in bed.participants:
                if other is h:
                    continue
                got = rep.from_sender(sender_id(other))
                if not got:
                    print(f"    from {other.name}: NOTHING received")
                    lost += count
                    continue
                st = next(iter(got.values()))
                worst = max(worst, st["max_gap_ms"])
                lost += count - st["received"]
                print(f"    from {other.name}: received {st['received']}/{count}, "
                      f"gap at the takeover {st['max_gap_ms']:.0f} ms")
        verdict = "carried the meeting on" if lost < count else "did NOT carry the meeting on"
        print(f"\nThe standby {verdict}: the longest media gap was {worst:.0f} ms, "
              f"{lost} packets of {count * 6} were lost.")
        print(f"(process logs: {args.log}; demo took {time.monotonic() - t_begin:.0f} s)")
        return 0 if lost < count else 1
    finally:
        section("removing the testbed")
        with quiet():
            bed.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the testbed is removed", file=sys.stderr)
        sys.exit(130)
