"""etcd as the pair's witness in routed mode (issue 18 with issue 17): an
active that cannot renew its lease on the pair's key steps down and withdraws
its routes (docs/fleet.md "The witness", docs/routed.md, PairAnnouncement in
control/routing.h).

Bed: the two data centers of helpers/dc.py (BIRD routers, the edge router,
participants behind it; each node's tandem-control drives its own BIRD) with
the three-member etcd cluster of test_fleet_witness.py on the participants'
bridge, which each node reaches on a veth of its own (et0). A meeting per
family streams through the VIPs (helpers/dc_media.py: p0 and p1 over IPv4,
p2 and p3 over IPv6).

Node A, active, is cut from etcd and from B (the backbone: in routed mode the
only path between the nodes). What a user would check: before A's lease
expires (etcd deleting the key) A withdrew both VIPs' routes (DC A's router's
BIRD table no longer holds A's path) and the participants' media stopped
reaching it, and it refuses writes; B takes over once it acquired the key and
the edge routes both VIPs to it, unprepended. Both nodes' roles are sampled
every 2 ms from their tables: never both active. Healed, A stays standby and
announces standby again; nothing flaps (roles, the edge's routes)."""
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import netns  # noqa: E402
from helpers.dc import DC, VIP4, VIP6, DcBed  # noqa: E402
from helpers.dc_media import start_pair_meeting, stream  # noqa: E402
from helpers.etcd import EtcdCluster  # noqa: E402
from helpers.tables import Tables  # noqa: E402
from test_dc_split_brain import wait_for, writable  # noqa: E402
from test_fleet_witness import (A, B, MARGIN_MS, TTL_S, KeyEvents, Sampler,  # noqa: E402
                                both_active, cut_from_etcd, first, last_before, leader,
                                reach_etcd, role_changes, wait_leader, witness_toml)

PREFIXES = {4: f"{VIP4}/32", 6: f"{VIP6}/128"}
# What the media may lose beyond the time nobody was active (B's switch
# turning active, the machine's own jitter; the edge already routes to B).
MEDIA_SLACK_MS = 500


@pytest.fixture
def routed():
    """The pair in routed mode, etcd its witness, a meeting per family on A.
    BFD at 50 ms x 5: the test is not about detection, and under this shared
    machine's load a BFD session timing out at 10 ms x 3 moves the routes by
    itself (test_dc_split_brain.py)."""
    bed = DcBed(participants=4, bfd_ms=50, bfd_mult=5)
    try:
        etcd = EtcdCluster(bed.testbed, members=3)
        prefix = f"/tandem/{bed.testbed.prefix}/"
        for node in (bed.a, bed.b):
            reach_etcd(bed.testbed, node)
        start_pair_meeting(bed, None, control_extra={
            dc: witness_toml(etcd, prefix, f"dc-{dc}") for dc in DC})
        bed.etcd, bed.prefix = etcd, prefix
        yield bed
    finally:
        bed.close()


class Writes:
    """A write tried on each node in turn from a thread until stopped:
    (t0, node, accepted, refusal, t1), the call between t0 and t1."""

    def __init__(self, bed):
        self.nodes = (bed.a, bed.b)
        self.done = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % 2]
            t0 = time.monotonic()
            ok, why = writable(node, i)
            self.done.append((t0, node.name, ok, why, time.monotonic()))
            i += 1
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.done


def a_paths(bed):
    """{family: whether DC A's router holds a path from node A for the VIP}."""
    ra = bed.birds["ra"]
    return {f: any(s.startswith("node") for s, _, _ in ra.paths(p)) for f, p in PREFIXES.items()}


def edge_best(bed):
    """{family: the AS path of the edge router's best path to the VIP}."""
    ed = bed.birds["ed"]
    return {f: next((a for _, a, best in ed.paths(p) if best), None) for f, p in PREFIXES.items()}


def not_listening_ms(stats):
    """The age of the switch's oldest thread heartbeat: the control daemon
    counts no silence of the peer later than its switch's oldest thread
    heartbeat (control/pair.cc, SwitchListeningUntil), so a stalled switch
    thread postpones the step-down that the silence allows."""
    threads = stats["workers"] + ([stats["main"]] if stats.get("main") else [])
    return max((w["heartbeat_age_ms"] or 0.0) for w in threads)


def watch_routes(bed, log, until):
    """Appends (t, a_paths, edge_best, A's switch rx_packets,
    not_listening_ms of A's switch, whether A's switch is quiet although its
    tables say active) to `log` until until() says so."""
    tables = Tables.of(bed.a.switch)
    while not until():
        t = time.monotonic()
        st = tables.stats()
        log.append((t, a_paths(bed), edge_best(bed), st["totals"]["rx_packets"],
                    not_listening_ms(st), bool(st["pair"]["quiet"])))


