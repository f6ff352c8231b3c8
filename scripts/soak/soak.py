#!/usr/bin/python3
"""Soak of a Tandem pair (issue 7): a long run of churn, media and takeovers.

On the namespace test bed of tests/integration (helpers/pair.py: participants
p0..p2 on an access bridge, nodes na and nb, a backbone veth), for --minutes:

  media     three participants (tools/participant.py, kernel UDP sockets) in
            one live meeting send 160-byte packets at 50 packets/s each to
            their VIP ports and count what they send and receive;
  churn     tandem-churn (tests/bench/churn.cc) joins participants with 2 legs
            each at --rate legs/s into rotating churn meetings and makes them
            leave --life seconds later (as many leaves as joins), with batch
            Join/Leave calls to whichever node is active. After each takeover
            it checks that the new active holds a prefix of its acknowledged
            writes and reports the writes lost with the old active;
  takeovers every --takeover-every minutes, in turn: kill -9 of the active
            tandem-switch, kill -9 of both active processes, `tandemctl pair
            switchover`. Killed processes are restarted and rejoin as the
            standby; the site data is compared (`pair compare`) once it has
            caught up.

Every --sample seconds: resident size (VmRSS, and RssAnon) of each
tandem-switch and tandem-control, legs on each node, replication lag, churn
calls done and failed; a table line on stdout and a row in the CSV.

At the end, with churn stopped and replication caught up:
  legs      the legs on each node are exactly the media legs and the churn
            legs the driver believes joined (none lost, none duplicated);
  churn     every takeover left the new active with a prefix of the writes;
  digest    `tandemctl pair compare`: the standby's site data matches;
  usage     the media legs' counters agree between the nodes (within one
            mirror interval) and with what the participants sent and
            received (the packets lost in takeover gaps are printed);
  memory    each process's RSS (for a control daemon, less what its
            replication backlog keeps resident, which its configuration
            bounds) from --warmup after its start to its last sample: the
            high-water mark of the window's second half may exceed that of
            its first half by at most --rss-max-kib-per-min per minute.
Exit 0 only if every check passes. Everything it made is removed at the
end, on failure and on Ctrl-C (SIGINT, SIGTERM, SIGHUP).

Run by scripts/soak.sh (as root, after scripts/setup.sh). TANDEM_BUILD_DIR
selects the build directory.
"""
import argparse
import collections
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

from control_helpers.control import CtlError, build_dir  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.pair import MULTIPLIER, PairBed  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

sys.path.insert(0, str(REPO / "scripts" / "soak"))
from checks import (lost_lists_verdict, peak_rise_per_min, slope_per_min,  # noqa: E402
                    takeovers_verdict)

CAUSES = ("kill-switch", "kill-node", "switchover")
MEDIA_RATE = 50.0       # packets/s per participant
MEDIA_SIZE = 160        # bytes of UDP payload
WARMUP_PACKETS = 3      # participant.py's warm-up rounds, one packet each
VIP_PORT_BASE = 20000   # media leg i: VIP:(20000 + i)
CHURN_PORTS = "30000-59999"  # the pool the churn legs' local ports come from
USAGE_INTERVAL_MS = 100  # helpers/pair.py usage_interval_ms
OUT = sys.__stdout__


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _die_with_parent():
    # The churn driver runs in the root namespace, where no sweep finds it:
    # it gets SIGKILL when this process dies, however it dies.
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def say(msg=""):
    print(msg, file=OUT, flush=True)


