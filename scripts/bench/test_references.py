"""The benchmark's reference rows (references.py): the rules made from a
capture's legs, the parsing of Open vSwitch's and l3fwd's counters, and the
verdict on a reference that forwards nothing (a real ovs-vswitchd-dpdk run
whose rules match no packet of the capture: it must fail the run, loudly).

  /usr/bin/python3 -m pytest -q scripts/bench/test_references.py
"""

import argparse
import json
import os
import subprocess
import sys

import pytest
from scapy.all import UDP, IPv6, rdpcap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import references  # noqa: E402
import verdict  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

UNICAST_218 = next(s for s in SCENARIOS if s.name == "unicast v4 218B 1k legs")


def generate(tmp_path, legs=100, packets=1024, family=4):
    name = "uni%d" % family
    subprocess.run([sys.executable, os.path.join(HERE, "gencap.py"), "--out", str(tmp_path),
                    "--name", name, "--kind", "unicast", "--family", str(family), "--size", "218",
                    "--legs", str(legs), "--packets", str(packets),
                    "--dst-mac", references.SWITCH_MAC], check=True)
    stem = str(tmp_path / name)
    with open(stem + ".json") as f:
        return stem, json.load(f)


def test_every_leg_gets_one_exact_rule_relaying_to_its_meetings_other_leg(tmp_path):
    stem, meta = generate(tmp_path)
    legs = references.capture_legs(stem + ".tables")
    assert len(legs) == meta["legs"] == 100
    flows = references.ovs_flows(legs).splitlines()
    assert len(flows) == 101 and flows[-1] == "priority=0,actions=drop"
    by_meeting = {}
    for leg in legs:
        by_meeting.setdefault(leg[0], []).append(leg)
    a, b = by_meeting[legs[0][0]]
    first = [f for f in flows if "nw_src=%s,tp_src=%d," % (a[1], a[2]) in f]
    assert first == [
        "priority=100,udp,in_port=1,nw_src=%s,tp_src=%d,nw_dst=%s,tp_dst=%d,actions="
        "mod_dl_src:02:70:63:61:70:00,mod_dl_dst:02:00:00:00:00:01,mod_nw_dst:%s,"
        "mod_tp_src:%d,mod_tp_dst:%d,output:2" % (a[1], a[2], a[3], a[4], b[1], b[4], b[2])]
    v4, v6 = references.l3fwd_rules(legs)
    assert v4.splitlines()[0] == "R%s %s %d %d 0x11 1" % (a[3], a[1], a[4], a[2])
    assert len(v4.splitlines()) == 100 and len(v6.splitlines()) == 1


def test_ipv6_legs_get_udp6_rules_that_set_the_ipv6_destination(tmp_path):
    """OpenFlow's mod_nw_dst sets an IPv4 field: an IPv6 leg's rule matches
    udp6 and sets ipv6_dst; l3fwd loads the IPv6 rules only with --ipv6."""
    stem, meta = generate(tmp_path, family=6)
    legs = references.capture_legs(stem + ".tables")
    assert len(legs) == meta["legs"] == 100
    flows = references.ovs_flows(legs).splitlines()
    assert len(flows) == 101 and flows[-1] == "priority=0,actions=drop"
    a, b = [leg for leg in legs if leg[0] == legs[0][0]]
    first = [f for f in flows if "ipv6_src=%s,tp_src=%d," % (a[1], a[2]) in f]
    assert first == [
        "priority=100,udp6,in_port=1,ipv6_src=%s,tp_src=%d,ipv6_dst=%s,tp_dst=%d,actions="
        "mod_dl_src:02:70:63:61:70:00,mod_dl_dst:02:00:00:00:00:01,set_field:%s->ipv6_dst,"
        "mod_tp_src:%d,mod_tp_dst:%d,output:2" % (a[1], a[2], a[3], a[4], b[1], b[4], b[2])]
    v4, v6 = references.l3fwd_rules(legs)
    assert v6.splitlines()[0] == "R%s %s %d %d 0x11 1" % (a[3], a[1], a[4], a[2])
    assert len(v6.splitlines()) == 100 and len(v4.splitlines()) == 1
    assert references.l3fwd_args(legs) == ["--ipv6"]
    assert references.l3fwd_args([(1, "198.19.0.1", 20000, "198.18.0.100", 30000)]) == []
    with pytest.raises(ValueError, match="both"):
        references.l3fwd_args(legs + [(1, "198.19.0.1", 20000, "198.18.0.100", 30000)])


def test_a_meeting_not_of_two_is_refused():
    legs = [(1, "198.19.0.1", 20000, "198.18.0.100", 30000)]
    with pytest.raises(ValueError, match="meeting 1 has 1 legs"):
        references.ovs_flows(legs)


