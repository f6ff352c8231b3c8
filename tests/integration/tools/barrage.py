#!/usr/bin/python3
"""Sends malformed and unsupported frames at the switch, on command.

Run inside a participant's namespace (ip netns exec NS barrage.py ...). The
frames are built with scapy and written to a raw AF_PACKET socket on --iface,
addressed to the switch's MAC, and look as if they came from the leg
(--src:--sport -> --vip:--dport, and the same over IPv6), so that only the
switch's validation stands between them and the meeting.

Protocol: it prints {"kinds": [...]} on stdout, then reads commands on
stdin, one a line:
  KIND COUNT   send COUNT frames of KIND; answers {"kind":..,"sent":..,"errors":..}
  quit         exit
"""
import argparse
import json
import socket
import sys

from scapy.all import (IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPOption_NOP, IPv6,  # noqa: E402
                       IPv6ExtHdrFragment, Raw)

JUNK = b"BAD!" * 16  # never the participants' payload format


def build_frames(a):
    eth = Ether(src=a.src_mac, dst=a.dst_mac)
    eth4 = Ether(src=a.src_mac, dst=a.dst_mac, type=0x0800)
    eth6 = Ether(src=a.src_mac, dst=a.dst_mac, type=0x86DD)
    udp = UDP(sport=a.sport, dport=a.dport)
    ip = IP(src=a.src, dst=a.vip, ttl=64)
    ip6 = IPv6(src=a.src6, dst=a.vip6, hlim=64)
    good4 = bytes(eth / ip / udp / Raw(JUNK))
    good6 = bytes(eth / ip6 / udp / Raw(JUNK))
    ip_hdr = bytes(ip / udp / Raw(JUNK))
    ip6_hdr = bytes(ip6 / udp / Raw(JUNK))

    def ip_with(**fields):
        return bytes(eth / IP(src=a.src, dst=a.vip, ttl=64, **fields) / udp / Raw(JUNK))

    frames = {
        # Ethernet, IP and UDP headers cut short. (A packet socket sends no
        # less than 14 bytes, and the bridge drops a cut VLAN tag.)
        "eth_header_only": bytes(eth4)[:14],
        "vlan_ipv4_truncated": bytes(eth / Dot1Q(vlan=42, type=0x0800)) + ip_hdr[:8],
        "ipv4_truncated": good4[:14 + 12],
        "udp_truncated": bytes(eth4) + bytes(IP(src=a.src, dst=a.vip, proto=17, len=24))[:20]
        + bytes(udp)[:4],
        # Inconsistent IPv4 headers.
        "ipv4_ihl_too_small": bytes(eth4) + bytes([0x44]) + ip_hdr[1:],
        "ipv4_ihl_too_large": bytes(eth4) + bytes([0x4F]) + ip_hdr[1:36],
        "ipv4_bad_version": bytes(eth4) + bytes([0x55]) + ip_hdr[1:],
        "ipv4_total_length_too_big": ip_with(len=20 + 8 + len(JUNK) + 100),
        "ipv4_total_length_too_small": ip_with(len=24),
        "udp_length_too_big": bytes(eth / ip / UDP(sport=a.sport, dport=a.dport,
                                                    len=8 + len(JUNK) + 100) / Raw(JUNK)),
        "udp_length_too_small": bytes(eth / ip / UDP(sport=a.sport, dport=a.dport, len=4)
                                      / Raw(JUNK)),
        # Unsupported but well-formed.
        "ipv4_options": ip_with(options=[IPOption_NOP()] * 4),
        "ipv4_first_fragment": ip_with(flags="MF", frag=0),
        "ipv4_later_fragment": bytes(eth / IP(src=a.src, dst=a.vip, proto=17, frag=185)
                                     / Raw(JUNK)),
        "tcp_to_vip": bytes(eth / ip / TCP(sport=a.sport, dport=a.dport, flags="S")),
        "ipproto_253_to_vip": bytes(eth / IP(src=a.src, dst=a.vip, proto=253) / Raw(JUNK)),
        "oversized_ipv4": bytes(eth / ip / udp / Raw(b"O" * a.oversize)),
        # VLAN-tagged junk and unknown EtherTypes.
        "vlan_junk": bytes(eth / Dot1Q(vlan=42, type=0x0800) / Raw(JUNK)),
        "qinq_junk": bytes(eth / Dot1AD(vlan=7) / Dot1Q(vlan=42, type=0x0800) / Raw(JUNK)),
        "unknown_ethertype": bytes(Ether(src=a.src_mac, dst=a.dst_mac, type=0x9999) / Raw(JUNK)),
        # IPv6.
        "ipv6_truncated": good6[:14 + 20],
        "ipv6_payload_length_too_big": bytes(eth6) + ip6_hdr[:4]
        + (8 + len(JUNK) + 100).to_bytes(2, "big") + ip6_hdr[6:],
        "ipv6_payload_length_too_small": bytes(eth6) + ip6_hdr[:4] + (4).to_bytes(2, "big")
        + ip6_hdr[6:],
        "ipv6_udp_length_too_big": bytes(eth / ip6 / UDP(sport=a.sport, dport=a.dport,
                                                          len=8 + len(JUNK) + 100) / Raw(JUNK)),
        "ipv6_fragment": bytes(eth / ip6 / IPv6ExtHdrFragment(m=1) / udp / Raw(JUNK)),
        "ipv6_tcp_to_vip": bytes(eth / ip6 / TCP(sport=a.sport, dport=a.dport, flags="S")),
    }
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--src-mac", required=True)
    ap.add_argument("--dst-mac", required=True, help="the switch's MAC")
    ap.add_argument("--src", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--src6", required=True)
    ap.add_argument("--vip6", required=True)
    ap.add_argument("--sport", type=int, required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--oversize", type=int, default=1600, help="payload of oversized_ipv4")
    args = ap.parse_args()
    frames = build_frames(args)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((args.iface, 0))
    print(json.dumps({"kinds": list(frames)}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        kind, count = words[0], int(words[1])
        sent = errors = 0
        for _ in range(count):
            try:
                sock.send(frames[kind])
                sent += 1
            except OSError:
                errors += 1
        print(json.dumps({"kind": kind, "sent": sent, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
