"""Packet capture while the switch forwards (issue 19): the switch calls
rte_pdump_init, so dpdk-dumpcap, a DPDK secondary process of the switch's
--file-prefix, records a port's traffic into pcapng; tcpdump reads it back
and finds the meeting's media, to and from the VIP."""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import paths  # noqa: E402
from helpers.meeting import member_flows  # noqa: E402
from helpers.netns import VIP4  # noqa: E402
from helpers.participants import FlowRun  # noqa: E402
from test_control_e2e import join_members  # noqa: E402


def test_dumpcap_records_a_meetings_media(meeting, control):
    if not paths.hugepages_ok():
        # A --no-huge primary's memory cannot be shared with a secondary process.
        pytest.skip("no hugepages (scripts/setup.sh reserves them): dpdk-dumpcap needs them")
    join_members(control, meeting.members, 4)
    out = meeting.bed.tmpdir("cap", root="/tmp") / "access.pcapng"
    run = FlowRun(meeting.bed, member_flows(meeting.members, 4, count=200, rate=50.0))
    try:
        time.sleep(run.data_starts_after)
        cap = subprocess.run(
            ["dpdk-dumpcap", f"--file-prefix={meeting.switch.file_prefix}", "-i", "net_af_packet0",
             "-w", str(out), "-c", "60", "-a", "duration:20", "-q"],
            capture_output=True, text=True, timeout=60)
        assert cap.returncode == 0, cap.stdout + cap.stderr
    finally:
        reports = run.wait()
    # The capture did not disturb forwarding: every receiver got the others' data.
    for r in reports.values():
        assert r.data_packets() >= 2 * 200 * 0.95, r
    with open(out, "rb") as f:
        assert f.read(4) == b"\x0a\x0d\x0d\x0a", "not pcapng (section header block)"
    tcpdump = subprocess.run(["tcpdump", "-nn", "-r", str(out), "udp"], capture_output=True,
                             text=True, timeout=30)
    assert tcpdump.returncode == 0, tcpdump.stderr
    lines = tcpdump.stdout.splitlines()
    assert len(lines) >= 50, tcpdump.stdout + tcpdump.stderr
    # In: participant -> VIP:port of its leg; out: VIP:port -> participant.
    to_vip = [x for x in lines if re.search(rf"> {re.escape(VIP4)}\.\d+:", x)]
    from_vip = [x for x in lines if re.search(rf"IP {re.escape(VIP4)}\.\d+ >", x)]
    assert to_vip and from_vip, tcpdump.stdout