DUMP_PORTS = """OFPST_PORT reply (OF1.3) (xid=0x2): 3 ports
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=31503185, errs=0, coll=0
           duration=15.2s
  port  1: rx pkts=46422912, bytes=10116909116, drop=0, errs=0, frame=?, over=?, crc=?
           tx pkts=0, bytes=0, drop=0, errs=0, coll=?
           duration=15.1s
  port  2: rx pkts=0, bytes=0, drop=0, errs=0, frame=?, over=?, crc=?
           tx pkts=43156965, bytes=0, drop=0, errs=0, coll=?
           duration=15.1s
"""

PMD_STATS = """pmd thread numa_id 0 core_id 1:
  packets received: 7666624
  emc hits: 7665883
  processing cycles: 7830633073 (100.00%)
  avg cycles per packet: 1021.39 (7830633073/7666624)
  avg processing cycles per packet: 1021.39 (7830633073/7666624)
main thread:
  packets received: 0
  avg cycles per packet: 0.00 (0/0)
"""


def test_the_counters_of_ovs_and_l3fwd_are_read():
    ports = references.parse_dump_ports(DUMP_PORTS)
    assert ports[1] == {"rx": 46422912, "tx": 0}
    assert ports[2] == {"rx": 0, "tx": 43156965}
    assert ports["LOCAL"]["tx"] == 0
    with pytest.raises(ValueError):
        references.parse_dump_ports("ovs-ofctl: br0 is not a bridge or a socket")
    assert references.parse_pmd_cycles(PMD_STATS) == pytest.approx(1021.39)
    assert references.parse_pmd_cycles("main thread:\n  packets received: 0\n") is None
    answer = (b'{"/ethdev/stats":{"ipackets":61338400,"opackets":29936,"ibytes":1,'
              b'"obytes":2,"imissed":0,"ierrors":0,"oerrors":0,"rx_nombuf":0}}')
    assert references.parse_telemetry_stats(answer) == {"rx": 61338400, "tx": 29936}
    with pytest.raises(ValueError):
        references.parse_telemetry_stats(b'{"/ethdev/stats":null}')


def reference_row(result, meta, program="ovs-dpdk"):
    return bench.make_row(UNICAST_218, program, result, "tx", 30.0, 2.6e9, meta)


def test_a_reference_that_forwards_nothing_fails_naming_it():
    meta = {"media_packets": 8192, "control_packets": 4, "copies_per_packet": 1,
            "frame_size": 218, "legs": 1000}
    ok = {"rx_pps": 8196e3, "tx_pps": 8192e3, "interval_s": 3.0, "worker_cpu_s": 3.0}
    assert verdict.problems([reference_row(ok, meta)]) == []
    nothing = dict(ok, tx_pps=0.0)
    out = verdict.problems([reference_row(nothing, meta, "l3fwd-em")])
    assert out and all(p.startswith("unicast v4 218B 1k legs: l3fwd-em") for p in out), out
    assert any("forwarded 0.00%" in p for p in out), out


def test_each_row_is_compared_with_open_vswitch_and_the_goal_is_2x():
    """Issue 15: unicast v4 and v6 at >= 2 x Open vSwitch, in the same run:
    every row of a scenario with an OVS row shows its rate over OVS's, and
    the goal lines say whether Tandem reached twice OVS's rate."""
    meta = {"media_packets": 8192, "control_packets": 4, "copies_per_packet": 1,
            "frame_size": 218, "legs": 1000}
    v6 = next(s for s in SCENARIOS if s.name == "unicast v6 218B 1k legs")

    def row(sc, program, mpps):
        r = {"rx_pps": mpps * 1e6, "tx_pps": mpps * 1e6, "interval_s": 3.0, "worker_cpu_s": 3.0}
        return bench.make_row(sc, program, r, "tx", 40.0, 2.6e9, meta)

    rows = [row(UNICAST_218, "ovs-dpdk", 7.0), row(UNICAST_218, "tandem", 10.5),
            row(v6, "testpmd-io", 40.0), row(v6, "ovs-dpdk", 6.0), row(v6, "tandem", 12.6)]
    bench.add_ratio_to_ovs(rows)
    assert [round(r["ratio_to_ovs"], 2) for r in rows] == [1.0, 1.5, 6.67, 1.0, 2.1]
    goals = {g["goal"]: (round(g["value"], 2), g["met"]) for g in bench.check_goals(rows)
             if g["value"] is not None}
    assert goals["unicast v4 218B 1k legs >= 2.0 x Open vSwitch"] == (1.5, False)
    assert goals["unicast v6 218B 1k legs >= 2.0 x Open vSwitch"] == (2.1, True)
    report = {"date": "d", "commit": "c", "build_type": "release", "cpu": "x", "cores": 2,
              "tsc_hz": 2.6e9, "hugepages": True, "duration_s": 3.0, "loadavg_start": "0",
              "loadavg_end": "0", "rows": rows, "idle": None, "goals": [], "paced": None}
    table = bench.markdown(report).splitlines()
    assert "| vs OVS |" in table[2]
    assert table[5].startswith("| unicast v4 218B 1k legs | tandem |") and " 1.50 |" in table[5]


