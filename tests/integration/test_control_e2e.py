"""The control plane driving the real switch (issue 3): a meeting set up and
changed through tandemctl, real UDP media between participant namespaces,
usage read back through the API, and kill -9 of tandem-control while media
flows. The switch runs in the node namespace (meeting fixture of conftest.py);
tandem-control runs beside it on the same tables and state regions."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers.meeting import (VIP_PORT_BASE, check_exactly_once, member_flows,  # noqa: E402
                             own_endpoint, sender_id, vip_endpoint)
from helpers.participants import FlowRun, run_flows  # noqa: E402


WARMUPS = 3  # warm-up packets each participant sends per destination


def join_members(d, members, family):
    """Site, live meeting, and one audio leg per member through tandemctl:
    member i at (own :5000) <-> VIP:(20000 + i), as helpers/meeting.py expects."""
    site = d.ctl("site", "create", "--name", "acme")["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "e2e")["meeting_id"]
    d.ctl("meeting", "start", m)
    parts = {}
    for h in members:
        local = vip_endpoint(family, VIP_PORT_BASE + h.index)
        p = d.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                  f"audio,{own_endpoint(h, family)},local={local}")["participants"][0]
        assert p["legs"][0]["local"] == local
        parts[h.name] = p
    return site, m, parts


def received_from(report, sender):
    """Packets a participant received from `sender`: data, duplicates, warm-ups."""
    total = 0
    for st in report.sources.values():
        s = st["senders"].get(str(sender_id(sender)))
        if s:
            total += s["received"] + s["duplicates"] + s["warmup"]
    return total


def data_from(report, sender):
    return sum(s["received"] for s in report.from_sender(sender_id(sender)).values())


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_meeting_through_tandemctl(meeting, control, family):
    d = control
    members = meeting.members
    a, muted, leaver = members
    site, m, parts = join_members(d, members, family)
    status = d.ctl("status")
    assert status["switch_running"] and status["role"] == "active"

    count, rate = 250, 50.0
    run = FlowRun(meeting.bed, member_flows(members, family, count=count, rate=rate))
    time.sleep(run.data_starts_after + 1.5)
    d.ctl("participant", "mute", parts[muted.name]["participant_id"])
    time.sleep(1.5)
    leaver_usage = d.ctl("show", "usage", "--leg", parts[leaver.name]["legs"][0]["leg_id"])
    d.ctl("participant", "leave", parts[leaver.name]["participant_id"])
    reports = run.wait()
    ra, rm, rl = (reports[sender_id(h)] for h in members)

    # a and the muted one go on with each other; the muted one still receives.
    problems = check_exactly_once(reports, [muted], [a], family, count)
    assert not problems, "\n".join(problems)
    # Nobody receives the muted one after the mute: a got only a part of it.
    got_muted = data_from(ra, muted)
    assert 0 < got_muted < count, f"a received {got_muted} of the muted participant's packets"
    # The leaver's packets stop reaching anyone, and it gets nothing more.
    assert 0 < data_from(ra, leaver) < count
    assert data_from(rm, leaver) == data_from(ra, leaver)
    assert 0 < data_from(rl, a) < count

    # Usage of the legs still live equals what each sent and received.
    for h, r in ((a, ra), (muted, rm)):
        u = d.ctl("show", "usage", "--leg", parts[h.name]["legs"][0]["leg_id"])
        assert u["packets_in"] == r.sent + WARMUPS, (h.name, u, r.sent)
        expected_out = sum(received_from(r, s) for s in members if s is not h)
        assert u["packets_out"] == expected_out, (h.name, u)
        assert u["bytes_in"] >= u["packets_in"] * 200
        assert u["first_packet_unix_ns"] <= u["last_packet_unix_ns"]
    um = d.ctl("show", "usage", "--leg", parts[muted.name]["legs"][0]["leg_id"])
    assert um["drop_not_allowed"] == count - got_muted
    # The leaver's usage was kept when it left (its participant's usage).
    ul = d.ctl("show", "usage", "--participant", parts[leaver.name]["participant_id"])
    assert ul["packets_in"] >= leaver_usage["packets_in"] > 0
    assert ul["packets_out"] == sum(received_from(rl, s) for s in members if s is not leaver)
    # The meeting's usage sums its participants'.
    total = d.ctl("show", "usage", "--meeting", m)
    assert total["packets_in"] == sum(
        d.ctl("show", "usage", "--participant", p["participant_id"])["packets_in"]
        for p in parts.values())
    assert d.ctl("show", "ports")["ports"][0]["link_up"]
    assert meeting.switch.alive()


def test_kill9_control_while_media_flows(meeting, control):
    d = control
    family = 4
    members = meeting.members
    site, m, parts = join_members(d, members, family)
    before = d.ctl("show", "legs")["legs"]

    count, rate = 200, 50.0
    run = FlowRun(meeting.bed, member_flows(members, family, count=count, rate=rate))
    time.sleep(run.data_starts_after + 1.0)
    d.kill9()
    time.sleep(0.5)
    d.start()
    reports = run.wait()
    # Not one packet of an existing leg was lost to the daemon's death.
    problems = check_exactly_once(reports, members, members, family, count)
    assert not problems, "\n".join(problems)
    assert "adopted 3 legs" in d.log()
    assert [{k: v for k, v in leg.items() if k != "usage"} for leg in d.ctl("show", "legs")["legs"]] \
        == [{k: v for k, v in leg.items() if k != "usage"} for leg in before]

    # The adopted legs can be changed, and the switch follows: mute the first.
    first = members[0]
    d.ctl("participant", "mute", parts[first.name]["participant_id"])
    reports = run_flows(meeting.bed, member_flows(members, family, count=20))
    others = members[1:]
    problems = check_exactly_once(reports, others, others, family, 20)
    assert not problems, "\n".join(problems)
    for r in others:
        assert data_from(reports[sender_id(r)], first) == 0
    assert data_from(reports[sender_id(first)], others[0]) == 20


def test_kill9_switch_resumes_every_leg_and_usage_continues(meeting, control):
    """kill -9 of tandem-switch and a restart: forwarding resumes for every leg
    within a second, without the daemon re-sending anything, and usage
    counters go on from where they were."""
    d = control
    family = 4
    members = meeting.members
    site, m, parts = join_members(d, members, family)
    run_flows(meeting.bed, member_flows(members, family, count=50))
    leg = parts[members[0].name]["legs"][0]["leg_id"]
    before = d.ctl("show", "usage", "--leg", leg)
    assert int(before["packets_in"]) >= 50, before

    meeting.switch.kill()
    started = time.monotonic()
    meeting.switch.start()
    reports = run_flows(meeting.bed, member_flows(members, family, count=50), start_delay=0.0,
                        warmup=0.3)
    resumed_within = time.monotonic() - started
    problems = check_exactly_once(reports, members, members, family, 50)
    assert not problems, "\n".join(problems)
    after = d.ctl("show", "usage", "--leg", leg)
    # The 50 new packets (and the warm-ups) add to the counts from before the kill.
    assert int(after["packets_in"]) >= int(before["packets_in"]) + 50, (before, after)
    print(f"\nswitch restarted and forwarding every leg after {resumed_within:.2f} s "
          f"(including the participants' warm-up)")
