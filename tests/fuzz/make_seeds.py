#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Small, real inputs: frames built with scapy as participants, the bridge and
attackers send them; heartbeats and replication frames in their wire layout;
configuration files as the docs and the test helpers write them; the table
regions as the library makes them (the patched mode of tables_fuzz.cc).
Re-running it rewrites the seed-*.bin files and leaves everything else (crash
inputs kept as regression cases, crash-*/regress-*) alone.

Run with Debian's Python (it has scapy): /usr/bin/python3 tests/fuzz/make_seeds.py
[packet|heartbeat|wire|configs|tables|datapath ...] (default: all of them).
"""
import hashlib
import hmac
import pathlib
import struct

from scapy.all import (ARP, ICMP, IP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, ICMPv6ND_NA,
                       ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPOption_NOP,
                       IPv6, IPv6ExtHdrFragment, Raw)

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
OUR_MAC = "02:00:00:00:00:01"  # the MAC packet_fuzz.cc gives the switch
PEER = "02:00:00:00:00:10"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}.bin").write_bytes(bytes(data))


def rtp(seq=1, payload=b"\x00" * 40):
    return struct.pack("!BBHII", 0x80, 111, seq, 1000 + seq, 0x1234) + payload


def packets():
    eth = Ether(src=PEER, dst=OUR_MAC)
    v4 = IP(src="198.18.0.10", dst="198.18.0.100", ttl=64)
    v6 = IPv6(src="2001:db8:1::10", dst="2001:db8:1::100", hlim=64)
    udp = UDP(sport=5000, dport=20000)
    frames = {
        "udp4_rtp": eth / v4 / udp / Raw(rtp()),
        "udp6_rtp": eth / v6 / udp / Raw(rtp(2)),
        "udp4_nocsum": eth / v4 / UDP(sport=5000, dport=20000, chksum=0) / Raw(rtp(3)),
        "udp4_big": eth / v4 / udp / Raw(rtp(4, b"\xab" * 1100)),
        "arp_request": Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=PEER, psrc="198.18.0.10", pdst="198.18.0.100"),
        "icmp_echo": eth / v4 / ICMP() / Raw(b"ping"),
        "icmp6_echo": eth / v6 / ICMPv6EchoRequest(),
        "nd_ns": Ether(src=PEER, dst="33:33:ff:00:01:00") / IPv6(
            src="2001:db8:1::10", dst="ff02::1:ff00:100", hlim=255) / ICMPv6ND_NS(
            tgt="2001:db8:1::100") / ICMPv6NDOptSrcLLAddr(lladdr=PEER),
        "nd_na": eth / v6 / ICMPv6ND_NA(tgt="2001:db8:1::10", R=0, S=1, O=1),
        "ipv4_options": eth / IP(src="198.18.0.10", dst="198.18.0.100",
                                 options=[IPOption_NOP()] * 4) / udp / Raw(rtp()),
        "ipv4_fragment": eth / IP(src="198.18.0.10", dst="198.18.0.100", flags="MF") / udp
        / Raw(rtp()),
        "ipv6_fragment": eth / v6 / IPv6ExtHdrFragment() / udp / Raw(rtp()),
        "heartbeat_eth": Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / Raw(b"\0" * 96),
    }
    for name, f in frames.items():
        write("packet", name, b"\x00\x00" + bytes(f))  # untagged, MTU 1500
    # VLAN 5 expected (config byte 0 = 5), and a jumbo MTU.
    write("packet", "vlan5_udp4", b"\x05\x00" + bytes(Ether(src=PEER, dst=OUR_MAC) / Dot1Q(vlan=5)
                                                      / v4 / udp / Raw(rtp())))
    write("packet", "jumbo_udp6", b"\x00\x01" + bytes(eth / v6 / udp / Raw(b"\xcd" * 4000)))


HB_KEY = b"fuzz-pair-key-0123456789abcdef"  # as heartbeat_fuzz.cc


def heartbeat_body(node=1, path=0, flags=7, epoch=3, position=42, boot=0x1122334455667788,
                   counter=5, unix_ns=1_700_000_000_000_000_000):
    b = bytearray(64)
    struct.pack_into(">IBB", b, 0, 0x54484231, 1, path)
    struct.pack_into(">IIQQQQQ", b, 8, node, flags, epoch, position, boot, counter, unix_ns)
    return bytes(b)


def heartbeats():
    body = heartbeat_body()
    mac = hmac.new(HB_KEY, body, hashlib.sha256).digest()
    write("heartbeat", "signed_by_harness", b"\x01" + body)
    write("heartbeat", "as_received", b"\x00" + body + mac)
    write("heartbeat", "bad_mac", b"\x00" + body + bytes(32))
    write("heartbeat", "short", b"\x00" + body[:20])


WIRE_VERSION = 2  # mirror/wire.h kWireVersion


def frame(msg_type, body, sender=1, epoch=1, counter=1):
    hdr = struct.pack("<HBBIQQI", 0x4D54, WIRE_VERSION, msg_type, sender, epoch, counter,
                      len(body))
    return hdr + body + bytes(32)  # the harness MACs it (mode byte 1)


def records(recs):
    out = struct.pack("<I", len(recs))
    for r in recs:
        out += struct.pack("<I", len(r)) + r
    return out


def wire():
    bodies = {
        "hello": (1, bytes(range(16))),
        "hello_reply": (2, bytes(range(32))),
        "subscribe": (3, struct.pack("<QQB", 7, 100, 1)),
        "snapshot_begin": (4, struct.pack("<QQQ", 7, 100, 0)),
        "snapshot_records": (5, records([b"site 1 acme", b"meeting 1 live"])),
        "snapshot_end": (6, struct.pack("<Q", 104)),
        "changes": (7, struct.pack("<Q", 101) + records([b"leg 5 add", b"leg 6 remove"])),
        "ack": (8, struct.pack("<Q", 101)),
        "heartbeat": (9, struct.pack("<BBQ", 1, 3, 101)),
    }
    for name, (t, body) in bodies.items():
        write("wire", name, b"\x01" + frame(t, body))
    write("wire", "unsigned_changes", b"\x00" + frame(7, bodies["changes"][1]))
    write("wire", "truncated", b"\x00" + frame(7, bodies["changes"][1])[:40])


SWITCH_TOML = """node = "a"
shm_dir = "/dev/shm"