def test_l3fwd_rings_hold_the_capture_up_to_the_largest_ring():
    # The pool is 4 rings of the size: the table series' 128k-packet capture
    # fits in four rings of 65535, the most a 16-bit count allows (65536 made
    # l3fwd exit: "rx-queue-size 65536 > 65535").
    assert references.l3fwd_queue_size(8196) == 4096
    assert references.l3fwd_queue_size(131076) == 65535
    assert 4 * 65535 >= 131076 + 4096


def test_every_reference_a_scenario_names_is_one_the_benchmark_runs():
    # scenarios.py names them without importing references.py (a data module).
    named = {name for s in SCENARIOS for name in s.references}
    assert named == set(references.RUNNERS)


def test_the_million_goal_shows_l3fwd_em_s_own_ratio_of_the_same_tables():
    """The table series runs l3fwd-em beside Tandem (Open vSwitch with a
    million rules is not run), and the 1M goal line says what the same 1M/1k
    ratio is for DPDK's own exact-match forwarder in the same run."""
    series = {s.name: s for s in SCENARIOS if s.goal in ("thousand", "million")}
    assert sorted(s.references for s in series.values()) == [("l3fwd-em",), ("l3fwd-em",)]
    k1, m1 = (next(s for s in series.values() if s.goal == g) for g in ("thousand", "million"))
    meta = {"media_packets": 131072, "control_packets": 4, "copies_per_packet": 1,
            "frame_size": 218, "legs": 1000}

    def row(sc, program, mpps):
        r = {"rx_pps": mpps * 1e6, "tx_pps": mpps * 1e6, "interval_s": 3.0, "worker_cpu_s": 3.0}
        return bench.make_row(sc, program, r, "tx", 19.0, 2.1e9, meta)

    rows = [row(k1, "testpmd-io", 19.0), row(k1, "l3fwd-em", 12.8), row(k1, "tandem", 9.5),
            row(m1, "testpmd-io", 19.0), row(m1, "l3fwd-em", 6.9), row(m1, "tandem", 4.5)]
    goal = next(g for g in bench.check_goals(rows) if g["goal"].startswith("1M legs"))
    assert round(goal["value"], 2) == 0.47 and goal["met"] is False
    assert goal["beside"] == "l3fwd-em 0.54"
    report = {"date": "d", "commit": "c", "build_type": "release", "cpu": "x", "cores": 2,
              "tsc_hz": 2.1e9, "hugepages": True, "duration_s": 3.0, "loadavg_start": "0",
              "loadavg_end": "0", "rows": rows, "idle": None, "goals": [goal], "paced": None}
    assert ("- goal: 1M legs >= 0.7 x 1k legs (same capture size): 0.47 (not met; the same "
            "ratio of l3fwd-em 0.54)") in bench.markdown(report)
    # Without l3fwd-em in one of the two, nothing is said beside the goal.
    goal = next(g for g in bench.check_goals(rows[:1] + rows[2:]) if g["goal"].startswith("1M"))
    assert goal["beside"] == ""


def cfg(tmp_path):
    return argparse.Namespace(no_huge=False, warmup=0.3, duration=0.5, build=str(tmp_path))


@pytest.mark.timeout(120)
def test_open_vswitch_forwards_the_capture_and_fails_when_no_rule_matches(tmp_path):
    """A real ovs-vswitchd-dpdk: with the capture's rules every media packet
    reaches the sink; with rules for other ports (each leg's local port + 1)
    none does, and the row fails. The second run is on 4k pages (bench.sh
    --no-huge): OVS adds --in-memory, which EAL refuses beside --no-huge,
    unless it is given --legacy-mem (it was not, at first)."""
    stem, meta = generate(tmp_path)
    r = references.run_ovs(stem + ".pcap", stem + ".tables", meta, cfg(tmp_path))
    meta = dict(meta, frame_size=218)
    assert verdict.problems([reference_row(r, meta)]) == [], r
    assert r["busy_cycles_per_pkt"] > 0
    before = set(os.listdir("/tmp"))
    r = references.run_ovs(stem + ".pcap", other_ports(stem), meta,
                           argparse.Namespace(no_huge=True, warmup=0.3, duration=0.5))
    assert r["rx_pps"] > 0 and r["tx_pps"] == 0, r
    out = verdict.problems([reference_row(r, meta)])
    assert any("ovs-dpdk forwarded 0.00%" in p for p in out), out
    assert not [d for d in os.listdir("/var/run/dpdk")
                if d == "tbench-ovs-%d" % os.getpid()], "EAL runtime dir left behind"
    assert not [d for d in set(os.listdir("/tmp")) - before if d.startswith("tbench-ovs-")]


