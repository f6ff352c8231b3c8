"""Hostile traffic at the switch while a meeting streams (issue 7): a storm of
every broken frame plus ARP/ND poisoning, spoofed members, VIP ports no leg
owns, and an unknown-source flood. Media must go on, every bad frame must be
counted, and the neighbour table must keep the right MACs.

The figures (storm rate, legitimate media loss) are printed; run with -s to
see them, docs/hardening.md quotes them.
"""
import json
import time

import pytest

from helpers import paths
from helpers.meeting import (MEDIA_PORT, VIP_PORT_BASE, member_flows, sender_id,
                             table_lines)
from helpers.netns import VIP4, VIP6
from helpers.participants import FlowRun
from helpers.storm import extra_malformed_frames, malformed_frames
from helpers.tables import BAD_INPUT_DROPS

STORM_SECONDS = 4.0
MEDIA_RATE = 50.0
STORM_RATE = 2000  # frames/s of the malformed+poisoning storm
# Media loss tolerated while a storm or a flood runs. The sender of the storm
# (scapy) takes a whole core of the two the test bed has, so the switch, the
# bridge and the participants share the other: a little loss here measures the
# test bed's CPU, not the switch (scripts/bench.sh measures the switch).
LOSS_BOUND = 0.03
# The unknown-source flood is sent as fast as the test bed can; below this
# rate (100 times the meeting's media) it would not be a flood.
FLOOD_MIN_RATE = 15000


def _totals(tables):
    st = tables.stats()
    t = st["totals"]
    ports = st.get("ports", [])
    return {
        "rx": t["rx_packets"], "slow": t["slow_path"], "fwd": t["forwarded_in"],
        "bad": sum(t["drops"].get(r, 0) for r in BAD_INPUT_DROPS + ("bad_checksum",
                                                                    "ttl_exceeded")),
        "drops": dict(t["drops"]),
        "missed": sum(p.get("imissed", 0) for p in ports),
    }, st


def _storm(meeting, host, groups, rate, seconds=STORM_SECONDS, flood=False):
    """Runs helpers/storm.py in `host`'s namespace; returns its report.

    rate x seconds frames, all of them however long that takes, or with
    flood=True as many as `seconds` allow at full speed. Fails unless every
    frame meant to be sent was sent without a send error."""
    spec = meeting.bed.tmpdir("storm") / "spec.json"
    body = {"iface": host.iface, "rate": 0 if flood else rate,
            "groups": {g: [f.hex() for f in fs] for g, fs in groups.items()}}
    if flood:
        body["duration"] = seconds
    else:
        body.update(count=int(rate * seconds), max_seconds=seconds + 30)
    spec.write_text(json.dumps(body))
    p = meeting.bed.run_in(host, [paths.PYTHON, paths.REPO / "tests/integration/helpers/storm.py",
                                  "--spec", spec], timeout=seconds + 60)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert not report["errors"], f"the storm could not send: {report}"
    if flood:
        assert report["total"] > 0, f"the flood sent nothing: {report}"
    else:
        assert report["total"] == body["count"], f"the storm sent less than meant: {report}"
    return report


def _media_loss(reports, members, count):
    """{receiver<-sender: lost fraction}, and problems other than loss."""
    loss, problems = {}, []
    for r in members:
        rep = reports[sender_id(r)]
        for s in members:
            if s is r:
                continue
            got = rep.from_sender(sender_id(s))
            received = sum(st["received"] for st in got.values())
            loss[f"{r.name}<-{s.name}"] = 1.0 - received / count
            if any(st["duplicates"] or st["corrupt"] for st in got.values()):
                problems.append(f"{r.name} from {s.name}: duplicates or corrupt: {got}")
        foreign = {src: st["foreign"] for src, st in rep.sources.items() if st["foreign"]}
        if foreign:
            problems.append(f"{r.name} received datagrams that are not media: {foreign}")
    return loss, problems


def _during_media(meeting, count, action):
    """Starts the members' media, runs action() once it flows, returns
    (reports, action's result)."""
    run = FlowRun(meeting.bed, member_flows(meeting.members, 4, count=count, rate=MEDIA_RATE))
    time.sleep(run.data_starts_after + 0.5)
    result = action()
    return run.wait(), result


