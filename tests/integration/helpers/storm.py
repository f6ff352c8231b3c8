#!/usr/bin/python3
"""Sends a storm of hostile frames from a namespace, for the hardening tests.

Run inside an attacker's namespace (ip netns exec NS storm.py --spec FILE):
the JSON spec names the interface, the addresses and the storm:
  {"iface": "eth0", "rate": 20000,            # frames/s, 0 = as fast as possible
   "count": 80000, "max_seconds": 60,          # send exactly count frames, or
   "duration": 4.0,                            # without count: as many as 4 s allow
   "groups": {"malformed": [hex frame, ...], "poison": [...], ...}}
Frames of all groups are sent in turn (round robin over the frames of a
group, then the next group). A full queue (ENOBUFS) is waited out and the
frame sent again; any other send error stops the storm. It prints one JSON
line at the end:
  {"sent": {group: n}, "total": n, "count": n or null, "errors": {errno: n},
   "first_error": str or null, "retries": n, "seconds": s, "rate": frames/s}
The caller checks that it sent what it meant to (helpers in
test_hardening_traffic.py).
The frames are built by the test (with scapy, see poison_frames() and
malformed_frames() below), so the tool itself knows nothing of what is bad.
"""
import errno
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
    count = spec.get("count")
    # A count is sent in full however long it takes (up to max_seconds); a
    # duration alone sends as many as it allows.
    limit = float(spec["max_seconds"] if count is not None else spec["duration"])
    sent = {g: 0 for g in groups}
    errors, first_error, retries = {}, None, 0
    start = time.monotonic()
    end = start + limit
    n = 0
    batch = 64
    while first_error is None and (count is None or n < count):
        now = time.monotonic()
        if now >= end:
            break
        if rate > 0 and n > rate * (now - start):
            time.sleep(min(0.001, end - now))
            continue
        for _ in range(batch if count is None else min(batch, count - n)):
            g, f = order[n % len(order)]
            try:
                sock.send(f)
            except OSError as e:
                if e.errno in (errno.ENOBUFS, errno.EAGAIN):
                    # The interface's queue is full: back-pressure, not a
                    # failure. The same frame goes again after a pause.
                    retries += 1
                    time.sleep(0.0005)
                    break
                name = errno.errorcode.get(e.errno, str(e.errno))
                errors[name] = errors.get(name, 0) + 1
                first_error = f"{g}: {e}"
                break
            sent[g] += 1
            n += 1
    seconds = time.monotonic() - start
    print(json.dumps({"sent": sent, "total": n, "count": count, "errors": errors,
                      "first_error": first_error, "retries": retries, "seconds": seconds,
                      "rate": n / seconds}), flush=True)


if __name__ == "__main__":
    main()
