"""Shared-NIC mode (issue 6, docs/shared-nic.md): tandem-switch on net_af_xdp
with its XDP steering program, on one veth that also carries the node host's
own kernel traffic.

The node namespace's sw0 has kernel addresses (HOST4, HOST6) as well as being
the switch's port. The program redirects to the switch only the VIPs' media
(UDP to a VIP, destination port in shared_nic.media_ports), ARP/ND/echo for
the VIPs and pair heartbeats; everything else reaches the kernel.

Run: TANDEM_BUILD_DIR=build-xdp /usr/bin/python3 -m pytest tests/integration/test_shared_nic.py
"""
import json
import re
import socket
import subprocess
import time

import pytest

from helpers import netns, paths
from helpers.meeting import check_exactly_once, member_flows, sender_id, table_lines
from helpers.participants import FlowRun, run_flows
from helpers.switch import Switch
from helpers.tables import Tables

HOST4 = "198.18.0.2"          # the node host's own addresses on sw0
HOST6 = "2001:db8:1::2"
ECHO_PORT = 7000              # a kernel TCP echo server on HOST4/HOST6
MEDIA_PORTS = "20000-29999"   # VIP_PORT_BASE + i is inside

ECHO_SERVER = r"""
import socket, sys, threading
def serve(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(sys.argv[3])))
    s.listen(8)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while True:
        d = c.recv(4096)
        if not d:
            return
        c.sendall(d)
threading.Thread(target=serve, args=(socket.AF_INET6, sys.argv[2]), daemon=True).start()
print("ready", flush=True)
serve(socket.AF_INET, sys.argv[1])
"""

# Holds one TCP connection to the node host open and echoes a line through
# it every 0.1 s for argv[3] seconds; prints {"ok": n, "errors": [...]}.
ECHO_CLIENT = r"""
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ok, errors = 0, []
s = socket.create_connection((host, port), timeout=2)
deadline = time.monotonic() + seconds
i = 0
while time.monotonic() < deadline:
    msg = f"line {i}\n".encode()
    try:
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(4096)
            if not d:
                raise OSError("connection closed")
            got += d
        if got == msg:
            ok += 1
        else:
            errors.append(f"echo {got!r} for {msg!r}")
    except OSError as e:
        errors.append(str(e))
        break
    i += 1
    time.sleep(0.1)
print(json.dumps({"ok": ok, "errors": errors}))
"""

# A pair heartbeat frame as the peer's switch sends it (EtherType 0x88b5 to
# broadcast); its content does not matter to the steering.
HEARTBEAT_SENDER = r"""
import sys
from scapy.all import Ether, Raw, get_if_hwaddr, sendp
src = get_if_hwaddr(sys.argv[1])  # scapy would put 00:00:00:00:00:00, which bridges drop
sendp(Ether(src=src, dst="ff:ff:ff:ff:ff:ff", type=0x88b5) / Raw(b"THB1" + bytes(92)),
      iface=sys.argv[1], count=int(sys.argv[2]), inter=0.01, verbose=False)
"""


class SteeringSwitch(Switch):
    """A helpers.switch.Switch whose access port is net_af_xdp with xdp_steering."""

    def __init__(self, testbed, host, vlan=0, **kwargs):
        self.vlan = vlan
        extra = f'\n[shared_nic]\nmedia_ports = "{MEDIA_PORTS}"\n'
        super().__init__(testbed, host, pmd="af_xdp", extra_toml=extra, **kwargs)

    def _config(self, *args):
        text = super()._config(*args)
        devargs_line = f'devargs = "{self._devargs()}"\n'
        assert devargs_line in text and "\n[access]\n" in text
        text = text.replace("\n[access]\n", f"\n[access]\nvlan = {self.vlan}\n")
        return text.replace(devargs_line, devargs_line + "xdp_steering = true\n")

    def telemetry(self, command):
        """One DPDK telemetry command over the switch's socket, as JSON."""
        path = f"/var/run/dpdk/{self.file_prefix}/dpdk_telemetry.v2"
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.connect(path)
            s.recv(4096)  # the greeting
            s.send(command.encode())
            return json.loads(s.recv(65536))[command]

    def xdp_counters(self):
        return self.telemetry("/tandem/xdp")["access"]


