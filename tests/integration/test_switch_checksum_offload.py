"""Participants beside the switch whose kernel leaves UDP checksums partial
(issue 13.5).

A container's veth or a VM's virtio NIC with TX checksum offload hands the
frame on with CHECKSUM_PARTIAL: the UDP checksum field holds only the folded
pseudo-header sum, and whoever puts the frame on a wire is to finish it. The
switch's port (net_af_packet or net_af_xdp on a veth) receives it as it is;
the switch must complete the checksum, or every receiver's kernel drops every
copy (UDP InCsumErrors). The test beds leave offload on (helpers/netns.py),
as the world does; this test checks that it is on, so it cannot pass by
testing something easier.
"""
import pytest

from helpers.meeting import check_exactly_once, member_flows, table_lines
from helpers.participants import run_flows

CASES = [
    pytest.param(4, id="ipv4"),
    pytest.param(6, id="ipv6"),
    pytest.param(4, id="ipv4-af_xdp", marks=pytest.mark.switch_pmd("af_xdp")),
    pytest.param(6, id="ipv6-af_xdp", marks=pytest.mark.switch_pmd("af_xdp")),
]


@pytest.mark.parametrize("family", CASES)
def test_every_pair_forwards_with_checksum_offload_on(meeting, family):
    everyone = meeting.members + [meeting.outsider]  # 4 participants, 12 ordered pairs
    off = [h.name for h in everyone if not h.tx_checksum_offload()]
    assert not off, f"TX checksum offload is off on {off}: the test would prove nothing"
    errors_before = {h.name: h.udp_in_csum_errors(family) for h in everyone}
    completed_before = meeting.tables.stats()["totals"]["csum_completed"]

    meeting.tables.apply(table_lines(everyone, family))
    count = 100
    reports = run_flows(meeting.bed, member_flows(everyone, family, count=count))

    problems = check_exactly_once(reports, everyone, everyone, family, count)
    errors = {h.name: h.udp_in_csum_errors(family) - errors_before[h.name] for h in everyone}
    totals = meeting.tables.stats()["totals"]
    print(f"IPv{family}: receivers' UDP checksum errors {errors}; switch: rx "
          f"{totals['rx_packets']}, forwarded {totals['forwarded_in']}, tx {totals['tx_packets']}, "
          f"drops { {k: v for k, v in totals['drops'].items() if v} }")
    assert not problems, "\n".join(problems)
    assert not any(errors.values()), f"receivers dropped copies as corrupt: {errors}"
    # Every data packet arrived partial and was completed (the warm-up
    # packets too, but for those that found no receiver resolved yet): the
    # test exercised the case it is about.
    completed = meeting.tables.stats()["totals"]["csum_completed"] - completed_before
    data, sent = len(everyone) * count, len(everyone) * (count + 3)
    print(f"checksums completed by the switch: {completed}; {data} data packets, {sent} in all")
    assert data <= completed <= sent, f"{completed} partial checksums completed"