def _poison_frames(meeting):
    """ARP and ND poisoning attempts from the outsider against the VIPs and the
    members' neighbour entries."""
    from scapy.all import (ARP, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                           ICMPv6NDOptSrcLLAddr, IPv6)
    att = meeting.outsider
    att_mac = att.mac()
    node_mac = meeting.node.mac()
    frames = {}

    def add(who, kind, frame):
        frames[f"{who}:{kind}"] = frame

    for m in meeting.members:
        # An ARP reply claiming a member's IP with the attacker's MAC.
        add(m.name, "arp_reply_claiming_member",
            bytes(Ether(src=att_mac, dst=node_mac) / ARP(
            op=2, hwsrc=att_mac, psrc=m.ip4, hwdst=node_mac, pdst=VIP4)))
        # A request for the VIP "from" the member, with the attacker's MAC.
        add(m.name, "arp_request_for_vip_from_member_ip_with_attacker_mac",
            bytes(Ether(src=att_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=att_mac, psrc=m.ip4, pdst=VIP4)))
        # Sender MAC of the frame differs from the ARP sender hardware address.
        # (Not the member's own MAC as the Ethernet source: that would teach
        # the test bed's bridge to send the member's frames to the attacker,
        # an attack on the bridge that no switch behind it can stop.)
        add(m.name, "arp_sha_differs_from_ethernet_source",
            bytes(Ether(src="02:00:5e:00:53:01", dst=node_mac) / ARP(
            op=2, hwsrc=att_mac, psrc=m.ip4, hwdst=node_mac, pdst=VIP4)))
        # Unsolicited NA for the member, override flag set, to the switch.
        add(m.name, "unsolicited_na_for_member",
            bytes(Ether(src=att_mac, dst=node_mac) / IPv6(
            src=m.ip6, dst=VIP6, hlim=255) / ICMPv6ND_NA(tgt=m.ip6, R=0, S=0, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=att_mac)))
        # NS for the VIP from the member's address with a spoofed source link-layer address.
        add(m.name, "ns_for_vip_with_spoofed_sllao",
            bytes(Ether(src=att_mac, dst=node_mac) / IPv6(
            src=m.ip6, dst=VIP6, hlim=255) / ICMPv6ND_NS(tgt=VIP6)
            / ICMPv6NDOptSrcLLAddr(lladdr=att_mac)))
    # Gratuitous ARP claiming the VIP (to the switch only: a broadcast one
    # would poison the participants' kernels, which no switch can prevent).
    add("vip", "garp_request_claiming_vip",
        bytes(Ether(src=att_mac, dst=node_mac) / ARP(
        op=1, hwsrc=att_mac, psrc=VIP4, pdst=VIP4)))
    add("vip", "garp_reply_claiming_vip",
        bytes(Ether(src=att_mac, dst=node_mac) / ARP(
        op=2, hwsrc=att_mac, psrc=VIP4, hwdst="ff:ff:ff:ff:ff:ff", pdst=VIP4)))
    # An unsolicited NA claiming the VIP.
    add("vip", "unsolicited_na_claiming_vip",
        bytes(Ether(src=att_mac, dst=node_mac) / IPv6(
        src=VIP6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=VIP6, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=att_mac)))
    return frames


def _neighbour_problems(meeting):
    stats = meeting.tables.stats()
    att_mac = meeting.outsider.mac().lower()
    want = {}
    for m in meeting.members:
        want[m.ip4] = m.mac().lower()
        want[m.ip6] = m.mac().lower()
    problems = []
    for n in stats.get("neighbours", []):
        if n["mac"].lower() == att_mac and n["ip"] in want:
            problems.append(f"neighbour {n['ip']} poisoned to the attacker's {n['mac']}")
        elif n["ip"] in want and n["mac"].lower() != want[n["ip"]] and \
                n["state"] in ("reachable", "stale"):
            problems.append(f"neighbour {n['ip']} has {n['mac']}, expected {want[n['ip']]}")
        if n["ip"] in (VIP4, VIP6):
            problems.append(f"a VIP entered the neighbour table: {n}")
    return problems, stats.get("neighbours", [])


