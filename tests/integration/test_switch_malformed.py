"""A barrage of malformed and unsupported frames while a meeting's media flows.

The bad frames come from a member's namespace on a raw packet socket and
claim to be that member's leg (IPv4 and IPv6), so only the switch's checks
keep them out of the meeting. Legitimate media keeps flowing, the switch
stays up, and its drop counters account for every bad frame.
"""
import json
import subprocess
import time

import pytest

from helpers import paths
from helpers.meeting import (MEDIA_PORT, VIP_PORT_BASE, member_flows,
                             sender_id, table_lines)
from helpers.netns import VIP4, VIP6
from helpers.participants import FlowRun
from helpers.tables import BAD_INPUT_DROPS

FRAMES_PER_KIND = 20


def _bad_input_drops(tables):
    drops = tables.drops()
    return sum(drops.get(r, 0) for r in BAD_INPUT_DROPS), drops


# net_af_xdp, because net_af_packet's socket (PACKET_FANOUT_FLAG_DEFRAG) hands
# IPv4 fragments to the kernel's reassembly and the switch would never see
# them. An MTU above the switch's 1500 lets oversized frames reach it; XDP on
# a veth takes up to about 3500.
@pytest.mark.switch_pmd("af_xdp")
@pytest.mark.testbed_mtu(3000)
def test_malformed_barrage_while_media_flows(meeting):
    members = meeting.members
    attacker = members[2]
    # The members in an IPv4 meeting (the media) and an IPv6 one, so that the
    # bad frames' addresses and ports are those of real legs.
    meeting.tables.apply(table_lines(members, 4, meeting_id=1)
                         + table_lines(members, 6, meeting_id=2, preamble=False))
    count, rate = 300, 50.0
    run = FlowRun(meeting.bed, member_flows(members, 4, count=count, rate=rate))
    barrage = meeting.bed.popen(attacker, [
        paths.PYTHON, paths.TOOLS / "barrage.py", "--iface", attacker.iface,
        "--src-mac", attacker.mac(), "--dst-mac", meeting.node.mac(),
        "--src", attacker.ip4, "--vip", VIP4, "--src6", attacker.ip6, "--vip6", VIP6,
        "--sport", MEDIA_PORT, "--dport", VIP_PORT_BASE + attacker.index],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    kinds = json.loads(barrage.stdout.readline())["kinds"]
    # Start once the media flows.
    time.sleep(max(0.0, run.data_starts_after + 0.5 - (time.monotonic() - started)))

    total_before, drops_before = _bad_input_drops(meeting.tables)
    uncounted = []
    total_sent = 0
    for kind in kinds:
        before, by_reason_before = _bad_input_drops(meeting.tables)
        barrage.stdin.write(f"{kind} {FRAMES_PER_KIND}\n")
        barrage.stdin.flush()
        result = json.loads(barrage.stdout.readline())
        assert result["sent"] == FRAMES_PER_KIND, f"could not send {kind}: {result}"
        total_sent += result["sent"]
        # Counters are per worker, summed on read: poll briefly.
        deadline = time.monotonic() + 2.0
        while True:
            after, by_reason_after = _bad_input_drops(meeting.tables)
            if after - before >= FRAMES_PER_KIND or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if after - before < FRAMES_PER_KIND:
            grew = {r: by_reason_after[r] - by_reason_before.get(r, 0) for r in by_reason_after
                    if by_reason_after[r] != by_reason_before.get(r, 0)}
            uncounted.append(f"{kind}: {after - before} of {FRAMES_PER_KIND} counted "
                             f"(counters that grew: {grew})")
        assert meeting.switch.alive(), f"tandem-switch died on {kind}"
    barrage.stdin.write("quit\n")
    barrage.stdin.flush()
    barrage.wait(timeout=10)
    total_after, drops_after = _bad_input_drops(meeting.tables)
    reports = run.wait()

    assert meeting.switch.alive()
    assert not uncounted, "bad frames not counted as dropped:\n" + "\n".join(uncounted)
    assert total_after - total_before >= total_sent, (drops_before, drops_after, total_sent)

    # Media went on: nothing duplicated, corrupted or injected; loss within a
    # tiny margin (1%).
    problems = []
    for r in members:
        rep = reports[sender_id(r)]
        for s in members:
            if s is r:
                continue
            got = rep.from_sender(sender_id(s))
            received = sum(st["received"] for st in got.values())
            if received < 0.99 * count or any(st["duplicates"] or st["corrupt"]
                                              for st in got.values()):
                problems.append(f"{r.name} from {s.name}: {got}")
        foreign = {src: st["foreign"] for src, st in rep.sources.items() if st["foreign"]}
        if foreign:
            problems.append(f"{r.name} received bad frames that were forwarded: {foreign}")
    assert not problems, "\n".join(problems)