@pytest.mark.timeout(120)
def test_open_vswitch_relays_an_ipv6_capture_to_the_other_leg(tmp_path):
    """A real ovs-vswitchd-dpdk on an IPv6 capture: every media packet
    reaches the sink, and OVS's own trace of a packet of the capture shows
    it relayed as Tandem relays it (MACs, destination address, both ports)."""
    stem, meta = generate(tmp_path, family=6)
    meta = dict(meta, frame_size=218)
    r = references.run_ovs(stem + ".pcap", stem + ".tables", meta, cfg(tmp_path))
    assert verdict.problems([reference_row(r, meta)]) == [], r
    legs = references.capture_legs(stem + ".tables")
    packet = next(p for p in rdpcap(stem + ".pcap") if UDP in p)
    a = next(leg for leg in legs if (leg[1], leg[2]) == (packet[IPv6].src, packet[UDP].sport))
    b = next(leg for leg in legs if leg[0] == a[0] and leg != a)
    ovs = references.OvsRun(cfg(tmp_path), stem + ".pcap")
    try:
        ovs.wait_path(os.path.join(ovs.dir, "br0.mgmt"))
        ovs.ofctl("add-flows", ovs.bridge, "-", stdin=references.ovs_flows(legs))
        trace = ovs.appctl("ofproto/trace", "br0", "in_port=1", bytes(packet).hex())
    finally:
        ovs.close()
    assert ("Datapath actions: set(eth(src=%s,dst=%s)),set(ipv6(dst=%s)),"
            "set(udp(src=%d,dst=%d)),2\n" % (references.SWITCH_MAC, references.GATEWAY_MAC, b[1],
                                              b[4], b[2])) in trace, trace


def other_ports(stem):
    """A copy of the capture's tables with each leg's local port + 1: rules
    made from it match no packet of the capture."""
    with open(stem + ".tables") as f:
        lines = f.read().splitlines()
    with open(stem + ".other.tables", "w") as f:
        for line in lines:
            p = line.split()
            if p and p[0] == "leg":
                ip, port = p[5].rsplit(":", 1)
                p[5] = "%s:%d" % (ip, int(port) + 1)
            f.write(" ".join(p) + "\n")
    return stem + ".other.tables"


@pytest.mark.timeout(180)
def test_l3fwd_forwards_the_capture_and_fails_when_no_rule_matches(tmp_path):
    """A real l3fwd (compiled once into the build directory, as bench.py
    does): with the capture's rules every media packet reaches the sink;
    with rules for other ports every lookup misses (l3fwd sends a miss back
    out of the port it came from) and the row fails."""
    build = os.environ.get("TANDEM_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
    c = cfg(build if os.path.isdir(build) else tmp_path)
    stem, meta = generate(tmp_path)
    meta = dict(meta, frame_size=218)
    r = references.run_l3fwd(stem + ".pcap", stem + ".tables", meta, c)
    assert verdict.problems([reference_row(r, meta, "l3fwd-em")]) == [], r
    r = references.run_l3fwd(stem + ".pcap", other_ports(stem), meta, c)
    assert r["rx_pps"] > 0 and r["tx_pps"] == 0, r
    out = verdict.problems([reference_row(r, meta, "l3fwd-em")])
    assert any("l3fwd-em forwarded 0.00%" in p for p in out), out


@pytest.mark.timeout(180)
def test_l3fwd_forwards_an_ipv6_capture(tmp_path):
    """l3fwd-em on an IPv6 capture: with --ipv6 (it loads one family's
    rules into its hash) every media packet reaches the sink."""
    build = os.environ.get("TANDEM_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
    stem, meta = generate(tmp_path, family=6)
    meta = dict(meta, frame_size=218)
    r = references.run_l3fwd(stem + ".pcap", stem + ".tables", meta,
                             cfg(build if os.path.isdir(build) else tmp_path))
    assert verdict.problems([reference_row(r, meta, "l3fwd-em")]) == [], r