# net_af_xdp as in test_switch_malformed.py: net_af_packet would hand IPv4
# fragments to the kernel's reassembly; MTU 3000 lets oversized frames in.
@pytest.mark.switch_pmd("af_xdp")
@pytest.mark.testbed_mtu(3000)
def test_malformed_and_poisoning_storm_while_media_streams(meeting):
    members = meeting.members
    att = meeting.outsider
    victim = members[0]
    meeting.tables.apply(table_lines(members, 4, meeting_id=1)
                         + table_lines(members, 6, meeting_id=2, preamble=False))
    node_mac = meeting.node.mac()
    # Bad frames from the outsider's port claiming a member's leg (v4 and v6).
    args = dict(src_mac=att.mac(), dst_mac=node_mac, src=victim.ip4, vip=VIP4,
                src6=victim.ip6, vip6=VIP6, sport=MEDIA_PORT, dport=VIP_PORT_BASE + victim.index)
    bad = dict(malformed_frames(**args))
    bad.update(extra_malformed_frames(**args))
    # Not drops: the IPv4-mapped frame is the parser finding of
    # packet_regression_test.cc and is checked on its own below.
    mapped = bad.pop("ipv4_mapped_ipv6_as_member")
    groups = {"malformed": list(bad.values()),
              "poison": list(_poison_frames(meeting).values())}
    count = int(MEDIA_RATE * (STORM_SECONDS + 4))

    before, _ = _totals(meeting.tables)
    reports, storm = _during_media(meeting, count,
                                   lambda: _storm(meeting, att, groups, rate=STORM_RATE))
    time.sleep(0.5)
    after, stats = _totals(meeting.tables)
    loss, problems = _media_loss(reports, members, count)
    sent = storm["sent"]
    grew = {k: after["drops"][k] - before["drops"].get(k, 0) for k in after["drops"]
            if after["drops"][k] != before["drops"].get(k, 0)}
    print(f"storm: {sum(sent.values())} frames in {storm['seconds']:.1f}s "
          f"({storm['rate']:.0f}/s; {len(bad)} malformed kinds, {len(groups['poison'])} poisoning "
          f"frames), send errors {storm['errors']}")
    print(f"switch: bad-input drops +{after['bad'] - before['bad']}, slow path "
          f"+{after['slow'] - before['slow']}, NIC missed +{after['missed'] - before['missed']}, "
          f"drops by reason {grew}")
    print("legitimate media loss during the storm: "
          + ", ".join(f"{k} {v:.2%}" for k, v in sorted(loss.items())))

    poisoned, neighbours = _neighbour_problems(meeting)
    print(f"neighbours after the storm: {neighbours}")
    assert meeting.switch.alive(), "tandem-switch died during the storm"
    assert not poisoned, "\n".join(poisoned)
    assert not problems, "\n".join(problems)
    assert max(loss.values()) <= LOSS_BOUND, f"media lost during the storm: {loss}"
    missed = after["missed"] - before["missed"]
    assert after["bad"] - before["bad"] + missed >= sent["malformed"], (
        f"{sent['malformed']} malformed frames sent, only {after['bad'] - before['bad']} "
        f"counted as bad-input drops (+{missed} missed by the NIC): {grew}")
    # Each reached the slow path or was dropped over its source's rate to it.
    limited = after["drops"].get("slow_path_limited", 0) - before["drops"].get(
        "slow_path_limited", 0)
    assert after["slow"] - before["slow"] + limited + missed >= sent["poison"], (
        f"{sent['poison']} ARP/ND frames sent, {after['slow'] - before['slow']} reached the "
        f"slow path, {limited} over their source's rate")
    # Media still flows to the right MACs after the storm.
    reports = FlowRun(meeting.bed, member_flows(members, 4, count=50, rate=MEDIA_RATE)).wait()
    loss, problems = _media_loss(reports, members, 50)
    assert not problems and max(loss.values()) <= 0.02, (loss, problems)
    del mapped


@pytest.mark.switch_pmd("af_xdp")
def test_ipv4_mapped_ipv6_frames_do_not_reach_an_ipv4_meeting(meeting):
    """An IPv6 frame between IPv4-mapped addresses (::ffff:member ->
    ::ffff:VIP) must not count as, or be forwarded for, the member's IPv4 leg."""
    members = meeting.members
    victim = members[0]
    meeting.tables.apply(table_lines(members, 4))
    args = dict(src_mac=meeting.outsider.mac(), dst_mac=meeting.node.mac(), src=victim.ip4,
                vip=VIP4, src6=victim.ip6, vip6=VIP6, sport=MEDIA_PORT,
                dport=VIP_PORT_BASE + victim.index)
    frame = extra_malformed_frames(**args)["ipv4_mapped_ipv6_as_member"]
    before, _ = _totals(meeting.tables)
    storm = _storm(meeting, meeting.outsider, {"mapped": [frame]}, rate=100, seconds=1.0)
    time.sleep(0.5)
    after, _ = _totals(meeting.tables)
    print(f"sent {storm['sent']}, forwarded +{after['fwd'] - before['fwd']}, bad-input drops "
          f"+{after['bad'] - before['bad']}")
    assert after["fwd"] == before["fwd"], (
        f"{after['fwd'] - before['fwd']} IPv6 frames from ::ffff:{victim.ip4} were forwarded "
        f"as the IPv4 leg of {victim.ip4}")


