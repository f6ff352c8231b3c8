"""Outside a session (issue 8): after a takeover the pair keeps serving the
meeting application and operators through `tandemctl --pair` and the client
library (control/client, driven here through tandem-app-example), which find
the active node by themselves; a standby refuses writes naming the active
node; a watch resumed across the takeover misses and repeats no change."""
import json
import os
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ControlDaemon, CtlError, build_dir, ctl_binary  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, run_flows  # noqa: E402

import pytest  # noqa: E402


def pair_ctl(bed, *args, timeout=30):
    argv = [str(ctl_binary()), "--pair", f"{bed.a.control.api},{bed.b.control.api}", "--json",
            "--timeout", "20", *map(str, args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise CtlError(p.returncode, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


class App:
    """tandem-app-example (control/client/example_app.cc), a meeting
    application on the client library, given both nodes' addresses: commands
    on its stdin, one JSON line back per result and per watched change."""

    def __init__(self, bed=None, apis=None):
        apis = apis or [bed.a.control.api, bed.b.control.api]
        self.proc = subprocess.Popen(
            [str(build_dir() / "control" / "client" / "tandem-app-example"), "--pair",
             ",".join(apis), "--timeout", "20"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1)
        self.changes = []
        self.watch_end = None
        self.results = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            obj = json.loads(line)
            if "change" in obj:
                self.changes.append(obj["change"])
            elif "watch_end" in obj:
                self.watch_end = obj
            else:
                self.results.put(obj)

    def send(self, *words):
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()

    def result(self, timeout=40):
        return self.results.get(timeout=timeout)

    def do(self, *words, timeout=40):
        self.send(*words)
        return self.result(timeout)

    def wait_changes(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not pred(self.changes):
            time.sleep(0.05)
        return pred(self.changes)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        err = self.proc.stderr.read()
        if err:
            print(f"----- tandem-app-example -----\n{err}")


def site_names(changes):
    return [c["site"]["name"] for c in changes if c["kind"] == "site_put"]


@pytest.fixture
def bed():
    b = PairBed()
    try:
        b.start()
        yield b
    finally:
        b.close()


def test_pair_serves_clients_across_a_takeover(bed):
    site = pair_ctl(bed, "site", "create", "--name", "brand", "--look", "logo=tandem.svg",
                    "--pref", "tz=UTC")["site_id"]
    listed = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "weekly",
                      "--start", int(time.time()) + 86400)["meeting_id"]
    live = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "now")["meeting_id"]
    pair_ctl(bed, "meeting", "start", live)
    pair_ctl(bed, "participant", "join", "--meeting", live, "--name", "early", "--leg",
             f"audio,{own_endpoint(bed.participants[0], 4, port=6000)}")
    bed.wait_synced()

    # A write sent to the standby is refused with the active node's address.
    with pytest.raises(CtlError) as refused:
        bed.b.ctl("site", "create", "--name", "to-the-standby")
    assert "FAILED_PRECONDITION" in str(refused.value)
    assert bed.a.control.api in str(refused.value), str(refused.value)
    assert bed.b.ctl("site", "list")  # reads are still answered

    # A watch follows the pair through the takeover.
    watch = subprocess.Popen([str(ctl_binary()), "--pair",
                              f"{bed.a.control.api},{bed.b.control.api}", "--json",
                              "--timeout", "20", "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pair_ctl(bed, "site", "create", "--name", "before-failure")
    bed.wait_synced()

    sites_before = pair_ctl(bed, "site", "list")
    meetings_before = pair_ctl(bed, "meeting", "list")
    last_seen = bed.a.status()["change_seq"]
    bed.a.kill_all()
    bed.wait_role(bed.b, "active", timeout=10)
    # The new active says up to which change of the old active's log it got:
    # all of them here (the writes above were replicated before the kill).
    taken = bed.b.status()["pair"]
    assert int(taken["takeover_position"]) >= int(last_seen), taken

    # Without naming the new active: the same sites and meetings.
    assert pair_ctl(bed, "site", "list") == sites_before
    strip = lambda ms: [{k: v for k, v in m.items() if k not in ("usage", "participants", "legs")}
                        for m in ms["meetings"]]
    assert strip(pair_ctl(bed, "meeting", "list")) == strip(meetings_before)
    assert any(m["meeting_id"] == listed and m.get("listed") for m in
               pair_ctl(bed, "meeting", "list")["meetings"])
    pair_ctl(bed, "site", "create", "--name", "after-failure")

    # A new meeting on the new active, three participants, media flows.
    m = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "next")["meeting_id"]
    pair_ctl(bed, "meeting", "start", m)
    flows = []
    for h in bed.participants:
        local = vip_endpoint(4, 21000 + h.index)
        pair_ctl(bed, "participant", "join", "--meeting", m, "--name", h.name, "--leg",
                 f"audio,{own_endpoint(h, 4)},local={local}")
        flows.append(Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4), to=[local],
                          count=50, rate=50.0, size=160))
    reports = run_flows(bed.testbed, flows)
    for h in bed.participants:
        for other in bed.participants:
            if other is h:
                continue
            got = reports[sender_id(h)].from_sender(sender_id(other))
            assert got and next(iter(got.values()))["received"] == 50, \
                f"{h.name} from {other.name}: {reports[sender_id(h)]}"

    # The watch saw every change once, in order, across the takeover.
    time.sleep(0.5)
    watch.terminate()
    out, err = watch.communicate(timeout=10)
    changes = [json.loads(line) for line in out.splitlines() if line.strip()]
    seqs = [int(c["seq"]) for c in changes]
    assert seqs, f"the watch saw nothing: {err}"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or repeat: {seqs}"
    assert len({c["log_id"] for c in changes}) == 1
    names = [c["site"].get("name") for c in changes if "site" in c]
    assert "before-failure" in names and "after-failure" in names, names


def test_sync_mode_loses_no_acknowledged_write():
    bed = PairBed(mode="sync")
    try:
        bed.start()
        names = [f"sync-{i}" for i in range(40)]
        for n in names:
            bed.a.ctl("site", "create", "--name", n)  # returns once the standby applied it
        # Right after the last acknowledgement, the control daemon first: it
        # cannot step down and hand anything over (see the test below).
        bed.a.control.kill9()
        bed.a.switch.kill()
        bed.wait_role(bed.b, "active", timeout=10)
        have = {s["name"] for s in bed.b.ctl("site", "list")["sites"]}
        missing = [n for n in names if n not in have]
        assert not missing, f"acknowledged writes lost by the takeover: {missing}"
        st = bed.b.status()["pair"]
        assert st["mode"] == "sync"
        assert bed.b.ctl("pair", "lost")["state"] == "pending"
        # The old active comes back with a fresh change log: what it held after
        # the takeover position (nothing, in sync mode) is no longer known.
        bed.a.start()
        bed.wait_synced(timeout=20)
        deadline = time.monotonic() + 10
        while bed.b.ctl("pair", "lost")["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bed.b.ctl("pair", "lost")["state"] == "unknown"
    finally:
        bed.close()


SYNC_TIMEOUT_MS = 1000


class TimedWrite:
    """A `site create` on node `node` in a thread of its own: done(),
    result() (the JSON, or the CtlError) and seconds (how long it took)."""

    def __init__(self, node, name):
        self.out = None
        self.seconds = None
        self.thread = threading.Thread(target=self._run, args=(node, name), daemon=True)
        self.thread.start()

    def _run(self, node, name):
        t0 = time.monotonic()
        try:
            self.out = node.ctl("site", "create", "--name", name)
        except CtlError as e:
            self.out = e
        self.seconds = time.monotonic() - t0

    def done(self):
        return not self.thread.is_alive()

    def result(self, timeout=60):
        self.thread.join(timeout)
        assert self.done(), "tandemctl did not return"
        return self.out


def site_applied(node, name):
    return name in {s["name"] for s in node.ctl("site", "list").get("sites", [])}


# How long the standby is held stopped while a write waits for it: well
# within SYNC_TIMEOUT_MS, so that once let go it confirms the write in time.
HOLD_S = 0.4


def standby_slow_to_apply(bed):
    """Two writes on the active while the standby's control daemon is
    stopped (SIGSTOP: its replication connection stays up, it applies
    nothing until SIGCONT). The first: the standby is let go HOLD_S after
    the write was sent. The second: it stays stopped until the write
    returns. (Either way for less than the 2-3 s after which the active
    drops a silent standby and runs degraded.) Returns both TimedWrites."""
    pid = bed.b.control.proc.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        held = TimedWrite(bed.a, "held")
        time.sleep(HOLD_S)
        held.done_while_stopped = held.done()
        os.kill(pid, signal.SIGCONT)
        held.result()
        os.kill(pid, signal.SIGSTOP)
        stopped = TimedWrite(bed.a, "stopped-throughout")
        stopped.result()
    finally:
        os.kill(pid, signal.SIGCONT)
    bed.wait_synced(timeout=20)
    for node in (bed.a, bed.b):
        for name in ("held", "stopped-throughout"):
            assert site_applied(node, name), f"{name} missing on {node.name} once caught up"
    return held, stopped


def test_sync_write_waits_until_the_standby_applied_it():
    """Synchronous mode, with a standby slow to apply for real (its control
    daemon stopped): a write returns only once the standby applied it, and
    fails with DEADLINE_EXCEEDED (applied on the active only) when the
    standby stays stopped past sync_timeout_ms."""
    bed = PairBed(mode="sync", pair_extra=f"sync_timeout_ms = {SYNC_TIMEOUT_MS}\n")
    try:
        bed.start()
        held, stopped = standby_slow_to_apply(bed)
        print(f"\nsync write, standby let go after {HOLD_S} s: {held.out} after "
              f"{held.seconds:.2f} s; standby stopped throughout: {stopped.out} after "
              f"{stopped.seconds:.2f} s")
        assert not held.done_while_stopped, \
            f"a synchronous write returned while the standby could not apply it: {held.out}"
        assert not isinstance(held.out, CtlError), f"failed once the standby went on: {held.out}"
        assert held.seconds >= HOLD_S
        sync_counters = [line for line in bed.a.metrics().splitlines()
                         if line.startswith("tandem_pair_sync_")]
        assert isinstance(stopped.out, CtlError) and stopped.out.code == "DEADLINE_EXCEEDED", \
            (stopped.out, sync_counters)
        assert f"not confirmed it within {SYNC_TIMEOUT_MS} ms" in stopped.out.message, stopped.out
        assert stopped.seconds >= SYNC_TIMEOUT_MS / 1000
        assert "tandem_pair_sync_timeouts_total 1" in sync_counters, sync_counters
    finally:
        bed.close()


def test_async_write_does_not_wait_for_the_standby(bed):
    """The same in asynchronous mode: both writes return while the standby
    is stopped, and it catches up once let go."""
    held, stopped = standby_slow_to_apply(bed)
    print(f"\nasync writes while the standby was stopped: {held.seconds:.2f} s, "
          f"{stopped.seconds:.2f} s")
    assert not isinstance(held.out, CtlError), held.out
    assert not isinstance(stopped.out, CtlError), stopped.out


def test_writes_lost_at_a_takeover_are_listed_by_the_new_active(bed):
    """Asynchronous mode: writes the old active acknowledged but never
    replicated (here: made while it was cut off, still active in the lower
    epoch) are listed by the new active once the old one returns, with their
    contents, so that the meeting application can redo them."""
    site = bed.a.ctl("site", "create", "--name", "kept")["site_id"]
    bed.wait_synced()
    assert bed.b.ctl("pair", "lost")["state"] == "none"
    with pytest.raises(CtlError) as nothing:
        bed.b.ctl("pair", "lost", "--ack")
    assert nothing.value.code == "FAILED_PRECONDITION", nothing.value.line
    assert "no lost writes to acknowledge" in nothing.value.message, nothing.value.line
    bed.partition(bed.a)
    bed.wait_role(bed.b, "active", timeout=5)
    assert bed.a.role() == "active", "the cut-off primary cannot know; it still takes writes"
    lost_sites = [bed.a.ctl("site", "create", "--name", f"lost-{i}")["site_id"] for i in range(2)]
    lost_meeting = bed.a.ctl("meeting", "schedule", "--site", site, "--title",
                             "lost-meeting")["meeting_id"]
    pending = bed.b.ctl("pair", "lost")
    assert pending["state"] == "pending", pending
    after = int(pending["after_seq"])

    bed.heal(bed.a)
    bed.wait_role(bed.a, "standby", timeout=5)
    bed.wait_synced(timeout=20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lost = bed.b.ctl("pair", "lost")
        if lost["state"] != "pending":
            break
        time.sleep(0.1)
    assert lost["state"] == "listed", lost
    assert int(lost["after_seq"]) == after
    changes = lost.get("changes", [])
    print(f"\nlisted by the new active: {len(changes)} lost changes after {after}")
    assert all(int(c["seq"]) > after for c in changes)
    assert [(c["kind"], c.get("site", {}).get("name") or c.get("meeting", {}).get("title"))
            for c in changes] == [("site_put", "lost-0"), ("site_put", "lost-1"),
                                  ("meeting_put", "lost-meeting")], changes
    assert [int(c["id"]) for c in changes] == [*map(int, lost_sites), int(lost_meeting)]
    # Lost indeed: neither node has them now, and the application can redo them.
    for node in (bed.a, bed.b):
        names = {s["name"] for s in node.ctl("site", "list").get("sites", [])}
        assert names == {"kept"}, (node.name, names)
    status = bed.b.status()["pair"]
    assert status["lost_writes"] == "listed" and int(status["lost_changes"]) == 3, status
    # An alarm until an operator acknowledges them; the list stays readable.
    deadline = time.monotonic() + 5
    while "writes_lost" not in bed.b.status()["pair"]["alarms"].split(","):
        assert time.monotonic() < deadline, f"no writes_lost alarm: {bed.b.status()['pair']}"
        time.sleep(0.1)
    assert 'tandem_pair_alarm{alarm="writes_lost"} 1' in bed.b.metrics()
    acked = bed.b.ctl("pair", "lost", "--ack")
    assert acked.get("acknowledged") is True and len(acked.get("changes", [])) == 3, acked
    assert "writes_lost" not in bed.b.status()["pair"]["alarms"].split(","), bed.b.status()
    time.sleep(1.5)  # a status refresh or two: the acknowledgement holds
    assert "writes_lost" not in bed.b.status()["pair"]["alarms"].split(","), bed.b.status()
    assert bed.b.ctl("pair", "lost")["acknowledged"] is True
    redone = pair_ctl(bed, "site", "create", "--name", changes[0]["site"]["name"])
    assert redone["name"] == "lost-0"


def test_old_active_rejoins_with_exactly_the_new_actives_site_data(bed):
    """Asynchronous mode: a meeting scheduled on the old active while it was
    cut off (a lost write, in a site both nodes hold) must be gone from it
    once it has rejoined as standby: a resync leaves no site data the active
    does not have, and the digest finds the nodes equal."""
    site = bed.a.ctl("site", "create", "--name", "kept")["site_id"]
    bed.wait_synced()
    bed.partition(bed.a)
    bed.wait_role(bed.b, "active", timeout=5)
    bed.a.ctl("meeting", "schedule", "--site", site, "--title", "lost-meeting")
    bed.heal(bed.a)
    bed.wait_role(bed.a, "standby", timeout=5)
    bed.wait_synced(timeout=20)
    assert bed.b.role() == "active"
    titles = {n.name: sorted(m["title"] for m in n.ctl("meeting", "list").get("meetings", []))
              for n in (bed.a, bed.b)}
    print(f"\nmeetings after the rejoin: {titles}")
    assert titles == {"na": [], "nb": []}, f"the rejoined standby kept a lost meeting: {titles}"
    sent = bed.b.ctl("pair", "compare")
    deadline = time.monotonic() + 10
    while int(bed.a.status()["pair"].get("compare_seq", 0)) < int(sent["position"]):
        assert time.monotonic() < deadline, "the standby never compared"
        time.sleep(0.05)
    st = bed.a.status()["pair"]
    assert st["compare_result"] == "match" and int(st.get("drift_repairs", 0)) == 0, st


def test_client_library_follows_the_pair_across_a_takeover(bed):
    """The client library, given both nodes' addresses and never told which
    one is active: writes go to the active node, and on to the new one after
    kill -9 of the primary with nothing special done by the application; a
    watch started before the kill sees every change once, in order, in one
    log."""
    app = App(bed)
    try:
        w = app.do("watch")
        assert w["ok"], w
        before = []
        for i in range(3):
            site = app.do("site", f"app-before-{i}")
            assert site["ok"], site
            meeting = app.do("meeting", site["id"], f"weekly-{i}")
            assert meeting["ok"], meeting
            before += [site, meeting]
        assert {r["node"] for r in before} == {bed.a.control.api}, before
        assert app.wait_changes(lambda cs: "app-before-2" in site_names(cs))
        bed.wait_synced()

        bed.a.kill_all()
        # At once, while node b is still taking over: the library waits for it.
        after = [app.do("site", "app-after-0")]
        assert after[0]["ok"], after[0]
        print(f"\nfirst write after kill -9 of the active node: {after[0]['ms']} ms")
        assert bed.b.role() == "active"
        for i in range(1, 3):
            site = app.do("site", f"app-after-{i}")
            assert site["ok"], site
            meeting = app.do("meeting", site["id"], f"daily-{i}")
            assert meeting["ok"], meeting
            started = app.do("start", meeting["id"])
            assert started["ok"], started
            after += [site, meeting, started]
        assert {r["node"] for r in after} == {bed.b.control.api}, after
        listed = app.do("list")
        assert listed["ok"] and listed["answered_by"] == bed.b.control.api, listed
        want = [f"app-before-{i}" for i in range(3)] + [f"app-after-{i}" for i in range(3)]
        assert set(want) <= set(listed["sites"]), listed

        # The watch: from where it started, every change once, in order, one
        # log, across the takeover.
        assert app.wait_changes(lambda cs: "app-after-2" in site_names(cs) and
                                any(c["kind"] == "meeting_put" and
                                    c["meeting"]["title"] == "daily-2" and
                                    c["meeting"]["state"] == "live" for c in cs)), app.changes
        stopped = app.do("unwatch")
        assert stopped["ok"], stopped
        assert app.watch_end and app.watch_end["code"] == "OK", app.watch_end
        seqs = [int(c["seq"]) for c in app.changes]
        assert seqs == list(range(w["from"], w["from"] + len(seqs))), f"gap or repeat: {seqs}"
        assert {int(c["log_id"]) for c in app.changes} == {w["log_id"]}
        assert site_names(app.changes) == want
        assert any(c["kind"] == "role" for c in app.changes), "no takeover seen"
    finally:
        app.close()


def test_client_library_repeats_no_write_cut_off_by_a_takeover():
    """Writes back to back while the active node is killed (synchronous
    replication: an acknowledged write is on the standby): every write
    succeeds, on either node, except at most the one cut off by the kill,
    which the library does not send again (it may have been applied) and
    says so; every acknowledged write is on the new active."""
    bed = PairBed(mode="sync")
    app = None
    try:
        bed.start()
        app = App(bed)
        n = 300
        app.send("burst", "burst", n)
        results = [app.result() for _ in range(40)]
        # The control daemon first: killed after its switch (kill_all), it
        # would go on acknowledging writes, degraded, for the moment between
        # the two kills, after node b took over ("peer reports its data plane
        # dead"): those writes are lost even in synchronous mode (a matter of
        # the pair, not of the client).
        bed.a.control.kill9()
        bed.a.kill_all()
        results += [app.result() for _ in range(n - 40)]
        failed = [r for r in results if not r["ok"]]
        assert len(failed) <= 1, failed
        for r in failed:
            assert r["code"] in ("UNAVAILABLE", "CANCELLED"), r
            assert "may have been applied" in r["error"], r
        nodes = [r["node"] for r in results if r["ok"]]
        assert nodes[0] == bed.a.control.api and nodes[-1] == bed.b.control.api, nodes
        switched = nodes.index(bed.b.control.api)
        assert set(nodes[:switched]) == {bed.a.control.api}
        assert set(nodes[switched:]) == {bed.b.control.api}
        print(f"\n{n} writes, {len(failed)} cut off by the kill; "
              f"the slowest took {max(r['ms'] for r in results)} ms")
        for r in failed:
            print(f"{r['name']}: {r['code']}: {r['error']}")
        have = {s["name"] for s in bed.b.ctl("site", "list")["sites"]}
        missing = [r["name"] for r in results if r["ok"] and r["name"] not in have]
        assert not missing, f"acknowledged writes missing on the new active: {missing}"
        names = [s["name"] for s in bed.b.ctl("site", "list")["sites"]]
        assert len(names) == len(set(names)), "a write applied twice"
    finally:
        if app:
            app.close()
        bed.close()


def test_client_library_sends_a_write_after_the_active_died_to_the_new_one():
    """Node b has taken over (it is active, the application's library still
    uses a), then a is killed while the application is idle, and the
    application's next write goes out at once. The library's connection to a
    looks alive until something reads from it (gRPC notices a closed socket
    only when it polls), so a write sent on it would come back "cut off, may
    have been applied" although it never reached a live node: the write must
    land on b. Several rounds, at several pauses: each kill is a fresh chance
    for the stale connection."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="tpc-"))  # short: socket paths
    try:
        for round, pause in enumerate((0, 0.1, 0.5, 1)):
            nodes = {}
            app = None
            try:
                for name, role in (("a", "active"), ("b", "standby")):
                    d = ControlDaemon(top / f"r{round}{name}", node=name)
                    d.config.write_text(
                        d.config.read_text().replace('role = "active"', f'role = "{role}"'))
                    nodes[name] = d.start()
                app = App(apis=[nodes["a"].api, nodes["b"].api])
                r = app.do("site", f"before-{round}")
                assert r["ok"] and r["node"] == nodes["a"].api, r
                nodes["b"].stop()
                nodes["b"].config.write_text(
                    nodes["b"].config.read_text().replace('role = "standby"', 'role = "active"'))
                nodes["b"].start()
                nodes["a"].kill9()
                time.sleep(pause)
                r = app.do("site", f"after-{round}")
                assert r["ok"], (pause, r)
                assert r["node"] == nodes["b"].api, (pause, r)
                assert [s["name"] for s in nodes["b"].ctl("site", "list")["sites"]] == \
                    [f"after-{round}"]
            finally:
                if app:
                    app.close()
                for d in nodes.values():
                    d.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_old_active_without_its_switch_steps_down_at_once():
    """The primary's switch dies, its control daemon lives on: the standby
    takes over and tells it so over the replication connection, so it stops
    taking writes at once (its switch cannot hear the higher epoch), and every
    write it acknowledged in synchronous mode is on the new active."""
    bed = PairBed(mode="sync")
    try:
        bed.start()
        names = [f"acked-{i}" for i in range(20)]
        for n in names:
            bed.a.ctl("site", "create", "--name", n)
        bed.a.switch.kill()
        bed.wait_role(bed.b, "active", timeout=5)
        t0 = time.monotonic()
        bed.wait_role(bed.a, "standby", timeout=2)
        print(f"\nthe old active stepped down {1000 * (time.monotonic() - t0):.0f} ms after "
              "the takeover was seen")
        with pytest.raises(CtlError) as refused:
            bed.a.ctl("site", "create", "--name", "to-the-old-active")
        assert "FAILED_PRECONDITION" in str(refused.value)
        have = {s["name"] for s in bed.b.ctl("site", "list")["sites"]}
        assert not [n for n in names if n not in have]
        assert "to-the-old-active" not in have
        assert "data plane dead" in bed.b.status()["pair"]["last_takeover_cause"]
        # Its switch comes back: it has not heard the peer yet, and that
        # silence must not look like the new active's death.
        epoch = bed.b.status()["epoch"]
        bed.a.switch.start()
        time.sleep(2)
        assert (bed.a.role(), bed.b.role()) == ("standby", "active")
        assert bed.b.status()["epoch"] == epoch
    finally:
        bed.close()
