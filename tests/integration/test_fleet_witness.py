"""etcd as the pair's witness (issue 18, docs/fleet.md "The witness"): a pair
with switches (helpers/pair.py) whose control daemons have [fleet] witness =
true, and a three-member etcd cluster in namespaces on the same bridge
(helpers/etcd.py), reached by each node on a veth of its own (et0), so that a
node can be cut from etcd alone. Through a full partition of the pair (backbone
and access both silent) both nodes' roles are sampled all along: never both
active at one sample."""
import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import netns  # noqa: E402
from helpers.etcd import EtcdCluster  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402
from helpers.tables import RoleReader, Tables  # noqa: E402

PAIR = "pair-w"
# The witness's timing: the product defaults, written out for the bounds.
TTL_S = 3
RENEW_MS = 500
MARGIN_MS = 1000
GUARD_MS = 100
# etcd revokes expired leases on a 500 ms tick (its lessor's check).
ETCD_TICK_S = 0.5
NODE_ETCD_IP = {"na": "198.18.0.41", "nb": "198.18.0.42"}


class Sampler:
    """Both nodes' roles as their tables say them (helpers.tables.RoleReader),
    read alternately every 2 ms from a thread until stopped: a list of (t0,
    role of A, t1, role of B, t2), A's read between t0 and t1, B's between t1
    and t2."""

    INTERVAL_S = 0.002

    def __init__(self, bed):
        self.readers = [RoleReader(Tables.of(n.switch)) for n in (bed.a, bed.b)]
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        a_reader, b_reader = self.readers
        while not self.stop.wait(self.INTERVAL_S):
            t0 = time.monotonic()
            a = a_reader.role()
            t1 = time.monotonic()
            b = b_reader.role()
            self.samples.append((t0, a, t1, b, time.monotonic()))

    def finish(self):
        self.stop.set()
        self.thread.join()
        for r in self.readers:
            r.close()
        return self.samples


A, B = 1, 3  # a node's role in a sample


def both_active(samples):
    return [s for s in samples if s[A] == "active" and s[B] == "active"]


def first(samples, since, node, role):
    """The first sample taken after `since` where `node` (A or B) has `role`."""
    return next((s for s in samples if s[0] >= since and s[node] == role), None)


def last_before(samples, sample, node, role):
    """The last sample before `sample` where `node` has `role`."""
    return next((s for s in reversed(samples) if s[0] < sample[0] and s[node] == role), None)


def role_changes(samples, node):
    seen = [s[node] for s in samples if s[node]]
    return sum(1 for x, y in zip(seen, seen[1:]) if x != y)


def leader(etcd, prefix):
    r = etcd.ctl("get", f"{prefix}leaders/{PAIR}", "--print-value-only")
    return json.loads(r.stdout) if r.stdout.strip() else None


def reach_etcd(testbed, node):
    """A path to etcd of the node's own (et0 on the bridge), apart from its
    access port and the backbone, so that it can be cut from etcd alone."""
    testbed._attach(f"{node.name}e", node.host.ns, "et0")
    netns.run(["ip", "-n", node.host.ns, "addr", "add", f"{NODE_ETCD_IP[node.name]}/24",
               "dev", "et0"])


def witness_toml(etcd, prefix, dc):
    """The [fleet] table of a node of the pair PAIR in data center `dc`,
    with etcd as its witness at the timing above."""
    endpoints = ", ".join(f'"{e}"' for e in etcd.endpoints.split(","))
    return f"""
[fleet]
etcd = [{endpoints}]
pair_id = "{PAIR}"
data_center = "{dc}"
prefix = "{prefix}"
lease_ttl_s = 3
witness = true
witness_ttl_s = {TTL_S}
witness_renew_ms = {RENEW_MS}
witness_margin_ms = {MARGIN_MS}
witness_guard_ms = {GUARD_MS}
"""


@pytest.fixture
def witnessed():
    bed = PairBed(participants=2)
    try:
        tb = bed.testbed
        etcd = EtcdCluster(tb, members=3)
        prefix = f"/tandem/{tb.prefix}/"
        for node, dc in ((bed.a, "dc1"), (bed.b, "dc2")):
            reach_etcd(tb, node)
            cfg = node.control.config
            cfg.write_text(cfg.read_text() + witness_toml(etcd, prefix, dc))
        bed.start()
        bed.drop_heartbeats_program()  # compiled now: the partitions are timed
        bed.etcd, bed.prefix = etcd, prefix
        yield bed
    finally:
        bed.close()


