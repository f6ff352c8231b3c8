"""The backbone in TLS (issue 17): a tap on the link between the two nodes
(tcpdump on the backbone veth) while the active creates a site, a meeting and
a participant sees TLS records and none of what they hold: not the site's
name, not the participant's name or address. The standby holds them all
(replication went through while the tap listened)."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from helpers.meeting import own_endpoint, vip_endpoint  # noqa: E402
from helpers.pair import REPL_PORT, PairBed, durable_view  # noqa: E402


def start_tap(bed, path):
    p = subprocess.Popen(["ip", "netns", "exec", bed.a.host.ns, "tcpdump", "-i", "bb0", "-U", "--immediate-mode",
                          "-w", str(path), "tcp", "port", str(REPL_PORT)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()  # "listening on bb0, ..." once it captures
    assert "listening on" in line, line
    return p


def test_a_tap_on_the_backbone_sees_tls_records_and_nothing_of_the_meeting():
    bed = PairBed(participants=1)
    tap = None
    try:
        bed.start()
        path = bed.testbed.tmpdir("tap", root="/tmp") / "backbone.pcap"
        tap = start_tap(bed, path)
        host = bed.participants[0]
        site = bed.a.ctl("site", "create", "--name", "Acme Backbone Secret")["site_id"]
        m = bed.a.ctl("meeting", "schedule", "--site", site, "--title", "Board Minutes")
        bed.a.ctl("meeting", "start", m["meeting_id"])
        own = own_endpoint(host, 4)
        bed.a.ctl("participant", "join", "--meeting", m["meeting_id"], "--name", "Carol Witness",
                  "--leg", f"audio,{own},local={vip_endpoint(4, 20000)}")
        bed.wait_synced()
        assert "Acme Backbone Secret" in str(durable_view(bed.b))
        time.sleep(0.3)  # the last acks on the wire
        tap.send_signal(signal.SIGINT)
        tap.communicate(timeout=10)
        seen = path.read_bytes()
        ip, port = own.rsplit(":", 1)
        packed = socket.inet_aton(ip) + int(port).to_bytes(2, "big")
        packed_le = socket.inet_aton(ip) + int(port).to_bytes(2, "little")
        print(f"\ncaptured {len(seen)} bytes of the backbone while replicating")
        assert len(seen) > 1000, "the tap saw no replication"
        for secret in (b"Acme Backbone Secret", b"Board Minutes", b"Carol Witness", ip.encode(),
                       packed, packed_le):
            assert secret not in seen, f"{secret!r} is readable on the backbone"
        assert b"\x17\x03\x03" in seen, "no TLS application-data record on the backbone"
    finally:
        if tap is not None and tap.poll() is None:
            tap.kill()
            tap.wait()
        bed.close()