[tables]
legs = 65536
meetings = 16384

[eal]
args = ["--no-huge", "-m", "512", "--file-prefix", "fuzz", "--no-pci"]
main_lcore = 0
worker_lcores = [1]

[switch]
burst = 32
rx_ring = 1024
tx_ring = 1024
mbufs = 8191
idle_sleep_us = 200
idle_polls = 100
zero_copy_min = 512
mtu = 1500

[[port]]
name = "access"
devargs = "net_af_packet0,iface=sw0,qpairs=1"

[[port]]
name = "backbone"
devargs = "net_af_xdp1,iface=bb0"
xdp_steering = true

[access]
prefixes = ["198.18.0.0/24", "2001:db8:1::/64"]
gateway4 = "198.18.0.1"
gateway6 = "2001:db8:1::1"
vlan = 0
neigh_reachable_s = 30
neigh_probe_ms = 200

[telemetry]
enabled = true

[pair]
node_id = 1
key = "0123456789abcdef0123456789abcdef"
heartbeat_ms = 10

[shared_nic]
media_ports = "20000-59999"
"""

CONTROL_TOML = """node = "a"
shm_dir = "/dev/shm"
role = "active"
[tables]
legs = 1048576
meetings = 262144
[api]
listen = "unix:/run/tandem/a.sock"
tcp = "127.0.0.1:7443"
socket_mode = "0660"
socket_group = "tandem"
tls_cert = "/etc/tandem/api.crt"
tls_key = "/etc/tandem/api.key"
tls_ca = "/etc/tandem/clients-ca.crt"
[store]
path = "/var/lib/tandem/a.db"
[metrics]
listen = "127.0.0.1:9464"
[access]
vips = ["198.18.0.100", "2001:db8:1::100"]
[pool]
vips = ["198.18.0.100"]
ports = "20000-59999"
[watch]
history = 65536
"""


ROUTED_TOML = """node = "a"
[access]
mode = "routed"
vips = ["198.18.100.10", "2001:db8:100::10"]
[routing]
local_as = 65101
router_id = "198.18.30.2"
prefixes = ["198.18.100.0/24", "2001:db8:100::/48"]
standby = "local_pref"
bfd_interval_ms = 10
[[routing.neighbor]]
address = "198.18.30.1"
as = 65010
local = "198.18.30.2"
[[routing.neighbor]]
address = "2001:db8:30::1"
as = 65101
interface = "sw0"
"""


def configs():
    write("switch_config", "full", SWITCH_TOML.encode())
    write("switch_config", "minimal", b'[[port]]\nname = "access"\ndevargs = "net_null0"\n')
    write("switch_config", "bad_types", b'node = 5\n[switch]\nburst = "x"\n[[port]]\nname = 1\n')
    write("control_config", "full", CONTROL_TOML.encode())
    write("control_config", "minimal", b'node = "b"\n')
    write("control_config", "bad_pool", b'[access]\nvips = ["198.18.0.100"]\n'
          b'[pool]\nvips = ["2001:db8::1"]\nports = "9-3"\n')
    write("control_config", "routed", ROUTED_TOML.encode())


def tables():
    write("tables", "tables_region", b"\x02")  # the library's region, unpatched
    write("tables", "state_region", b"\x03")
    write("tables", "tables_half", b"\x02\xc0\x00")  # truncated to half
    write("tables", "state_half", b"\x03\xc0\x00")
    # Tables header: magic (offset 0) and leg capacity (offset 32) patched.
    write("tables", "tables_bad_magic", b"\x02\x00\x00" + bytes([0, 0, 0, 0x41]))
    write("tables", "tables_bad_capacity", b"\x02\x00\x00" + bytes([32, 0, 0, 0xff]))
    write("tables", "raw_empty", b"\x00")
    write("tables", "raw_magic_only", b"\x00" + b"TANDTAB1"[::-1][::-1])


# datapath_fuzz.cc: its test bed's addresses, MACs and input format.
DP_MAC = "02:00:00:00:00:01"  # the access port; the backbone is :02
VIP4, VIP4B, VIP6 = "198.18.0.100", "198.18.0.101", "2001:db8:1::100"
FIX, SIGN, RUN, SPLIT, BACKBONE, QUEUE1, PARTIAL = 4, 8, 0x10, 0x20, 1, 2, 0x40


def member_mac(last):
    return f"02:00:00:00:01:{last:02x}"


def dp_input(frames, cfg=0, burst=31):
    """cfg: byte 0 of the input; frames: (flags, scapy frame or bytes)."""
    out = bytes([cfg, burst])
    for flags, f in frames:
        b = bytes(f)
        out += bytes([flags]) + struct.pack(">H", len(b)) + b
    return out


def media4(src, sport, dport, mac, vip=VIP4, payload=None, seq=1, vlan=None):
    eth = Ether(src=member_mac(mac), dst=DP_MAC)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    return eth / IP(src=src, dst=vip, ttl=61) / UDP(sport=sport, dport=dport) / Raw(
        payload if payload is not None else rtp(seq))


def media6(src, sport, dport, mac, vip=VIP6, payload=None, seq=1):
    return Ether(src=member_mac(mac), dst=DP_MAC) / IPv6(src=src, dst=vip, hlim=60) / UDP(
        sport=sport, dport=dport) / Raw(payload if payload is not None else rtp(seq))


def datapath():
    w = lambda name, frames, cfg=0, burst=31: write("datapath", name, dp_input(frames, cfg, burst))
    a = media4("198.18.0.10", 5000, 20000, 0x10)
    w("media4", [(FIX, a)])
    w("media6", [(FIX, media6("2001:db8:1::10", 5000, 20000, 0x70))])
    w("media4_big_zero_copy", [(FIX, media4("198.18.0.11", 5000, 20002, 0x11,
                                            payload=rtp(5, b"\xab" * 1100)))])
    w("media4_all_copies_by_reference", [(FIX, a)], cfg=0x10)  # zero_copy_min 0
    w("media4_no_udp_checksum", [(FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
        src="198.18.0.10", dst=VIP4) / UDP(sport=5000, dport=20000, chksum=0) / Raw(rtp(7)))])
    w("media4_bad_udp_checksum", [(0, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
        src="198.18.0.10", dst=VIP4) / UDP(sport=5000, dport=20000, chksum=0x1234) / Raw(rtp(8)))])
    # Partial checksums, as a sender with TX checksum offload leaves them
    # (containers and VMs beside the switch): every copy gets a full one.
    w("media4_partial_checksum", [(FIX | PARTIAL, a)])
    w("media6_partial_checksum", [(FIX | PARTIAL, media6("2001:db8:1::10", 5000, 20000, 0x70))])
    w("partial_checksum_big_zero_copy", [(FIX | PARTIAL, media4(
        "198.18.0.11", 5000, 20002, 0x11, payload=rtp(6, b"\xab" * 1100)))])
    w("partial_checksum_copies_by_reference", [(FIX | PARTIAL, media6(
        "2001:db8:1::11", 5000, 20002, 0x71, payload=rtp(6, b"\x17" * 301)))], cfg=0x10)
    w("partial_checksum_vlan5_and_full", [
        (FIX | PARTIAL, media4("198.18.0.10", 5000, 20000, 0x10, vlan=5)),
        (FIX, media4("198.18.0.11", 5000, 20002, 0x11, vlan=5))], cfg=0x01)
    w("partial_checksum_jumbo", [(FIX | PARTIAL, media6("2001:db8:1::10", 5000, 20000, 0x70,
                                                        payload=b"\xcd" * 4001))], cfg=0x02)
    w("media4_via_gateway", [(FIX, media4("203.0.113.7", 6000, 20006, 0x01))])
    w("media6_via_gateway", [(FIX, media6("2001:db8:2::50", 6000, 20004, 0x61))])
    w("video_both_families", [(FIX, media4("198.18.0.11", 5002, 20022, 0x11)),
                              (FIX, media6("2001:db8:1::11", 5002, 20022, 0x71))])
    w("share_alone", [(FIX, media4("198.18.0.10", 5004, 20030, 0x10))])
    w("meeting2", [(FIX, media4("198.18.0.20", 5000, 20000, 0x20, vip=VIP4B)),
                   (FIX, media4("198.18.0.10", 5010, 20004, 0x10, vip=VIP4B))])
    w("meeting3_v6", [(FIX, media6("2001:db8:1::20", 5000, 21000, 0x80))])
    w("policed", [(FIX, media4("198.18.0.14", 5000, 20010, 0x14, seq=i)) for i in range(14)])
    w("policed_bit_rate", [(FIX, media4("198.18.0.22", 5000, 20006, 0x22, vip=VIP4B, seq=i,
                                        payload=rtp(i, b"\x5a" * 1400))) for i in range(10)])
    w("meeting_capped", [(FIX, media4("198.18.0.10", 5020, 20020, 0x10, vip=VIP4B, seq=i))
                         for i in range(6)])
    w("muted_recvonly_sendonly", [(FIX, media4("198.18.0.13", 5000, 20008, 0x13)),
                                  (FIX, media4("198.18.0.12", 5000, 20004, 0x12)),
                                  (FIX, media4("198.18.0.17", 5000, 20016, 0x17))])
    w("spoofed_source_mac", [(FIX, media4("198.18.0.10", 5000, 20000, 0x99))])
    w("unknown_leg_and_not_a_vip", [(FIX, media4("198.18.0.10", 5000, 29999, 0x10)),
                                    (FIX, media4("198.18.0.10", 5000, 20000, 0x10,
                                                 vip="198.18.0.200"))])
    # A receiver nobody knows: the worker asks, the slow path sends an ARP
    # request, the answer arrives, the next packet reaches it too.
    w("resolve_then_deliver", [
        (FIX | RUN, media4("198.18.0.10", 5000, 20000, 0x10, seq=1)),
        (RUN, Ether(src=member_mac(0x16), dst=DP_MAC) / ARP(
            op=2, hwsrc=member_mac(0x16), psrc="198.18.0.16", hwdst=DP_MAC, pdst=VIP4)),
        (FIX, media4("198.18.0.10", 5000, 20000, 0x10, seq=2))])
    w("resolve_then_deliver6", [
        (FIX | RUN, media6("2001:db8:1::10", 5000, 20000, 0x70, seq=1)),
        (FIX | RUN, Ether(src=member_mac(0x72), dst=DP_MAC) / IPv6(
            src="2001:db8:1::12", dst=VIP6, hlim=255) / ICMPv6ND_NA(
            tgt="2001:db8:1::12", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=member_mac(0x72))),
        (FIX, media6("2001:db8:1::10", 5000, 20000, 0x70, seq=2))])
    w("arp_request_for_vip", [(0, Ether(src=member_mac(0x10), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=member_mac(0x10), psrc="198.18.0.10", pdst=VIP4))])
    w("arp_request_from_new_host", [(0, Ether(src=member_mac(0x30), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=member_mac(0x30), psrc="198.18.0.30", pdst=VIP4B))])
    w("arp_poisoning", [
        (0, Ether(src=member_mac(0x66), dst=DP_MAC) / ARP(
            op=2, hwsrc=member_mac(0x66), psrc="198.18.0.11", hwdst=DP_MAC, pdst=VIP4)),
        (0, Ether(src=member_mac(0x66), dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=member_mac(0x66), psrc=VIP4, pdst=VIP4)),
        (0, Ether(src=member_mac(0x66), dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=member_mac(0x67), psrc="198.18.0.11", pdst=VIP4)),
        (FIX, media4("198.18.0.11", 5000, 20002, 0x11))])
    w("nd_ns_for_vip", [(FIX, Ether(src=member_mac(0x72), dst="33:33:ff:00:01:00") / IPv6(
        src="2001:db8:1::12", dst="ff02::1:ff00:100", hlim=255) / ICMPv6ND_NS(tgt=VIP6)
        / ICMPv6NDOptSrcLLAddr(lladdr=member_mac(0x72)))])
    w("nd_dad_probe_for_vip", [(FIX, Ether(src=member_mac(0x72), dst="33:33:ff:00:01:00") / IPv6(
        src="::", dst="ff02::1:ff00:100", hlim=255) / ICMPv6ND_NS(tgt=VIP6))])
    w("nd_na_claiming_vip", [(FIX, Ether(src=member_mac(0x66), dst="33:33:00:00:00:01") / IPv6(
        src="2001:db8:1::66", dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=VIP6, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=member_mac(0x66)))])
    w("icmp_echo", [(FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
        src="198.18.0.10", dst=VIP4) / ICMP() / Raw(b"ping")),
                    (FIX, Ether(src=member_mac(0x70), dst=DP_MAC) / IPv6(
        src="2001:db8:1::10", dst=VIP6) / ICMPv6EchoRequest(data=b"ping6"))])
    w("icmp_not_for_a_vip", [(FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
        src="198.18.0.10", dst="198.18.0.200") / ICMP())])
    hb = lambda path, flags, epoch, port: (SIGN | port, Ether(
        src=PEER, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / Raw(
        heartbeat_body(node=2, path=path, flags=flags, epoch=epoch) + bytes(32)))
    w("heartbeats_standby_peer", [hb(0, 3, 1, 0), hb(1, 3, 1, BACKBONE)])
    w("heartbeat_releases_hold", [hb(0, 3, 0, RUN), (FIX, a)], cfg=0x08)  # RUN: handled first
    w("heartbeat_active_peer_keeps_hold", [hb(1, 7, 2, BACKBONE), (FIX, a)], cfg=0x08)
    w("heartbeat_unsigned", [(0, Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff", type=0x88B5)
                              / Raw(heartbeat_body(node=2) + bytes(32)))])
    w("backbone_not_a_heartbeat", [(BACKBONE, a)])
    w("standby", [(FIX, a), (0, Ether(src=member_mac(0x10), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=member_mac(0x10), psrc="198.18.0.10", pdst=VIP4))], cfg=0x04)
    w("vlan5", [(FIX, media4("198.18.0.10", 5000, 20000, 0x10, vlan=5)),
                (0, Ether(src=member_mac(0x10), dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=5) / ARP(
                    op=1, hwsrc=member_mac(0x10), psrc="198.18.0.10", pdst=VIP4)),
                (FIX, a)], cfg=0x01)
    w("jumbo_mtu9000", [(FIX, media6("2001:db8:1::10", 5000, 20000, 0x70,
                                     payload=b"\xcd" * 4000))], cfg=0x02)
    w("segmented", [(FIX | SPLIT, a), (FIX | SPLIT, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
        src="198.18.0.10", dst=VIP4) / ICMP() / Raw(b"ping"))])
    w("queue1_and_burst1", [(FIX | QUEUE1, a), (FIX | QUEUE1, media6(
        "2001:db8:1::11", 5000, 20002, 0x71)), (FIX, a)], burst=0)
    w("broken", [
        (0, bytes(Ether(src=member_mac(0x10), dst=DP_MAC) / IP(src="198.18.0.10", dst=VIP4))[:30]),
        (FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
            src="198.18.0.10", dst=VIP4, options=[IPOption_NOP()] * 4) / UDP(
            sport=5000, dport=20000) / Raw(rtp())),
        (FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
            src="198.18.0.10", dst=VIP4, flags="MF") / UDP(sport=5000, dport=20000) / Raw(rtp())),
        (FIX, Ether(src=member_mac(0x70), dst=DP_MAC) / IPv6(src="2001:db8:1::10", dst=VIP6)
         / IPv6ExtHdrFragment() / UDP(sport=5000, dport=20000) / Raw(rtp())),
        (0, b"\x02\x00\x00\x00\x00\x01\x02"),
        (0, bytes(a)[:-10]),
        (FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / Dot1Q(vlan=1) / Dot1Q(vlan=5) / IP(
            src="198.18.0.10", dst=VIP4) / UDP(sport=5000, dport=20000) / Raw(rtp())),
        (FIX, Ether(src=member_mac(0x10), dst="02:00:00:00:00:99") / IP(
            src="198.18.0.10", dst=VIP4) / UDP(sport=5000, dport=20000) / Raw(rtp()))])
    w("everything", [(FIX, a), (FIX, media6("2001:db8:1::10", 5000, 20000, 0x70)),
                     (FIX, media4("198.18.0.11", 5000, 20002, 0x11,
                                  payload=rtp(9, b"\xee" * 700))),
                     (0, Ether(src=member_mac(0x10), dst="ff:ff:ff:ff:ff:ff") / ARP(
                         op=1, hwsrc=member_mac(0x10), psrc="198.18.0.10", pdst=VIP4)),
                     hb(0, 3, 1, 0),
                     (FIX, Ether(src=member_mac(0x10), dst=DP_MAC) / IP(
                         src="198.18.0.10", dst=VIP4) / ICMP() / Raw(b"ping")),
                     (FIX | QUEUE1, media4("198.18.0.20", 5000, 20000, 0x20, vip=VIP4B))])


TARGETS = {"packet": packets, "heartbeat": heartbeats, "wire": wire, "configs": configs,
           "tables": tables, "datapath": datapath}

if __name__ == "__main__":
    import sys
    # Arguments select what to write (default: everything).
    for name in sys.argv[1:] or list(TARGETS):
        TARGETS[name]()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} inputs")