def wait_leader(bed, node, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        held = leader(bed.etcd, bed.prefix)
        if held and held.get("node_id") == node.name:
            return held
        assert time.monotonic() < deadline, f"{node.name} does not hold the key: {held}"
        time.sleep(0.1)


class KeyEvents:
    """`etcdctl watch` on the pair's leadership key from a thread: (time
    the line arrived, "PUT" or "DELETE")."""

    def __init__(self, bed):
        self.events = []
        self.proc = bed.etcd.ctl_popen("watch", f"{bed.prefix}leaders/{PAIR}")
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.proc.stdout:
            if line.strip() in ("PUT", "DELETE"):
                self.events.append((time.monotonic(), line.strip()))

    def finish(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=5)
        return self.events


def metric(node, name):
    """A counter of the node's control daemon (its /metrics; None if absent)."""
    for line in node.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


RATE = 50.0
VIP_PORT_BASE = 20000


def start_meeting(node, participants):
    """A live meeting on `node` (the active) with one audio leg per participant."""
    site = node.ctl("site", "create", "--name", "acme")["site_id"]
    m = node.ctl("meeting", "schedule", "--site", site, "--title", "witnessed")["meeting_id"]
    node.ctl("meeting", "start", m)
    for h in participants:
        node.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                 f"audio,{own_endpoint(h, 4)},local={vip_endpoint(4, VIP_PORT_BASE + h.index)}")


def media(bed, seconds):
    """Every participant streams to its VIP port for `seconds` (started now)."""
    count = int(seconds * RATE)
    return count, FlowRun(bed.testbed, [
        Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
             to=[vip_endpoint(4, VIP_PORT_BASE + h.index)], count=count, rate=RATE, size=160)
        for h in bed.participants])


def forwarded(node):
    """Packets the node's switch forwarded (its own counter)."""
    return Tables.of(node.switch).stats()["totals"]["forwarded_in"]


def cut_from_etcd(node, cut=True):
    netns.run(["ip", "-n", node.host.ns, "link", "set", "et0", "down" if cut else "up"])


def test_full_partition_with_etcd_reachable_from_both_keeps_one_active(witnessed):
    bed = witnessed
    held = wait_leader(bed, bed.a)
    epoch = int(bed.a.status()["epoch"])
    assert int(held["epoch"]) == epoch
    start_meeting(bed.a, bed.participants)
    bed.wait_synced()
    # Media through the partition: the participants reach both nodes (the
    # partition drops only the pair's heartbeats); the one active forwards.
    fwd_before = forwarded(bed.a), forwarded(bed.b)
    count, run = media(bed, 2 * TTL_S + 3)
    sampler = Sampler(bed)
    time.sleep(run.data_starts_after + 0.5)
    bed.partition(bed.a)
    t_cut = time.monotonic()
    # Longer than two leases: the standby, due to take over after the
    # detection time, waits for a key the active keeps renewing.
    time.sleep(2 * TTL_S + 1)
    during = [x for x in sampler.samples if x[0] >= t_cut]
    held_during = leader(bed.etcd, bed.prefix)
    bed.heal(bed.a)
    t_heal = time.monotonic()
    reports = run.wait()
    samples = sampler.finish()
    fwd = forwarded(bed.a) - fwd_before[0], forwarded(bed.b) - fwd_before[1]
    print(f"{len(samples)} samples, {len(during)} during the partition "
          f"({(t_heal - t_cut) / max(1, len(during)) * 1000:.0f} ms apart); forwarded by "
          f"A {fwd[0]}, by B {fwd[1]} of {count} packets each participant sent")
    assert len(during) >= 20, "too few samples to say anything"
    assert both_active(samples) == [], f"two actives in {len(both_active(samples))} samples"
    assert held_during and held_during["node_id"] == "na", held_during
    # The active kept the role all along, the standby never took it; no flap at the heal.
    assert all(x[A] == "active" for x in samples if x[A]), [x for x in samples if x[A] != "active"]
    assert all(x[B] == "standby" for x in samples if x[B]), [x for x in samples if x[B] != "standby"]
    assert int(bed.a.status()["epoch"]) == epoch
    held = leader(bed.etcd, bed.prefix)
    assert held["node_id"] == "na" and int(held["epoch"]) == epoch, held
    # (After the roles: a role wrong explains media lost.) Media went on
    # through the one active, A: every receiver got the other's
    # stream to its end, nothing went through B (its switch's own counter).
    for h in bed.participants:
        for other in bed.participants:
            if other is h:
                continue
            got = reports[sender_id(h)].from_sender(sender_id(other))
            assert got, f"{h.name} received nothing from {other.name}"
            st = next(iter(got.values()))
            print(f"{h.name} received {st['received']}/{count} from {other.name}, "
                  f"longest gap {st['max_gap_ms']:.0f} ms")
            assert st["received"] >= count - 5, st
            assert not [x for x in st.get("missing", []) if x >= count - 10], st
    assert fwd[1] == 0 and fwd[0] >= 2 * (count - 5), fwd


