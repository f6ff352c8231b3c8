"""The pair must not lose a change it acknowledged, and replication must not
stall (issue 14, items 5 to 8): a standby whose disk is full, an object too
large to replicate, synchronous modes without a standby, a replication port
that cannot be bound, and full resyncs of a standby slowed on purpose while
writes go on. The real pair of helpers/pair.py."""
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import CtlError, build_dir  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.pair import BACKBONE, REPL_PORT, PairBed, durable_view  # noqa: E402


# These tests take no node down on purpose: a slow detection time (3 s: 30 ms
# heartbeats x 100; a switch worker silent 3 s counts as dead), so that a
# process starved on this busy machine (several test beds' switches poll on
# its 2 cores) is not mistaken for a dead one, and the pair keeps its roles.
SLOW = {"multiplier": 100, "heartbeat_ms": 30}


def alarms(node):
    return node.status()["pair"].get("alarms", "none").split(",")


def metrics_alarm(node, name):
    """The alarm as /metrics shows it: one gauge per alarm (alarm="name"), or
    one gauge for any alarm."""
    for line in node.metrics().splitlines():
        if line.startswith((f'tandem_pair_alarm{{alarm="{name}"}} ', "tandem_pair_alarm ")):
            return float(line.split()[-1]) == 1
    return False


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def site_ids(node):
    return {int(s["site_id"]) for s in node.ctl("site", "list")["sites"]}