def rate(log, lo, hi):
    """A's switch's received packets per second between two times."""
    inside = [x for x in log if lo <= x[0] <= hi]
    assert len(inside) >= 2, (lo, hi, len(log))
    return (inside[-1][3] - inside[0][3]) / (inside[-1][0] - inside[0][0])


def check_writes(done, down, b_standby, t_heal):
    """A took no write it was asked for after it stepped down (refused:
    standby), B none before it took over; some each side of the takeover."""
    a_ok = [w for w in done if w[1] == "na" and w[2]]
    b_ok = [w for w in done if w[1] == "nb" and w[2]]
    a_refused = [w for w in done if w[1] == "na" and down[2] <= w[0] < t_heal]
    print(f"writes tried: {len(done)}; accepted by A {len(a_ok)}, by B {len(b_ok)}; A refused "
          f"{len(a_refused)} after it stepped down: {a_refused[0][3] if a_refused else None}")
    assert all(w[0] <= down[2] for w in a_ok), [w for w in a_ok if w[0] > down[2]][:3]
    assert all(w[4] >= b_standby[2] for w in b_ok), [w for w in b_ok if w[4] < b_standby[2]][:3]
    assert a_refused and all(not w[2] and "is standby" in w[3] for w in a_refused), a_refused[:3]
    assert b_ok, "B took no write after its takeover"


def check_healed(bed, samples, log, t_heal, b_own):
    """A hears B active in a higher epoch and stays standby, announcing
    standby again (its path back at its router); no role changes, the edge
    routed both VIPs to B at every sample."""
    after_heal = [x for x in samples if x[0] >= t_heal]
    assert after_heal and all(x[A] == "standby" and x[B] == "active" for x in after_heal
                              if x[A] and x[B]), after_heal[:3]
    assert role_changes(after_heal, A) == 0 and role_changes(after_heal, B) == 0
    healed = [x for x in log if x[0] >= t_heal]
    assert healed and all(x[2] == {4: b_own, 6: b_own} for x in healed), \
        [x for x in healed if x[2] != {4: b_own, 6: b_own}][:3]
    st_a = wait_for(lambda: (lambda s: s if s["pair"]["routing_announced"] == "standby"
                             else None)(bed.a.pair_status()), "A announcing standby")
    wait_for(lambda: all(a_paths(bed).values()), "A's standby paths at its router")
    assert st_a["role"] == "standby", st_a


def cut_then_heal(bed, sampler, log, marks):
    """Cuts A from etcd and from B (the backbone, routed mode's only heartbeat
    path: A cannot renew its lease), watching the routes, until B has been
    active for 0.5 s and the edge routes to it; heals and watches 2.5 s more."""
    t0 = time.monotonic()
    # 1.5 s and three samples at least: birdc answers slowly on a loaded
    # machine, and the rate of A's received packets is read from them.
    watch_routes(bed, log, lambda: time.monotonic() - t0 > 1.5 and len(log) >= 3)
    cut_from_etcd(bed.a)
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "down"])
    marks["cut"] = t_cut = time.monotonic()
    deadline = t_cut + 3 * TTL_S + 5

    b_own = f"{DC['b']['router_as']} {bed.b.as_}"  # B's path at the edge, unprepended

    def b_active_a_while():
        """B active for 0.5 s and its path the edge's best (BGP carries it
        in tens of ms when quiet, in seconds under load), or the deadline."""
        up = first(sampler.samples, t_cut, B, "active")
        now = time.monotonic()
        if up is None or now < up[4] + 0.5:
            return now > deadline
        return log[-1][2] == {4: b_own, 6: b_own} or now > deadline
    watch_routes(bed, log, b_active_a_while)
    cut_from_etcd(bed.a, cut=False)
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "up"])
    marks["heal"] = t_heal = time.monotonic()
    watch_routes(bed, log, lambda: time.monotonic() - t_heal > 2.5)