def xdp_program(bed, host):
    """(id, name) of the XDP program on the host's interface, or None."""
    out = bed.run_in(host, ["ip", "-d", "link", "show", host.iface]).stdout
    m = re.search(r"prog/xdp id (\d+) name (\S+)", out)
    return (int(m.group(1)), m.group(2)) if m else None


def has_xdp(bed, host):
    out = bed.run_in(host, ["ip", "link", "show", host.iface]).stdout
    return re.search(r"\bxdp", out) is not None


def grew(before, after, key):
    return after[key] - before[key]


STEERING_LOG = re.compile(r"xdp steering on \S+: (active|standby), VIPs \[([^\]]*)\]")


def apply_steering(s, lines, active, vips, timeout=10):
    """Applies table lines that change the role or the VIPs and waits until
    the switch logged that its XDP maps steer accordingly (it syncs them every
    5 ms from its main thread; a fixed sleep would guess how long that takes
    on a busy machine)."""
    state = "active" if active else "standby"

    def synced():
        return sum(1 for m in STEERING_LOG.finditer(s.switch.log_text())
                   if m.group(1) == state and set(m.group(2).split()) == set(vips))
    before = synced()
    s.tables.apply(lines)
    deadline = time.monotonic() + timeout
    while synced() == before:
        assert time.monotonic() < deadline, \
            f"the switch did not steer {state} {vips} within {timeout} s:\n{s.switch.log_text()}"
        time.sleep(0.01)


def wait_counters(s, before, want, timeout=10):
    """The XDP counters once every verdict in `want` grew by at least its
    count since `before` (the frames were sent; the program counts them when
    the veth delivers them, on a busy machine not at once)."""
    deadline = time.monotonic() + timeout
    while True:
        after = s.switch.xdp_counters()
        if all(grew(before, after, k) >= n for k, n in want.items()):
            return after
        assert time.monotonic() < deadline, (want, before, after)
        time.sleep(0.02)


class SharedNode:
    def __init__(self, bed, vlan=0):
        self.bed = bed
        self.members = [bed.add_participant(f"p{i}", i) for i in range(3)]
        self.node = bed.add_node("node")
        ns = self.node.ns
        # The node host's own addresses, on the interface the switch uses.
        bed.sysctl(ns, "net.ipv6.conf.sw0.disable_ipv6", 0)
        bed.sysctl(ns, "net.ipv6.conf.sw0.accept_dad", 0)
        netns.run(["ip", "-n", ns, "addr", "add", f"{HOST4}/24", "dev", "sw0"])
        netns.run(["ip", "-n", ns, "addr", "add", f"{HOST6}/64", "dev", "sw0", "nodad"])
        if vlan:
            # XDP sees what is in the frame's data: an 802.1Q tag carried as
            # offload metadata (a bridge untags; veth would pass the tag on
            # as metadata) is invisible to it. Real NICs: rxvlan off.
            bed.run_in(bed.bridge_ns, ["ethtool", "-K", "node", "txvlan", "off"])
        self.switch = SteeringSwitch(bed, self.node, vlan=vlan)
        self.tables = Tables.of(self.switch)


@pytest.fixture
def shared(request):
    """A node with kernel addresses on sw0 and a running steering switch;
    parametrize indirectly with an access VLAN id to set access.vlan."""
    bed = netns.Testbed()
    try:
        s = SharedNode(bed, vlan=getattr(request, "param", 0))
        s.switch.start()
        yield s
    finally:
        bed.close()


