"""Who may speak for the pair (issues 4 and 7): forged and replayed pair
messages, sent on the access network and on the backbone by a host without
the key, are refused and counted, and change nothing."""
import json
import os
import secrets
import struct
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(__file__))

from helpers.pair import BACKBONE, REPL_PORT, PairBed, durable_view  # noqa: E402

import pytest  # noqa: E402

# Runs in a participant's namespace: waits for one genuine heartbeat of node
# `node_id` on the access network, then sends it again (replays), a copy with
# a raised epoch and the active flag (forged: its HMAC no longer matches), and
# frames cut short.
ATTACKER = textwrap.dedent("""
    import json, socket, struct, sys
    iface, node_id, copies = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
    s.bind((iface, 0x88b5))
    s.settimeout(5)
    while True:
        f = s.recv(2048)
        # Ether(14) + magic(4) version(1) path(1) pad(2) node_id(4, big-endian) ...
        if len(f) >= 14 + 96 and struct.unpack_from(">I", f, 22)[0] == node_id:
            break
    genuine = f[:14 + 96]
    forged = bytearray(genuine)
    for i in range(26, 40):  # role, epoch and flags live here; any byte breaks the HMAC
        forged[i] ^= 0xff
    sent = {"replayed": 0, "forged": 0, "short": 0}
    for _ in range(copies):
        s.send(genuine); sent["replayed"] += 1
        s.send(bytes(forged)); sent["forged"] += 1
        s.send(genuine[:40]); sent["short"] += 1
    print(json.dumps(sent))
""")


def refused(node):
    st = node.status()
    out = {k: int(v) for k, v in st["pair"].get("refused", {}).items()}
    # Frames over their source's rate never reach the HMAC (switch/handoff.h).
    out["slow_path_limited"] = int(st.get("drops", {}).get("slow_path_limited", 0))
    return out


@pytest.fixture
def bed():
    b = PairBed(participants=1)
    try:
        b.start()
        b.a.ctl("site", "create", "--name", "brand")
        b.wait_synced()
        yield b
    finally:
        b.close()


def test_forged_and_replayed_heartbeats_are_refused_and_counted(bed):
    before = refused(bed.b)
    epochs = (bed.a.status()["epoch"], bed.b.status()["epoch"])
    script = bed.testbed.tmpdir("attacker", root="/tmp") / "attacker.py"
    script.write_text(ATTACKER)
    p = bed.participants[0]
    out = bed.testbed.run_in(p, ["/usr/bin/python3", str(script), p.iface, "1", "50"]).stdout
    sent = json.loads(out)
    time.sleep(0.5)
    after = refused(bed.b)
    got = after["heartbeat_access"] - before.get("heartbeat_access", 0)
    limited = after["slow_path_limited"] - before.get("slow_path_limited", 0)
    total = sum(sent.values())
    print(f"\nsent {sent} as node 1 on the access network: node 2 refused {got}, dropped "
          f"{limited} over the sender's rate")
    got += limited
    assert got >= total, (sent, before, after)
    # Nothing changed: the same roles in the same epochs, no alarm.
    assert (bed.a.role(), bed.b.role()) == ("active", "standby")
    assert (bed.a.status()["epoch"], bed.b.status()["epoch"]) == epochs
    assert bed.b.status()["pair"]["peer_state"] == "up"


def frame(msg_type, sender, epoch, counter, body, mac):
    # Version 2 (mirror/wire.h kWireVersion): an older one is refused as malformed.
    hdr = struct.pack("<HBBIQQI", 0x4D54, 2, msg_type, sender, epoch, counter, len(body))
    return hdr + body + mac


def test_replication_from_a_peer_without_the_key_gets_nothing(bed):
    """From the standby's namespace (the backbone), a client without the key
    connects to the active's replication port: a Hello with a wrong MAC in the
    clear, garbage, and a TLS 1.3 client with a wrong pre-shared key. Each is
    refused, counted, and answered with nothing but a closed connection (the
    TLS client: a failed handshake, no application data)."""
    before = refused(bed.a)
    view = durable_view(bed.a)
    attempts = {
        "bad_mac": frame(1, 2, 0, 1, secrets.token_bytes(16), secrets.token_bytes(32)),
        "malformed": b"GET / HTTP/1.1\r\n\r\n" + b"\x00" * 64,
    }
    script = bed.testbed.tmpdir("attacker", root="/tmp") / "backbone.py"
    script.write_text(textwrap.dedent(f"""
        import socket, sys
        data = bytes.fromhex(sys.argv[1])
        s = socket.create_connection(("{BACKBONE['na']}", {REPL_PORT}), timeout=5)
        s.sendall(data)
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        print(len(got))
    """))
    for what, data in attempts.items():
        out = bed.testbed.run_in(bed.b.host, ["/usr/bin/python3", str(script), data.hex()])
        assert out.stdout.strip() == "0", f"{what}: the source answered {out.stdout} bytes"
    # The backbone is in TLS (docs/pair.md): a client that speaks TLS but
    # holds another key fails the handshake at the PSK binder.
    s_client = bed.testbed.run_in(bed.b.host, [
        "openssl", "s_client", "-connect", f"{BACKBONE['na']}:{REPL_PORT}", "-tls1_3",
        "-ciphersuites", "TLS_AES_128_GCM_SHA256", "-psk_identity", "tandem-backbone",
        "-psk", secrets.token_hex(32), "-quiet"], input="", check=False)
    assert s_client.returncode != 0, s_client.stdout + s_client.stderr
    assert s_client.stdout == "", s_client.stdout
    time.sleep(0.3)
    after = refused(bed.a)
    print(f"\nreplication refusals on the active: before {before}, after {after}")
    assert after["replication_bad_mac"] > before.get("replication_bad_mac", 0)
    assert after["replication_malformed"] > before.get("replication_malformed", 0)
    # Nothing changed, and the genuine standby still follows.
    assert durable_view(bed.a) == view
    bed.a.ctl("site", "create", "--name", "after-the-attack")
    bed.wait_synced()
    assert durable_view(bed.a) == durable_view(bed.b)
