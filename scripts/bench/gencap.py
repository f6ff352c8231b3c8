#!/usr/bin/python3
"""Writes the benchmark captures: meeting media (RTP over UDP, IPv4 or IPv6)
as a pcap file, and beside it the `tandem-tables apply` file that makes every
packet of the capture a known leg (or, for the flood, an unknown one).

  gencap.py --out DIR --name NAME --kind unicast|fanout|flood [options]

writes DIR/NAME.pcap, DIR/NAME.tables and DIR/NAME.json (what the capture
holds: packets, legs, copies the switch should send per packet received).

Addressing (matches the switch configuration that scripts/bench.sh writes):
  - the switch's access port has MAC --dst-mac; every frame goes to it;
  - the VIPs are 198.18.0.100 and 2001:db8:1::100, on-link in 198.18.0.0/24
    and 2001:db8:1::/64;
  - participants (remote endpoints) sit outside those prefixes, in
    198.19.0.0/16 and 2001:db8:2::/48, behind the gateway 198.18.0.1 /
    2001:db8:1::1 (MAC --src-mac). So the switch needs one neighbour per
    family, whatever the number of legs. The switch learns a neighbour's MAC
    only from an answer to a request of its own (it refuses unasked claims),
    so the capture resolves the gateway as a real one does: it starts with an
    ARP request and a neighbour solicitation from the gateway for the VIP
    (which make the switch ask for the gateway), each followed by the
    gateway's answer to that question (an ARP reply, a solicited neighbour
    advertisement). The switch handles slow-path frames in order, so the
    answer arrives after its request went out; net_pcap replays the capture
    in a loop, so all four repeat once per pass (a negligible share), and the
    answers also keep the entry reachable.

Plain `struct` rather than scapy: a million-leg capture is written in seconds.
"""

import argparse
import ipaddress
import json
import os
import random
import struct
import sys

