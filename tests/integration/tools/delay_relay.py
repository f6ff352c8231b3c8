#!/usr/bin/python3
"""A user-space delay line between two interfaces (there is no netem here).

Run inside a namespace that holds both interfaces (ip netns exec NS
delay_relay.py --a if0 --b if1 --delay-ms 20). Every Ethernet frame that
arrives on one interface is sent out of the other --delay-ms later, in
order, so a backbone through it has a round trip of twice --delay-ms. It
forwards everything (IP, ARP, ND, Tandem's heartbeats): the two ends see one
segment, only farther apart.

The interfaces' peers must put whole, checksummed frames on the wire
(ethtool -K IF tx off tso off gso off): a packet socket hands on a frame as it
got it, partial checksum and all. Prints "relaying" when ready; on SIGTERM it
prints one JSON line of counters: frames relayed each way, frames dropped
because the queue was full (--max-queue), and how late the latest sends were
against their due time (p50/p99/max ms).
"""
import argparse
import collections
import json
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23
SOL_PACKET = 263
PACKET_STATISTICS = 6
# The kernel stamps arrivals on CLOCK_REALTIME, so due times are wall times
# (the beds never step the clock).
SO_TIMESTAMPNS = 35  # and SCM_TIMESTAMPNS: struct timespec


def open_port(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        # Our own sends must not come back as arrivals (Linux >= 4.20).
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((iface, 0))
    s.setblocking(False)
    return s


def percentile(values, q):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="one interface")
    ap.add_argument("--b", required=True, help="the other")
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    ap.add_argument("--max-queue", type=int, default=100000, help="frames held each way")
    ap.add_argument("--late-log", help="file: each frame later than --late-log-ms, one a line")
    ap.add_argument("--late-log-ms", type=float, default=1.0)
    args = ap.parse_args()
    late_log = open(args.late_log, "w", buffering=1 << 16) if args.late_log else None
    delay = args.delay_ms / 1000.0
    ports = {"a": open_port(args.a), "b": open_port(args.b)}
    other = {"a": "b", "b": "a"}
    queues = {"a": collections.deque(), "b": collections.deque()}  # frames leaving that port
    relayed = {"a_to_b": 0, "b_to_a": 0}
    dropped = 0
    # Per direction (the port a frame leaves by): the latest lateness, and the max of all.
    late = {"a": collections.deque(maxlen=10000), "b": collections.deque(maxlen=10000)}
    late_max = {"a": 0.0, "b": 0.0}
    ts_size = struct.calcsize("ll")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    by_fd = {s.fileno(): name for name, s in ports.items()}
    print("relaying", flush=True)
    while not stop:
        now = time.time()
        due = [q[0][0] for q in queues.values() if q]
        timeout = max(0.0, min(due) - now) if due else 0.5
        try:
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            name = by_fd[fd]
            s = ports[name]
            while True:
                try:
                    frame, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(ts_size))
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                q = queues[other[name]]
                if len(q) >= args.max_queue:
                    dropped += 1
                    continue
                rx = time.time()
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("ll", data[:ts_size])
                        rx = sec + nsec * 1e-9
                q.append((rx + delay, frame))
        now = time.time()
        for name, q in queues.items():
            while q and q[0][0] <= now:
                t, frame = q.popleft()
                try:
                    ports[name].send(frame)
                    relayed["b_to_a" if name == "a" else "a_to_b"] += 1
                except (BlockingIOError, OSError):
                    dropped += 1
                ms = (now - t) * 1000.0
                late[name].append(ms)
                late_max[name] = max(late_max[name], ms)
                if late_log and ms > args.late_log_ms:
                    late_log.write(f"{now:.6f} {'b_to_a' if name == 'a' else 'a_to_b'} {ms:.3f}\n")
    if late_log:
        late_log.close()
    # Frames the kernel dropped because the relay did not read them in time
    # (its socket's receive queue was full).
    kernel_drops = sum(struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
                       for s in ports.values())
    both = list(late["a"]) + list(late["b"])
    print(json.dumps({**relayed, "dropped": dropped, "kernel_dropped": kernel_drops,
                      "late_ms_p50": round(percentile(both, 0.5), 3),
                      "late_ms_p99": round(percentile(both, 0.99), 3),
                      "late_ms_max": round(max(late_max.values()), 3),
                      "late_ms_max_a_to_b": round(late_max["b"], 3),
                      "late_ms_max_b_to_a": round(late_max["a"], 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
