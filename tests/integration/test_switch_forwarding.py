"""tandem-switch forwarding a meeting between participant namespaces (issue 2).

The switch runs in the node namespace on sw0 (net_af_packet); participants
are kernel UDP sockets that find the VIP by ARP/ND. Member i owns the leg
(198.18.0.(10+i):5000 | [2001:db8:1::(10+i)]:5000) <-> VIP:(20000+i).
"""
import time

import pytest

from helpers.meeting import (VIP_PORT_BASE, check_exactly_once, leg_id,
                             member_flows, own_endpoint, sender_id, table_lines, vip_endpoint)
from helpers.participants import Flow, FlowRun, run_flows

FAMILIES = pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])


@FAMILIES
def test_members_receive_each_other_exactly_once(meeting, family):
    meeting.tables.apply(table_lines(meeting.members, family))
    reports = run_flows(meeting.bed, member_flows(meeting.members, family, count=100))
    for m in meeting.members:
        assert reports[sender_id(m)].sent == 100
    problems = check_exactly_once(reports, meeting.members, meeting.members, family, 100)
    assert not problems, "\n".join(problems)
    assert meeting.switch.stop() == 0, "tandem-switch exits cleanly on SIGTERM"


@pytest.mark.switch_pmd("af_xdp")
def test_members_receive_each_other_exactly_once_on_af_xdp(meeting):
    """The same meeting with the switch's port on net_af_xdp instead."""
    meeting.tables.apply(table_lines(meeting.members, 4))
    reports = run_flows(meeting.bed, member_flows(meeting.members, 4, count=100))
    problems = check_exactly_once(reports, meeting.members, meeting.members, 4, 100)
    assert not problems, "\n".join(problems)


@FAMILIES
@pytest.mark.switch_workers(2)
def test_two_workers_share_the_port_and_deliver_exactly_once(meeting, family):
    """Two worker lcores, one RX/TX queue each (net_af_packet qpairs=2: the
    kernel spreads flows over the queues by their hash): every member gets
    every other member's packets exactly once, and both workers took packets from the port. On a two-CPU machine the
    second worker shares a CPU with the main lcore (eal.cpus)."""
    m = meeting
    m.tables.apply(table_lines(m.members, family))
    # Unknown sources from 32 source ports: 32 flows for the hash to spread,
    # so both queues see packets whatever the three members' flows hash to.
    stray = [Flow(host=m.outsider, sender_id=sender_id(m.outsider) + port,
                  bind=own_endpoint(m.outsider, family, 6000 + port), count=20, rate=50.0,
                  to=[vip_endpoint(family, VIP_PORT_BASE)]) for port in range(32)]
    reports = run_flows(m.bed, member_flows(m.members, family, count=100) + stray)
    problems = check_exactly_once(reports, m.members, m.members, family, 100)
    assert not problems, "\n".join(problems)
    workers = m.tables.stats()["workers"]
    assert len(workers) == 2, workers
    rx = [w["rx_packets"] for w in workers]
    assert all(n > 0 for n in rx), f"a worker took nothing from the port: rx {rx}"
    assert sum(w["forwarded_in"] for w in workers) >= 3 * 100, workers
    print(f"\nrx per worker {rx}, forwarded_in {[w['forwarded_in'] for w in workers]}")


@FAMILIES
def test_non_member_reaches_nobody(meeting, family):
    meeting.tables.apply(table_lines(meeting.members, family))
    before = meeting.tables.drops()
    outsider = meeting.outsider
    # The outsider sends to every member's VIP port, from the media port.
    intruder = Flow(host=outsider, sender_id=sender_id(outsider),
                    bind=own_endpoint(outsider, family), count=100, rate=50.0,
                    to=[vip_endpoint(family, VIP_PORT_BASE + m.index) for m in meeting.members])
    flows = member_flows(meeting.members, family, count=100) + [intruder]
    reports = run_flows(meeting.bed, flows)
    after = meeting.tables.drops()

    problems = check_exactly_once(reports, meeting.members, meeting.members, family, 100)
    assert not problems, "\n".join(problems)
    for m in meeting.members:
        got = reports[sender_id(m)].from_sender(sender_id(outsider))
        assert not got, f"{m.name} received the outsider's packets: {got}"
    assert reports[sender_id(outsider)].data_packets() == 0, reports[sender_id(outsider)]
    # 3 warm-up packets and 100 data packets to each of 3 VIP ports.
    sent = reports[sender_id(outsider)].sent + 3 * 3
    unknown = after["unknown_leg"] - before["unknown_leg"]
    assert unknown >= sent, f"unknown_leg drops grew by {unknown}, outsider sent {sent}"


def test_removed_leg_stops_while_others_go_on(meeting):
    family = 4
    members = meeting.members
    gone = members[2]
    meeting.tables.apply(table_lines(members, family))
    count, rate = 250, 50.0
    run = FlowRun(meeting.bed, member_flows(members, family, count=count, rate=rate))
    # Remove the leg half-way through the data.
    time.sleep(run.data_starts_after + count / rate / 2)
    meeting.tables.apply(f"remove-leg {leg_id(gone)}\n")
    reports = run.wait()

    stayers = [m for m in members if m is not gone]
    problems = check_exactly_once(reports, stayers, stayers, family, count)
    assert not problems, "\n".join(problems)
    for r in stayers:
        got = reports[sender_id(r)].from_sender(sender_id(gone))
        src = vip_endpoint(family, VIP_PORT_BASE + r.index)
        assert list(got) == [src], got
        st = got[src]
        # A prefix of the removed leg's packets, then nothing.
        assert 50 <= st["received"] <= count - 50, st
        assert st["duplicates"] == 0 and st["corrupt"] == 0, st
        assert st["missing"][0] == st["received"], f"packets after the removal got through: {st}"
    # The removed participant stops receiving the others too.
    rep = reports[sender_id(gone)]
    for s in stayers:
        got = rep.from_sender(sender_id(s))
        received = sum(v["received"] for v in got.values())
        assert 50 <= received <= count - 50, f"{gone.name} from {s.name}: {got}"
    assert meeting.switch.alive()


def test_restarted_switch_forwards_without_reloading_tables(meeting):
    family = 4
    members = meeting.members
    meeting.tables.apply(table_lines(members, family))
    reports = run_flows(meeting.bed, member_flows(members, family, count=50))
    problems = check_exactly_once(reports, members, members, family, 50)
    assert not problems, "before the restart:\n" + "\n".join(problems)

    tables_before = meeting.tables.show()
    meeting.switch.kill()
    meeting.switch.start()  # same config, same shm_dir; the tables are not touched
    reports = run_flows(meeting.bed, member_flows(members, family, count=100))
    problems = check_exactly_once(reports, members, members, family, 100)
    assert not problems, "after the restart:\n" + "\n".join(problems)
    tables_after = meeting.tables.show()
    assert tables_after["change_count"] == tables_before["change_count"]
    assert len(tables_after["legs"]) == 3
