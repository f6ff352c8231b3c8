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


def test_backbone_cut_two_actives_the_one_that_loses_the_route_is_fenced():
    # BFD at 50 ms x 5: not about detection here, and a BGP session flapping
    # under this shared machine's load moves the routes (docs/routed.md).
    with DcBed(participants=4, bfd_ms=50, bfd_mult=5) as bed:
        start_pair_meeting(bed, None)
        nodes = {"a": bed.a, "b": bed.b}
        samples = []

        def split():
            netns.run(["ip", "-n", bed.a.ns, "link", "set", "bb0", "down"])
            wait_for(lambda: all("peer_lost" in alarms(n.pair_status()) for n in nodes.values()),
                     "peer_lost on both")
            netns.run(["ip", "-n", bed.a.ns, "link", "set", "sw0", "down"])
            wait_for(lambda: bed.b.pair_status()["role"] == "active", "B active")
            netns.run(["ip", "-n", bed.a.ns, "link", "set", "sw0", "up"])
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
