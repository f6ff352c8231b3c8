"""Two data centers (issue 17): the failure rows of the pair in routed mode,
beyond the killed switch (test_dc.py). Each row runs the whole pair (two
tandem-control daemons, each driving its own BIRD; heartbeats and
replication on the backbone), a meeting made through A's API, and the
participants' media through the VIP while the failure happens. Each prints
the media gap the receivers heard and checks: no packet delivered twice, the
media resumes, what the failure lost (against what the machine lost before
it, in the same run), the right node active and announcing, the alarms.

Both families in one run: the bed carries an IPv4 meeting (p0, p1) and an
IPv6 meeting (p2, p3) through the VIPs at once, so each failure is injected
once and the gap of each family is measured and checked in the same run
(the CI suite has no time for a second bed per row).

Bounds. A failure the pair sees at once (a peer reporting its access link
down) gets the routing's budget, FAILURE_LIMIT_MS (below the routers' 3 s
BGP hold time: BFD or the health gate did it, not the hold timer). A failure
the standby can only see as silence gets the pair's detection time
(heartbeat x multiplier of the test bed) on top.

Bed: helpers/dc.py; media: helpers/dc_media.py."""
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import netns  # noqa: E402
from helpers.dc import DcBed  # noqa: E402
from helpers.dc_media import (FAILURE_LIMIT_MS, start_pair_meeting, stream, vip,  # noqa: E402
                               wait_pair_synced)

FAMILIES = (4, 6)
VIPS = [vip(f) for f in FAMILIES]
from helpers.pair import HEARTBEAT_MS, MULTIPLIER  # noqa: E402

DETECTION_MS = HEARTBEAT_MS * MULTIPLIER
SILENCE_LIMIT_MS = DETECTION_MS + FAILURE_LIMIT_MS


@pytest.fixture
def pair(request):
    """The pair in routed mode with a meeting per family, A active and both
    VIPs routed to it; BFD at 10 ms x 3, or at the (ms, multiplier) of an
    indirect parameter. The backbone-cut row takes 50 ms x 5: it is not
    about detection, and at 10 ms x 3 a BFD session timing out under
    this shared machine's load (load average 10 to 26) is a real routing
    failure that the row did not inject (A's routes withdrawn: B rightly
    took over during a backbone cut)."""
    bfd = getattr(request, "param", (10, 3))
    with DcBed(participants=4, bfd_ms=bfd[0], bfd_mult=bfd[1]) as bed:
        start_pair_meeting(bed, None)
        yield bed


def edge_hops(bed):
    """{family: the DC the edge routes that family's VIP to}."""
    return {f: bed.edge_next_hop(vip(f)) for f in FAMILIES}


def statuses(bed):
    return bed.a.pair_status(), bed.b.pair_status()


def alarms(st):
    return set(st["pair"].get("alarms", "none").split(","))


