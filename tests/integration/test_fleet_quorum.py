"""etcd's quorum lost under a running pair (issue 18: "Kill the etcd quorum:
placement fails clearly, running meetings and takeovers within pairs go on").
The bed of test_fleet_witness.py (a pair with switches using etcd as its
witness, a three-member cluster); a meeting streams; two of the three members
are killed; then the active's switch is killed (kill -9). The standby takes
over without etcd (the witness's rule W6: the peer is still heard on the
backbone, so no partition is in question) and stays active although nobody
can hold the key (W9: the old active, demoted and without its switch, says so
on the replication connection), the meeting's media goes on, and a placement
fails with a clear error. Both roles are sampled from the tables every 2 ms
all along."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ctl_binary  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import sender_id  # noqa: E402
import test_fleet_witness  # noqa: E402
from test_fleet_witness import A, B, Sampler, media, start_meeting, wait_leader  # noqa: E402

witnessed = test_fleet_witness.witnessed  # the fixture: its bed


def test_quorum_lost_placement_fails_clearly_and_a_takeover_within_the_pair_goes_on(witnessed):
    bed = witnessed
    wait_leader(bed, bed.a)
    start_meeting(bed.a, bed.participants)
    bed.wait_synced()
    count, run = media(bed, 6)
    time.sleep(run.data_starts_after + 1.0)
    etcd = bed.etcd
    first = etcd.leader()
    etcd.kill(first)
    etcd.kill(next(i for i, p in enumerate(etcd.procs) if p is not None))
    time.sleep(0.5)
    sampler = Sampler(bed)
    bed.a.switch.kill()
    t_kill = time.monotonic()
    while bed.b.role() != "active":
        assert time.monotonic() - t_kill < 5, "the standby did not take over without etcd"
        time.sleep(0.02)
    took_over = time.monotonic() - t_kill
    # Placement, from node B's namespace (it reaches the cluster on et0).
    started = time.monotonic()
    p = netns.run(["ip", "netns", "exec", bed.b.host.ns, str(ctl_binary()), "fleet", "place",
                   "m-quorum", "--etcd", etcd.endpoints, "--prefix", bed.prefix,
                   "--etcd-timeout", "2"], check=False, timeout=30)
    place_s = time.monotonic() - started
    reports = run.wait()
    samples = sampler.finish()
    print(f"\nquorum lost; B active {took_over * 1000:.0f} ms after A's switch was killed; "
          f"placement: exit {p.returncode} after {place_s:.1f} s: {p.stderr.strip()[:160]}")
    assert p.returncode == 3 and "etcd unreachable" in p.stderr, (p.returncode, p.stderr)
    # Once active, B stayed so at every sample to the end of the media; A,
    # without its switch, never came back (its table says standby).
    since = next(s for s in samples if s[B] == "active")
    after = samples[samples.index(since):]
    print(f"{len(after)} samples after the takeover: B standby in "
          f"{sum(1 for s in after if s[B] != 'active')}")
    assert all(s[B] == "active" for s in after), "the new active stepped down"
    assert after[-1][A] == "standby", after[-1]
    assert bed.b.role() == "active"
    for h in bed.participants:
        for other in bed.participants:
            if other is h:
                continue
            got = reports[sender_id(h)].from_sender(sender_id(other))
            assert got, f"{h.name} received nothing from {other.name}"
            st = next(iter(got.values()))
            print(f"{h.name} received {st['received']}/{count} from {other.name}, "
                  f"longest gap {st['max_gap_ms']:.0f} ms")
            # The meeting went on through the takeover: all but the gap's
            # packets, and the stream's end.
            assert st["received"] >= count - 50, st
            assert not [x for x in st.get("missing", []) if x >= count - 10], st