def test_spoofed_members_and_unowned_vip_ports_reach_nobody(meeting):
    """Packets with a member's address from another MAC/port or another VLAN,
    and packets to a VIP port no leg owns, are forwarded to nobody."""
    from scapy.all import IP, UDP, Dot1Q, Ether, Raw
    members = meeting.members
    meeting.tables.apply(table_lines(members, 4))
    att = meeting.outsider
    node_mac = meeting.node.mac()
    victim = members[1]
    payload = b"SPOOF" * 20
    frames = [
        # The member's address and port from the outsider's MAC (and port of the bridge).
        bytes(Ether(src=att.mac(), dst=node_mac) / IP(src=victim.ip4, dst=VIP4)
              / UDP(sport=MEDIA_PORT, dport=VIP_PORT_BASE + victim.index) / Raw(payload)),
        # The member's leg, tagged with a VLAN the switch is not on.
        bytes(Ether(src=victim.mac(), dst=node_mac) / Dot1Q(vlan=7) / IP(src=victim.ip4, dst=VIP4)
              / UDP(sport=MEDIA_PORT, dport=VIP_PORT_BASE + victim.index) / Raw(payload)),
        # A VIP port that no leg owns, from a member's own address.
        bytes(Ether(src=victim.mac(), dst=node_mac) / IP(src=victim.ip4, dst=VIP4)
              / UDP(sport=MEDIA_PORT, dport=VIP_PORT_BASE + 77) / Raw(payload)),
        # Another source port of the member.
        bytes(Ether(src=victim.mac(), dst=node_mac) / IP(src=victim.ip4, dst=VIP4)
              / UDP(sport=MEDIA_PORT + 1, dport=VIP_PORT_BASE + victim.index) / Raw(payload)),
    ]
    before, _ = _totals(meeting.tables)
    # Receivers listen while the spoofed frames arrive (flows with nothing to send).
    flows = member_flows(members, 4, count=1, rate=MEDIA_RATE)
    run = FlowRun(meeting.bed, flows, tail=3.0)
    time.sleep(run.data_starts_after)
    storm = _storm(meeting, att, {"spoof": frames[:1] + frames[2:]}, rate=500, seconds=1.0)
    tagged = _storm(meeting, victim, {"vlan": frames[1:2]}, rate=500, seconds=1.0)
    reports = run.wait()
    after, _ = _totals(meeting.tables)
    reached = {}
    for r in members:
        rep = reports[sender_id(r)]
        foreign = sum(st["foreign"] for st in rep.sources.values())
        if foreign:
            reached[r.name] = foreign
    print(f"spoofed frames sent {storm['sent']} + {tagged['sent']}; forwarded "
          f"+{after['fwd'] - before['fwd'] - 2 * len(members)} beyond the members' own; "
          f"drops {after['drops']}")
    # The first frame carries the member's exact (address, port) from another
    # MAC: the leg key has no L2 origin, so only a check of the source MAC
    # (learned per leg) would keep it out. The issue asks that it reach nobody.
    assert not reached, f"spoofed frames reached members: {reached}"