def wait_status(node, ok, what, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = node.pair_status()
        if ok(st):
            return st
        assert time.monotonic() < deadline, f"node {node.name}: not {what}: {st}"
        time.sleep(0.05)


def takeover(bed, fail):
    """fail(), then waits until B is active and the edge routes both VIPs
    via DC B; returns the milliseconds that took."""
    t0 = time.monotonic()
    fail()
    wait_status(bed.b, lambda s: s["role"] == "active", "active")
    for v in VIPS:
        bed.wait_edge(v, "b", timeout=10)
    return (time.monotonic() - t0) * 1000


def report(bed, row, media, moved_ms, a, b):
    print(f"{row}: B {b['role']} in epoch {b['epoch']} "
          f"({b['pair'].get('last_takeover_cause')}), the edge routes via DC B "
          f"{moved_ms:.1f} ms after the failure; {media}; A: "
          f"{a['role'] if a else 'down'} {a['pair']['routing_announced'] if a else ''}, "
          f"B announces {b['pair']['routing_announced']}; alarms A "
          f"{a['pair'].get('alarms') if a else '-'}, B {b['pair'].get('alarms')}; "
          f"drops {bed.switch_drops()}")


def assert_b_took_over(b, cause):
    assert b["role"] == "active", b
    assert cause in b["pair"].get("last_takeover_cause", ""), b["pair"]
    assert b["pair"]["routing_announced"] == "active" and b["pair"]["routing_applied"], b


def kill_node(node):
    """kill -9 of every process of the node at once: control, switch, BIRD.
    The control daemon first: alive for a moment after its switch, it told B
    the switch had died (B's takeover cause then says the peer reported it,
    seen once at load average 8, rather than the silence of a whole node)."""
    for p in (node.control.proc, node.switch.proc, node.bird.proc):
        os.kill(p.pid, signal.SIGKILL)


def test_whole_primary_node_killed(pair):
    """kill -9 of A's switch, tandem-control and BIRD at once: the router's
    BFD drops A's routes, B hears A's heartbeats stop (and its replication
    connection reset) and takes over."""
    bed = pair
    media, moved_ms = stream(bed, None, lambda: takeover(bed, lambda: kill_node(bed.a)))
    b = bed.b.pair_status()
    report(bed, "node A killed", media, moved_ms, None, b)
    assert_b_took_over(b, "peer lost")
    assert "peer_lost" in alarms(b), b["pair"]
    media.check(limit_ms=SILENCE_LIMIT_MS)


def test_primary_access_link_down(pair):
    """A's access link goes down: A's switch reports it in its heartbeats, B
    takes over at once; A's health gate withdraws (and its router's BFD and
    carrier drop A's sessions)."""
    bed = pair
    media, moved_ms = stream(bed, None, lambda: takeover(
        bed, lambda: netns.run(["ip", "-n", bed.a.ns, "link", "set", "sw0", "down"])))
    a = wait_status(bed.a, lambda s: s["role"] == "standby", "standby")
    b = bed.b.pair_status()
    report(bed, "access link A down", media, moved_ms, a, b)
    assert_b_took_over(b, "access link down")
    assert a["role"] == "standby" and a["pair"]["routing_announced"] == "withdrawn", a
    assert "peer_unhealthy" in alarms(b), b["pair"]
    media.check(limit_ms=FAILURE_LIMIT_MS)


def test_primary_router_down(pair):
    """DC A's router dies (its BIRD killed, its kernel stops forwarding): the
    edge loses A's routes, and node A, whose every BGP session is down, can
    reach no participant: it tells B its access path is down and B takes
    over, though A's switch and the backbone are fine."""
    bed = pair

    def router_down():
        bed.birds["ra"].kill()
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            bed.testbed.sysctl(bed.routers["a"], key, 0)
    media, moved_ms = stream(bed, None, lambda: takeover(bed, router_down))
    a = wait_status(bed.a, lambda s: s["role"] == "standby", "standby")
    b = bed.b.pair_status()
    report(bed, "router A down", media, moved_ms, a, b)
    assert_b_took_over(b, "access link down")
    assert a["pair"]["routing_sessions_up"] == 0 and "routing_down" in alarms(a), a["pair"]
    media.check(limit_ms=FAILURE_LIMIT_MS)


@pytest.mark.parametrize("pair", [(50, 5)], indirect=True, ids=["bfd50x5"])
def test_backbone_cut_with_both_dcs_alive(pair):
    """The backbone is cut; both DCs stay reachable. B cannot hear A, but the
    routing still shows A's announcement: B must not take over (two actives,
    both accepting writes). Both raise an alarm; the media goes on through A;
    a change made on A during the cut reaches B once the backbone is back."""
    bed = pair
    epoch = bed.b.pair_status()["epoch"]

    def cut():
        netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "down"])
        # Both see the silence (a starved switch excuses its own stalls, so
        # on a busy machine that takes longer than the detection time)...
        for n in (bed.a, bed.b):
            wait_status(n, lambda s: "peer_lost" in alarms(s), "alarmed peer_lost")
        # ... and three detection times more: long past any takeover.
        time.sleep(3 * DETECTION_MS / 1000)
        return statuses(bed), edge_hops(bed)
    media, ((a, b), hop) = stream(bed, None, cut)
    print(f"backbone cut: A {a['role']} (alarms {a['pair'].get('alarms')}), "
          f"B {b['role']} in epoch {b['epoch']} (alarms {b['pair'].get('alarms')}), the edge "
          f"routes via DC {hop}; {media}")
    assert a["role"] == "active" and b["role"] == "standby" and b["epoch"] == epoch, (a, b)
    assert b["pair"]["routing_announced"] == "standby", b["pair"]
    assert hop == {4: "a", 6: "a"}, hop
    assert "peer_lost" in alarms(a), a["pair"]
    # B's alarm says why it did not take over.
    assert {"peer_lost", "takeover_held"} <= alarms(b), b["pair"]
    media.check(limit_ms=100)
    # A change during the cut, then the backbone heals: B follows again.
    site = bed.a.ctl("site", "create", "--name", "during-cut")["site_id"]
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "up"])
    wait_pair_synced(bed)
    assert bed.b.ctl("site", "get", site)["name"] == "during-cut"
    a, b = statuses(bed)
    assert a["role"] == "active" and b["role"] == "standby" and b["epoch"] == epoch, (a, b)
    assert alarms(a) == {"none"} and alarms(b) == {"none"}, (a["pair"], b["pair"])


