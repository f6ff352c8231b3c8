"""The pair (issue 4): every row of the failure table of the design brief, on
a two-node test bed (helpers/pair.py) with participants streaming kernel UDP
media at 50 packets/s per leg. Each test prints the media gap the receivers
saw (the longest silence between two packets of a sender)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import CtlError  # noqa: E402
from control_helpers.metrics import check_exposition, value  # noqa: E402
from helpers import netns  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.netns import VIP4, VIP6  # noqa: E402
from helpers.pair import HEARTBEAT_MS, MULTIPLIER, PairBed, durable_view  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402
from helpers.stalls import StallProbe  # noqa: E402
from helpers.tables import Tables  # noqa: E402

VIP_PORT_BASE = 20000
RATE = 50.0
PERIOD_MS = 1000.0 / RATE

# The media gap a takeover may cause, bounded by what it is made of:
#  - DETECT_MS, the configured detection time (heartbeat_ms x multiplier of
#    helpers/pair.py): the standby decides within it (sooner when the peer
#    says its data plane or access link is down, or its control daemon
#    closed the backbone connection);
#  - PERIOD_MS: the gap is measured between arrivals, and the packet due
#    just after the last one delivered may be lost;
#  - TAKEOVER_MS: from the decision to the receivers' first packet: the new
#    active's tables, its switch's announcement, the participants' kernels
#    taking the new MAC. Measured on 2026-12-05 on this 2-core machine with
#    four CPU hogs beside other work (takeover_case prints both times): the
#    announcement 0-52 ms after the decision, mostly under 10, with the
#    control daemons' stores on tmpfs; media 10-35 ms after the
#    announcement. With the stores on disk (as here) the announcement came
#    12-438 ms after the decision: the new active commits its store and
#    writes its epoch, each fsynced, before its tables say active
#    (Core::SetNodeRole), and under load such fsyncs take that long. That is
#    the product's delay, reported, not a margin of this test.
#  - the stalls the machine itself imposed on this run: the worst gap the
#    receivers saw away from the failure, less one period, or the longest
#    wake-up delay of a sleeping thread on any core around the failure
#    (helpers/stalls.py), whichever is larger. A starved participant delays
#    its packets by as much whatever the failure, and the pair's processes
#    are starved alike (they share the cores with the participants), so it
#    is added, measured, rather than guessed.
DETECT_MS = HEARTBEAT_MS * MULTIPLIER
TAKEOVER_MS = 50.0


def flows(bed, seconds, family=4):
    count = int(seconds * RATE)
    return [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, family),
                 to=[vip_endpoint(family, VIP_PORT_BASE + h.index)], count=count, rate=RATE,
                 size=160)
            for h in bed.participants]


def setup_meeting(active, participants, family=4):
    site = active.ctl("site", "create", "--name", "acme", "--look", "color=blue",
                      "--pref", "lang=en")["site_id"]
    m = active.ctl("meeting", "schedule", "--site", site, "--title", "pair")["meeting_id"]
    active.ctl("meeting", "start", m)
    parts = {}
    for h in participants:
        local = vip_endpoint(family, VIP_PORT_BASE + h.index)
        p = active.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                       f"audio,{own_endpoint(h, family)},local={local}")["participants"][0]
        parts[h.name] = p
    return site, m, parts


def streams(reports, bed):
    """(receiver, sender, stats) of every stream; each receiver got media
    from every other sender."""
    out = []
    for h in bed.participants:
        rep = reports[sender_id(h)]
        for other in bed.participants:
            if other is h:
                continue
            got = rep.from_sender(sender_id(other))
            assert got, f"{h.name} received nothing from {other.name}: {rep}"
            out.append((h, other, next(iter(got.values()))))
    return out


def check_media(reports, bed, count, must_recover=True):
    """Every receiver got media from every other sender after the failure:
    the last packets arrived; returns the largest gap (ms)."""
    worst = 0.0
    for h, other, st in streams(reports, bed):
        worst = max(worst, st["max_gap_ms"])
        if must_recover:
            tail = [s for s in range(count - 10, count) if s in st.get("missing", [])]
            assert not tail, f"{h.name} missed the last packets of {other.name}: {st}"
    return worst


def check_no_loss(reports, bed, count):
    """Every receiver got every packet of every other sender; returns the
    largest gap (ms)."""
    for h, other, st in streams(reports, bed):
        assert st["received"] == count and not st["missing"], \
            f"{h.name} lost packets of {other.name}: {st}"
    return max(st["max_gap_ms"] for _, _, st in streams(reports, bed))


def failure_gaps(reports, bed, t_inject):
    """(the worst gap that spans or follows the failure, the worst gap away
    from it) over every stream, in ms. A gap belongs to the failure when it
    is under way at t_inject or begins within a second after it."""
    at_failure, elsewhere = 0.0, 0.0
    for _, _, st in streams(reports, bed):
        for begin, ms in st["gaps"]:
            end = begin + ms / 1000.0
            if end >= t_inject and begin <= t_inject + 1.0:
                at_failure = max(at_failure, ms)
            else:
                elsewhere = max(elsewhere, ms)
    return at_failure, elsewhere


def machine_stalls(reports, bed, t_inject, probe):
    """(stalls ms, gap at the failure ms, how they were measured): what the
    machine itself added to this run, the larger of the worst gap the
    receivers saw away from the failure less one period, and the longest
    wake-up delay the stall probes saw around the failure (a stall then
    delays the pair's processes as much)."""
    gap, background = failure_gaps(reports, bed, t_inject)
    around = probe.worst(t_inject - 0.1, t_inject + 1.0)
    stalls = max(0.0, background - PERIOD_MS, around)
    return stalls, gap, (f"worst gap away from the failure {background:.0f} ms, "
                         f"worst stall of a sleeping thread around it {around:.0f} ms")


def check_undisturbed(reports, bed, count, label, t_inject=None, probe=None):
    """A failure that must not touch the media (or none at all): every
    packet arrives, and the gap at the failure is no longer than one period
    + TAKEOVER_MS + the machine's stalls (the slack of a takeover, without
    its detection time)."""
    check_no_loss(reports, bed, count)
    if t_inject is None:
        gap = max(st["max_gap_ms"] for _, _, st in streams(reports, bed))
        print(f"\n{label}: no packet lost, longest gap {gap:.0f} ms")
        return
    stalls, gap, how = machine_stalls(reports, bed, t_inject, probe)
    bound = PERIOD_MS + TAKEOVER_MS + stalls
    print(f"\n{label}: no packet lost; gap at the failure {gap:.0f} ms, bound {bound:.0f} ms "
          f"({how})")
    assert gap <= bound, f"{label}: media gap {gap:.0f} ms at the failure > {bound:.0f} ms"


def check_takeover_gap(reports, bed, t_inject, probe, label):
    stalls, gap, how = machine_stalls(reports, bed, t_inject, probe)
    bound = DETECT_MS + PERIOD_MS + TAKEOVER_MS + stalls
    print(f"\n{label}: media gap {gap:.0f} ms; bound {bound:.0f} ms = detection {DETECT_MS} + "
          f"period {PERIOD_MS:.0f} + takeover {TAKEOVER_MS:.0f} + the machine's stalls "
          f"{stalls:.0f} ({how})")
    assert gap <= bound, f"{label}: media gap {gap:.0f} ms > {bound:.0f} ms"
    return gap


class VipWatch:
    """Frames on the bridge that claim a VIP, with the MAC that sent them:
    ARP replies and gratuitous ARP for VIP4, neighbour advertisements for
    VIP6 (solicited or not)."""

    def __init__(self, bed, family=4):
        self.bed = bed
        self.family = family
        self.pcap = bed.testbed.tmpdir("watch", root="/tmp") / "vip.pcap"
        filt = "arp" if family == 4 else "icmp6 and ip6[40] == 136"
        self.proc = bed.testbed.popen(bed.testbed.bridge_ns,
                                      ["tcpdump", "-i", "br0", "-U", "-w", str(self.pcap), filt],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def claims(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        out = netns.run(["tcpdump", "-r", str(self.pcap), "-n", "-e", "-tt"], check=False).stdout
        claims = []
        for line in out.splitlines():
            # "<time> <src mac> > <dst mac>, ... Reply 198.18.0.100 is-at <mac>", a GARP,
            # or "... ICMP6, neighbor advertisement, tgt is 2001:db8:1::100, ..."
            parts = line.split()
            if len(parts) < 2:
                continue
            if self.family == 4:
                claim = f"Reply {VIP4} is-at" in line or f"who-has {VIP4} tell {VIP4}" in line
            else:
                claim = f"neighbor advertisement, tgt is {VIP6}," in line
            if claim:
                unsolicited = (f"who-has {VIP4} tell {VIP4}" in line
                               or parts[3].rstrip(",") in ("ff:ff:ff:ff:ff:ff",
                                                            "33:33:00:00:00:01"))
                claims.append((float(parts[0]), parts[1], unsolicited))
        return claims


def assert_one_owner_at_a_time(claims, old_mac, new_mac):
    """The new owner announced the VIP unsolicited (gratuitous ARP, or an
    unsolicited NA to all nodes), and after its first claim the old owner
    never claims the VIP again."""
    first_new = min((t for t, mac, _ in claims if mac == new_mac), default=None)
    assert first_new is not None, f"the new active never announced the VIP: {claims}"
    assert any(mac == new_mac and unsolicited for _, mac, unsolicited in claims), \
        f"the new active sent no unsolicited announcement: {claims}"
    late_old = [t for t, mac, _ in claims if mac == old_mac and t > first_new]
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


def run_failure(bed, inject, seconds=6.0, at=2.5, family=4):
    """Streams media for `seconds`, calls inject() after `at` seconds; returns
    (reports, time of injection (time.monotonic()), the StallProbe of the run)."""
    count = int(seconds * RATE)
    runner = FlowRun(bed.testbed, flows(bed, seconds, family))
    probe = StallProbe(runner.duration)
    t_inject = {}

    def later():
        time.sleep(runner.data_starts_after + at)
        t_inject["t"] = time.monotonic()
        t_inject["wall"] = time.time()
        inject()
    th = threading.Thread(target=later)
    th.start()
    try:
        reports = runner.wait()
        th.join()
        probe.wait()
    finally:
        probe.close()
    check_media(reports, bed, count)
    probe.wall_at_inject = t_inject.get("wall")
    return reports, t_inject.get("t"), probe


# The causes a takeover may give when the primary's switch is killed
# (mirror/role.cc): its control daemon reports the dead data plane over the
# backbone, unless the silence is noticed first or the daemon dies too (kill
# -9 of both processes kills the switch first).
SWITCH_DEAD = ("peer reports its data plane dead",
               "peer lost on backbone and access network",
               "peer lost on backbone and access network, its control daemon gone")


def takeover_case(bed, inject, label, causes, family=4):
    """Common to the rows where the standby must take over: the same durable
    state, usage going on, one owner of the VIP at a time, a bounded gap, and
    a takeover cause that names the failure."""
    site, m, parts = setup_meeting(bed.a, bed.participants, family)
    bed.wait_synced()
    before = durable_view(bed.a)
    assert durable_view(bed.b) == before, "standby differs from the primary before the failure"
    leg = parts["p0"]["legs"][0]["leg_id"]
    epoch_before = int(bed.a.status()["epoch"])
    watch = VipWatch(bed, family)
    reports, t_inject, probe = run_failure(bed, inject, family=family)
    status = bed.b.status()
    assert status["role"] == "active", status
    cause = status["pair"]["last_takeover_cause"]
    # One takeover, the one injected: more epochs mean takeovers nobody
    # injected (a starved pair flapping), which no gap bound can absorb.
    assert int(status["epoch"]) == epoch_before + 1, (
        f"{label}: epoch {epoch_before} -> {status['epoch']}: the pair flapped (last cause "
        f"{cause!r}); see the control daemons' logs")
    assert cause in causes, f"{label}: takeover cause {cause!r}, expected one of {causes}"
    claims = watch.claims()
    decided_ms = int(status["pair"]["last_takeover_unix_ns"]) / 1e6 - probe.wall_at_inject * 1e3
    new_mac = mac_of(bed.b)
    announced = min((t for t, mac, unsolicited in claims if mac == new_mac and unsolicited),
                    default=None)
    announced_ms = (announced - probe.wall_at_inject) * 1e3 if announced else float("nan")
    print(f"\n{label}: the standby decided {decided_ms:.0f} ms after the failure ({cause}) and "
          f"announced the VIP {announced_ms:.0f} ms after it")
    check_takeover_gap(reports, bed, t_inject, probe, label)
    assert durable_view(bed.b) == before
    usage = bed.b.ctl("show", "usage", "--leg", leg)
    assert int(usage["packets_in"]) >= int(RATE * 5), f"usage did not continue: {usage}"
    assert_one_owner_at_a_time(claims, mac_of(bed.a), new_mac)
    return status


def test_kill_primary_switch_takes_over(bed):
    takeover_case(bed, bed.a.switch.kill, "kill -9 of the primary switch", SWITCH_DEAD)


def test_kill_primary_switch_takes_over_ipv6(bed):
    """The same with IPv6 legs: the new active announces VIP6 with an
    unsolicited NA, the participants' kernels follow it, IPv6 media goes on."""
    takeover_case(bed, bed.a.switch.kill, "kill -9 of the primary switch (IPv6)", SWITCH_DEAD,
                  family=6)


@pytest.fixture
def pair(bed):
    bed.a_epoch_before = bed.a.status()["epoch"]
    return bed


def test_kill_both_primary_processes(pair):
    takeover_case(pair, pair.a.kill_all, "kill -9 of both primary processes", SWITCH_DEAD)


def test_primary_access_link_down_hands_over(pair):
    # The primary's port on the access bridge goes down: its switch reports
    # the access link down over the backbone, the standby takes over.
    link = lambda: netns.run(["ip", "-n", pair.testbed.bridge_ns, "link", "set", "na", "down"])
    takeover_case(pair, link, "primary access link down", ("peer reports its access link down",))
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
    reports, t, probe = run_failure(pair, down, seconds=5.0, at=1.0)
    check_undisturbed(reports, pair, int(5.0 * RATE), "backbone down (no takeover expected)", t,
                      probe)
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
    # One numbering (docs/pair.md): the stream is the change log, so what the
    # standby applied is counted in the active's change-log positions, and
    # once idle it is this node's own position too.
    deadline = time.monotonic() + 10
    while True:
        pa, sb = pair.a.status()["pair"], pair.b.status()["pair"]
        positions = (int(pa["position"]), int(pa.get("acked_position", 0)),
                     int(sb["position"]), int(sb.get("acked_position", 0)))
        if len(set(positions)) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(set(positions)) == 1, (positions, pa, sb)
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
    reports, t, probe = run_failure(pair, pair.a.control.kill9, seconds=5.0, at=1.0)
    check_undisturbed(reports, pair, int(5.0 * RATE),
                      "kill -9 of the primary control daemon (no takeover expected)", t, probe)
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
    reports, t, probe = run_failure(pair, pair.b.kill_all, seconds=4.0, at=1.0)
    check_undisturbed(reports, pair, int(4.0 * RATE), "standby lost (no effect expected)", t,
                      probe)
    st = pair.a.status()
    assert st["role"] == "active" and st["pair"]["peer_state"] == "lost", st["pair"]
    assert st["pair"]["alarms"] != "none"
    pair.a.ctl("site", "create", "--name", "while-standby-away")
    pair.b.start()
    pair.wait_synced(timeout=20)
    assert pair.b.role() == "standby"
    assert durable_view(pair.b) == durable_view(pair.a)


def test_old_primary_returns_as_standby_and_switchover(pair):
    takeover_case(pair, pair.a.kill_all, "old primary killed", SWITCH_DEAD)
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
    # Media now flows through the higher epoch only, every packet of it: no
    # participant is left sending to the demoted node, whose switch forwards
    # nothing (the switches' own counters).
    forwarded = lambda node: Tables.of(node.switch).stats()["totals"]["forwarded_in"]
    a_before, b_before = forwarded(pair.a), forwarded(pair.b)
    count = int(3 * RATE)
    reports = FlowRun(pair.testbed, flows(pair, 3.0)).wait()
    check_undisturbed(reports, pair, count, "after the healed partition")
    a_fwd, b_fwd = forwarded(pair.a) - a_before, forwarded(pair.b) - b_before
    print(f"forwarded by the demoted node {a_fwd}, by the higher epoch {b_fwd}")
    assert a_fwd == 0 and b_fwd >= 3 * count, (a_fwd, b_fwd)


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
    with pytest.raises(CtlError) as refused:
        pair.b.ctl("pair", "compare")
    assert refused.value.code == "FAILED_PRECONDITION", refused.value
    assert "compare runs on the active node of the pair" in refused.value.message, refused.value


def replace_in_memory(pid, old, new):
    """Overwrites every copy of `old` with `new` (same length) in the
    private writable memory of process `pid`: a memory fault of the process,
    as no API can cause. The copies are found while it runs, and written
    with it stopped for only that long (a stop of seconds would look like a
    dead peer to the other node). Returns the copies changed."""
    assert len(old) == len(new)
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            perms = fields[1]
            if not perms.startswith("rw") or perms[3] != "p":
                continue  # read-only, or shared (the session tables)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue  # e.g. a guard page
            at = data.find(old)
            while at >= 0:
                found.append(start + at)
                at = data.find(old, at + 1)
    changed = 0
    os.kill(pid, signal.SIGSTOP)
    try:
        with open(f"/proc/{pid}/mem", "r+b", 0) as mem:
            for addr in found:
                mem.seek(addr)
                if mem.read(len(old)) == old:  # still there: not freed or moved meanwhile
                    mem.seek(addr)
                    mem.write(new)
                    changed += 1
    finally:
        os.kill(pid, signal.SIGCONT)
    return changed


def compare_seen_by_standby(pair, tag):
    """Runs `pair compare` on the active; returns the standby's pair status
    once it compared at that position. A write first (site `tag`) moves the
    position on, so that this comparison is told from an earlier one."""
    pair.a.ctl("site", "create", "--name", tag)
    sent = pair.a.ctl("pair", "compare")
    deadline = time.monotonic() + 10
    while True:
        st = pair.b.status()["pair"]
        if int(st.get("compare_seq", 0)) >= int(sent["position"]):
            return st
        assert time.monotonic() < deadline, f"the standby never compared: {st}"
        time.sleep(0.05)


def test_site_data_drift_is_found_and_repaired(pair):
    """The standby's site data drifts (a site's name changes in its memory,
    as a memory fault or a defect would: replication, a restart or a resync
    would all have put it right, so the digest is what must find it):
    `pair compare` makes the standby report the drift and resync, and both
    nodes end identical."""
    marker = f"drift-{os.getpid():08d}-{int(time.time()):010d}".encode()
    pair.a.ctl("site", "create", "--name", marker.decode(), "--look", "color=blue")
    setup_meeting(pair.a, pair.participants)
    pair.wait_synced()
    st = compare_seen_by_standby(pair, "compare-1")
    assert st.get("compare_result") == "match" and int(st.get("drift_repairs", 0)) == 0, st
    pair.wait_synced()
    before = durable_view(pair.a)
    assert durable_view(pair.b) == before

    resyncs = pair.b.control.log().count("resynced from the active node")
    changed = replace_in_memory(pair.b.control.proc.pid, marker, marker.upper())
    assert changed >= 1, "the site's name was not found in the standby's memory"
    assert durable_view(pair.b) != before, "the standby does not show the drift"

    st = compare_seen_by_standby(pair, "compare-2")
    before = durable_view(pair.a)
    print(f"\ndrift: {changed} copies changed in the standby's memory; the standby reports "
          f"{st.get('compare_result')!r}, drift repairs {st.get('drift_repairs')}")
    assert st.get("compare_result") == "drift repaired", st
    assert int(st.get("drift_repairs", 0)) == 1, st
    assert "DIFFERS from the active node" in pair.b.control.log()
    deadline = time.monotonic() + 20
    while pair.b.control.log().count("resynced from the active node") == resyncs:
        assert time.monotonic() < deadline, "the standby did not resync after the drift"
        time.sleep(0.05)
    pair.wait_synced(timeout=20)
    assert durable_view(pair.b) == before, "the standby still differs after the repair"
    st = compare_seen_by_standby(pair, "compare-3")
    assert st.get("compare_result") == "match" and int(st.get("drift_repairs", 0)) == 1, st
    assert re.search(r"^tandem_pair_drift_repairs_total 1(\.0+)?$", pair.b.metrics(), re.M)


def role_changes(node, since):
    """The role changes in `node`'s control log past offset `since`."""
    return [line for line in node.control.log()[since:].splitlines() if " is now " in line]


def check_no_takeover_on_silence(pair, pause, what):
    """Runs `pause()` ten times, a second apart, then requires that the paused
    standby never took over for its peer's silence (unless a thread of the
    machine slept past the detection time, see below). A takeover for another
    cause (on this two-core machine under load, the active's worker starved
    past worker_stall_ms reports its data plane dead) is the machine's, not
    what this test is about: it is printed, and the pair must still end with
    one active and one standby."""
    since = {n.name: len(n.control.log()) for n in (pair.a, pair.b)}
    probe = StallProbe(seconds=10 * (1.0 + 3 * DETECT_MS / 1000) + 2)
    try:
        for _ in range(10):
            pause()
            time.sleep(1.0)
        probe.wait()
    finally:
        probe.close()
    changes = {n.name: role_changes(n, since[n.name]) for n in (pair.a, pair.b)}
    print(f"\nrole changes during the pauses: {changes}; the machine's worst stall "
          f"{probe.worst():.0f} ms")
    silence = [line for line in changes[pair.b.name]
               if "is now active" in line and "peer lost" in line]
    # A thread of the machine asleep for a whole detection time may have been
    # the active's heartbeat sender, starved while the standby listened: a
    # takeover the standby was right to make. Only then is silence excused.
    if probe.worst() < DETECT_MS:
        assert not silence, (f"{what}: the standby took its own deafness for the peer's "
                             f"death: {silence}")
    elif silence:
        print(f"the machine stalled {probe.worst():.0f} ms (detection {DETECT_MS} ms): "
              f"takeovers on silence not counted against the product: {silence}")
    deadline = time.monotonic() + 10
    while sorted((pair.a.role(), pair.b.role())) != ["active", "standby"]:
        assert time.monotonic() < deadline, (pair.a.role(), pair.b.role())
        time.sleep(0.1)


def test_standby_control_paused_shorter_than_detection_does_not_take_over(pair):
    """The standby's control daemon stopped (SIGSTOP) for half the detection
    time, ten times, while both switches run and hear each other: a pause of
    the daemon (a stalled VM, a page-in, a lock held across a slow disk
    write) is not the peer's death."""
    pid = pair.b.control.proc.pid

    def pause():
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(DETECT_MS / 2 / 1000)
        finally:
            os.kill(pid, signal.SIGCONT)
    check_no_takeover_on_silence(pair, pause, f"control paused {DETECT_MS / 2:.0f} ms")


def test_standby_switch_frozen_longer_than_detection_does_not_take_over(pair):
    """The standby's whole switch stopped (SIGSTOP: its threads get no CPU, as
    on a starved host) for three detection times while the active runs: the
    standby heard nothing because it did not listen, which is not the peer's
    death. Before the switch excused its own stalls and the control plane
    judged silence only up to its switch's last tick, the standby took over
    on thawing, every time."""
    pid = pair.b.switch.pid

    def pause():
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(3 * DETECT_MS / 1000)
        finally:
            os.kill(pid, signal.SIGCONT)
    check_no_takeover_on_silence(pair, pause, f"switch frozen {3 * DETECT_MS} ms")
    assert "stalled" in pair.b.switch.log_text(), "the switch did not report its stall"


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
