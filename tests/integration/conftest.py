"""Fixtures for Tandem's namespace integration tests.

Run as root with Debian's Python: /usr/bin/python3 -m pytest tests/integration
(scripts/test.sh does). The binaries come from $TANDEM_BUILD_DIR (default
build/); scripts/setup.sh records there whether DPDK may use hugepages.

Fixtures:
  testbed   an empty Testbed (bridge namespace only)
  meeting   a Testbed with participants p0, p1, p2 (the members), p3 (an
            outsider) and a node namespace running tandem-switch; .tables
            fills its session tables
Everything a fixture creates is removed when the test ends, fails or is
interrupted (SIGINT, SIGTERM).
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ControlDaemon  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import VIP_PORT_BASE  # noqa: E402
from helpers.netns import VIP4, VIP6  # noqa: E402
from helpers.switch import Switch  # noqa: E402
from helpers.tables import Tables  # noqa: E402


def _interrupt(signum, frame):
    # Turn SIGTERM/SIGHUP into what SIGINT does, so every fixture's
    # clean-up runs before the process ends.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration tests need root (network namespaces)")
    config.addinivalue_line("markers", "testbed_mtu(n): MTU of every link of the test bed")
    config.addinivalue_line("markers", "switch_pmd(name): af_packet (default) or af_xdp")
    config.addinivalue_line("markers", "switch_workers(n): worker lcores of the switch (1)")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    netns.sweep_stale()


@pytest.fixture
def testbed():
    bed = netns.Testbed()
    try:
        yield bed
    finally:
        bed.close()


class Meeting:
    """A test bed for one switch and its participants."""

    def __init__(self, bed, pmd, workers=1):
        self.bed = bed
        self.members = [bed.add_participant(f"p{i}", i) for i in range(3)]
        self.outsider = bed.add_participant("p3", 3)
        self.node = bed.add_node("node")
        self.switch = Switch(bed, self.node, pmd=pmd, workers=workers)
        self.tables = Tables.of(self.switch)

    def close(self):
        self.switch.close()


@pytest.fixture
def meeting(request):
    """Participants and a running switch (on net_af_packet). A test may ask
    for another MTU on every link with @pytest.mark.testbed_mtu(N) and for the
    switch's port on net_af_xdp with @pytest.mark.switch_pmd("af_xdp")."""
    marker = request.node.get_closest_marker("testbed_mtu")
    mtu = marker.args[0] if marker else 1500
    marker = request.node.get_closest_marker("switch_pmd")
    pmd = marker.args[0] if marker else "af_packet"
    marker = request.node.get_closest_marker("switch_workers")
    workers = marker.args[0] if marker else 1
    bed = netns.Testbed(mtu=mtu)
    m = None
    try:
        m = Meeting(bed, pmd, workers)
        m.switch.start()
        yield m
    finally:
        if m is not None:
            m.close()
        bed.close()


@pytest.fixture
def control(meeting):
    """tandem-control on the meeting's switch: its shm dir, its VIPs, 100 VIP ports."""
    sw = meeting.switch
    d = ControlDaemon(meeting.bed.tmpdir("ctl"), node=sw.node, shm_dir=sw.shm_dir,
                      vips=(VIP4, VIP6), ports=f"{VIP_PORT_BASE}-{VIP_PORT_BASE + 99}",
                      legs=sw.legs, meetings=sw.meetings)
    try:
        d.start()
        yield d
    finally:
        d.close()