def test_active_cut_from_etcd_and_its_peer_withdraws_its_routes_before_its_lease_ends(routed):
    bed = routed
    wait_leader(bed, bed.a)
    epoch = int(bed.a.pair_status()["epoch"])
    own = f"{DC['a']['router_as']} {bed.a.as_}"  # A's path at the edge, unprepended
    assert edge_best(bed) == {4: own, 6: own}, edge_best(bed)
    keys = KeyEvents(bed)
    sampler = Sampler(bed)
    writes = Writes(bed)
    log = []
    marks = {}

    try:
        media, _ = stream(bed, None, lambda: cut_then_heal(bed, sampler, log, marks),
                          seconds=11.0, at=1.0)
    finally:
        samples = sampler.finish()
        done = writes.finish()
        events = keys.finish()
    t_cut, t_heal = marks["cut"], marks["heal"]
    down = first(samples, t_cut, A, "standby")
    up = first(samples, t_cut, B, "active")
    deleted = next((t for t, e in events if e == "DELETE"), None)
    withdrawn = next((x for x in log if x[0] >= t_cut and not any(x[1].values())), None)
    period = max(x[4] - x[0] for x in samples)
    at = lambda t: "never" if t is None else f"{t - t_cut:.2f} s"  # noqa: E731
    print(f"\n{len(samples)} role samples (slowest {period * 1000:.0f} ms), {len(log)} route "
          f"samples; after the cut: A stepped down by {at(down and down[2])}, DC A's router "
          f"lost A's paths by {at(withdrawn and withdrawn[0])} (A's at the heal: {log[-1][1]}), "
          f"etcd deleted A's key at {at(deleted)}, B active by {at(up and up[4])}, the edge's "
          f"best paths before the heal {[x[2] for x in log if x[0] < t_heal][-1]}; {media}")
    assert down is not None, "the active cut off from etcd did not step down"
    assert up is not None, "the standby did not take over"
    a_active = last_before(samples, down, A, "active")
    b_standby = last_before(samples, up, B, "standby")
    print(f"A stepped down between {at(a_active[0])} and {at(down[2])}, B took over between "
          f"{at(b_standby[2])} and {at(up[4])}: nobody active for at most "
          f"{(up[4] - a_active[0]) * 1000:.0f} ms")
    # How long A's switch did not listen after the cut (its oldest thread
    # heartbeat, at most, while A was active): printed to tell a starved
    # switch from a starved control daemon; the step-down does not wait for
    # the switch (rule 7 counts the silence up to now, mirror/role.cc).
    deaf_s = max(x[4] for x in log if t_cut <= x[0] <= down[2]) / 1000
    print(f"A's switch did not listen for up to {deaf_s * 1000:.0f} ms after the cut "
          f"(before it: up to {max(x[4] for x in log if x[0] < t_cut):.0f} ms)")
    assert both_active(samples) == [], f"two actives in {len(both_active(samples))} samples"
    # A stepped down within its hold (its last acknowledged renewal was sent
    # before the cut), and before B took over.
    hold_end = TTL_S - MARGIN_MS / 1000 + period + 0.2
    assert down[2] - t_cut <= hold_end, at(down[2])
    assert down[2] <= b_standby[2], (down, b_standby)
    # Its routes: withdrawn from its router (both VIPs) before B took over
    # and before etcd let its lease expire; withdrawn until the heal.
    assert withdrawn is not None, f"A's routes never withdrawn: {log[-1]}"
    assert deleted is not None, f"etcd never deleted A's key: {events}"
    assert withdrawn[0] < up[4], (at(withdrawn[0]), at(up[4]))
    assert withdrawn[0] < deleted, (at(withdrawn[0]), at(deleted))
    assert all(not any(x[1].values()) for x in log if withdrawn[0] <= x[0] < t_heal), \
        [x for x in log if withdrawn[0] <= x[0] < t_heal and any(x[1].values())][:3]
    # The participants' media stopped reaching A's switch (its received
    # packets: the media's 800/s before the cut; BFD, BGP and ND after).
    before = rate(log, log[0][0], t_cut)
    after = rate(log, withdrawn[0] + 0.2, t_heal)
    print(f"A's switch received {before:.0f} packets/s before the cut, {after:.0f}/s once "
          f"withdrawn")
    assert after < before / 4, (before, after)
    # B holds the key at a higher epoch, and the edge routes both VIPs to it,
    # unprepended (B announces active).
    held = leader(bed.etcd, bed.prefix)
    assert held["node_id"] == "nb" and int(held["epoch"]) > epoch, held
    st_b = bed.b.pair_status()
    assert int(st_b["epoch"]) == int(held["epoch"]), st_b
    b_own = f"{DC['b']['router_as']} {bed.b.as_}"
    assert log[-1][2] == {4: b_own, 6: b_own}, log[-1]
    check_writes(done, down, b_standby, t_heal)
    # The media stopped while nobody served, and no longer: from A's switch
    # going quiet at the end of its hold (by itself, before its tables may
    # say standby: the last route sample before it was seen quiet) or its
    # role changing, whichever came first, to B's takeover.
    quiet = next((i for i, x in enumerate(log) if x[0] >= t_cut and x[5]), None)
    stopped = min(a_active[0], log[quiet - 1][0] if quiet else a_active[0])
    print(f"A's switch quiet by itself: {at(log[quiet][0]) if quiet else 'not seen'}; "
          f"nobody served for at most {(up[4] - stopped) * 1000:.0f} ms")
    media.check(limit_ms=(up[4] - stopped) * 1000 + MEDIA_SLACK_MS)
    check_healed(bed, samples, log, t_heal, b_own)