def _rx_packets(meeting):
    """Frames the kernel delivered to the switch's interface (each goes to
    the switch's AF_PACKET ring, or is lost there when the ring is full,
    which net_af_packet does not count)."""
    out = meeting.bed.run_in(meeting.node, ["ip", "-s", "-j", "link", "show",
                                            meeting.node.iface]).stdout
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def test_unknown_source_flood_leaves_media_intact(meeting):
    """UDP from addresses no leg has, to the VIPs, as fast as the test bed can
    send it, while the meeting streams.

    The switch drops each flood frame and counts it. Media is lost with the
    frames the switch never sees: at hundreds of thousands of frames a
    second the flood fills the switch's receive ring within milliseconds
    whenever its worker is off the CPU (on this 2-core test bed the sender,
    the kernel's forwarding and any other load compete for it), and every
    frame arriving then is lost, media or not. So the media a stream may
    lose is LOSS_BOUND plus, of its packets sent during the flood, the share
    of the flood's time that the worker did not run (its CPU time from
    /proc, measured in the same run). On a quiet machine the worker polls
    all the time and the bound is LOSS_BOUND; a switch that handles too few
    frames per second of CPU loses media beyond it."""
    from scapy.all import IP, UDP, Ether, Raw
    members = meeting.members
    meeting.tables.apply(table_lines(members, 4))
    att = meeting.outsider
    node_mac = meeting.node.mac()
    frames = [bytes(Ether(src=att.mac(), dst=node_mac)
                    / IP(src=f"198.18.0.{200 + i % 50}", dst=VIP4)
                    / UDP(sport=10000 + i, dport=VIP_PORT_BASE + i % 3) / Raw(b"F" * 160))
              for i in range(256)]
    count = int(MEDIA_RATE * (STORM_SECONDS + 4))
    sw = meeting.switch
    before, _ = _totals(meeting.tables)
    m = {}

    def flood():
        kernel0, switch0 = _rx_packets(meeting), _totals(meeting.tables)[0]
        cpu0, worker0 = sw.cpu_seconds(), sw.cpu_seconds("rte-worker-1")
        t0 = time.monotonic()
        report = _storm(meeting, att, {"flood": frames}, rate=0, flood=True)
        m.update(wall=time.monotonic() - t0, cpu=sw.cpu_seconds() - cpu0,
                 worker=sw.cpu_seconds("rte-worker-1") - worker0)
        m.update(kernel=_rx_packets(meeting) - kernel0,
                 switch=_totals(meeting.tables)[0]["rx"] - switch0["rx"])
        return report
    reports, storm = _during_media(meeting, count, flood)
    time.sleep(0.5)
    after, _ = _totals(meeting.tables)
    loss, problems = _media_loss(reports, members, count)
    unknown = after["drops"].get("unknown_leg", 0) - before["drops"].get("unknown_leg", 0)
    lost_before_switch = max(0.0, 1.0 - m["switch"] / m["kernel"])
    off_cpu = max(0.0, 1.0 - m["worker"] / m["wall"])
    at_risk = min(1.0, MEDIA_RATE * m["wall"] / count)  # of each stream, sent during the flood
    bound = LOSS_BOUND + off_cpu * at_risk
    print(f"unknown-source flood: {storm['total']} frames sent in {storm['seconds']:.1f} s "
          f"({storm['rate']:.0f}/s); {m['kernel']} reached the switch's interface "
          f"({m['kernel'] / m['wall']:.0f}/s), the switch took {m['switch']} "
          f"({lost_before_switch:.1%} lost before it), counted unknown_leg +{unknown}")
    print(f"switch CPU during the flood: {m['cpu']:.2f} s in {m['wall']:.2f} s, its worker "
          f"{m['worker']:.2f} s ({1 - off_cpu:.0%} of the time; "
          f"{m['switch'] / max(m['worker'], 0.01):.0f} frames per CPU-second)")
    print("legitimate media loss during the flood: "
          + ", ".join(f"{k} {v:.2%}" for k, v in sorted(loss.items()))
          + f"; bound {bound:.2%} = {LOSS_BOUND:.0%} + {off_cpu:.0%} of the time off the CPU x "
          f"{at_risk:.0%} of each stream sent during the flood")
    assert meeting.switch.alive()
    assert not problems, "\n".join(problems)
    assert storm["rate"] >= FLOOD_MIN_RATE, f"the flood reached only {storm['rate']:.0f}/s"
    # Every flood frame the switch took was dropped and counted as unknown.
    media = sum(st["sent"] for st in (r.data for r in reports.values()))
    assert unknown >= m["switch"] - media - 100, (unknown, m)
    assert max(loss.values()) <= bound, f"media lost during the flood: {loss}, bound {bound:.2%}"


def test_each_poisoning_attempt_leaves_the_neighbour_table_alone(meeting):
    """Each ARP/ND poisoning attempt on its own, after the switch resolved the
    members through real media: which of them, if any, changes an entry."""
    members = meeting.members
    meeting.tables.apply(table_lines(members, 4, meeting_id=1)
                         + table_lines(members, 6, meeting_id=2, preamble=False))
    # Real media in both families: the switch resolves every member.
    FlowRun(meeting.bed, member_flows(members, 4, count=20, rate=MEDIA_RATE)
            + member_flows(members, 6, count=20, rate=MEDIA_RATE)).wait()
    problems, neighbours = _neighbour_problems(meeting)
    assert not problems and len(neighbours) >= 2 * len(members), neighbours
    poisoning = []
    for kind, frame in _poison_frames(meeting).items():
        _storm(meeting, meeting.outsider, {"one": [frame]}, rate=10, seconds=0.3)
        time.sleep(0.3)
        problems, _ = _neighbour_problems(meeting)
        if problems:
            poisoning.append(f"{kind}: {problems}")
            # Heal: the victims' genuine traffic (requests from their own MACs).
            FlowRun(meeting.bed, member_flows(members, 4, count=5, rate=MEDIA_RATE)
                    + member_flows(members, 6, count=5, rate=MEDIA_RATE)).wait()
            for m in members:
                meeting.bed.run_in(m, ["ip", "neigh", "flush", "dev", m.iface], check=False)
    print("poisoning attempts that changed the switch's neighbour table:\n  "
          + "\n  ".join(poisoning or ["none"]))
    assert not poisoning, "\n".join(poisoning)
