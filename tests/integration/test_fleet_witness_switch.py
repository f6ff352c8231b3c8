"""The switch enforces the witness's step-down (issue 18, docs/fleet.md
"Step-down enforced by the switch"). The bed of test_fleet_witness.py: a pair
with switches whose control daemons use etcd as the witness. The active's
control daemon is killed (kill -9) and its node cut off from its peer on both
paths: nothing renews its hold on the pair's key, yet its switch, which the
tables still tell it is active, would forward for the VIPs for good. It must go
quiet when the hold ends, before the standby, which acquires the key once the
lease expired, takes over: never one node serving while the other is active."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from helpers.tables import Tables  # noqa: E402
import test_fleet_witness  # noqa: E402
from test_fleet_witness import ETCD_TICK_S, GUARD_MS, MARGIN_MS, RENEW_MS, TTL_S, leader, wait_leader  # noqa: E402

witnessed = test_fleet_witness.witnessed  # the fixture: its bed


def quiet(node):
    """Why the node's switch does not serve though its tables say active."""
    return Tables.of(node.switch).stats()["pair"]["quiet"]


def test_switch_of_an_active_whose_control_died_goes_quiet_when_the_hold_ends(witnessed):
    bed = witnessed
    wait_leader(bed, bed.a)
    epoch = int(bed.a.status()["epoch"])
    time.sleep(2 * RENEW_MS / 1000)  # a renewal or two written for the switch
    assert quiet(bed.a) == [], "A's switch is quiet while its control holds the key"
    bed.a.control.kill9()
    t_kill = time.monotonic()
    bed.partition(bed.a)
    # (t, A's switch quiet, B's role, t after): until B is active and a while after.
    samples = []
    deadline = t_kill + 3 * TTL_S + 5
    b_active_at = None
    while time.monotonic() < deadline:
        t = time.monotonic()
        q = quiet(bed.a)
        r = bed.b.role()
        samples.append((t, q, r, time.monotonic()))
        if r == "active" and b_active_at is None:
            b_active_at = t
        if b_active_at is not None and t - b_active_at > 1.0:
            break
    went_quiet = next((s for s in samples if "witness_expired" in s[1]), None)
    b_up = next((s for s in samples if s[2] == "active"), None)
    period = max(s[3] - s[0] for s in samples)
    at = lambda s: "never" if s is None else f"{s[0] - t_kill:.2f} s"  # noqa: E731
    print(f"{len(samples)} samples (slowest {period * 1000:.0f} ms); after the kill: A's switch "
          f"quiet at {at(went_quiet)}, B active at {at(b_up)}")
    assert went_quiet is not None, "A's switch went on serving with its control dead"
    assert b_up is not None, "the standby did not take over"
    both = [s for s in samples if not s[1] and s[2] == "active"]
    assert both == [], f"A's switch served while B was active: {both[:3]}"
    assert went_quiet[3] <= b_up[0], (went_quiet, b_up)
    # The hold ends TTL - MARGIN after the last acknowledged renewal, which
    # was sent before the kill.
    assert went_quiet[0] - t_kill <= TTL_S - MARGIN_MS / 1000 + period + 0.2, went_quiet
    assert b_up[3] - t_kill <= TTL_S + ETCD_TICK_S + (RENEW_MS + GUARD_MS) / 1000 + period + 1.0
    held = leader(bed.etcd, bed.prefix)
    assert held["node_id"] == "nb" and int(held["epoch"]) > epoch, held
    # Healed, A's switch hears B active in a higher epoch: it stays quiet.
    bed.heal(bed.a)
    time.sleep(1.0)
    after = quiet(bed.a)
    assert "peer_active" in after, after
    assert bed.b.role() == "active"
