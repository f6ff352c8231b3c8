"""Two data centers (issue 17): split brain with the backbone cut and both DCs
reachable (docs/routed.md "Split brain").

The standby does not take over while its router shows the active's
announcement (takeover_held, test_dc_failures.py). Two actives still happen:
with the backbone cut, A's access link flaps; while it is down A withdraws,
B sees no announcement of A and takes over; when it is up again A, which
cannot hear B, is still active and announces again. Both announce active;
the edge router picks one path. The node whose own announcement is not the
best (its router offers it the other DC's path) must be fenced: it refuses
writes (FAILED_PRECONDITION, counted) and withdraws the VIPs. Exactly one node
accepts writes at every sample, the edge routes the VIPs to it, and the
media of both families goes on. When the backbone is back, the pair is one
active and one standby again.

Bed: helpers/dc.py; media: helpers/dc_media.py."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import CtlError  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.dc import DcBed  # noqa: E402
from helpers.dc_media import FAILURE_LIMIT_MS, start_pair_meeting, stream, vip  # noqa: E402

SAMPLES = 20
SETTLE_S = 2.0


def alarms(st):
    return set(st["pair"].get("alarms", "none").split(","))


def wait_for(ok, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        got = ok()
        if got:
            return got
        assert time.monotonic() < deadline, f"not {what}"
        time.sleep(0.05)


def writable(node, n):
    """Whether the node takes a write: a site made, or the refusal."""
    try:
        node.ctl("site", "create", "--name", f"split-{node.name}-{n}")
        return True, ""
    except CtlError as e:
        return False, f"{e.code}: {e.message}"


def split_with_b_taking_over(bed):
    """The backbone cut, then A's access link down until B took over, and up
    again: A comes back active (it cannot hear B) and announces again."""
    nodes = (bed.a, bed.b)
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "down"])
    wait_for(lambda: all("peer_lost" in alarms(n.pair_status()) for n in nodes),
             "peer_lost on both")
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "sw0", "down"])
    wait_for(lambda: bed.b.pair_status()["role"] == "active", "B active")
    netns.run(["ip", "-n", bed.a.ns, "link", "set", "sw0", "up"])


def test_backbone_cut_two_actives_the_one_that_loses_the_route_is_fenced():
    # BFD at 50 ms x 5: not about detection here, and a BGP session flapping
    # under this shared machine's load moves the routes (docs/routed.md).
    with DcBed(participants=4, bfd_ms=50, bfd_mult=5) as bed:
        start_pair_meeting(bed, None)
        nodes = {"a": bed.a, "b": bed.b}
        samples = []

        def split():
            split_with_b_taking_over(bed)
            # A comes back active (it cannot hear B) and announces again; the
            # routing settles (BGP, the best-path report) before the samples.
            t0 = time.monotonic()
            wait_for(lambda: bed.a.pair_status()["pair"].get("access_link_up"),
                     "A's access link up again")
            st, fence_ms = None, None
            while time.monotonic() - t0 < SETTLE_S:
                st = {dc: n.pair_status() for dc, n in nodes.items()}
                if fence_ms is None and any("fenced" in alarms(x) for x in st.values()):
                    fence_ms = (time.monotonic() - t0) * 1000
                time.sleep(0.05)
            for i in range(SAMPLES):
                samples.append({dc: writable(n, i) for dc, n in nodes.items()})
            return st, fence_ms
        media, (st, fence_ms) = stream(bed, None, split, seconds=10.0, at=1.0)
        fenced = [dc for dc, s in st.items() if "fenced" in alarms(s)]
        winner = "b" if fenced == ["a"] else "a"
        fence_at = "never" if fence_ms is None else f"{fence_ms:.0f} ms"
        final = {dc: n.pair_status() for dc, n in nodes.items()}
        hops = {f: bed.edge_next_hop(vip(f)) for f in (4, 6)}
        ok = {dc: sum(s[dc][0] for s in samples) for dc in nodes}
        refusals = {s[dc][1] for s in samples for dc in nodes if not s[dc][0]}
        print(f"backbone cut, A's access link flapped: roles A {st['a']['role']} B "
              f"{st['b']['role']}; fenced {fenced} {fence_at} after A's link came "
              f"back; writes accepted of {SAMPLES} samples {ok}; refusals {refusals}; "
              f"the edge routes via {hops}; {media}")
        assert st["a"]["role"] == "active" and st["b"]["role"] == "active", st
        assert all(s["a"][0] != s["b"][0] for s in samples), f"not one writable node: {samples}"
        assert len(fenced) == 1, st
        loser = fenced[0]
        assert all(s[winner][0] and not s[loser][0] for s in samples), samples
        assert len(refusals) == 1 and next(iter(refusals)).startswith("FAILED_PRECONDITION: ") \
            and "is fenced" in next(iter(refusals)), refusals
        assert int(final[loser]["pair"]["refused"]["writes_fenced"]) >= SAMPLES, final[loser]
        assert final[loser]["pair"]["routing_announced"] == "withdrawn", final[loser]["pair"]
        assert hops == {4: winner, 6: winner}, hops
        media.check(limit_ms=FAILURE_LIMIT_MS)

        # The backbone is back: one active (the higher epoch), one standby.
        netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "up"])
        wait_for(lambda: sorted(n.pair_status()["role"] for n in nodes.values())
                 == ["active", "standby"], "one active, one standby")
        after = {dc: n.pair_status() for dc, n in nodes.items()}
        active = next(dc for dc, s in after.items() if s["role"] == "active")
        wait_for(lambda: all(bed.edge_next_hop(vip(f)) == active for f in (4, 6)),
                 f"the edge routing via {active}")
        assert all("fenced" not in alarms(s) for s in after.values()), after
        print(f"backbone back: {active} active in epoch {after[active]['epoch']}, "
              f"last takeover cause {after[active]['pair'].get('last_takeover_cause')}")


def site_names(node):
    return {s["name"] for s in node.ctl("site", "list").get("sites", [])}


@pytest.mark.parametrize("preferred", ["a", "b"], ids=["a_this_b_peer", "a_peer_b_this"])
def test_preferred_dc_decides_who_stays_writable_and_the_lower_epochs_writes_are_lost(preferred):
    """[routing] preferred_dc = "this" on one node, "peer" on the other: in
    the split the node with "this" keeps the route and the writes, whatever
    its epoch. The same split as above (backbone cut, A's access link
    flapped, B took over in a higher epoch). The node with "peer" is fenced
    while active and cut off (B from its takeover on, or A once its link is
    back); the other stays writable and the edge routes the VIP to it. At
    the heal the role machine keeps the higher epoch, B, active. With "this"
    on A, the routing kept the lower epoch: the writes A took in the split
    are lost writes (docs/routed.md "Split brain", docs/pair.md "Lost
    writes"), and what a user sees is B's `tandemctl pair lost` listing each
    of them, whole, B's status counting them, neither node holding them.
    With "this" on B nothing is lost."""
    loser = "b" if preferred == "a" else "a"
    with DcBed(participants=2, bfd_ms=50, bfd_mult=5,
               preferred_dc={preferred: "this", loser: "peer"}) as bed:
        start_pair_meeting(bed, 4)
        nodes = {"a": bed.a, "b": bed.b}
        before = site_names(bed.b)
        assert bed.b.ctl("pair", "lost")["state"] == "none"
        split_with_b_taking_over(bed)
        wait_for(lambda: bed.a.pair_status()["pair"].get("access_link_up"),
                 "A's access link up again")
        # The loser yields from the moment it is active and cut off.
        wait_for(lambda: "fenced" in alarms(nodes[loser].pair_status()), f"{loser} fenced")
        bed.wait_edge(vip(4), preferred)
        st = {dc: n.pair_status() for dc, n in nodes.items()}
        print(f"split: A {st['a']['role']} epoch {st['a']['epoch']} alarms {alarms(st['a'])}; "
              f"B {st['b']['role']} epoch {st['b']['epoch']} alarms {alarms(st['b'])}")
        assert st["a"]["role"] == "active" and st["b"]["role"] == "active", st
        assert int(st["a"]["epoch"]) < int(st["b"]["epoch"]), st
        assert "fenced" not in alarms(st[preferred]) and "fenced" in alarms(st[loser]), st
        assert st[loser]["pair"]["routing_announced"] == "withdrawn", st[loser]["pair"]
        samples = [{dc: writable(n, i) for dc, n in nodes.items()} for i in range(5)]
        assert all(s[preferred][0] and not s[loser][0] for s in samples), samples
        assert all("is fenced" in s[loser][1] for s in samples), samples
        taken = [f"split-n{preferred}-{i}" for i in range(5)]
        assert set(taken) <= site_names(nodes[preferred])
        pending = bed.b.ctl("pair", "lost")
        assert pending["state"] == "pending", pending

        # The heal: the higher epoch, B, stays active; A's writes are lost.
        netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "up"])
        wait_for(lambda: bed.a.pair_status()["role"] == "standby", "A standby", timeout=20)
        lost = wait_for(lambda: (lambda x: x if x["state"] != "pending" else None)(
            bed.b.ctl("pair", "lost")), "B's lost writes listed", timeout=20)
        after = {dc: n.pair_status() for dc, n in nodes.items()}
        changes = lost.get("changes", [])
        listed = [(c["kind"], c.get("site", {}).get("name")) for c in changes]
        print(f"healed: B {after['b']['role']} epoch {after['b']['epoch']}, A "
              f"{after['a']['role']}; B lists {lost['state']}: {listed}; B's status "
              f"lost_writes {after['b']['pair'].get('lost_writes')} lost_changes "
              f"{after['b']['pair'].get('lost_changes')}")
        assert after["b"]["role"] == "active", after["b"]
        assert "fenced" not in alarms(after["b"]), after["b"]
        assert lost["state"] == "listed", lost
        assert [n for k, n in listed if k == "site_put"] == (taken if preferred == "a" else []), \
            listed
        assert after["b"]["pair"]["lost_writes"] == "listed", after["b"]["pair"]
        assert int(after["b"]["pair"]["lost_changes"]) == len(changes), after["b"]["pair"]
        # Writes lost raise an alarm on B until acknowledged; none lost, none.
        if changes:
            wait_for(lambda: "writes_lost" in alarms(bed.b.pair_status()), "writes_lost on B", 5)
        else:
            assert "writes_lost" not in alarms(bed.b.pair_status()), bed.b.pair_status()
        bed.wait_edge(vip(4), "b")
        # A resynced from B: with "this" on A neither node holds A's writes;
        # with "this" on B both hold B's.
        wait_for(lambda: site_names(bed.a) == site_names(bed.b), "A resynced", timeout=20)
        kept = before | (set(taken) if preferred == "b" else set())
        assert site_names(bed.b) == kept, (site_names(bed.b), kept)
