"""The test bed itself: participants on the bridge talk with real sockets and
real ARP/ND, and everything is gone after close(). These run without the
switch, so a failure here points at the machine or the framework."""
import subprocess

import pytest

from helpers import netns
from helpers.participants import Flow, run_flows


def _flows_between(hosts, family, count=40, rate=100):
    """Each host sends to every other host directly (no switch)."""
    flows = []
    for h in hosts:
        ep = h.endpoint4 if family == 4 else h.endpoint6
        flows.append(Flow(host=h, sender_id=h.index + 1, bind=ep(5000), count=count, rate=rate,
                          to=[(o.endpoint4 if family == 4 else o.endpoint6)(5000)
                              for o in hosts if o is not h]))
    return flows


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_participants_reach_each_other_directly(testbed, family):
    hosts = [testbed.add_participant(f"p{i}", i) for i in range(3)]
    reports = run_flows(testbed, _flows_between(hosts, family), start_delay=0.3, warmup=0.3,
                        tail=0.5)
    for r in hosts:
        rep = reports[r.index + 1]
        assert rep.sent == 2 * 40
        for s in hosts:
            if s is r:
                continue
            src = (s.endpoint4 if family == 4 else s.endpoint6)(5000)
            got = rep.from_sender(s.index + 1)
            assert list(got) == [src], rep
            st = got[src]
            assert (st["received"], st["duplicates"], st["corrupt"]) == (40, 0, 0), rep


def test_node_interface_has_no_addresses(testbed):
    node = testbed.add_node("node")
    out = testbed.run_in(node, ["ip", "-o", "addr", "show", "dev", "sw0"]).stdout
    assert out.strip() == "", out
    up = testbed.run_in(node, ["ip", "-br", "link", "show", "sw0"]).stdout
    assert up.split()[1] == "UP", up
    v6 = testbed.run_in(node, ["cat", "/proc/sys/net/ipv6/conf/sw0/disable_ipv6"]).stdout
    assert v6.strip() == "1"


def test_close_removes_namespaces_processes_and_files():
    bed = netns.Testbed()
    p = bed.add_participant("p0", 0)
    bed.add_node("node")
    d = bed.tmpdir("x")
    (d / "f").write_text("x")
    proc = bed.popen(p, ["sleep", "60"])
    names = set(netns._netns_names())
    assert {f"{bed.prefix}-br", f"{bed.prefix}-p0", f"{bed.prefix}-node"} <= names
    bed.close()
    assert proc.poll() is not None
    assert not any(n.startswith(bed.prefix + "-") for n in netns._netns_names())
    assert not d.exists()
    # Nothing of ours leaked into the root namespace either.
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert bed.prefix not in links