VIP4 = ipaddress.IPv4Address("198.18.0.100")
VIP6 = ipaddress.IPv6Address("2001:db8:1::100")
GW4 = ipaddress.IPv4Address("198.18.0.1")
GW6 = ipaddress.IPv6Address("2001:db8:1::1")
REMOTE4 = int(ipaddress.IPv4Address("198.19.0.0"))  # known legs: 198.19.0.0/18
FLOOD4 = int(ipaddress.IPv4Address("198.19.128.0"))  # unknown sources: 198.19.128.0/17
REMOTE6 = int(ipaddress.IPv6Address("2001:db8:2::"))
FLOOD6 = int(ipaddress.IPv6Address("2001:db8:3::"))

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
ETH_LEN, IPV4_LEN, IPV6_LEN, UDP_LEN, RTP_LEN = 14, 20, 40, 8, 12
REMOTE_HOSTS = 4096  # remote IPs per family; the port tells legs apart beyond that
REMOTE_PORT0 = 20000
LOCAL_PORT0 = 30000


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def csum_words(data):
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack("!%dH" % (len(data) // 2), data))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def min_frame(family):
    return ETH_LEN + (IPV4_LEN if family == 4 else IPV6_LEN) + UDP_LEN + RTP_LEN


class Leg:
    __slots__ = ("leg_id", "meeting", "channel", "family", "rip", "rport", "lport", "flags",
                 "ssrc", "seq", "ts")

    def __init__(self, leg_id, meeting, channel, family, rip, rport, lport, flags):
        self.leg_id, self.meeting, self.channel = leg_id, meeting, channel
        self.family, self.rip, self.rport, self.lport = family, rip, rport, lport
        self.flags = flags
        self.ssrc = (0x5EED0000 + leg_id * 2654435761) & 0xFFFFFFFF
        self.seq = leg_id * 7919 & 0xFFFF
        self.ts = leg_id * 104729 & 0xFFFFFFFF

    def remote_text(self):
        a = self.rip
        return "%s:%d" % (a, self.rport) if self.family == 4 else "[%s]:%d" % (a, self.rport)

    def local_text(self):
        return ("%s:%d" % (VIP4, self.lport) if self.family == 4
                else "[%s]:%d" % (VIP6, self.lport))


def remote_addr(family, index, base4=REMOTE4, base6=REMOTE6):
    host = index % REMOTE_HOSTS
    if family == 4:
        return ipaddress.IPv4Address(base4 + host)
    return ipaddress.IPv6Address(base6 + host)


def make_leg(index, meeting, channel, family, flags="send,recv"):
    rip = remote_addr(family, index)
    rport = REMOTE_PORT0 + index // REMOTE_HOSTS
    lport = LOCAL_PORT0 + index % 30000
    return Leg(index + 1, meeting, channel, family, rip, rport, lport, flags)


class PacketBuilder:
    """Builds RTP/UDP/IP/Ethernet frames of a fixed size towards the switch."""

    def __init__(self, dst_mac, src_mac, frame_size, family, payload_type):
        self.dst, self.src = mac_bytes(dst_mac), mac_bytes(src_mac)
        self.family = family
        self.frame_size = max(frame_size, min_frame(family))
        self.pt = payload_type
        ip_len = IPV4_LEN if family == 4 else IPV6_LEN
        self.payload_len = self.frame_size - ETH_LEN - ip_len - UDP_LEN - RTP_LEN
        rnd = random.Random(frame_size)
        self.payload = bytes(rnd.getrandbits(8) for _ in range(self.payload_len))
        self.payload_sum = csum_words(self.payload) if self.payload_len % 2 == 0 else None
        self.vip = (VIP4 if family == 4 else VIP6).packed

    def rtp(self, ssrc, seq, ts, marker=0):
        return struct.pack("!BBHII", 0x80, (marker << 7) | self.pt, seq, ts, ssrc)

    def udp_ip(self, src_ip, sport, dport, rtp_hdr):
        udp_len = UDP_LEN + RTP_LEN + self.payload_len
        udp_nock = struct.pack("!HHHH", sport, dport, udp_len, 0)
        if self.payload_sum is not None:
            body_sum = csum_words(udp_nock + rtp_hdr) + self.payload_sum
        else:
            body_sum = csum_words(udp_nock + rtp_hdr + self.payload)
        if self.family == 4:
            pseudo = src_ip + self.vip + struct.pack("!BBH", 0, 17, udp_len)
        else:
            pseudo = src_ip + self.vip + struct.pack("!IxxxB", udp_len, 17)
        ck = 0xFFFF - fold(csum_words(pseudo) + body_sum)
        udp = struct.pack("!HHHH", sport, dport, udp_len, ck or 0xFFFF)
        if self.family == 4:
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0xB8, IPV4_LEN + udp_len, 0, 0x4000, 64,
                              17, 0, src_ip, self.vip)
            hck = 0xFFFF - fold(csum_words(hdr))
            ip = hdr[:10] + struct.pack("!H", hck) + hdr[12:]
            eth_type = ETH_IPV4
        else:
            ip = struct.pack("!IHBB16s16s", 0x6B800000, udp_len, 17, 64, src_ip, self.vip)
            eth_type = ETH_IPV6
        return self.dst + self.src + struct.pack("!H", eth_type) + ip + udp

    def frame(self, src_ip, sport, dport, rtp_hdr):
        return self.udp_ip(src_ip, sport, dport, rtp_hdr) + rtp_hdr + self.payload

    def leg_frame(self, leg, ts_step):
        leg.seq = (leg.seq + 1) & 0xFFFF
        leg.ts = (leg.ts + ts_step) & 0xFFFFFFFF
        return self.frame(leg.rip.packed, leg.rport, leg.lport, self.rtp(leg.ssrc, leg.seq, leg.ts))


def arp_request(dst_mac, gw_mac):
    """Who has the VIP, tell the gateway: the switch learns the gateway's MAC."""
    src = mac_bytes(gw_mac)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, src, GW4.packed, b"\0" * 6,
                      VIP4.packed)
    frame = b"\xff" * 6 + src + struct.pack("!H", ETH_ARP) + arp
    return frame + b"\0" * (60 - len(frame))


def arp_reply(dst_mac, gw_mac):
    """The gateway's answer to the switch's request for it (op 2, to the VIP)."""
    src, dst = mac_bytes(gw_mac), mac_bytes(dst_mac)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 2, src, GW4.packed, dst,
                      VIP4.packed)
    frame = dst + src + struct.pack("!H", ETH_ARP) + arp
    return frame + b"\0" * (60 - len(frame))


def icmp6(src_ip, dst_ip, body):
    """An ICMPv6 message (checksum filled in) in an IPv6 header, hop limit 255."""
    pseudo = src_ip + dst_ip + struct.pack("!IxxxB", len(body), 58)
    ck = 0xFFFF - fold(csum_words(pseudo + body))
    icmp = body[:2] + struct.pack("!H", ck) + body[4:]
    return struct.pack("!IHBB16s16s", 0x60000000, len(icmp), 58, 255, src_ip, dst_ip) + icmp


def neighbour_advertisement(dst_mac, gw_mac):
    """The gateway's solicited answer (S and O flags) to the switch's NS for it,
    sent to the VIP the NS came from, with the target link-layer option."""
    src = mac_bytes(gw_mac)
    body = struct.pack("!BBHI16sBB6s", 136, 0, 0, 0x60000000, GW6.packed, 2, 1, src)
    return (mac_bytes(dst_mac) + src + struct.pack("!H", ETH_IPV6) +
            icmp6(GW6.packed, VIP6.packed, body))


