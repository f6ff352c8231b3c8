#!/usr/bin/python3
"""A slow link for TCP: relays each connection made to --listen to --to,
passing at most --rate bytes per second from --to back to the client (the
other direction unlimited), as a congested backbone would.

Run in the client's namespace (ip netns exec NS slow_link.py ...); it prints
"ready" once it listens, and runs until killed.
"""
import argparse
import socket
import sys
import threading
import time


def pump(src, dst, rate):
    """Copies src to dst, at most `rate` bytes/s (0: as fast as it comes)."""
    sent, start = 0, time.monotonic()
    try:
        while True:
            data = src.recv(16384 if rate else 65536)
            if not data:
                break
            dst.sendall(data)
            if rate:
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--to", required=True, help="HOST:PORT")
    p.add_argument("--rate", type=int, required=True, help="bytes/s towards the client")
    a = p.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.to.rsplit(":", 1)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lhost, int(lport)))
    ls.listen(16)
    print("ready", flush=True)
    while True:
        client, _ = ls.accept()
        try:
            server = socket.create_connection((thost, int(tport)), timeout=5)
            server.settimeout(None)
        except OSError:
            client.close()
            continue
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, server, 0), daemon=True).start()
        threading.Thread(target=pump, args=(server, client, a.rate), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