def start_echo_server(s):
    p = s.bed.popen(s.node, [paths.PYTHON, "-c", ECHO_SERVER, HOST4, HOST6, ECHO_PORT],
                    stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def ping(s, host, addr, count=5):
    # A reply counts however late it comes within 3 s: on a busy machine the
    # switch's slow path (or the kernel) may answer after a second.
    p = s.bed.run_in(host, ["ping", "-c", count, "-i", "0.2", "-W", "3", addr], check=False)
    m = re.search(r"(\d+) received", p.stdout)
    return int(m.group(1)) if m else 0


# Frames of each kind the program tells apart, sent with scapy from a
# participant: argv = iface, node MAC, VIP4, VIP6, kind, vlan (0 = untagged).
FRAME_SENDER = r"""
import sys
from scapy.all import (ARP, Dot1Q, Ether, ICMPv6ND_NS, IP, IPv6, Raw, UDP, get_if_hwaddr,
                       sendp)
iface, node_mac, vip4, vip6, kind, vlan = sys.argv[1:7]
src = get_if_hwaddr(iface)
eth = Ether(src=src, dst=node_mac)
if int(vlan):
    eth = eth / Dot1Q(vlan=int(vlan))
body = {
    "media4": IP(src="198.18.0.10", dst=vip4) / UDP(sport=5000, dport=20000) / Raw(b"m" * 100),
    "media6": IPv6(src="2001:db8:1::10", dst=vip6) / UDP(sport=5000, dport=20000) / Raw(b"m" * 100),
    "arp": ARP(op=1, hwsrc=src, psrc="198.18.0.10", pdst=vip4),
    "ns": IPv6(src="2001:db8:1::10", dst="ff02::1:ff00:100") / ICMPv6ND_NS(tgt=vip6),
    "heartbeat": Raw(b"THB1" + bytes(92)),
}[kind]
frame = eth / body
if kind == "heartbeat":
    frame[Dot1Q if int(vlan) else Ether].type = 0x88b5
sendp(frame, iface=iface, count=5, verbose=False)
"""


def send_frames(s, host, kind, vlan):
    s.bed.run_in(host, [paths.PYTHON, "-c", FRAME_SENDER, host.iface, s.node.mac(), netns.VIP4,
                        netns.VIP6, kind, vlan])


def send_heartbeats(s, host, count):
    s.bed.run_in(host, [paths.PYTHON, "-c", HEARTBEAT_SENDER, host.iface, count])


def test_attached_in_steering_mode(shared):
    prog = xdp_program(shared.bed, shared.node)
    assert prog is not None and prog[1] == "tandem_steer", prog
    log = shared.switch.log_text()
    m = re.search(r"XDP steering program (\d+) attached in (\w+) mode, (\d+) AF_XDP socket\(s\) "
                  r"in ([\w-]+) mode", log)
    assert m, log
    assert int(m.group(1)) == prog[0]
    assert int(m.group(3)) == 1
    info = shared.switch.xdp_counters()
    assert info["socket_mode"] in ("copy", "zero-copy"), info
    # The operator sees the modes with the port (tandemctl show ports reads
    # the same field of the state region).
    ports = shared.tables.stats()["ports"]
    assert ports[0]["xdp_mode"] == f"{info['attach_mode']}, {info['socket_mode']}", ports[0]
    print(f"attach mode {info['attach_mode']}, socket mode {info['socket_mode']}")


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_media_switched_while_host_traffic_reaches_kernel(shared, family):
    s = shared
    apply_steering(s, table_lines(s.members, family), True, [netns.VIP4, netns.VIP6])
    start_echo_server(s)
    before = s.switch.xdp_counters()
    count = 150
    run = FlowRun(s.bed, member_flows(s.members, family, count=count, rate=50.0))
    time.sleep(run.data_starts_after)
    # While the media flows: a TCP connection held open to the node host and
    # pings to the host's own address (kernel) and to the VIP (the switch).
    host_addr = HOST4 if family == 4 else HOST6
    vip = netns.VIP4 if family == 4 else netns.VIP6
    client = s.bed.popen(s.members[0], [paths.PYTHON, "-c", ECHO_CLIENT, host_addr, ECHO_PORT,
                                        2.0], stdout=subprocess.PIPE, text=True)
    host_replies = ping(s, s.members[1], host_addr)
    vip_replies = ping(s, s.members[2], vip)
    tcp = json.loads(client.communicate(timeout=30)[0])
    reports = run.wait()
    after = s.switch.xdp_counters()

    problems = check_exactly_once(reports, s.members, s.members, family, count)
    assert not problems, "\n".join(problems)
    assert host_replies == 5, "ping to the node host's own address through the kernel"
    assert vip_replies == 5, "ping to the VIP, answered by the switch"
    assert tcp["errors"] == [] and tcp["ok"] >= 15, tcp
    # Each member sent warm-up and data packets to the VIP: all steered.
    assert grew(before, after, "steer_media") >= 3 * count, (before, after)
    assert grew(before, after, "steer_icmp") >= 5, (before, after)
    # The members resolved the VIP: ARP or ND for it went to the switch.
    assert grew(before, after, "steer_arp" if family == 4 else "steer_nd") > 0, (before, after)
    assert grew(before, after, "pass_other") > 0, (before, after)
    assert grew(before, after, "pass_standby") == 0, (before, after)
    assert s.switch.alive()


def test_vip_removed_and_added_changes_what_is_steered(shared):
    s = shared
    family = 4
    apply_steering(s, table_lines(s.members, family), True, [netns.VIP4, netns.VIP6])
    reports = run_flows(s.bed, member_flows(s.members, family, count=50))
    assert not check_exactly_once(reports, s.members, s.members, family, 50)

    # VIP4 is no longer ours: its media goes to the kernel (which drops it:
    # the address is not the host's), not to the switch.
    apply_steering(s, f"vip {netns.VIP6}\n", True, [netns.VIP6])
    before = s.switch.xdp_counters()
    stats_before = s.tables.stats()["totals"]["rx_packets"]
    reports = run_flows(s.bed, member_flows(s.members, family, count=50), warmup=0.2)
    after = s.switch.xdp_counters()
    stats_after = s.tables.stats()["totals"]["rx_packets"]
    for m in s.members:
        assert reports[sender_id(m)].data_packets() == 0, reports[sender_id(m)]
    assert grew(before, after, "steer_media") == 0, (before, after)
    assert grew(before, after, "pass_other") >= 3 * 50, (before, after)
    assert stats_after - stats_before < 3 * 50, "the switch still received the media"

    # Given back: steered and switched again.
    apply_steering(s, f"vip {netns.VIP4} {netns.VIP6}\n", True, [netns.VIP4, netns.VIP6])
    before = s.switch.xdp_counters()
    reports = run_flows(s.bed, member_flows(s.members, family, count=50))
    after = s.switch.xdp_counters()
    problems = check_exactly_once(reports, s.members, s.members, family, 50)
    assert not problems, "\n".join(problems)
    assert grew(before, after, "steer_media") >= 3 * 50, (before, after)


def test_media_port_outside_range_is_not_steered(shared):
    s = shared
    apply_steering(s, table_lines(s.members, 4), True, [netns.VIP4, netns.VIP6])
    ping(s, s.members[0], netns.VIP4, count=1)  # resolves the VIP's MAC
    before = s.switch.xdp_counters()
    # UDP to the VIP on a port outside shared_nic.media_ports.
    s.bed.run_in(s.members[0], [paths.PYTHON, "-c",
                                "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                f"for i in range(20): s.sendto(b'x'*64, ('{netns.VIP4}', 40000))"])
    after = wait_counters(s, before, {"pass_other": 20})
    assert grew(before, after, "steer_media") == 0, (before, after)


def test_standby_stops_steering_media_but_not_heartbeats(shared):
    s = shared
    family = 4
    apply_steering(s, table_lines(s.members, family), True, [netns.VIP4, netns.VIP6])
    reports = run_flows(s.bed, member_flows(s.members, family, count=50))
    assert not check_exactly_once(reports, s.members, s.members, family, 50)

    apply_steering(s, "role standby 2\n", False, [netns.VIP4, netns.VIP6])
    before = s.switch.xdp_counters()
    reports = run_flows(s.bed, member_flows(s.members, family, count=50), warmup=0.2)
    send_heartbeats(s, s.members[0], 10)
    after = wait_counters(s, before, {"pass_standby": 3 * 50, "steer_heartbeat": 10})
    for m in s.members:
        assert reports[sender_id(m)].data_packets() == 0, reports[sender_id(m)]
    assert grew(before, after, "steer_media") == 0, (before, after)
    assert grew(before, after, "steer_heartbeat") == 10, (before, after)
    assert ping(s, s.members[1], HOST4) == 5, "the host's own traffic still flows"

    # Takeover: this node becomes active again and steers its VIPs.
    apply_steering(s, "role active 3\n", True, [netns.VIP4, netns.VIP6])
    before = s.switch.xdp_counters()
    reports = run_flows(s.bed, member_flows(s.members, family, count=50))
    after = s.switch.xdp_counters()
    problems = check_exactly_once(reports, s.members, s.members, family, 50)
    assert not problems, "\n".join(problems)
    assert grew(before, after, "steer_media") >= 3 * 50, (before, after)


def test_exit_leaves_no_program_and_restart_after_kill(shared):
    s = shared
    assert has_xdp(s.bed, s.node)
    assert s.switch.stop() == 0
    assert not has_xdp(s.bed, s.node), "the interface kept an XDP program after the switch stopped"
    assert "left with no XDP program" in s.switch.log_text()
    assert ping(s, s.members[0], HOST4) == 5

    # A killed switch leaves its program behind (with no socket in its
    # xsks_map, everything passes to the kernel); the next start replaces it.
    s.switch.start()
    s.switch.kill()
    left = xdp_program(s.bed, s.node)
    assert left is not None and left[1] == "tandem_steer"
    assert ping(s, s.members[0], HOST4) == 5, "host traffic with a dead switch's program left"
    s.switch.start()
    assert "detached a stale tandem_steer" in s.switch.log_text()
    apply_steering(s, table_lines(s.members, 4), True, [netns.VIP4, netns.VIP6])
    reports = run_flows(s.bed, member_flows(s.members, 4, count=50))
    assert not check_exactly_once(reports, s.members, s.members, 4, 50)
    assert s.switch.stop() == 0
    assert not has_xdp(s.bed, s.node)


# Which verdict each kind of frame gets, tagged with the access VLAN (7),
# with another VLAN (8) and untagged.
STEERED = {"media4": "steer_media", "media6": "steer_media", "arp": "steer_arp",
           "ns": "steer_nd", "heartbeat": "steer_heartbeat"}


@pytest.mark.parametrize("shared", [7], indirect=True, ids=["vlan7"])
@pytest.mark.parametrize("kind", sorted(STEERED))
def test_vlan_frames_steered_only_on_the_access_vlan(shared, kind):
    s = shared
    apply_steering(s, f"role active 1\nvip {netns.VIP4} {netns.VIP6}\n", True,
                   [netns.VIP4, netns.VIP6])
    sender = s.members[0]
    for vlan, verdict in ((7, STEERED[kind]), (8, "pass_other"), (0, "pass_other")):
        before = s.switch.xdp_counters()
        send_frames(s, sender, kind, vlan)
        after = wait_counters(s, before, {verdict: 5})
        if verdict == "pass_other":
            assert all(grew(before, after, v) == 0 for v in set(STEERED.values())), \
                (kind, vlan, before, after)