def test_active_cut_from_etcd_steps_down_before_its_lease_ends_and_the_standby_takes_over(
        witnessed):
    bed = witnessed
    wait_leader(bed, bed.a)
    epoch = int(bed.a.status()["epoch"])
    keys = KeyEvents(bed)
    sampler = Sampler(bed)
    time.sleep(0.5)
    # A loses its peer on both paths and etcd: it cannot renew.
    cut_from_etcd(bed.a)
    bed.partition(bed.a)
    t_cut = time.monotonic()
    deadline = t_cut + 3 * TTL_S + 5
    while time.monotonic() < deadline and not first(sampler.samples, t_cut, B, "active"):
        time.sleep(0.1)
    time.sleep(1)
    down = first(sampler.samples, t_cut, A, "standby")
    up = first(sampler.samples, t_cut, B, "active")
    assert down is not None, "the active cut off from etcd did not step down"
    assert up is not None, "the standby did not take over"
    held = leader(bed.etcd, bed.prefix)
    assert held["node_id"] == "nb" and int(held["epoch"]) > epoch, held
    assert int(bed.b.status()["epoch"]) == int(held["epoch"])
    # Heal: the old active hears the higher epoch and stays standby: no flap.
    cut_from_etcd(bed.a, cut=False)
    bed.heal(bed.a)
    t_heal = time.monotonic()
    time.sleep(3)
    samples = sampler.finish()
    events = keys.finish()
    # etcd deleted A's key when its lease expired; B, watching the key,
    # acquired it (put) at once: a lease keep-alive or grant, a read and the
    # transaction, not a wait for its next try (every RENEW_MS without the
    # watch: 0 to 500 ms, 230 ms in the run before the watch).
    deleted = next(t for t, e in events if e == "DELETE")
    put = next(t for t, e in events if e == "PUT" and t > deleted)
    watched = metric(bed.b, "tandem_pair_witness_watched_deletions_total") or 0
    print(f"the key deleted by etcd {deleted - t_cut:.2f} s after the cut, acquired by B "
          f"{(put - deleted) * 1000:.0f} ms later (deletions B's watch saw: {watched:.0f})")
    assert watched >= 1, "B did not see the key's deletion through its watch"
    assert put - deleted < RENEW_MS / 1000, (deleted, put)
    # A stepped down before it answered "standby" (down[2]); B took over
    # after it last answered "standby" (its call began at that sample's t1).
    b_standby = last_before(samples, up, B, "standby")
    a_active = last_before(samples, down, A, "active")
    period = max(x[4] - x[0] for x in samples)  # the slowest sample of this run
    down_s = (a_active[0] - t_cut, down[2] - t_cut)
    up_s = (b_standby[2] - t_cut, up[4] - t_cut)
    print(f"{len(samples)} samples (slowest {period * 1000:.0f} ms); after the cut: the old "
          f"active stepped down between {down_s[0]:.2f} and {down_s[1]:.2f} s, the new active "
          f"took over between {up_s[0]:.2f} and {up_s[1]:.2f} s")
    assert both_active(samples) == []
    # A stepped down before B took over, and within its hold: its last
    # acknowledged renewal was sent before the cut, the hold ends TTL - MARGIN
    # after it (etcd keeps the lease at least MARGIN longer).
    assert down[2] <= b_standby[2], (down, b_standby)
    assert down_s[1] <= TTL_S - MARGIN_MS / 1000 + period + 0.2, down_s
    # B took over only after acquiring, which etcd allowed once A's lease
    # expired (TTL after A's last renewal, on its 500 ms tick), a guard
    # later; the standby tries every RENEW_MS.
    assert up_s[1] <= TTL_S + ETCD_TICK_S + (RENEW_MS + GUARD_MS) / 1000 + period + 1.0, up_s
    after = [x for x in samples if x[0] >= t_heal]
    assert after and all(x[A] == "standby" and x[B] == "active" for x in after
                         if x[A] and x[B]), after
    assert role_changes(after, A) == 0 and role_changes(after, B) == 0
