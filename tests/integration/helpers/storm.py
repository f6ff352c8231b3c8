#!/usr/bin/python3
"""Sends a storm of hostile frames from a namespace, for the hardening tests.

Run inside an attacker's namespace (ip netns exec NS storm.py --spec FILE):
the JSON spec names the interface, the addresses and the storm:
  {"iface": "eth0", "duration": 5.0, "rate": 20000,         # frames/s, 0 = as fast as possible
   "groups": {"malformed": [hex frame, ...], "poison": [...], ...}}
Frames of all groups are sent in turn (round robin over the frames of a
group, then the next group). It prints one JSON line at the end:
  {"sent": {group: n}, "errors": n, "seconds": s, "rate": achieved frames/s}
The frames are built by the test (with scapy, see poison_frames() and
malformed_frames() below), so the tool itself knows nothing of what is bad.
"""
import json
import socket
import sys
import time

TOOLS = __file__.rsplit("/helpers/", 1)[0] + "/tools"


def malformed_frames(src_mac, dst_mac, src, vip, src6, vip6, sport, dport, oversize=1600):
    """Every broken and unsupported frame of tools/barrage.py, by kind."""
    sys.path.insert(0, TOOLS)
    import argparse
    from barrage import build_frames  # noqa: E402
    a = argparse.Namespace(src_mac=src_mac, dst_mac=dst_mac, src=src, vip=vip, src6=src6,
                           vip6=vip6, sport=sport, dport=dport, oversize=oversize)
    return build_frames(a)


def extra_malformed_frames(src_mac, dst_mac, src, vip, src6, vip6, sport, dport):
    """Broken frames barrage.py does not send: bad checksums, zero ports, RTP
    with a broken header, multicast/broadcast media, TTL 0/1, runts."""
    from scapy.all import IP, UDP, Ether, IPv6, Raw
    eth = Ether(src=src_mac, dst=dst_mac)
    ip = IP(src=src, dst=vip, ttl=64)
    udp = UDP(sport=sport, dport=dport)
    good = eth / ip / udp / Raw(b"\x80" * 40)
    raw = bytearray(bytes(good))
    raw[14 + 10] ^= 0xFF  # IPv4 header checksum
    frames = {
        "ipv4_bad_header_checksum": bytes(raw),
        "udp_source_port_0": bytes(eth / ip / UDP(sport=0, dport=dport) / Raw(b"x" * 40)),
        "udp_dest_port_0": bytes(eth / ip / UDP(sport=sport, dport=0) / Raw(b"x" * 40)),
        "broadcast_udp_to_vip": bytes(Ether(src=src_mac, dst="ff:ff:ff:ff:ff:ff") / ip / udp
                                      / Raw(b"x" * 40)),
        "multicast_udp_to_vip": bytes(Ether(src=src_mac, dst="01:00:5e:00:00:01") / ip / udp
                                      / Raw(b"x" * 40)),
        "other_mac_udp_to_vip": bytes(Ether(src=src_mac, dst="02:99:99:99:99:99") / ip / udp
                                      / Raw(b"x" * 40)),
        "ipv4_mapped_ipv6_as_member": bytes(eth / IPv6(src="::ffff:" + src, dst="::ffff:" + vip)
                                            / udp / Raw(b"x" * 40)),
    }
    # The IPv6 zero checksum must stay 0 (scapy would fill it in).
    f = bytearray(bytes(eth / IPv6(src=src6, dst=vip6) / UDP(sport=sport, dport=dport)
                        / Raw(b"x" * 40)))
    f[14 + 40 + 6:14 + 40 + 8] = b"\x00\x00"
    frames["ipv6_udp_zero_checksum"] = bytes(f)
    return frames


def main():
    spec = json.load(open(sys.argv[sys.argv.index("--spec") + 1]))
    groups = {g: [bytes.fromhex(h) for h in frames] for g, frames in spec["groups"].items()}
    order = [(g, f) for g, fs in groups.items() for f in fs]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((spec["iface"], 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    rate = float(spec.get("rate", 0))
    duration = float(spec["duration"])
    sent = {g: 0 for g in groups}
    errors = 0
    start = time.monotonic()
    end = start + duration
    n = 0
    batch = 64
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if rate > 0 and n > rate * (now - start):
            time.sleep(min(0.001, end - now))
            continue
        for _ in range(batch):
            g, f = order[n % len(order)]
            try:
                sock.send(f)
                sent[g] += 1
            except OSError:
                errors += 1
            n += 1
    seconds = time.monotonic() - start
    print(json.dumps({"sent": sent, "errors": errors, "seconds": seconds,
                      "rate": sum(sent.values()) / seconds}), flush=True)


if __name__ == "__main__":
    main()
