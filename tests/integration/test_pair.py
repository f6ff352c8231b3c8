"""The pair (issue 4): every row of the failure table of the design brief, on
a two-node test bed (helpers/pair.py) with participants streaming kernel UDP
media at 50 packets/s per leg. Each test prints the media gap the receivers
saw (the longest silence between two packets of a sender)."""
import os
import re
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.metrics import check_exposition, value  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.netns import VIP4  # noqa: E402
from helpers.pair import PairBed, durable_view  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

VIP_PORT_BASE = 20000
RATE = 50.0


def setup_meeting(active, participants):
    site = active.ctl("site", "create", "--name", "acme", "--look", "color=blue",
                      "--pref", "lang=en")["site_id"]
    m = active.ctl("meeting", "schedule", "--site", site, "--title", "pair")["meeting_id"]
    active.ctl("meeting", "start", m)
    parts = {}
    for h in participants:
        local = vip_endpoint(4, VIP_PORT_BASE + h.index)
        p = active.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                       f"audio,{own_endpoint(h, 4)},local={local}")["participants"][0]
        parts[h.name] = p
    return site, m, parts


def flows(bed, seconds):
    count = int(seconds * RATE)
    return [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                 to=[vip_endpoint(4, VIP_PORT_BASE + h.index)], count=count, rate=RATE, size=160)
            for h in bed.participants]


def check_media(reports, bed, count, must_recover=True):
    """Every receiver got media from every other sender after the failure:
    the last packets arrived; returns the largest gap (ms)."""
    worst = 0.0
    for h in bed.participants:
        rep = reports[sender_id(h)]
        for other in bed.participants:
            if other is h:
                continue
            got = rep.from_sender(sender_id(other))
            assert got, f"{h.name} received nothing from {other.name}: {rep}"
            st = next(iter(got.values()))
            worst = max(worst, st["max_gap_ms"])
            if must_recover:
                tail = [s for s in range(count - 10, count) if s in st.get("missing", [])]
                assert not tail, f"{h.name} missed the last packets of {other.name}: {st}"
    return worst