def neighbour_solicitation(gw_mac):
    """NS from the gateway for the VIP, with the source link-layer option."""
    src = mac_bytes(gw_mac)
    vip = VIP6.packed
    snm = ipaddress.IPv6Address("ff02::1:ff00:0").packed[:13] + vip[13:]
    dst_mac = b"\x33\x33" + snm[12:]
    body = struct.pack("!BBHI16sBB6s", 135, 0, 0, 0, vip, 1, 1, src)
    return dst_mac + src + struct.pack("!H", ETH_IPV6) + icmp6(GW6.packed, snm, body)


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        usec = 0
        for fr in frames:
            f.write(struct.pack("<IIII", usec // 1000000, usec % 1000000, len(fr), len(fr)))
            f.write(fr)
            usec += 20


def tables_lines(legs, meetings, extra=()):
    yield "# generated by scripts/bench/gencap.py"
    yield "role active 1"
    yield "vip %s %s" % (VIP4, VIP6)
    for m in meetings:
        yield "meeting %d %d" % (m, 1 + m % 97)
    for leg in legs:
        yield "leg %d %d %s %s %s %s %d" % (leg.leg_id, leg.meeting, leg.channel,
                                            leg.remote_text(), leg.local_text(), leg.flags,
                                            leg.leg_id)
    yield from extra


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--name", required=True, help="file name stem")
    p.add_argument("--kind", choices=["unicast", "fanout", "flood"], required=True)
    p.add_argument("--family", type=int, choices=[4, 6], default=4)
    p.add_argument("--size", type=int, default=218,
                   help="frame length in bytes without FCS (raised to the RTP minimum)")
    p.add_argument("--legs", type=int, default=1000,
                   help="unicast/flood: legs in the tables, in meetings of two")
    p.add_argument("--receivers", type=int, default=16, help="fanout: receivers of the sender")
    p.add_argument("--packets", type=int, default=8192,
                   help="packets in the capture (net_pcap holds them all in mbufs)")
    p.add_argument("--dst-mac", default="02:70:63:61:70:00",
                   help="MAC of the switch's port (net_pcap's first port by default)")
    p.add_argument("--src-mac", default="02:00:00:00:00:01", help="MAC of the gateway")
    p.add_argument("--seed", type=int, default=5)
    a = p.parse_args(argv)

    rnd = random.Random(a.seed)
    channel = "video" if a.size >= 1000 else "audio"
    pt, ts_step = (96, 3000) if channel == "video" else (111, 960)
    builder = PacketBuilder(a.dst_mac, a.src_mac, a.size, a.family, pt)
    frames = [arp_request(a.dst_mac, a.src_mac), arp_reply(a.dst_mac, a.src_mac),
              neighbour_solicitation(a.src_mac), neighbour_advertisement(a.dst_mac, a.src_mac)]
    control = len(frames)
    extra = []

    if a.kind == "fanout":
        k = a.receivers
        legs = [make_leg(0, 1, channel, a.family, "send,recv")]
        legs += [make_leg(i, 1, channel, a.family, "recv") for i in range(1, k + 1)]
        meetings = [1]
        for _ in range(a.packets):
            frames.append(builder.leg_frame(legs[0], ts_step))
        copies = k
    else:
        if a.legs % 2:
            sys.exit("--legs must be even (meetings of two)")
        meetings = list(range(1, a.legs // 2 + 1))
        legs = [make_leg(i, 1 + i // 2, channel, a.family) for i in range(a.legs)]
        if a.kind == "unicast":
            # Uniform over the legs: every leg once per pass when the capture is
            # larger than the table, else a distinct random sample of the legs.
            if a.packets >= a.legs:
                order = []
                while len(order) < a.packets:
                    block = list(range(a.legs))
                    rnd.shuffle(block)
                    order += block
                order = order[:a.packets]
            else:
                order = rnd.sample(range(a.legs), a.packets)
            for i in order:
                frames.append(builder.leg_frame(legs[i], ts_step))
            copies = 1
        else:  # flood: sources that are no leg, towards the VIP's leg ports
            base4, base6 = FLOOD4, FLOOD6
            for n in range(a.packets):
                host = rnd.randrange(1 << 15)
                src = (ipaddress.IPv4Address(base4 + host) if a.family == 4
                       else ipaddress.IPv6Address(base6 + host)).packed
                sport = rnd.randrange(1024, 65536)
                dport = LOCAL_PORT0 + rnd.randrange(min(a.legs, 30000))
                rtp = builder.rtp(rnd.getrandbits(32), n & 0xFFFF, n * ts_step & 0xFFFFFFFF)
                frames.append(builder.frame(src, sport, dport, rtp))
            copies = 0

    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.name)
    write_pcap(stem + ".pcap", frames)
    with open(stem + ".tables", "w") as f:
        for line in tables_lines(legs, meetings, extra):
            f.write(line + "\n")
    meta = {
        "name": a.name, "kind": a.kind, "family": a.family, "frame_size": builder.frame_size,
        "legs": len(legs), "meetings": len(meetings), "media_packets": a.packets,
        "control_packets": control, "copies_per_packet": copies, "dst_mac": a.dst_mac,
        "src_mac": a.src_mac, "channel": channel,
    }
    with open(stem + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
