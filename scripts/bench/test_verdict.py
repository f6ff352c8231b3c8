"""The benchmark's verdict (verdict.py): a run that forwards nothing, or less
than its scenario expects, fails and names the scenario.

  /usr/bin/python3 -m pytest -q scripts/bench/test_verdict.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import verdict  # noqa: E402

UNICAST = {"media_packets": 8192, "control_packets": 4, "copies_per_packet": 1}
FANOUT = {"media_packets": 8192, "control_packets": 4, "copies_per_packet": 16}
FLOOD = {"media_packets": 8192, "control_packets": 4, "copies_per_packet": 0}


def row(scenario, rx, tx, share, key="egress", program="tandem", drops=None):
    return {"scenario": scenario, "program": program, "rx_mpps_wall": rx, "tx_mpps_wall": tx,
            "mpps_per_core": tx if key == "egress" else rx, "key": key,
            "share_of_expected": share, "drops": drops or {}, "note": ""}


def share(meta, rx, tx, drops=None, metric="tx"):
    return verdict.expected_share({"rx_pps": rx, "tx_pps": tx}, meta, drops, metric)


def test_unicast_forwarding_every_media_packet_passes():
    # rx counts the 4 ARP/ND frames per pass too: they are not forwarded.
    rx = 8196e3
    s = share(UNICAST, rx, 8192e3, {})
    assert abs(s - 1.0) < 1e-9
    assert verdict.problems([row("unicast v4 218B 1k legs", 8.2, 8.2, s)]) == []


def test_a_switch_that_forwards_nothing_fails_naming_the_scenario():
    """Issue 13: every tandem row tx 0, millions of no_neighbour drops, exit 0."""
    s = share(UNICAST, 5e6, 0.0, {"no_neighbour": 5e6})
    out = verdict.problems([row("unicast v4 218B 1k legs", 5.0, 0.0, s,
                                drops={"no_neighbour": 15_000_000})])
    assert len(out) == 2, out  # a zero figure, and 0 % of what it expects
    assert all(line.startswith("unicast v4 218B 1k legs: tandem") for line in out)
    assert "no_neighbour 15000000" in out[1]


def test_fanout_judges_egress_against_k_copies():
    rx = 1e6
    assert share(FANOUT, rx, 16 * rx * 8192 / 8196, {}) > 0.999
    s = share(FANOUT, rx, 15 * rx, {})  # one receiver in 16 missing
    assert s < verdict.MIN_SHARE
    out = verdict.problems([row("fan-out 1:16 218B", 1.0, 15.0, s)])
    assert len(out) == 1 and "fan-out 1:16 218B: tandem forwarded 93.80%" in out[0]


def test_just_under_the_bound_fails_and_at_it_passes():
    assert verdict.row_problems(row("x", 1.0, 1.0, 0.9899))
    assert not verdict.row_problems(row("x", 1.0, 1.0, 0.99))


def test_flood_expects_every_media_packet_dropped_as_unknown_leg():
    rx = 8196e3
    good = share(FLOOD, rx, 0.0, {"unknown_leg": 8192e3}, metric="rx")
    assert abs(good - 1.0) < 1e-9
    assert verdict.problems([row("flood", 8.2, 0.0, good, key="received (dropped)")]) == []
    bad = share(FLOOD, rx, 0.0, {"unknown_leg": 0.0, "malformed": 8192e3}, metric="rx")
    out = verdict.problems([row("flood", 8.2, 0.0, bad, key="received (dropped)")])
    assert len(out) == 1 and "dropped as unknown_leg 0.00%" in out[0]


def test_testpmd_rows_must_forward_what_they_receive():
    assert share(UNICAST, 10e6, 10e6) == 1.0
    out = verdict.problems([row("unicast", 10.0, 0.0, share(UNICAST, 10e6, 0.0),
                                program="testpmd-io")])
    assert out and out[0].startswith("unicast: testpmd-io")


def test_failed_runs_fail_and_skipped_ones_do_not():
    rows = [{"scenario": "table 1M legs", "program": "tandem", "note": "failed: timeout"},
            {"scenario": "2 workers", "program": "-", "note": "skipped: needs 3 cores"}]
    assert verdict.problems(rows) == ["table 1M legs: tandem failed: timeout"]
    assert verdict.problems([], other=["idle: failed: x"]) == ["idle: failed: x"]


def test_paced_runs_fail_when_nothing_or_too_little_comes_back():
    ok = {"max": {"sent": 100, "received": 90, "rx_pps": 9e5},
          "after_idle": {"sent": 22, "stamped": 20, "expected": 20}}
    assert verdict.paced_problems({"tandem": ok}) == []
    # The memif run of issue 13: 6 frames of 3,809 back.
    few = {"max": {"sent": 3809, "received": 6, "rx_pps": 2.0},
           "after_idle": {"sent": 202, "stamped": 6, "expected": 200}}
    out = verdict.paced_problems({"tandem": few})
    assert out == ["paced memif: tandem: 6 of 200 frames sent after idle gaps came back "
                   "(at least 99%)"]
    none = {"max": {"sent": 3809, "received": 0, "rx_pps": 0.0},
            "after_idle": {"sent": 22, "stamped": 20, "expected": 20}}
    assert "got nothing back" in verdict.paced_problems({"tandem": none})[0]
    assert verdict.paced_problems({"tandem": {"error": "boom"}}) == [
        "paced memif: tandem: failed: boom"]


def test_junit_has_a_case_per_scenario_with_its_failures(tmp_path):
    import xml.etree.ElementTree as ET
    rows = [row("unicast v4 218B 1k legs", 5.0, 0.0, 0.0),
            row("fan-out 1:4 218B", 1.0, 4.0, 1.0),
            {"scenario": "2 workers", "program": "-", "note": "skipped: needs 3 cores"}]
    lines = verdict.problems(rows, {"tandem": {"error": "boom"}}, ["switch: not built"])
    subjects = [("unicast v4 218B 1k legs", ""), ("fan-out 1:4 218B", ""),
                ("2 workers", "skipped: needs 3 cores"), ("paced memif: tandem", "")]
    path = tmp_path / "bench.xml"
    verdict.write_junit(str(path), subjects, lines)
    cases = {c.get("name"): c for c in ET.parse(path).getroot().iter("testcase")}
    assert list(cases) == [s for s, _ in subjects] + ["switch"]
    assert len(cases["unicast v4 218B 1k legs"].findall("failure")) == 2
    assert not list(cases["fan-out 1:4 218B"])
    assert cases["2 workers"].find("skipped") is not None
    assert cases["paced memif: tandem"].find("failure") is not None
    assert cases["switch"].find("failure") is not None


def test_control_frames_over_the_slow_path_limit_are_not_lost_media():
    """The 100k-updates run of 2026-12-05: "16716 lost" were slow_path_limited
    drops of the capture's replayed ARP/ND frames (4 per pass of 8,196)."""
    rx_packets = 67_000_000  # ~16,350 passes, ~65,400 control frames
    lost, by_design = verdict.split_drops({"slow_path_limited": 16716}, "tx", rx_packets,
                                          UNICAST)
    assert (lost, by_design) == (0, 16716)
    # Real loss next to them stays lost.
    lost, by_design = verdict.split_drops({"slow_path_limited": 16716, "no_neighbour": 3},
                                          "tx", rx_packets, UNICAST)
    assert (lost, by_design) == (3, 16716)


def test_slow_path_drops_beyond_the_control_frames_received_are_lost():
    # 8,196 packets received = 1 pass = 4 control frames (+ 4 for the readings' cut):
    # 100 slow-path drops cannot all be control frames.
    lost, by_design = verdict.split_drops({"slow_path_limited": 100}, "tx", 8196, UNICAST)
    assert (lost, by_design) == (92, 8)


def test_the_flood_measure_is_neither_lost_nor_by_design():
    lost, by_design = verdict.split_drops({"unknown_leg": 8192e3, "slow_path_limited": 4},
                                          "rx", 8196e3, FLOOD)
    assert (lost, by_design) == (0, 4)
    lost, _ = verdict.split_drops({"unknown_leg": 5}, "tx", 8196e3, UNICAST)
    assert lost == 5
