"""Checks the benchmark captures as the switch will see them (scapy decodes).

  /usr/bin/python3 -m pytest -q scripts/bench/test_gencap.py
"""

import json
import os
import subprocess
import sys

import pytest
from scapy.all import (ARP, IP, UDP, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                       IPv6, rdpcap)

HERE = os.path.dirname(os.path.abspath(__file__))


def generate(tmp_path, name, *args):
    subprocess.run([sys.executable, os.path.join(HERE, "gencap.py"), "--out", str(tmp_path),
                    "--name", name] + list(args), check=True)
    stem = tmp_path / name
    with open(str(stem) + ".json") as f:
        meta = json.load(f)
    legs = []
    with open(str(stem) + ".tables") as f:
        lines = [l.split() for l in f if l.strip() and not l.startswith("#")]
    for words in lines:
        if words[0] == "leg":
            legs.append(words)
    return rdpcap(str(stem) + ".pcap"), meta, lines, legs


def endpoint(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def checksums_valid(raw):
    pkt = Ether(raw)
    for layer, field in ((IP, "chksum"), (UDP, "chksum"), (ICMPv6ND_NS, "cksum"),
                         (ICMPv6ND_NA, "cksum")):
        if layer in pkt:
            delattr(pkt[layer], field)
    return bytes(Ether(bytes(pkt))) == raw


@pytest.mark.parametrize("family,size", [(4, 64), (4, 218), (4, 1250), (6, 64), (6, 218),
                                         (6, 1250)])
def test_unicast_packets_are_known_legs_with_rising_rtp(tmp_path, family, size):
    pkts, meta, lines, legs = generate(tmp_path, "u", "--kind", "unicast", "--family",
                                       str(family), "--size", str(size), "--legs", "20",
                                       "--packets", "60")
    assert ["role", "active", "1"] in lines
    assert ["vip", "198.18.0.100", "2001:db8:1::100"] in lines
    assert meta["control_packets"] == 4
    known = {(l[4], l[5]) for l in legs}
    last_seq = {}
    media = pkts[4:]
    assert len(media) == 60
    for p in media:
        raw = bytes(p)
        assert len(raw) == meta["frame_size"] == max(size, 54 if family == 4 else 74)
        assert p[Ether].dst == "02:70:63:61:70:00"
        assert checksums_valid(raw)
        ip = p[IP] if family == 4 else p[IPv6]
        assert (endpoint(ip.src, p[UDP].sport), endpoint(ip.dst, p[UDP].dport)) in known
        rtp = bytes(p[UDP].payload)
        assert rtp[0] == 0x80
        seq = int.from_bytes(rtp[2:4], "big")
        ssrc = rtp[8:12]
        if ssrc in last_seq:
            assert seq == (last_seq[ssrc] + 1) & 0xFFFF
        last_seq[ssrc] = seq
    # Uniform: 60 packets over 20 legs is every leg three times.
    assert len(last_seq) == 20


def test_fanout_has_one_sender_and_k_receivers(tmp_path):
    pkts, meta, lines, legs = generate(tmp_path, "f", "--kind", "fanout", "--receivers", "16",
                                       "--packets", "10")
    assert meta["copies_per_packet"] == 16
    assert len(legs) == 17
    assert sum(1 for l in legs if l[6] == "send,recv") == 1
    assert sum(1 for l in legs if l[6] == "recv") == 16
    sources = {(p[IP].src, p[UDP].sport) for p in pkts[4:]}
    assert sources == {("198.19.0.0", 20000)}


def test_flood_sources_are_no_leg(tmp_path):
    pkts, meta, lines, legs = generate(tmp_path, "x", "--kind", "flood", "--legs", "100",
                                       "--packets", "200")
    remotes = {l[4] for l in legs}
    for p in pkts[4:]:
        assert checksums_valid(bytes(p))
        assert endpoint(p[IP].src, p[UDP].sport) not in remotes
        assert p[IP].dst == "198.18.0.100"


def test_capture_resolves_the_gateway_by_answering_the_switch(tmp_path):
    """The switch learns a MAC only from an answer to its own request: the
    gateway asks for the VIP (so the switch asks for the gateway), then
    answers, in each family; every frame's checksum is valid."""
    pkts, meta, lines, legs = generate(tmp_path, "g", "--kind", "unicast", "--legs", "2",
                                       "--packets", "2")
    switch, gw = "02:70:63:61:70:00", "02:00:00:00:00:01"
    req, rep, ns, na = pkts[:4]
    assert req[ARP].op == 1 and req[ARP].psrc == "198.18.0.1" and req[ARP].pdst == "198.18.0.100"
    assert req[Ether].dst == "ff:ff:ff:ff:ff:ff" and req[ARP].hwsrc == gw
    assert rep[ARP].op == 2 and rep[Ether].dst == switch and rep[ARP].hwdst == switch
    assert (rep[ARP].hwsrc, rep[ARP].psrc, rep[ARP].pdst) == (gw, "198.18.0.1", "198.18.0.100")
    assert ns[ICMPv6ND_NS].tgt == "2001:db8:1::100" and ns[IPv6].src == "2001:db8:1::1"
    assert na[Ether].dst == switch and na[IPv6].dst == "2001:db8:1::100"
    assert na[IPv6].hlim == 255 and na[ICMPv6ND_NA].tgt == "2001:db8:1::1"
    assert na[ICMPv6ND_NA].S == 1 and na[ICMPv6ND_NA].O == 1
    assert na[ICMPv6NDOptDstLLAddr].lladdr == gw
    for p in (ns, na):
        assert checksums_valid(bytes(p))
