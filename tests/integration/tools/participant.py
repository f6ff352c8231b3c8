#!/usr/bin/python3
"""A meeting participant made of one real kernel UDP socket.

Run inside a participant's network namespace (ip netns exec NS participant.py
...). It binds its own address and port, sends --count packets at --rate to
each --to address (the switch's VIP:port), and receives for --duration
seconds from its start. It prints one JSON report on stdout:

  {"id": 1, "bind": "198.18.0.10:5000", "sent": 100, "send_errors": 0, "send_seconds": 1.98,
   "sources": {"198.18.0.100:20001": {"packets": 200, "foreign": 0,
       "senders": {"2": {"count": 100, "received": 100, "duplicates": 0,
                         "corrupt": 0, "missing": [], "warmup": 3,
                         "max_gap_ms": 21.3, "gaps": [[1234.56, 21.3], ...]}}}}}

Every payload carries (magic, sender id, sequence, count the sender sends,
kind, size) and is padded to --size bytes with a pattern derived from the
sender and sequence, ending in a CRC-32 of all before it, so the receiver can
tell for each packet who sent it, which one it is, and whether it arrived
intact. "foreign" counts datagrams that do not carry this format at all.

Before the measured packets it sends a few warm-up packets (kind 1) during
--warmup seconds: they let ARP/ND settle on every hop, and are reported
apart ("warmup") so they never count as data.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
import zlib

MAGIC = b"TNDM"
HEADER = struct.Struct("!4sIIIHH")  # magic, sender, seq, count, kind, size
CRC = struct.Struct("!I")
MIN_SIZE = HEADER.size + CRC.size
KIND_DATA = 0
KIND_WARMUP = 1


def parse_endpoint(text):
    """'198.18.0.10:5000' or '[2001:db8::10]:5000' -> (family, host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, host, int(port)
    host, _, port = text.rpartition(":")
    return socket.AF_INET, host, int(port)


def format_endpoint(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def padding(sender, seq, n):
    seed = (sender * 131 + seq * 7) & 0xFF
    return bytes((seed + i) & 0xFF for i in range(n))


def build_payload(sender, seq, count, kind, size):
    size = max(size, MIN_SIZE)
    head = HEADER.pack(MAGIC, sender, seq, count, kind, size)
    body = head + padding(sender, seq, size - MIN_SIZE)
    return body + CRC.pack(zlib.crc32(body))


def check_payload(data):
    """Returns (sender, seq, count, kind, intact) or None if not ours."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        return None
    _, sender, seq, count, kind, size = HEADER.unpack_from(data)
    intact = (
        len(data) == size
        and len(data) >= MIN_SIZE
        and CRC.unpack_from(data, len(data) - CRC.size)[0] == zlib.crc32(data[: -CRC.size])
        and data[HEADER.size : -CRC.size] == padding(sender, seq, size - MIN_SIZE)
    )
    return sender, seq, count, kind, intact


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--id", type=int, required=True, help="sender id in payloads")
    ap.add_argument("--bind", required=True, help="own IP:PORT or [IPv6]:PORT")
    ap.add_argument("--to", action="append", default=[], help="destination, repeatable")
    ap.add_argument("--count", type=int, default=100, help="data packets per destination")
    ap.add_argument("--rate", type=float, default=50.0, help="packets per second")
    ap.add_argument("--size", type=int, default=200, help="UDP payload bytes")
    ap.add_argument("--burst", type=int, default=1,
                    help="packets sent back to back, --burst/--rate seconds apart (a video "
                         "frame's packets); the average rate stays --rate")
    ap.add_argument("--start-delay", type=float, default=0.5,
                    help="seconds before the first packet (peers bind meanwhile)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="seconds of warm-up packets before the data")
    ap.add_argument("--duration", type=float, default=6.0,
                    help="seconds to receive, from start")
    args = ap.parse_args()

    family, host, port = parse_endpoint(args.bind)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, port))
    targets = []
    for t in args.to:
        tf, th, tp = parse_endpoint(t)
        if tf != family:
            sys.exit(f"participant: {t} is not the family of {args.bind}")
        targets.append((th, tp))

    start = time.monotonic()
    sent = 0
    send_errors = 0
    send_seconds = 0.0

    def send_all():
        nonlocal sent, send_errors, send_seconds
        time.sleep(args.start_delay)
        # Three warm-up rounds spread over the warm-up time.
        for i in range(3):
            for t in targets:
                try:
                    sock.sendto(build_payload(args.id, i, 0, KIND_WARMUP, args.size), t)
                except OSError:
                    pass
            time.sleep(args.warmup / 3)
        t0 = time.monotonic()
        burst = max(1, args.burst)
        for seq in range(args.count):
            due = t0 + (seq - seq % burst) / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for t in targets:
                try:
                    sock.sendto(build_payload(args.id, seq, args.count, KIND_DATA, args.size), t)
                    sent += 1
                except OSError:
                    send_errors += 1
        send_seconds = time.monotonic() - t0

    sender = threading.Thread(target=send_all, daemon=True)
    if targets:
        sender.start()

    sources = {}
    deadline = start + args.duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            break
        except OSError:
            # e.g. ICMP port unreachable reported on the socket; keep going.
            continue
        src = sources.setdefault(format_endpoint(addr), {"packets": 0, "foreign": 0, "senders": {}})
        src["packets"] += 1
        parsed = check_payload(data)
        if parsed is None:
            src["foreign"] += 1
            continue
        sid, seq, count, kind, intact = parsed
        st = src["senders"].setdefault(str(sid), {
            "count": 0, "seqs": {}, "duplicates": 0, "corrupt": 0, "warmup": 0, "arrivals": []})
        if kind == KIND_WARMUP:
            st["warmup"] += 1
            continue
        st["count"] = max(st["count"], count)
        if not intact:
            st["corrupt"] += 1
        if seq in st["seqs"]:
            st["duplicates"] += 1
        st["seqs"][seq] = True
        st["arrivals"].append(time.monotonic())

    if targets:
        sender.join(timeout=1.0)
    for src in sources.values():
        for st in src["senders"].values():
            seqs = st.pop("seqs")
            arrivals = st.pop("arrivals")
            # The longest silence between two packets of this sender: a
            # takeover's media gap as the receiver hears it.
            gaps = [(b - a, a) for a, b in zip(arrivals, arrivals[1:])]
            st["max_gap_ms"] = max(gaps, default=(0.0, 0.0))[0] * 1000.0
            # The longest silences with when they began (CLOCK_MONOTONIC, the
            # same clock in every namespace): a test tells the gap of the
            # failure it injected from the stalls of a busy machine.
            st["gaps"] = [[at, gap * 1000.0] for gap, at in sorted(gaps, reverse=True)[:8]]
            st["received"] = len(seqs)
            # Whole: tests read its tail (did media resume?), which a cut list hides.
            st["missing"] = [s for s in range(st["count"]) if s not in seqs]
    report = {"id": args.id, "bind": args.bind, "sent": sent, "send_errors": send_errors,
              "send_seconds": send_seconds, "sources": sources}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