class ArpWatch:
    """ARP frames on the bridge that claim the VIP, with the MAC that sent them."""

    def __init__(self, bed):
        self.bed = bed
        self.pcap = bed.testbed.tmpdir("arp", root="/tmp") / "arp.pcap"
        self.proc = bed.testbed.popen(bed.testbed.bridge_ns,
                                      ["tcpdump", "-i", "br0", "-U", "-w", str(self.pcap), "arp"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def claims(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        out = netns.run(["tcpdump", "-r", str(self.pcap), "-n", "-e", "-tt"], check=False).stdout
        claims = []
        for line in out.splitlines():
            # "<time> <src mac> > <dst mac>, ... Reply 198.18.0.100 is-at <mac>" or a GARP
            parts = line.split()
            if len(parts) < 2:
                continue
            if f"Reply {VIP4} is-at" in line or (f"who-has {VIP4} tell {VIP4}" in line):
                claims.append((float(parts[0]), parts[1]))
        return claims


def assert_one_owner_at_a_time(claims, old_mac, new_mac, switch_time):
    """After the new owner's first claim, the old one never claims the VIP again."""
    first_new = min((t for t, mac in claims if mac == new_mac), default=None)
    assert first_new is not None, f"the new active never announced the VIP: {claims}"
    late_old = [t for t, mac in claims if mac == old_mac and t > first_new]
    assert not late_old, f"both nodes answered for the VIP after the takeover: {claims}"


@pytest.fixture
def bed():
    b = PairBed()
    try:
        b.start()
        yield b
    finally:
        b.close()


def mac_of(node):
    return netns.run(["ip", "-n", node.host.ns, "-br", "link", "show", "sw0"]).stdout.split()[2]


def run_failure(bed, inject, seconds=6.0, at=2.5, expect_takeover=True):
    """Streams media for `seconds`, calls inject() after `at` seconds; returns
    (reports, worst gap ms, time of injection)."""
    count = int(seconds * RATE)
    runner = FlowRun(bed.testbed, flows(bed, seconds))
    t_inject = {}

    def later():
        time.sleep(runner.data_starts_after + at)
        t_inject["t"] = time.time()
        inject()
    th = threading.Thread(target=later)
    th.start()
    reports = runner.wait()
    th.join()
    gap = check_media(reports, bed, count)
    return reports, gap, t_inject.get("t")


def test_kill_primary_switch_takes_over(bed):
    site, m, parts = setup_meeting(bed.a, bed.participants)
    bed.wait_synced()
    before = durable_view(bed.a)
    assert durable_view(bed.b) == before, "standby differs from the primary before the failure"
    leg = parts["p0"]["legs"][0]["leg_id"]
    arp = ArpWatch(bed)
    reports, gap, _ = run_failure(bed, bed.a.switch.kill)
    print(f"\nkill -9 of the primary switch: media gap {gap:.0f} ms")
    status = bed.b.status()
    assert status["role"] == "active" and int(status["epoch"]) >= 2, status
    assert "lost" in status["pair"]["last_takeover_cause"] or status["pair"]["last_takeover_cause"]
    assert durable_view(bed.b) == before
    usage = bed.b.ctl("show", "usage", "--leg", leg)
    assert int(usage["packets_in"]) >= int(RATE * 5), f"usage did not continue: {usage}"
    assert_one_owner_at_a_time(arp.claims(), mac_of(bed.a), mac_of(bed.b), None)
    assert gap < 2000, f"media gap {gap} ms"


def takeover_case(bed, inject, label):
    """Common to the rows where the standby must take over."""
    site, m, parts = setup_meeting(bed.a, bed.participants)
    bed.wait_synced()
    before = durable_view(bed.a)
    assert durable_view(bed.b) == before
    leg = parts["p0"]["legs"][0]["leg_id"]
    arp = ArpWatch(bed)
    reports, gap, _ = run_failure(bed, inject)
    print(f"\n{label}: media gap {gap:.0f} ms")
    status = bed.b.status()
    assert status["role"] == "active", status
    assert int(status["epoch"]) > int(bed.a_epoch_before), status
    assert durable_view(bed.b) == before
    usage = bed.b.ctl("show", "usage", "--leg", leg)
    assert int(usage["packets_in"]) >= int(RATE * 5), f"usage did not continue: {usage}"
    assert_one_owner_at_a_time(arp.claims(), mac_of(bed.a), mac_of(bed.b), None)
    assert gap < 2000, f"media gap {gap} ms"
    return status


@pytest.fixture
def pair(bed):
    bed.a_epoch_before = bed.a.status()["epoch"]
    return bed


def test_kill_both_primary_processes(pair):
    takeover_case(pair, pair.a.kill_all, "kill -9 of both primary processes")


def test_primary_access_link_down_hands_over(pair):
    # The primary's port on the access bridge goes down: its switch reports
    # the access link down over the backbone, the standby takes over.
    link = lambda: netns.run(["ip", "-n", pair.testbed.bridge_ns, "link", "set", "na", "down"])
    status = takeover_case(pair, link, "primary access link down")
    assert "access" in status["pair"]["last_takeover_cause"], status["pair"]
    # The old primary saw the higher epoch and stepped down.
    deadline = time.monotonic() + 5
    while pair.a.role() != "standby" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pair.a.role() == "standby"


def test_backbone_down_no_takeover_then_catch_up(pair):
    site, m, parts = setup_meeting(pair.a, pair.participants)
    pair.wait_synced()
    snapshots = int(pair.b.status()["pair"].get("snapshots", 0))
    down = lambda: netns.run(["ip", "-n", pair.a.host.ns, "link", "set", "bb0", "down"])
    reports, gap, _ = run_failure(pair, down, seconds=5.0, at=1.0)
    print(f"\nbackbone down: media gap {gap:.0f} ms (no takeover expected)")
    assert gap < 500, f"media was disturbed by a backbone failure: {gap} ms"
    sa, sb = pair.a.status(), pair.b.status()
    assert sa["role"] == "active" and sb["role"] == "standby", (sa["role"], sb["role"])
    assert sb["pair"]["peer_state"] == "backbone down", sb["pair"]
    assert "backbone" in sb["pair"]["alarms"], sb["pair"]
    # /metrics: one series per alarm, labelled by name, the raised one at 1.
    samples = check_exposition(pair.b.metrics())
    alarms = {dict(labels)["alarm"]: v for (name, labels), v in samples.items()
              if name == "tandem_pair_alarm"}
    assert alarms["backbone_down"] == 1, alarms
    assert {"peer_lost", "access_path_down", "peer_unhealthy", "cannot_take_over",
            "two_actives"} <= set(alarms), alarms
    assert alarms["peer_lost"] == 0 and alarms["two_actives"] == 0, alarms
    # A change while the backbone is down reaches the standby once it is back.
    pair.a.ctl("site", "create", "--name", "during-outage")
    netns.run(["ip", "-n", pair.a.host.ns, "link", "set", "bb0", "up"])
    pair.wait_synced(timeout=20)
    assert durable_view(pair.b) == durable_view(pair.a)
    sb = pair.b.status()["pair"]
    assert sb["peer_state"] == "up"
    # It resumed from the active's backlog: no second snapshot.
    assert int(sb.get("snapshots", 0)) == snapshots, sb
    pa = pair.a.status()["pair"]
    assert int(pa.get("backlog_changes", 0)) > 0, pa
    assert 0 < int(pa.get("backlog_bytes", 0)) <= 128 << 20, pa
    assert int(pa.get("backlog_resident_bytes", 0)) >= int(pa["backlog_bytes"]), pa
    assert re.search(r"^tandem_pair_backlog_bytes [1-9]", pair.a.metrics(), re.M)
    samples = check_exposition(pair.a.metrics())
    assert value(samples, "tandem_pair_backlog_bytes") > 0
    assert value(samples, "tandem_rx_bytes_total") > 0
    assert value(samples, "tandem_dropped_packets_total", reason="unknown_leg") >= 0


def test_kill_primary_control_no_takeover(pair):
    site, m, parts = setup_meeting(pair.a, pair.participants)
    pair.wait_synced()
    legs_before = pair.a.ctl("show", "legs")
    reports, gap, _ = run_failure(pair, pair.a.control.kill9, seconds=5.0, at=1.0)
    print(f"\nkill -9 of the primary control daemon: media gap {gap:.0f} ms (no takeover expected)")
    assert gap < 500, f"forwarding was disturbed: {gap} ms"
    assert pair.b.role() == "standby"
    pair.a.control.start()
    assert pair.a.role() == "active"
    assert pair.a.status()["epoch"] == pair.a_epoch_before
    strip = lambda legs: [{k: v for k, v in l.items() if k != "usage"} for l in legs["legs"]]
    assert strip(pair.a.ctl("show", "legs")) == strip(legs_before)
    pair.wait_synced(timeout=20)
    assert durable_view(pair.b) == durable_view(pair.a)


def test_standby_lost_and_back_resyncs(pair):
    site, m, parts = setup_meeting(pair.a, pair.participants)
    pair.wait_synced()
    reports, gap, _ = run_failure(pair, pair.b.kill_all, seconds=4.0, at=1.0)
    print(f"\nstandby lost: media gap {gap:.0f} ms (no effect expected)")
    assert gap < 500
    st = pair.a.status()
    assert st["role"] == "active" and st["pair"]["peer_state"] == "lost", st["pair"]
    assert st["pair"]["alarms"] != "none"
    pair.a.ctl("site", "create", "--name", "while-standby-away")
    pair.b.start()
    pair.wait_synced(timeout=20)
    assert pair.b.role() == "standby"
    assert durable_view(pair.b) == durable_view(pair.a)


def test_old_primary_returns_as_standby_and_switchover(pair):
    takeover_case(pair, pair.a.kill_all, "old primary killed")
    epoch_b = int(pair.b.status()["epoch"])
    pair.a.start()
    pair.wait_synced(timeout=20)
    sa = pair.a.status()
    assert sa["role"] == "standby", "the old primary must not take back by itself"
    assert durable_view(pair.a) == durable_view(pair.b)
    # Back only by command, once caught up.
    pair.a.ctl("pair", "switchover")
    pair.wait_role(pair.a, "active", timeout=5)
    pair.wait_role(pair.b, "standby", timeout=5)
    assert int(pair.a.status()["epoch"]) > epoch_b


def test_healed_partition_lower_epoch_demotes(pair):
    site, m, parts = setup_meeting(pair.a, pair.participants)
    pair.wait_synced()
    # Partition: no heartbeat between the nodes on either path, both still
    # reach the participants. The standby takes over: two actives.
    pair.partition(pair.a)
    pair.wait_role(pair.b, "active", timeout=5)
    assert pair.a.role() == "active", "the partitioned primary stays active (it cannot know)"
    ea, eb = int(pair.a.status()["epoch"]), int(pair.b.status()["epoch"])
    assert eb > ea
    # Heal: the lower epoch demotes at once.
    pair.heal(pair.a)
    pair.wait_role(pair.a, "standby", timeout=5)
    assert pair.b.role() == "active"
    pair.wait_synced(timeout=20)
    count = int(3 * RATE)
    reports = FlowRun(pair.testbed, flows(pair, 3.0)).wait()
    gap = check_media(reports, pair, count)
    print(f"\nafter the healed partition: media flows through the higher epoch (gap {gap:.0f} ms)")


def test_site_data_compare_on_demand(pair):
    setup_meeting(pair.a, pair.participants)
    pair.a.ctl("site", "update", "1", "--look", "banner=winter")
    pair.wait_synced()
    sent = pair.a.ctl("pair", "compare")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = pair.b.status()["pair"]
        if int(st.get("compare_seq", 0)) >= int(sent["position"]):
            break
        time.sleep(0.05)
    assert st.get("compare_result") == "match", st
    assert int(st.get("drift_repairs", 0)) == 0
    # Refused on the standby: the comparison starts where the data is written.
    with pytest.raises(Exception):
        pair.b.ctl("pair", "compare")


def test_rtp_video_from_ffmpeg_survives_a_takeover(pair):
    """A real RTP stream (ffmpeg, MPEG-4 video) across the primary's death:
    the receiver decodes frames after the standby took over."""
    from helpers import rtp
    sender, receiver = pair.participants[0], pair.participants[1]
    site = pair.a.ctl("site", "create", "--name", "video")["site_id"]
    m = pair.a.ctl("meeting", "schedule", "--site", site, "--title", "rtp")["meeting_id"]
    pair.a.ctl("meeting", "start", m)
    pair.a.ctl("participant", "join", "--meeting", m, "--name", "tx", "--leg",
               f"video,{sender.ip4}:5000,local={VIP4}:21000")
    pair.a.ctl("participant", "join", "--meeting", m, "--name", "rx", "--leg",
               f"video,{receiver.ip4}:6000,local={VIP4}:21001")
    pair.wait_synced()
    workdir = pair.testbed.tmpdir("rtp", root="/tmp")
    sdp = rtp.receiver_sdp(pair.testbed, sender, workdir, VIP4, 6000)
    killer = threading.Timer(1.5 + 3.0, pair.a.switch.kill)  # receiver start + 3 s of video
    killer.start()
    try:
        sent, decoded = rtp.stream(pair.testbed, sender, VIP4, 21000, 5000, receiver, sdp,
                                   workdir, seconds=8)
    finally:
        killer.join()
    print(f"\nffmpeg RTP across the takeover: {decoded} of {sent} frames decoded")
    assert pair.b.role() == "active"
    # 3 s before the kill: 75 frames; most of the 5 s after it must decode too.
    assert decoded >= 0.7 * sent, f"{decoded} of {sent} frames decoded"