def test_whole_dc_a_cut_off(pair):
    """DC A is cut off: its router's link to the edge and the backbone go
    down; A's router and node run on, alone. The edge loses A's routes, B
    hears nothing from A and sees A's announcement gone: it takes over. A,
    hearing no peer, stays active (it cannot know) and alarms; once DC A is
    connected again it sees B's higher epoch and becomes standby, and the VIP
    stays on B."""
    bed = pair

    def cut():
        netns.run(["ip", "-n", bed.edge, "link", "set", "toa", "down"])
        netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "down"])
    media, moved_ms = stream(bed, None, lambda: takeover(bed, cut))
    a, b = statuses(bed)
    report(bed, "DC A cut off", media, moved_ms, a, b)
    assert_b_took_over(b, "peer lost")
    assert "peer_lost" in alarms(a) and "peer_lost" in alarms(b), (a["pair"], b["pair"])
    media.check(limit_ms=SILENCE_LIMIT_MS)
    netns.run(["ip", "-n", bed.edge, "link", "set", "toa", "up"])
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "up"])
    wait_status(bed.a, lambda s: s["role"] == "standby", "standby")
    wait_pair_synced(bed, active="b")
    assert edge_hops(bed) == {4: "b", 6: "b"}
    assert bed.b.pair_status()["epoch"] == b["epoch"]


def test_old_primary_returns_as_standby(pair):
    """After node A was killed and B took over, A comes back whole (BIRD,
    switch, tandem-control) while the media flows through B: A becomes
    standby, announces standby, B stays active in its epoch (no flap), the
    edge never routes the VIP back to A, nothing is lost."""
    bed = pair
    takeover(bed, lambda: kill_node(bed.a))
    bed.a.switch.kill()  # reaps them
    bed.a.control.proc.wait()
    bed.a.bird.proc.wait()
    before = bed.b.pair_status()
    hops = set()

    def come_back():
        t0 = time.monotonic()
        bed.a.start_bird()
        bed.a.switch.start()
        bed.a.control.start()
        while time.monotonic() - t0 < 30:
            hops.update(edge_hops(bed).values())
            st = bed.a.pair_status()
            if st["role"] == "standby" and st["pair"]["routing_announced"] == "standby" \
                    and st["pair"].get("replication") == "following":
                break
            time.sleep(0.01)
        return (time.monotonic() - t0) * 1000
    media, back_ms = stream(bed, None, come_back, seconds=5.0, at=1.5)
    a, b = statuses(bed)
    print(f"old primary back: A {a['role']} announcing "
          f"{a['pair']['routing_announced']} after {back_ms:.0f} ms, B {b['role']} in epoch "
          f"{b['epoch']} (was {before['epoch']}, takeovers {b['pair'].get('takeovers')}); "
          f"the edge routed via {sorted(map(str, hops))}; {media}")
    assert a["role"] == "standby" and a["pair"]["routing_announced"] == "standby", a
    assert b["role"] == "active" and b["epoch"] == before["epoch"], b
    assert hops == {"b"}, hops
    media.check(limit_ms=100)
    wait_pair_synced(bed, active="b")