def stored_site_ids(db):
    """The sites in a copy of a SQLite store (db and its WAL), as a restart
    after a crash at this moment would find them."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        for suffix in ("", "-wal"):
            if os.path.exists(f"{db}{suffix}"):
                shutil.copy(f"{db}{suffix}", f"{d}/copy.db{suffix}")
        con = sqlite3.connect(f"{d}/copy.db")
        try:
            return {row[0] for row in con.execute("SELECT site_id FROM sites")}
        finally:
            con.close()


class Tmpfs:
    """A small tmpfs mounted for a node's store: its disk, filled on demand."""

    def __init__(self, prefix, mib):
        self.dir = tempfile.mkdtemp(prefix=f"{prefix}-store-", dir="/tmp")
        netns.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", self.dir])
        self.filler = os.path.join(self.dir, "filler")

    def fill(self):
        with open(self.filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def free(self):
        os.unlink(self.filler)

    def close(self):
        netns.run(["umount", "-l", self.dir], check=False)
        os.rmdir(self.dir)


@pytest.fixture
def full_disk_bed():
    bed = PairBed(participants=1, **SLOW, mode="sync",
                  pair_extra="sync_timeout_ms = 500\n")
    disk = None
    try:
        disk = Tmpfs(bed.testbed.prefix, 8)
        bed.b.set_store_path(os.path.join(disk.dir, "store.db"))
        bed.start()
        yield bed, disk
    finally:
        bed.close()
        if disk is not None:
            disk.close()


def test_a_standby_whose_disk_is_full_confirms_no_write_and_catches_up(full_disk_bed):
    bed, disk = full_disk_bed
    look = [f"part{i}={'x' * 60000}" for i in range(4)]  # about 240 KB a site
    bed.a.ctl("site", "create", "--name", "before")
    disk.fill()
    confirmed, unconfirmed = [], []
    for i in range(40):
        try:
            args = ["site", "create", "--name", f"full-{i}"]
            for lf in look:
                args += ["--look", lf]
            confirmed.append(int(bed.a.ctl(*args)["site_id"]))
        except CtlError as e:
            # Applied on the active, but the standby could not store it.
            assert e.code == "DEADLINE_EXCEEDED", e
            unconfirmed.append(i)
            if len(unconfirmed) >= 3:
                break
    print(f"\nwith the standby's disk full: {len(confirmed)} writes confirmed (room left in "
          f"its WAL), {len(unconfirmed)} not")
    assert len(unconfirmed) >= 3, "every synchronous write succeeded on a full disk"
    # Never confirmed without being stored: a crash of the standby now would
    # keep every write the active confirmed.
    held = stored_site_ids(os.path.join(disk.dir, "store.db"))
    missing = set(confirmed) - held
    assert not missing, f"confirmed but not in the standby's store: {sorted(missing)}"
    # Seen by the operator.
    st = bed.b.status()["pair"]
    assert "store_failed" in alarms(bed.b), st
    assert st["replication"].startswith("not storing"), st
    assert metrics_alarm(bed.b, "store_failed")

    # Space again: replication resumes without loss, the alarm goes.
    disk.free()
    bed.wait_synced(timeout=30)
    assert durable_view(bed.a) == durable_view(bed.b)
    wait_for(lambda: "store_failed" not in alarms(bed.b), 5, "the alarm clears")
    bed.a.ctl("site", "create", "--name", "after")  # synchronous again: confirmed
    bed.b.control.kill9()
    assert stored_site_ids(os.path.join(disk.dir, "store.db")) == site_ids(bed.a)


def test_an_object_too_large_to_replicate_is_refused_and_replication_goes_on():
    """Each update grows a site by about 960 KB. Before the size limits the
    site passed the 16 MiB frame limit and the standby refused its record on
    every reconnect: replication stopped for good."""
    bed = PairBed(participants=1, **SLOW)
    try:
        bed.start()
        site = bed.a.ctl("site", "create", "--name", "growing")["site_id"]
        refused = []
        for n in range(18):
            args = ["site", "update", site]
            for i in range(15):
                args += ["--look", f"u{n}k{i}={'y' * 64000}"]
            try:
                bed.a.ctl(*args, timeout=60)
            except CtlError as e:
                refused.append(e)
        bed.a.ctl("site", "create", "--name", "after")
        bed.wait_synced(timeout=30)
        assert durable_view(bed.a) == durable_view(bed.b)
        print(f"\n{len(refused)} of 18 updates refused: {refused[:1]}")
        assert len(refused) == 17, refused
        for e in refused:
            assert e.code == "INVALID_ARGUMENT" and "limit is 1048576" in e.message, e
    finally:
        bed.close()


def test_sync_strict_refuses_writes_without_a_standby_and_sync_alarms():
    bed = PairBed(participants=1, **SLOW, mode="sync-strict",
                  pair_extra="sync_timeout_ms = 500\n")
    try:
        bed.start()
        assert bed.a.status()["pair"]["mode"] == "sync-strict"
        bed.a.ctl("site", "create", "--name", "with-standby")
        bed.b.control.kill9()
        wait_for(lambda: "sync_degraded" in alarms(bed.a), 10, "sync_degraded on the active")
        assert metrics_alarm(bed.a, "sync_degraded")
        before = site_ids(bed.a)
        with pytest.raises(CtlError) as e:
            bed.a.ctl("site", "create", "--name", "alone")
        assert e.value.code == "FAILED_PRECONDITION", e.value
        assert "sync-strict" in e.value.message and "nothing changed" in e.value.message
        assert site_ids(bed.a) == before, "a refused write changed something"
        bed.b.control.start()
        bed.wait_synced(timeout=30)
        wait_for(lambda: "sync_degraded" not in alarms(bed.a), 10, "the alarm clears")
        bed.a.ctl("site", "create", "--name", "standby-back")
        assert durable_view(bed.a) == durable_view(bed.b)
    finally:
        bed.close()


def test_sync_without_a_standby_goes_on_degraded_with_an_alarm():
    bed = PairBed(participants=1, **SLOW, mode="sync",
                  pair_extra="sync_timeout_ms = 500\n")
    try:
        bed.start()
        bed.b.control.kill9()
        wait_for(lambda: "sync_degraded" in alarms(bed.a), 10, "sync_degraded on the active")
        bed.a.ctl("site", "create", "--name", "degraded")  # goes on, as documented
        assert metrics_alarm(bed.a, "sync_degraded")
    finally:
        bed.close()


def test_asynchronous_lag_raises_an_alarm():
    bed = PairBed(participants=1, **SLOW, pair_extra="lag_alarm_ms = 300\n")
    try:
        bed.start()
        bed.a.ctl("site", "create", "--name", "first")
        bed.wait_synced()
        assert "replication_lag" not in alarms(bed.a)
        bed.b.control.proc.send_signal(signal.SIGSTOP)  # a standby that takes nothing
        try:
            bed.a.ctl("site", "create", "--name", "lagging")
            wait_for(lambda: "replication_lag" in alarms(bed.a), 10, "replication_lag")
            assert metrics_alarm(bed.a, "replication_lag")
        finally:
            bed.b.control.proc.send_signal(signal.SIGCONT)
        bed.wait_synced(timeout=30)
        wait_for(lambda: "replication_lag" not in alarms(bed.a), 10, "the alarm clears")
    finally:
        bed.close()


def test_a_replication_port_taken_is_an_alarm_and_is_retried():
    bed = PairBed(participants=1, **SLOW)
    squatter = None
    try:
        # Something else holds the active's replication address first.
        squatter = bed.testbed.popen(bed.a.host, [
            "/usr/bin/python3", "-c",
            "import socket, time; s = socket.socket(); "
            f"s.bind(('{BACKBONE['na']}', {REPL_PORT})); s.listen(); time.sleep(600)"])
        time.sleep(0.5)
        bed.a.start()
        bed.wait_role(bed.a, "active")
        wait_for(lambda: "replication_listen_failed" in alarms(bed.a), 10,
                 "replication_listen_failed")
        assert bed.a.status()["pair"]["replication"].startswith("cannot listen on")
        assert metrics_alarm(bed.a, "replication_listen_failed")
        bed.a.ctl("site", "create", "--name", "meanwhile")
        squatter.kill()
        squatter.wait()
        bed.b.start()
        bed.wait_synced(timeout=30)
        assert "replication_listen_failed" not in alarms(bed.a)
        assert durable_view(bed.a) == durable_view(bed.b)
    finally:
        if squatter is not None and squatter.poll() is None:
            squatter.kill()
        bed.close()


# Runs in the standby's namespace, so from the standby's own address: opens
# connections to the active's replication port as fast as it can (without
# waiting for them), a third of them sending bytes that are no Hello, keeps
# the last 300 open; prints how many it opened when terminated.
FLOOD = """
import errno, signal, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
opened, conns = 0, []
def done(*_):
    print(opened, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    s = socket.socket()
    s.setblocking(False)
    if s.connect_ex((host, port)) not in (0, errno.EINPROGRESS):
        s.close()
        continue
    opened += 1
    if opened % 3 == 0:
        try:
            s.send(b"TM\\x02\\x01 not a hello")
        except OSError:
            pass
    conns.append(s)
    if len(conns) > 300:
        conns.pop(0).close()
"""


def test_a_flood_of_connections_without_the_key_does_not_keep_the_standby_out():
    """From the standby's own address, while it reconnects three times. (On
    this backbone the standby's handshake takes microseconds, and the old code
    let it in too; tests/unit/mirror/replication_durability_test.cc holds a
    standby between its Hello and its Subscribe, as a distant one is, which the
    old code pushed out.)"""
    bed = PairBed(participants=1, **SLOW)
    flood = None
    try:
        bed.start()
        bed.a.ctl("site", "create", "--name", "before")
        bed.wait_synced()
        script = bed.testbed.tmpdir("flood", root="/tmp") / "flood.py"
        script.write_text(FLOOD)
        flood = bed.testbed.popen(bed.b.host, ["/usr/bin/python3", str(script), BACKBONE["na"],
                                               REPL_PORT], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        for r in range(3):  # the standby reconnects (and resyncs) while the flood goes on
            bed.b.control.kill9()
            bed.b.control.start()
            bed.a.ctl("site", "create", "--name", f"during-flood-{r}")
            bed.wait_synced(timeout=30)
            assert durable_view(bed.a) == durable_view(bed.b)
        flood.terminate()
        opened = int(flood.communicate(timeout=10)[0])
        print(f"\nthe flood opened {opened} connections meanwhile")
        assert opened > 1000, "the flood was no flood"
    finally:
        if flood is not None and flood.poll() is None:
            flood.kill()
        bed.close()


class WriteProbe:
    """tandem-app-example (a meeting application on the client library)
    creating sites back to back on the active node: the latency of each write,
    in ms, as the application sees it."""

    def __init__(self, bed):
        self.proc = subprocess.Popen(
            [str(build_dir() / "control" / "client" / "tandem-app-example"), "--pair",
             f"{bed.a.control.api},{bed.b.control.api}", "--timeout", "20"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def burst(self, prefix, n):
        """[(monotonic time it returned, ms)] of each of n writes."""
        self.proc.stdin.write(f"burst {prefix} {n}\n")
        out = []
        for _ in range(n):
            r = json.loads(self.proc.stdout.readline())
            assert r["ok"], r
            out.append((time.monotonic(), r["ms"]))
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait()


def test_full_resyncs_of_a_slowed_standby_hold_up_no_write_and_it_converges():
    """A large state: 800 sites with 1,000 preferences each and 25,000
    participants (without legs: the usage of legs is collected every 100 ms
    under the same lock, which would hide the effect looked for here), about
    10 MB. The standby follows through a slow link (tools/slow_link.py,
    4 MB/s towards it) while writes go on on the active for 12 s, once as it
    is, then again restarted three times, so that it needs a full resync each
    time and takes it slowly. Before, each snapshot was built whole under the
    core's lock and every API call waited for it."""
    bed = PairBed(participants=1, **SLOW)
    probe = None
    try:
        tool = os.path.join(os.path.dirname(__file__), "tools", "slow_link.py")
        link = bed.testbed.popen(bed.b.host, [
            "/usr/bin/python3", tool, "--listen", "127.0.0.1:7401", "--to",
            f"{BACKBONE['na']}:{REPL_PORT}", "--rate", "4000000"],
            stdout=subprocess.PIPE, text=True)
        assert link.stdout.readline().strip() == "ready"
        bed.b.set_replication_peer("127.0.0.1:7401")
        bed.a.start()
        bed.wait_role(bed.a, "active")
        bench = subprocess.run(
            [str(build_dir() / "tests" / "bench" / "tandem-control-bench"), "--api", bed.a.control.api,
             "--sites", "800", "--preferences", "1000", "--legs", "25000", "--threads", "1",
             "--batch", "1000", "--legs_per_participant", "0", "--keep"],
            capture_output=True, text=True, timeout=120)
        assert bench.returncode == 0, bench.stderr
        bed.b.start()
        bed.wait_synced(timeout=120)
        probe = WriteProbe(bed)
        probe.burst("warm-up", 20)  # it has found the active node
        epoch = bed.a.status()["epoch"]

        def slowed_standby(restart):
            """Each write's (time, ms), and the time each of 3 rounds of 4 s
            began."""
            done, errors, rounds = threading.Event(), [], []

            def trouble():
                try:
                    for _ in range(3):
                        if restart:
                            bed.b.control.kill9()
                            bed.b.control.start()
                        rounds.append(time.monotonic())
                        time.sleep(4)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
                finally:
                    done.set()
            t = threading.Thread(target=trouble)
            t.start()
            writes = []
            while not done.is_set():
                writes += probe.burst(f"w{restart}-{len(writes)}", 10)
                time.sleep(0.05)
            t.join()
            assert not errors, errors
            return writes, rounds

        base, base_rounds = slowed_standby(restart=False)
        served = bed.a.status()["pair"]["snapshots"]
        during, rounds = slowed_standby(restart=True)
        snapshots = bed.a.status()["pair"]["snapshots"] - served
        assert (bed.a.role(), bed.a.status()["epoch"]) == ("active", epoch), \
            ("the pair changed roles meanwhile: a node looked dead to its peer",
             bed.a.status()["pair"], bed.b.status()["pair"])
        bed.wait_synced(timeout=120)  # the same change log position
        # (The site list is too large for tandemctl: what it counts.)
        assert bed.a.status()["sites"] == bed.b.status()["sites"] == 800 + 1 + 20 + \
            len(base) + len(during)

        def slowest_per_round(writes, starts):
            """The slowest write in the 3 s after each round began (a resync
            starts then, when the standby was restarted)."""
            return [max([ms for t, ms in writes if s <= t < s + 3] or [0]) for s in starts]

        def summary(writes):
            ms = [m for _, m in writes]
            q = statistics.quantiles(ms, n=100)
            return f"p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms ({len(ms)} writes)"
        quiet = slowest_per_round(base, base_rounds)
        resyncing = slowest_per_round(during, rounds)
        print(f"\nwrites, standby on a slow link: {summary(base)}, slowest of each round {quiet} ms"
              f"\n... and {snapshots} full resyncs to it: {summary(during)}, slowest of each "
              f"round {resyncing} ms")
        assert snapshots >= 3
        # Before, every resync held the writes up once, as long as building the
        # whole snapshot took: in every round. The median round tells that from
        # a hiccup of this busy machine; bounded by the same writes without
        # resyncs in this run, not by the size of the state.
        assert statistics.median(resyncing) <= 2 * statistics.median(quiet) + 50, \
            (summary(base), quiet, summary(during), resyncing)
    finally:
        if probe is not None:
            probe.close()
        bed.close()