class Soak:
    def __init__(self, args):
        self.args = args
        self.logfile = open(args.log, "a")
        self.bed = None
        self.driver = None
        self.driver_stats = {}
        self.driver_events = []
        self.driver_final = None
        self.samples = []          # dicts, as in the CSV
        # (node, proc, pid) -> [(t, rss, anon, backlog)], KiB; backlog: what
        # the replication backlog of an active control daemon keeps resident
        self.rss = collections.defaultdict(list)
        self.takeovers = []        # dicts
        self.events_since_sample = []
        self.t0 = None
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.media_legs = {}       # participant name -> leg id

    def quiet(self):
        """The helpers print process logs on stop and kill: into the log file."""
        return contextlib.redirect_stdout(self.logfile)

    def log(self, msg):
        self.logfile.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        self.logfile.flush()

    # -- the pair -----------------------------------------------------------
    def build(self):
        a = self.args
        with self.quiet():
            bed = PairBed(participants=3, multiplier=a.multiplier, mode=a.mode,
                          pair_extra="".join(
                              f"{k} = {v}\n" for k, v in (("backlog_changes", a.backlog_changes),
                                                         ("backlog_mib", a.backlog_mib))
                              if v is not None))
            self.bed = bed
            for n in bed.nodes():
                cfg = n.control.config
                text = cfg.read_text()
                # The churn legs need more local ports than the tests' 100.
                text = text.replace('ports = "20000-20099"', f'ports = "{CHURN_PORTS}"')
                cfg.write_text(text)
            bed.start()
        act = self.active_node()
        site = act.ctl("site", "create", "--name", "soak", "--look", "logo=soak.svg",
                       "--pref", "lang=en")["site_id"]
        m = act.ctl("meeting", "schedule", "--site", site, "--title", "soak media")["meeting_id"]
        act.ctl("meeting", "start", m)
        self.media_meeting = m
        for h in bed.participants:
            local = vip_endpoint(4, VIP_PORT_BASE + h.index)
            p = act.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                        f"audio,{own_endpoint(h, 4)},local={local}")["participants"][0]
            self.media_legs[h.name] = int(p["legs"][0]["leg_id"])
        self.churn_site = act.ctl("site", "create", "--name", "churn")["site_id"]
        self.wait_caught_up(timeout=30)
        self.first_epoch = int(act.status()["epoch"])

    def status(self, node, timeout=10):
        try:
            return node.ctl("status", timeout=timeout)
        except (CtlError, json.JSONDecodeError, subprocess.TimeoutExpired, OSError):
            return None

    def active_node(self, statuses=None):
        """The active node of the highest epoch (a node whose switch was
        killed stays active in its old epoch until its switch is back)."""
        best, best_epoch = None, -1
        for n in self.bed.nodes():
            st = statuses.get(n.name) if statuses else self.status(n)
            if st and st.get("role") == "active" and int(st.get("epoch", 0)) > best_epoch:
                best, best_epoch = n, int(st["epoch"])
        return best

    def peer(self, node):
        return self.bed.b if node is self.bed.a else self.bed.a

    def wait_caught_up(self, timeout=60, exact=False):
        """The standby follows and has applied what the active held a moment
        before (with churn running, positions never stand still); with
        exact=True (churn stopped) both positions are equal."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            act = self.active_node()
            if act is not None:
                sa = self.status(act)
                sb = self.status(self.peer(act))
                if sa and sb:
                    pa, pb = sa["pair"], sb["pair"]
                    last = (pa, pb)
                    ok = (pa.get("replication") == "serving standby" and
                          pb.get("replication") == "following" and sb.get("role") == "standby")
                    if exact:
                        ok = ok and int(pb.get("position", 0)) == int(pa.get("position", 0))
                    else:
                        ok = ok and int(pb.get("position", 0)) >= int(pa.get("position", 0))
                    if ok:
                        return act
            time.sleep(0.2)
        raise RuntimeError(f"the standby did not catch up within {timeout} s: {last}")

    def compare(self, timeout=30):
        """tandemctl pair compare on the active; the standby's verdict."""
        act = self.active_node()
        sent = act.ctl("pair", "compare")
        pos = int(sent["position"])
        deadline = time.monotonic() + timeout
        st = {}
        while time.monotonic() < deadline:
            s = self.status(self.peer(act))
            st = (s or {}).get("pair", {})
            if int(st.get("compare_seq", 0)) >= pos:
                return st.get("compare_result", ""), pos, int(st.get("drift_repairs", 0))
            time.sleep(0.1)
        return f"no verdict within {timeout} s", pos, int(st.get("drift_repairs", 0))

    # -- the churn driver -----------------------------------------------------
    def start_driver(self):
        a = self.args
        bed = self.bed
        binary = build_dir() / "tests" / "bench" / "tandem-churn"
        self.final_path = a.out / "churn-final.json"
        argv = [str(binary), f"--pair={bed.a.control.api},{bed.b.control.api}",
                "--names=na,nb", f"--site={self.churn_site}", f"--rate={a.rate}",
                f"--life={a.life}", f"--legs_per_participant={a.legs_per_participant}",
                f"--meetings={a.churn_meetings}", f"--meeting_life={a.meeting_life}",
                f"--final={self.final_path}"]
        self.log("churn driver: " + shlex.join(argv))
        self.driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.logfile,
                                       text=True, preexec_fn=_die_with_parent)
        threading.Thread(target=self.read_driver, daemon=True).start()

    def read_driver(self):
        for line in self.driver.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                self.log(f"churn: {line}")
                continue
            kind = ev.get("ev")
            with self.lock:
                if kind == "stats":
                    self.driver_stats = ev
                elif kind == "final":
                    self.driver_stats = ev
                    self.driver_final = ev
                else:
                    self.driver_events.append(ev)
            if kind == "reconcile":
                self.log(f"churn: {line}")
                if ev["why"] != "start":
                    say(self.describe_reconcile(ev))
            elif kind == "error":
                self.log(f"churn: {line}")

    def describe_reconcile(self, ev):
        t = self.since(ev["t"])
        verdict = "consistent" if ev["consistent"] else "INCONSISTENT"
        text = (f"{t:7.1f} s  churn: checked {ev['node']} (epoch {ev['epoch']}) after "
                f"'{ev['why']}': {verdict}, {ev['legs_on_node']} churn legs; ")
        if ev["lost_writes"]:
            text += (f"{ev['lost_writes']} acknowledged writes lost with the old active "
                     f"({ev['lost_join_legs']} legs joined, {ev['lost_leave_legs']} left; "
                     f"{ev['lost_acked_after_takeover']} acknowledged after the takeover)")
        else:
            text += "no write lost"
        if ev["unclear_call"] != "none":
            text += f"; the unclear call was {ev['unclear_call']}"
        if ev.get("duplicates"):
            text += f"; DUPLICATES {ev['duplicates'][:5]}"
        if not ev["consistent"]:
            text += (f"; closest prefix {ev.get('closest_back')} writes back differs by "
                     f"{ev.get('closest_diff')} legs: extra {ev.get('extra_sample')} "
                     f"missing {ev.get('missing_sample')}")
        return text

    def stop_driver(self):
        if self.driver is None or self.driver.poll() is not None:
            return
        self.driver.send_signal(signal.SIGTERM)
        try:
            self.driver.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.driver.kill()
            self.driver.wait()

    # -- samples --------------------------------------------------------------
    def since(self, unix):
        return unix - self.t0_unix if self.t0_unix else 0.0

    @staticmethod
    def proc_mem(pid):
        """(VmRSS, RssAnon) in KiB of a live process, or (None, None)."""
        rss = anon = None
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon = int(line.split()[1])
        except (OSError, ValueError):
            pass
        return rss, anon

    def sample(self):
        now = time.time()
        t = self.since(now)
        row = {"t_s": round(t, 1), "unix": round(now, 3)}
        statuses = {}
        for n in self.bed.nodes():
            statuses[n.name] = self.status(n, timeout=5)
        for n in self.bed.nodes():
            st = statuses[n.name]
            for what, obj in (("switch", n.switch), ("control", n.control)):
                proc = obj.proc
                pid = proc.pid if proc is not None and proc.poll() is None else None
                rss, anon = self.proc_mem(pid) if pid else (None, None)
                backlog = 0
                if what == "control" and st:
                    backlog = int(st.get("pair", {}).get("backlog_resident_bytes", 0)) // 1024
                row[f"{n.name}_{what}_pid"] = pid
                row[f"{n.name}_{what}_rss_kib"] = rss
                row[f"{n.name}_{what}_anon_kib"] = anon
                if what == "control":
                    row[f"{n.name}_control_backlog_kib"] = backlog
                if rss is not None:
                    self.rss[(n.name, what, pid)].append((t, rss, anon, backlog))
            row[f"{n.name}_role"] = st["role"] if st else "down"
            row[f"{n.name}_epoch"] = int(st["epoch"]) if st else None
            row[f"{n.name}_legs"] = int(st.get("legs", 0)) if st else None
        act = self.active_node(statuses)
        pa = statuses[act.name]["pair"] if act else {}
        row["active"] = act.name if act else ""
        row["lag_changes"] = int(pa.get("lag_changes", 0)) if act else None
        row["lag_ms"] = round(float(pa.get("lag_ms", 0.0)), 1) if act else None
        row["replication"] = pa.get("replication", "") if act else ""
        with self.lock:
            ds = dict(self.driver_stats)
            events, self.events_since_sample = self.events_since_sample, []
        calls_ok = sum(int(ds.get(k, 0)) for k in ("join_calls", "leave_calls", "meeting_calls"))
        calls_bad = sum(int(ds.get(k, 0)) for k in ("failed_calls", "refused_standby",
                                                   "unclear_calls"))
        row["churn_join_legs"] = int(ds.get("join_legs", 0))
        row["churn_leave_legs"] = int(ds.get("leave_legs", 0))
        row["churn_calls_ok"] = calls_ok
        row["churn_calls_failed"] = calls_bad
        row["churn_legs_believed"] = int(ds.get("legs", 0))
        row["load1"] = round(os.getloadavg()[0], 2)
        row["events"] = "; ".join(events)
        self.samples.append(row)
        self.csv_writer.writerow(row)
        self.csv_file.flush()
        self.print_row(row)

    HEADER = ("    t s  active  na sw RSS  na ctl RSS  nb sw RSS  nb ctl RSS   legs na/nb  "
              "lag ch/ms   churn joined/left legs   calls ok/failed  load  events")

    def print_row(self, r):
        def kib(v):
            return "      -" if v is None else f"{v / 1024:7.1f}"

        def legs(v):
            return "-" if v is None else str(v)
        lag = "-" if r["lag_changes"] is None else f"{r['lag_changes']}/{r['lag_ms']:.0f}"
        say(f"{r['t_s']:7.1f}  {r['active'] or '?':>6}  {kib(r['na_switch_rss_kib'])} MiB "
            f"{kib(r['na_control_rss_kib'])} MiB {kib(r['nb_switch_rss_kib'])} MiB "
            f"{kib(r['nb_control_rss_kib'])} MiB  {legs(r['na_legs']):>5}/{legs(r['nb_legs']):<5}  "
            f"{lag:>9}  {r['churn_join_legs']:>11}/{r['churn_leave_legs']:<11}  "
            f"{r['churn_calls_ok']:>7}/{r['churn_calls_failed']:<6}  {r['load1']:4.1f}  "
            f"{r['events']}")

    def sampler(self):
        next_t = time.monotonic()
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception as e:  # a sample must never end the soak
                self.log(f"sample failed: {e!r}")
            next_t += self.args.sample
            self.stop.wait(max(0.0, next_t - time.monotonic()))

    # -- takeovers --------------------------------------------------------------
    def takeover(self, cause):
        victim = self.active_node()
        if victim is None:
            raise RuntimeError("no active node before the takeover")
        survivor = self.peer(victim)
        epoch_before = int(self.status(victim)["epoch"])
        ev = {"cause": cause, "from": victim.name, "to": survivor.name,
              "t_s": round(self.since(time.time()), 1), "ok": False}
        t_inject = time.time()
        if cause == "kill-switch":
            victim.switch.proc.send_signal(signal.SIGKILL)
        elif cause == "kill-node":
            victim.switch.proc.send_signal(signal.SIGKILL)
            victim.control.proc.send_signal(signal.SIGKILL)
        elif cause == "switchover":
            # Refused while the standby is behind, which under churn it
            # often is by a change or two: asked again, as an operator would.
            deadline = time.monotonic() + 30
            attempts = 0
            while True:
                attempts += 1
                t_try = time.time()
                try:
                    victim.ctl("pair", "switchover")
                    break
                except CtlError as e:
                    if time.monotonic() > deadline:
                        ev["error"] = f"switchover refused {attempts} times: {e.line}"
                        self.takeovers.append(ev)
                        say(f"{ev['t_s']:7.1f} s  TAKEOVER {cause} FAILED: {ev['error']}")
                        return ev
                    time.sleep(0.05)
            t_inject = t_try
            ev["switchover_attempts"] = attempts
        else:
            raise ValueError(cause)
        self.log(f"takeover: {cause} of {victim.name}")
        deadline = time.monotonic() + 20
        st = None
        while time.monotonic() < deadline:
            st = self.status(survivor, timeout=5)
            if st and st["role"] == "active" and int(st["epoch"]) > epoch_before:
                break
            time.sleep(0.02)
        else:
            ev["error"] = f"{survivor.name} did not take over: {st}"
            self.takeovers.append(ev)
            return ev
        # The pair part of the status is published a few ms after the role:
        # wait for this takeover's time stamp.
        takeover_ns = int(st["pair"].get("last_takeover_unix_ns", 0))
        deadline = time.monotonic() + 2
        while takeover_ns / 1e9 < t_inject - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
            st = self.status(survivor, timeout=5) or st
            takeover_ns = int(st["pair"].get("last_takeover_unix_ns", 0))
        ev["detection_ms"] = round((takeover_ns / 1e9 - t_inject) * 1000, 1)
        ev["epoch"] = int(st["epoch"])
        ev["takeover_cause"] = st["pair"].get("last_takeover_cause", "")
        with self.lock:
            self.events_since_sample.append(f"{cause} {victim.name}->{survivor.name}")
        say(f"{ev['t_s']:7.1f} s  TAKEOVER {cause}: {victim.name} -> {survivor.name} epoch "
            f"{ev['epoch']} after {ev['detection_ms']:.0f} ms ({ev['takeover_cause']})")
        # The failed node back, as the standby.
        t_restore = time.monotonic()
        with self.quiet():
            if cause == "kill-switch":
                victim.switch.kill()  # reaps it
                victim.switch.start()
            elif cause == "kill-node":
                victim.kill_all()
                victim.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                s = self.status(victim, timeout=5)
                if s and s["role"] == "standby":
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{victim.name} did not come back as the standby")
            self.wait_caught_up(timeout=120)
            ev["restore_s"] = round(time.monotonic() - t_restore, 1)
            result, pos, repairs = self.compare()
            ev["compare"] = result
            ev["ok"] = result == "match"
            self.check_lost_list(ev, survivor, t_inject)
        except Exception as e:
            ev["error"] = str(e)
        say(f"{self.since(time.time()):7.1f} s  {victim.name} is back as the standby "
            f"({ev.get('restore_s', '?')} s, caught up); site data compare: "
            f"{ev.get('compare', ev.get('error'))}; `pair lost` on {survivor.name}: "
            f"{ev.get('lost_list', '-')}"
            + (f" ({ev['lost_compare']})" if "lost_compare" in ev else ""))
        self.takeovers.append(ev)
        return ev

    def check_lost_list(self, ev, survivor, t_inject):
        """`tandemctl pair lost` on the new active, once the old one is back:
        the writes it lists as lost against those the churn driver lost."""
        try:
            lost = survivor.ctl("pair", "lost")
        except CtlError as e:
            ev["lost_list"] = f"n/a ({e.code or e.line})"  # a build without LostWrites
            return
        state = lost.get("state", "")
        changes = lost.get("changes", [])
        ev["lost_list"] = state
        ev["lost_listed_changes"] = len(changes)
        with self.lock:
            recs = [e for e in self.driver_events if e.get("ev") == "reconcile" and
                    e["node"] == survivor.name and e["epoch"] == ev.get("epoch") and
                    e["t"] >= t_inject - 1]
        if not recs:
            ev["lost_compare"] = "no driver check of this takeover"
            return
        rec = recs[0]
        d_join, d_leave = set(rec.get("lost_join_ids", [])), set(rec.get("lost_leave_ids", []))
        ev["driver_lost_legs"] = len(d_join) + len(d_leave)
        if state != "listed":
            ev["lost_compare"] = f"{state}: not comparable"
            return
        put = {int(c["id"]) for c in changes if c.get("kind") == "leg_put"}
        removed = {int(c["id"]) for c in changes if c.get("kind") == "leg_removed"}
        unlisted = sorted((d_join - put) | (d_leave - removed))
        over = sorted((put - d_join) | (removed - d_leave))
        ev["lost_unlisted"] = len(unlisted)
        ev["lost_overlisted"] = len(over)
        ev["lost_compare"] = (f"{len(put) + len(removed)} leg changes listed, the driver lost "
                              f"{len(d_join) + len(d_leave)}: {len(unlisted)} not listed "
                              f"{unlisted[:5]}, {len(over)} listed but not lost {over[:5]}")

    # -- the run ----------------------------------------------------------------
    def run(self):
        a = self.args
        t_begin = time.monotonic()
        say(f"soak: {a.minutes:g} min, churn {a.rate:g} legs/s joined (and as many leaving, "
            f"{a.legs_per_participant} legs per participant, {a.life:g} s each), a takeover "
            f"every {a.takeover_every:g} min ({', '.join(a.causes)}), samples every "
            f"{a.sample:g} s; heartbeat 10 ms x {a.multiplier}, {a.mode} replication")
        say(f"logs: {a.log}   CSV: {a.csv}")
        self.t0_unix = None
        self.build()
        say(f"the pair is up: na active, nb standby; media meeting {self.media_meeting} with "
            f"{len(self.media_legs)} legs; build {build_dir()}")
        self.csv_file = open(a.csv, "w", newline="")
        self.csv_writer = None
        duration = a.minutes * 60.0
        count = int(duration * MEDIA_RATE)
        flows = [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                      to=[vip_endpoint(4, VIP_PORT_BASE + h.index)], count=count,
                      rate=MEDIA_RATE, size=MEDIA_SIZE) for h in self.bed.participants]
        self.start_driver()
        runner = FlowRun(self.bed.testbed, flows, start_delay=0.5, warmup=1.0, tail=3.0)
        self.t0_unix = time.time() + runner.data_starts_after
        t0 = time.monotonic() + runner.data_starts_after
        end = t0 + duration
        fields = self.csv_fields()
        self.csv_writer = csv.DictWriter(self.csv_file, fieldnames=fields, extrasaction="ignore")
        self.csv_writer.writeheader()
        say(self.HEADER)
        sampler = threading.Thread(target=self.sampler, daemon=True)
        time.sleep(max(0.0, t0 - time.monotonic()))
        sampler.start()
        every = a.takeover_every * 60.0
        next_takeover = t0 + every if every > 0 else math.inf
        i = 0
        while time.monotonic() < end:
            if self.driver.poll() is not None:
                raise RuntimeError(f"the churn driver exited {self.driver.returncode}")
            if time.monotonic() >= next_takeover:
                if end - time.monotonic() > a.quiet_end:
                    self.takeover(a.causes[i % len(a.causes)])
                    i += 1
                next_takeover += every
            time.sleep(0.2)
        say(f"{self.since(time.time()):7.1f} s  end of the soak: churn stops, media ends")
        self.stop_driver()
        reports = runner.wait()
        self.stop.set()
        sampler.join(timeout=30)
        try:
            self.sample()  # the last one, after the churn stopped
        except Exception as e:
            self.log(f"last sample failed: {e!r}")
        self.csv_file.close()
        ok = self.checks(reports)
        say(f"(soak took {(time.monotonic() - t_begin) / 60:.1f} min; logs {a.log}, "
            f"CSV {a.csv})")
        return 0 if ok else 1

    def csv_fields(self):
        f = ["t_s", "unix", "active"]
        for n in ("na", "nb"):
            for what in ("switch", "control"):
                f += [f"{n}_{what}_pid", f"{n}_{what}_rss_kib", f"{n}_{what}_anon_kib"]
            f.append(f"{n}_control_backlog_kib")
        f += ["na_role", "na_epoch", "na_legs", "nb_role", "nb_epoch", "nb_legs", "lag_changes",
              "lag_ms", "replication", "churn_join_legs", "churn_leave_legs", "churn_calls_ok",
              "churn_calls_failed", "churn_legs_believed", "load1", "events"]
        return f

    # -- the checks ---------------------------------------------------------------
    def checks(self, reports):
        a = self.args
        results = []  # (name, ok, detail)

        def check(name, ok, detail):
            results.append((name, bool(ok), detail))
            say(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")

        say("\n== checks (churn stopped)")
        try:
            act = self.wait_caught_up(timeout=120, exact=True)
        except Exception as e:
            check("replication caught up", False, str(e))
            act = self.active_node()
        else:
            check("replication caught up", True,
                  f"{act.name} active, the standby at the same change-log position")
        if act is None:
            check("an active node", False, "none")
            return False
        sby = self.peer(act)
        time.sleep(3 * USAGE_INTERVAL_MS / 1000)  # the last usage records

        # Takeovers: each one happened, the failed node came back, and no
        # other takeover happened.
        st_act = self.status(act)
        check("takeovers", *takeovers_verdict(self.takeovers, self.first_epoch,
                                              int(st_act["epoch"]), a.takeover_every))

        # Churn: every node change left the new active with a prefix of the writes.
        fin = self.driver_final or {}
        recs = [e for e in self.driver_events if e.get("ev") == "reconcile"]
        inconsistent = [e for e in recs if not e["consistent"]]
        partly = [e for e in recs if "PARTLY" in e.get("unclear_call", "")]
        dups = [e for e in recs if e.get("duplicates")]
        end_rec = [e for e in recs if e["why"] == "end"]
        end_lost = sum(e["lost_writes"] for e in end_rec)
        lost_writes = int(fin.get("lost_writes", 0))
        check("churn driver", self.driver.returncode == 0 and bool(fin),
              f"exit {self.driver.returncode}; {fin.get('join_legs', 0)} legs joined, "
              f"{fin.get('leave_legs', 0)} left in {fin.get('join_calls', 0)} + "
              f"{fin.get('leave_calls', 0)} batch calls "
              f"({fin.get('join_legs', 0) / max(1.0, a.minutes * 60):.0f} joins/s); "
              f"{fin.get('failed_calls', 0)} refused, {fin.get('refused_standby', 0)} sent to "
              f"a standby, {fin.get('unclear_calls', 0)} unclear "
              f"({fin.get('unclear_applied', 0)} applied, {fin.get('unclear_not_applied', 0)} "
              f"not); errors {fin.get('errors', {})}")
        check("churn: each takeover kept a prefix of the writes",
              not inconsistent and not partly and not dups and end_lost == 0 and
              int(fin.get("leave_mismatch", 0)) == 0,
              f"{len(recs)} checks, {len(inconsistent)} inconsistent, {len(partly)} calls "
              f"applied in part, {len(dups)} with duplicate legs, "
              f"{fin.get('leave_mismatch', 0)} leave/refusal mismatches; "
              f"acknowledged writes lost with an old active: {lost_writes} "
              f"({fin.get('lost_join_legs', 0)} legs joined, {fin.get('lost_leave_legs', 0)} "
              f"left; {fin.get('lost_acked_after_takeover', 0)} acknowledged after the "
              f"takeover), {fin.get('meeting_fixups', 0)} meeting states redone")
        check("`pair lost` lists exactly the writes the churn driver lost",
              *lost_lists_verdict(self.takeovers))
        if a.mode == "sync":
            before = lost_writes - int(fin.get("lost_acked_after_takeover", 0))
            check("sync mode: no write acknowledged before a takeover lost", before == 0,
                  f"{before} lost")

        # Legs: both nodes hold exactly the believed legs.
        believed = {}
        try:
            final = json.loads(self.final_path.read_text())
            for leg in final["legs"]:
                believed[int(leg["leg_id"])] = leg
        except (OSError, ValueError, KeyError) as e:
            check("legs", False, f"no final belief from the driver: {e}")
            final = None
        if final is not None:
            media = {}
            listing = {}
            for n in (act, sby):
                listing[n.name] = n.ctl("show", "legs", "--usage", timeout=60)["legs"]
            for leg in listing[act.name]:
                if int(leg["leg_id"]) in self.media_legs.values():
                    media[int(leg["leg_id"])] = leg
            want = dict(believed)
            for lid in self.media_legs.values():
                if lid in media:
                    want[lid] = {k: media[lid][k] for k in
                                 ("leg_id", "participant_id", "meeting_id", "remote", "local")}
            for n in (act, sby):
                legs = listing[n.name]
                ids = collections.Counter(int(l["leg_id"]) for l in legs)
                remotes = collections.Counter((l["remote"], l["local"]) for l in legs)
                dup_ids = [i for i, c in ids.items() if c > 1]
                dup_remotes = [r for r, c in remotes.items() if c > 1]
                have = {int(l["leg_id"]): l for l in legs}
                lost = sorted(set(want) - set(have))
                extra = sorted(set(have) - set(want))
                differ = sorted(i for i in set(want) & set(have)
                                if any(str(want[i][k]) != str(have[i][k]) for k in
                                       ("participant_id", "meeting_id", "remote", "local")))
                missing_media = [nm for nm, lid in self.media_legs.items() if lid not in have]
                check(f"legs on {n.name} ({'active' if n is act else 'standby'})",
                      not (lost or extra or differ or dup_ids or dup_remotes or missing_media),
                      f"{len(have)} legs, expected {len(want)} ({len(believed)} churn + "
                      f"{len(self.media_legs)} media): lost {len(lost)} {lost[:10]}, extra "
                      f"{len(extra)} {extra[:10]}, different {len(differ)} {differ[:10]}, "
                      f"duplicate ids {dup_ids[:10]}, duplicate remotes {dup_remotes[:5]}, "
                      f"media legs missing {missing_media}")

            # Usage of the media legs.
            self.check_usage(check, reports, listing[act.name], listing[sby.name], act, sby,
                             max(0, int(st_act["epoch"]) - self.first_epoch))

        # Site data.
        result, pos, repairs = self.compare()
        repairs_total = sum(int((self.status(n) or {}).get("pair", {}).get("drift_repairs", 0))
                            for n in self.bed.nodes())
        check("site data digests (pair compare)", result == "match" and repairs_total == 0,
              f"standby verdict at change {pos}: {result}; drift repairs since the "
              f"processes started: {repairs_total}; after each takeover: "
              f"{[t.get('compare') for t in self.takeovers]}")

        # Memory.
        self.check_memory(check)

        passed = sum(1 for _, ok, _ in results if ok)
        say(f"\n== summary: {passed} of {len(results)} checks passed")
        for name, ok, _ in results:
            say(f"  {'PASS' if ok else 'FAIL'}  {name}")
        return passed == len(results)

    def check_usage(self, check, reports, legs_act, legs_sby, act, sby, takeovers):
        # What the old active counted and never mirrored at a takeover: up to
        # one usage interval, plus what it forwarded until it stepped down; on
        # a loaded machine the intervals stretch. --usage-slack-ms of media
        # per stream and takeover.
        per_to = math.ceil(MEDIA_RATE * self.args.usage_slack_ms / 1000)
        base = 5  # a packet or two a receiver's kernel or the switch dropped, any time
        by_id_a = {int(l["leg_id"]): l for l in legs_act}
        by_id_b = {int(l["leg_id"]): l for l in legs_sby}
        names = [h.name for h in self.bed.participants]
        hosts = {h.name: h for h in self.bed.participants}
        say("media legs: what the participants sent and received against the usage counters")
        say("  leg  sent   in(act)  in(sby)  lost in gaps  uncounted | received  out(act)  "
            "out(sby)  uncounted")
        nodes_ok, parts_ok = True, True
        worst = []
        for nm in names:
            lid = self.media_legs[nm]
            ua = by_id_a.get(lid, {}).get("usage", {})
            ub = by_id_b.get(lid, {}).get("usage", {})
            rep = reports.get(sender_id(hosts[nm]))
            if rep is None:
                check(f"usage of {nm}", False, "no participant report")
                return
            sent = rep.sent + WARMUP_PACKETS
            # What the switch forwarded of this sender: what its receivers got.
            got = []
            for other in names:
                if other == nm:
                    continue
                st = reports[sender_id(hosts[other])].from_sender(sender_id(hosts[nm]))
                s = next(iter(st.values())) if st else {"received": 0, "warmup": 0,
                                                        "duplicates": 0}
                got.append(s["received"] + s.get("warmup", 0))
                worst.append((nm, other, s))
            forwarded = max(got) if got else 0
            received = 0
            for other in names:
                if other == nm:
                    continue
                st = rep.from_sender(sender_id(hosts[other]))
                s = next(iter(st.values())) if st else {"received": 0, "warmup": 0,
                                                        "duplicates": 0}
                received += s["received"] + s.get("warmup", 0) + s.get("duplicates", 0)
            in_a, in_b = int(ua.get("packets_in", 0)), int(ub.get("packets_in", 0))
            out_a, out_b = int(ua.get("packets_out", 0)), int(ub.get("packets_out", 0))
            gap_loss = sent - forwarded
            unc_in = forwarded - in_a
            unc_out = received - out_a
            say(f"  {nm:>3}  {sent:>6} {in_a:>8} {in_b:>8} {gap_loss:>13} {unc_in:>10} | "
                f"{received:>8} {out_a:>9} {out_b:>9} {unc_out:>10}")
            tol = math.ceil(MEDIA_RATE * USAGE_INTERVAL_MS / 1000)
            if abs(in_a - in_b) > tol or abs(out_a - out_b) > tol * (len(names) - 1):
                nodes_ok = False
            # No double counting; what is not counted is bounded by the
            # mirror interval at each takeover.
            bound = base + takeovers * per_to
            if in_a > sent or abs(unc_in) > bound:
                parts_ok = False
            if unc_out < -base or unc_out > base + takeovers * per_to * (len(names) - 1):
                parts_ok = False
        check("usage: the two nodes agree", nodes_ok,
              f"packets in/out of each media leg on {act.name} and {sby.name} within one "
              f"mirror interval ({USAGE_INTERVAL_MS} ms)")
        check("usage: against what the participants sent and received", parts_ok,
              f"packets in <= sent; forwarded - counted (in) and received - counted (out) "
              f"within 5 packets + {per_to} ({self.args.usage_slack_ms:g} ms) per stream and "
              f"takeover ({takeovers} takeovers, injected or not)")
        lost = sum(max(0, s["count"] - s["received"]) for _, _, s in worst if "count" in s)
        gaps = [round(s.get("max_gap_ms", 0)) for _, _, s in worst]
        say(f"media: {lost} packets lost over {len(worst)} streams in {takeovers} takeovers "
            f"(longest gaps per stream, ms: {gaps})")

    def check_memory(self, check):
        """Each process instance from --warmup after its start (a restarted
        one has its own warm-up) to its last sample: how fast the high-water
        mark of its VmRSS rises, less, for a control daemon, what its
        replication backlog keeps resident (status: backlog_resident_bytes).
        The backlog fills while the node is active, up to [pair] backlog_mib,
        and is unmapped when it is demoted: a saw-tooth bounded by
        configuration that says nothing about leaks. The highest sample of the
        window's second half against the highest of its first half, per
        minute of half-window, is judged; the least-squares slope is printed
        beside it."""
        a = self.args
        warm = a.warmup * 60.0
        end_t = self.samples[-1]["t_s"] if self.samples else 0
        span_needed = max(120.0, 0.25 * end_t)
        say(f"memory: VmRSS (RssAnon) of each process from {a.warmup:g} min after its start; "
            f"judged (less the backlog) where that leaves >= {span_needed / 60:.1f} min")
        say("  process              pid   first MiB (anon)  last MiB (anon)  backlog max MiB  "
            "less backlog: peak 1st/2nd half MiB  peak rise KiB/min  slope KiB/min  span min  "
            "verdict")
        ok = True
        judged = 0
        for (node, what, pid), pts in sorted(self.rss.items(), key=lambda kv: kv[1][0][0]):
            born = pts[0][0]
            last = pts[-1][0]
            pts = [p for p in pts if p[0] >= born + warm]
            if len(pts) < 2:
                say(f"  {node} {what:<8} {pid:>9}  (ran from {born / 60:.1f} to {last / 60:.1f} "
                    f"min: too short for its warm-up)")
                continue
            span = pts[-1][0] - pts[0][0]
            rest = [(t, r - b) for t, r, _, b in pts]
            rise, peak1, peak2 = peak_rise_per_min(rest)
            slope = slope_per_min(rest)
            backlog_max = max(b for *_, b in pts)
            judge = span >= span_needed
            good = rise <= a.rss_max_kib_per_min
            if judge:
                judged += 1
                ok &= good
            verdict = ("ok" if good else "GROWING") if judge else "(short)"
            say(f"  {node} {what:<8} {pid:>9}  {pts[0][1] / 1024:7.1f} ({pts[0][2] / 1024:5.1f})"
                f"   {pts[-1][1] / 1024:7.1f} ({pts[-1][2] / 1024:5.1f})  "
                f"{backlog_max / 1024:>15.1f}  {peak1 / 1024:>22.1f} / {peak2 / 1024:<10.1f} "
                f"{rise:>17.1f} {slope:>14.1f} {span / 60:>9.1f}  {verdict}")
        if not judged:
            # A verdict that could not be given is no pass.
            check("memory flat", False,
                  f"no process ran {span_needed / 60:.1f} min after its {a.warmup:g}-min warm-up "
                  f"to be judged: run the soak longer (--minutes >= {a.warmup + 2.5:g} with "
                  f"fewer takeovers, or a shorter --warmup)")
            return
        check("memory flat", ok,
              f"{judged} processes judged; the high-water mark of RSS less the backlog rises at "
              f"most {a.rss_max_kib_per_min:g} KiB/min")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the soak (30)")
    ap.add_argument("--rate", type=float, default=1000.0,
                    help="churn legs joined per second, as many leave (1000)")
    ap.add_argument("--takeover-every", type=float, default=3.0,
                    help="minutes between takeovers (3; 0: none)")
    ap.add_argument("--causes", default=",".join(CAUSES),
                    help=f"takeover causes, in turn (default {','.join(CAUSES)})")
    ap.add_argument("--csv", default=str(REPO / "out" / "soak" / "soak.csv"),
                    help="CSV of the samples (out/soak/soak.csv)")
    ap.add_argument("--log", default=None, help="processes' logs (next to the CSV, soak.log)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples (10)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="minutes after a process starts before its memory baseline (2 x "
                         "--takeover-every, between 2 and 7)")
    ap.add_argument("--rss-max-kib-per-min", type=float, default=256.0,
                    help="rise of a process's RSS high-water mark allowed after its warm-up, "
                         "KiB/min (256)")
    ap.add_argument("--life", type=float, default=5.0, help="seconds a churn participant stays")
    ap.add_argument("--legs-per-participant", type=int, default=2)
    ap.add_argument("--churn-meetings", type=int, default=4,
                    help="churn meetings taking joins at once (4)")
    ap.add_argument("--meeting-life", type=float, default=60.0,
                    help="seconds a churn meeting takes joins before it drains and ends (60)")
    ap.add_argument("--multiplier", type=int, default=MULTIPLIER,
                    help=f"heartbeat multiplier (default {MULTIPLIER}, the test pairs')")
    ap.add_argument("--mode", choices=("async", "sync"), default="async",
                    help="replication mode (async)")
    ap.add_argument("--backlog-changes", type=int, default=None,
                    help="the control daemons' [pair] backlog_changes (their default, 2^20)")
    ap.add_argument("--backlog-mib", type=int, default=None,
                    help="the control daemons' [pair] backlog_mib (their default, 128)")
    ap.add_argument("--usage-slack-ms", type=float, default=300.0,
                    help="media per stream and takeover that may be missing from the usage "
                         "counters (300)")
    ap.add_argument("--quiet-end", type=float, default=30.0,
                    help="no takeover in the last this many seconds (30)")
    args = ap.parse_args()
    args.causes = [c.strip() for c in args.causes.split(",") if c.strip()]
    for c in args.causes:
        if c not in CAUSES:
            ap.error(f"unknown cause {c!r} (known: {', '.join(CAUSES)})")
    if args.warmup is None:
        # The active's replication backlog (2^20 changes, ~91 MiB, about 5
        # minutes of churn at 1,000 legs/s) is left out of what is judged; the
        # watch history fills in a minute. A process is judged once it has
        # been active for a whole period: takeovers alternate the nodes, so 2
        # periods, at most 7 min.
        every = args.takeover_every if args.takeover_every > 0 else 7.0
        args.warmup = min(7.0, max(2.0, 2 * every))
    args.csv = pathlib.Path(args.csv)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.csv.parent
    args.log = pathlib.Path(args.log) if args.log else args.out / "soak.log"
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    args.log.write_text(f"soak started {started}: {shlex.join(sys.argv)}\n")
    binary = build_dir() / "tests" / "bench" / "tandem-churn"
    if not binary.exists():
        ap.error(f"{binary} is not built (ninja -C {build_dir()} tests/bench/tandem-churn)")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        soak.stop.set()
        if soak.driver is not None and soak.driver.poll() is None:
            soak.driver.kill()
            soak.driver.wait()
        if soak.bed is not None:
            with soak.quiet():
                soak.bed.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nsoak: interrupted; the test bed is removed", file=sys.stderr)
        sys.exit(130)
