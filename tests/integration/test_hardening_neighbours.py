"""The switch's neighbour table under attack from the access network (issue 13
item 4, issue 14 item 10): a sustained mixed poisoning barrage at the highest
rate the test bed sends, while participants (three on-link, one behind the
gateway) stream media in both families; and a flood of ARP and ND from random
sources. Every neighbour entry must keep its MAC, media must go on, the
conflicts must be counted and raise an alarm, and the table must stay bounded.

The figures (barrage rate, media loss per stream) are printed; run with -s.
"""
import json
import os
import random
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ControlDaemon  # noqa: E402
from helpers import netns, paths  # noqa: E402
from helpers.meeting import MEDIA_PORT, VIP_PORT_BASE, sender_id, vip_endpoint  # noqa: E402
from helpers.netns import VIP4, VIP6  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402
from helpers.switch import Switch  # noqa: E402
from helpers.tables import Tables  # noqa: E402

MEDIA_RATE = 50.0
BARRAGE_SECONDS = 8.0
LOSS_BOUND = 0.01  # the goal: < 1 % of each stream
# The participant behind the gateway: its addresses live on the gateway host.
FAR4, FAR6 = "198.18.5.10", "2001:db8:5::10"


class Bed:
    """Members p0-p2, the stranger p3, a gateway host `gw` (which also holds
    the far participant's addresses), the node with tandem-switch (gateways
    configured) and tandem-control beside it."""

    def __init__(self):
        self.tb = netns.Testbed()
        try:
            self.members = [self.tb.add_participant(f"p{i}", i) for i in range(3)]
            self.stranger = self.tb.add_participant("p3", 3)
            self.gw = self.tb.add_participant("gw", 5)
            for addr in (f"{FAR4}/32", f"{FAR6}/128"):
                netns.run(["ip", "-n", self.gw.ns, "addr", "add", addr, "dev", "eth0", "nodad"]
                          if ":" in addr else
                          ["ip", "-n", self.gw.ns, "addr", "add", addr, "dev", "eth0"])
            self.far = netns.Host(name="far", ns=self.gw.ns, iface="eth0", index=4, ip4=FAR4,
                                  ip6=FAR6)
            self.node = self.tb.add_node("node")
            self.switch = Switch(self.tb, self.node, access_toml=(
                f'gateway4 = "{self.gw.ip4}"\ngateway6 = "{self.gw.ip6}"'))
            self.switch.start()
            self.tables = Tables.of(self.switch)
            self.control = ControlDaemon(self.tb.tmpdir("ctl"), node=self.switch.node,
                                         shm_dir=self.switch.shm_dir, vips=(VIP4, VIP6),
                                         ports=f"{VIP_PORT_BASE}-{VIP_PORT_BASE + 99}",
                                         legs=self.switch.legs, meetings=self.switch.meetings)
            self.control.start()
        except BaseException:
            self.close()
            raise

    def streamers(self):
        return self.members + [self.far]

    def join_all(self):
        """One meeting per family; each streamer has a leg in both."""
        d = self.control
        site = d.ctl("site", "create", "--name", "acme")["site_id"]
        for family in (4, 6):
            m = d.ctl("meeting", "schedule", "--site", site, "--title", f"v{family}")["meeting_id"]
            d.ctl("meeting", "start", m)
            for h in self.streamers():
                own = h.endpoint4(MEDIA_PORT) if family == 4 else h.endpoint6(MEDIA_PORT)
                local = vip_endpoint(family, VIP_PORT_BASE + h.index)
                d.ctl("participant", "join", "--meeting", m, "--name", f"{h.name}v{family}",
                      "--leg", f"audio,{own},local={local}")

    def flows(self, count):
        out = []
        for family in (4, 6):
            for h in self.streamers():
                own = h.endpoint4(MEDIA_PORT) if family == 4 else h.endpoint6(MEDIA_PORT)
                # Sender ids: one per (host, family), so both streams are told apart.
                out.append(Flow(host=h, sender_id=sender_id(h) + 10 * family, bind=own,
                                count=count, rate=MEDIA_RATE, size=160,
                                to=[vip_endpoint(family, VIP_PORT_BASE + h.index)]))
        return out

    def true_macs(self, hosts=None):
        """{address the switch must hold: the MAC it must hold for it}."""
        want = {}
        for h in hosts or self.members + [self.gw]:
            want[h.ip4] = want[h.ip6] = h.mac().lower()
        return want

    def close(self):
        for what in ("control", "switch"):
            obj = getattr(self, what, None)
            if obj is not None:
                obj.close()
        self.tb.close()


@pytest.fixture
def bed():
    b = Bed()
    try:
        yield b
    finally:
        b.close()


def storm(bed, host, groups, rate, seconds):
    """helpers/storm.py in `host`'s namespace; returns its report."""
    spec = bed.tb.tmpdir("storm") / "spec.json"
    spec.write_text(json.dumps({
        "iface": host.iface, "duration": seconds, "rate": rate,
        "groups": {g: [f.hex() for f in fs] for g, fs in groups.items()}}))
    p = bed.tb.run_in(host, [paths.PYTHON, paths.REPO / "tests/integration/helpers/storm.py",
                             "--spec", spec], timeout=seconds + 60)
    return json.loads(p.stdout.strip().splitlines()[-1])


def barrage_frames(bed):
    """The issue's mix, from the stranger's MAC, against p1 and the gateway in
    both families, and against the VIPs."""
    from scapy.all import (ARP, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                           ICMPv6NDOptSrcLLAddr, IPv6)
    att = bed.stranger.mac()
    node = bed.node.mac()
    frames = []
    for victim in (bed.members[1], bed.gw):
        frames += [
            # ARP replies claiming the victim's IPv4 address.
            Ether(src=att, dst=node) / ARP(op=2, hwsrc=att, psrc=victim.ip4, hwdst=node,
                                           pdst=VIP4),
            # ARP requests for the VIP with the victim's address as sender.
            Ether(src=att, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=att, psrc=victim.ip4,
                                                          pdst=VIP4),
            # Unsolicited NAs with the override flag for the victim's IPv6 address.
            Ether(src=att, dst=node) / IPv6(src=victim.ip6, dst=VIP6, hlim=255)
            / ICMPv6ND_NA(tgt=victim.ip6, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=att),
            # Solicited-looking NAs too (the S flag set): answers out of nowhere.
            Ether(src=att, dst=node) / IPv6(src=victim.ip6, dst=VIP6, hlim=255)
            / ICMPv6ND_NA(tgt=victim.ip6, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=att),
            # NSs for the VIP with a source link-layer option, from the victim's address.
            Ether(src=att, dst=node) / IPv6(src=victim.ip6, dst=VIP6, hlim=255)
            / ICMPv6ND_NS(tgt=VIP6) / ICMPv6NDOptSrcLLAddr(lladdr=att),
        ]
    # ARP replies claiming the VIP (to the switch only: a broadcast one would
    # poison the participants' kernels, which no switch can prevent).
    frames.append(Ether(src=att, dst=node) / ARP(op=2, hwsrc=att, psrc=VIP4, hwdst=node,
                                                 pdst=VIP4))
    return [bytes(f) for f in frames]


def neighbour_problems(bed, stats, hosts=None):
    want = bed.true_macs(hosts)
    att = bed.stranger.mac().lower()
    got = {n["ip"]: n for n in stats.get("neighbours", [])}
    problems = []
    for ip, mac in want.items():
        n = got.get(ip)
        if n is None:
            problems.append(f"no neighbour entry for {ip}")
        elif n["mac"].lower() != mac or n["state"] not in ("reachable", "stale"):
            who = "the stranger's" if n["mac"].lower() == att else "a wrong"
            problems.append(f"{ip} holds {who} MAC {n['mac']} ({n['state']}), not {mac}")
    return problems


def media_loss(bed, reports, count):
    loss, problems = {}, []
    flows = bed.flows(count)
    for r in flows:
        rep = reports[r.sender_id]
        for s in flows:
            if s is r or (s.sender_id // 10) != (r.sender_id // 10):  # same family only
                continue
            got = rep.from_sender(s.sender_id)
            received = sum(st["received"] for st in got.values())
            fam = s.sender_id // 10
            loss[f"v{fam} {r.host.name}<-{s.host.name}"] = 1.0 - received / count
            if any(st["duplicates"] or st["corrupt"] for st in got.values()):
                problems.append(f"{r.host.name} from {s.host.name}: duplicates or corrupt")
        foreign = {src: st["foreign"] for src, st in rep.sources.items() if st["foreign"]}
        if foreign:
            problems.append(f"{r.host.name} received datagrams that are not media: {foreign}")
    return loss, problems


def drops_between(before, after):
    return {k: after["totals"]["drops"][k] - before["totals"]["drops"].get(k, 0)
            for k in after["totals"]["drops"]}


def rx_at_interface(bed):
    """Frames the kernel delivered to the switch's interface (each goes to
    the switch's AF_PACKET ring, or is lost there when the ring is full,
    which net_af_packet does not count)."""
    out = bed.tb.run_in(bed.node, ["ip", "-s", "-j", "link", "show", bed.node.iface]).stdout
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def mark(bed):
    """(time, frames the kernel delivered to the switch's interface, frames
    the switch took from it)."""
    return (time.monotonic(), rx_at_interface(bed),
            bed.tables.stats()["totals"]["rx_packets"])


def during_media(bed, seconds, action):
    """Media in both families from every streamer; action() runs once every
    neighbour is resolved. Returns (stats before, stats at action's end,
    stats after, action's result, {stream: loss}, problems, cpu), where cpu
    says what the machine gave the switch: `worker` CPU seconds of its
    worker during the `wall` seconds of action(), the frames delivered to
    its interface (`kernel`) and taken by it (`switch`) meanwhile, and
    `ring_loss`, the share of each stream lost at its receive ring as
    ring_loss() estimates it."""
    count = int(MEDIA_RATE * (seconds + 4))
    marks = [mark(bed)]
    run = FlowRun(bed.tb, bed.flows(count))
    media = (marks[0][0] + run.data_starts_after, marks[0][0] + run.data_starts_after
             + count / MEDIA_RATE)
    time.sleep(run.data_starts_after + 1.0)
    before = bed.tables.stats()
    assert not neighbour_problems(bed, before), neighbour_problems(bed, before)
    worker0 = bed.switch.cpu_seconds("rte-worker-1")
    marks.append(mark(bed))
    result = action()
    marks.append(mark(bed))
    # Offered during the barrage: what the storm sent and the media. What of
    # it never reached the interface was lost in the test bed's kernel (the
    # bridge's and veths' queues), before the switch.
    media_sent = len(bed.flows(count)) * MEDIA_RATE * (marks[2][0] - marks[1][0])
    offered = {1: result["total"] + media_sent}
    cpu = {"wall": marks[2][0] - marks[1][0],
           "worker": bed.switch.cpu_seconds("rte-worker-1") - worker0,
           "kernel": marks[2][1] - marks[1][1], "switch": marks[2][2] - marks[1][2]}
    during = bed.tables.stats()
    reports = run.wait()
    after = bed.tables.stats()
    marks.append(mark(bed))
    cpu["ring_loss"] = ring_loss(marks, media, offered)
    loss, problems = media_loss(bed, reports, count)
    return before, during, after, result, loss, problems, cpu


def ring_loss(marks, media, offered):
    """The share of a stream sent over `media` (start, end) that fell into
    frames lost before the switch took them: for each stretch between two
    marks, the share of the stream sent in it times the share of the frames
    offered in it that the switch never took (offered: `offered[i]` for the
    stretch after mark i when the sender says, else the frames delivered to
    the interface). A frame is lost at the switch's receive ring only while
    the ring is full, i.e. while the switch's worker does not run (a busy
    machine) or cannot keep up (a slow switch: see check_worker_keeps_up),
    and before it in the test bed's kernel when that is overrun."""
    share = 0.0
    for i, ((t0, k0, s0), (t1, k1, s1)) in enumerate(zip(marks, marks[1:])):
        sent = max(0.0, min(t1, media[1]) - max(t0, media[0])) / (media[1] - media[0])
        came = max(k1 - k0, offered.get(i, 0))
        lost = max(0.0, 1.0 - (s1 - s0) / came) if came > 0 else 0.0
        share += sent * lost
    return share


def mean(loss):
    return sum(loss.values()) / len(loss)


def check_loss(loss, cpu):
    """The media lost, against LOSS_BOUND plus what was lost at the switch's
    receive ring (measured in the same run): no switch forwards frames it is
    not given the CPU to take. Averaged over the streams, the loss is at
    most that; a single stream may lose up to twice the ring's share, since
    the ring is full in bursts that hit streams unevenly (their packets'
    phase against the bursts; seen: 10.8 % for one stream, 5.8 % on average,
    9.8 % at the ring). On a quiet machine nothing is lost at the ring and
    every stream is bounded by LOSS_BOUND, the issue's goal."""
    ring = cpu["ring_loss"]
    print(f"media loss: mean {mean(loss):.2%} (bound {LOSS_BOUND + ring:.2%}), max "
          f"{max(loss.values()):.2%} (bound {LOSS_BOUND + 2 * ring:.2%}): {LOSS_BOUND:.0%} + "
          f"{ring:.2%} of each stream sent while the switch's receive ring lost frames")
    assert mean(loss) <= LOSS_BOUND + ring, f"media lost: {loss}"
    assert max(loss.values()) <= LOSS_BOUND + 2 * ring, f"media lost: {loss}"


def frames_per_cpu_second(cpu):
    return cpu["switch"] / max(cpu["worker"], 0.01)


def check_worker_keeps_up(cpu, rate):
    """So that a slow switch cannot hide behind its receive ring: given the
    CPU, its worker takes frames at least twice as fast as `rate`. (Only
    when it got enough CPU to measure: /proc counts 10 ms ticks, and on a
    machine that starved it to nothing the ring bound says it all.)"""
    if cpu["worker"] >= 0.2:
        assert frames_per_cpu_second(cpu) >= 2 * rate, cpu


def check_neighbours(bed, before, during, after):
    for when, st in (("at the barrage's end", during), ("after it", after)):
        p = neighbour_problems(bed, st)
        assert not p, f"{when}: " + "; ".join(p)
    # (.get: the same test runs against a build from before the neighbour
    # table's statistics, to show that it fails there.)
    moved = after.get("neighbour_table", {}).get("moves", 0)
    assert moved == before.get("neighbour_table", {}).get("moves", 0), "an entry moved"


def print_run(what, bed, report, before, after, loss, cpu):
    drops = dict.fromkeys(("slow_path_limited", "neighbour_conflict"), 0)
    drops.update(drops_between(before, after))
    rx = after["totals"]["rx_packets"] - before["totals"]["rx_packets"]
    sent = sum(report["sent"].values())
    print(f"\n{what}: {sent} frames in {report['seconds']:.1f} s ({report['rate']:.0f}/s) from "
          f"{bed.stranger.mac()}, send errors {report['errors']}; the switch received {rx} "
          f"frames in all; slow_path_limited +{drops['slow_path_limited']}, neighbour_conflict "
          f"+{drops['neighbour_conflict']}, slow_path_full +{drops['slow_path_full']}, "
          f"unknown_leg +{drops['unknown_leg']}; neighbour table {after.get('neighbour_table')}")
    print(f"{what}: {cpu['kernel']} frames reached the switch's interface in {cpu['wall']:.1f} s, "
          f"it took {cpu['switch']}; its worker ran {cpu['worker']:.2f} s "
          f"({frames_per_cpu_second(cpu):.0f} frames per CPU-second); of each stream, "
          f"{cpu['ring_loss']:.2%} was sent while frames were lost at the switch's receive ring")
    print(f"{what}: media loss max {max(loss.values()):.2%}: "
          + ", ".join(f"{k} {v:.2%}" for k, v in sorted(loss.items())))


def test_sustained_mixed_barrage_leaves_every_neighbour_and_stream_alone(bed):
    """The issue's reproduction: the mix at 20,000 frames/s for 8 s (it moved
    p1's entry to the stranger within seconds, in every run)."""
    bed.join_all()
    frames = barrage_frames(bed)
    before, during, after, report, loss, problems, cpu = during_media(
        bed, BARRAGE_SECONDS, lambda: storm(bed, bed.stranger, {"barrage": frames},
                                            rate=20000, seconds=BARRAGE_SECONDS))
    status = bed.control.ctl("status")
    print_run("barrage at 20,000/s", bed, report, before, after, loss, cpu)
    print(f"status: alarms {status.get('alarms')}; {status.get('last_neighbour_conflict')}")

    assert bed.switch.alive(), "tandem-switch died under the barrage"
    assert not report["errors"], f"the storm failed to send: {report}"
    assert report["rate"] > 15000, f"the test bed sent only {report['rate']:.0f} frames/s"
    check_neighbours(bed, before, during, after)
    assert not problems, "\n".join(problems)
    check_worker_keeps_up(cpu, 20000)
    check_loss(loss, cpu)
    drops = drops_between(before, after)
    # Counted: over the per-source limit, refused claims, conflicts, alarm.
    assert drops["slow_path_limited"] > 0 and drops["neighbour_conflict"] > 0, drops
    assert after["neighbour_table"]["conflicts"] > before["neighbour_table"]["conflicts"]
    assert "neighbour_conflict" in status.get("alarms", ""), status
    assert bed.stranger.mac().lower() in status.get("last_neighbour_conflict", "").lower(), status


def test_barrage_at_the_highest_rate_leaves_every_neighbour_alone(bed):
    """The same mix as fast as the test bed sends it (several times what one
    worker on this shared 2-core machine can take in): every neighbour entry
    must hold. The media loss then measures the test bed's capacity, so it is
    bounded as in the test above by what the switch's receive ring lost in
    the same run. For reference, a flood of frames the worker drops at once
    (UDP from unknown sources to the VIPs) at the rate the barrage reached
    runs next, and its figures are printed: not compared, since the sender
    rarely reaches that rate twice on a busy machine (one run here: 456,000
    frames/s, then 261,000) and the media lose less than the flood's frames
    at the ring (they do not come in bursts)."""
    from scapy.all import IP, UDP, Ether, Raw
    bed.join_all()
    frames = barrage_frames(bed)
    before, during, after, report, loss, problems, cpu = during_media(
        bed, BARRAGE_SECONDS, lambda: storm(bed, bed.stranger, {"barrage": frames}, rate=0,
                                            seconds=BARRAGE_SECONDS))
    print_run("barrage at the highest rate", bed, report, before, after, loss, cpu)
    assert bed.switch.alive(), "tandem-switch died under the barrage"
    assert not report["errors"], f"the storm failed to send: {report}"
    check_neighbours(bed, before, during, after)
    assert not problems, "\n".join(problems)
    check_worker_keeps_up(cpu, 20000)
    check_loss(loss, cpu)

    node, att = bed.node.mac(), bed.stranger.mac()
    plain = [bytes(Ether(src=att, dst=node)
                   / IP(src=f"198.18.0.{200 + i % 50}", dst=VIP4)
                   / UDP(sport=10000 + i, dport=VIP_PORT_BASE + 50 + i % 3) / Raw(b"F" * 40))
             for i in range(len(frames))]
    c_before, _, c_after, control, c_loss, _, c_cpu = during_media(
        bed, BARRAGE_SECONDS, lambda: storm(bed, bed.stranger, {"udp": plain},
                                            rate=report["rate"], seconds=BARRAGE_SECONDS))
    print_run("for reference, unknown-source UDP at that rate", bed, control, c_before, c_after,
              c_loss, c_cpu)
    print(f"mean media loss: barrage {mean(loss):.2%}, plain flood {mean(c_loss):.2%}")


def test_flood_of_random_sources_keeps_the_table_bounded(bed):
    """ARP requests and NSs for the VIPs from 4,000 random on-link sources
    (address and MAC; an ARP request and an NS each) for 8 s: no entry is
    made for them (before, each made one that stayed for good, across
    restarts), and a receiver that joins while the flood runs is resolved at
    once and receives the meeting."""
    from scapy.all import ARP, Ether, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    rng = random.Random(14)
    node = bed.node.mac()  # once: each call runs `ip`
    frames = []
    for _ in range(4000):
        mac = "02:%02x:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256) for _ in range(5))
        ip4 = f"198.18.0.{rng.randrange(20, 250)}"
        ip6 = "2001:db8:1::%x:%x" % (rng.randrange(1, 65536), rng.randrange(1, 65536))
        # To the switch only: broadcast, every participant's kernel would
        # take them too, which tests the test bed's CPU, not the switch.
        frames.append(bytes(Ether(src=mac, dst=node) / ARP(
            op=1, hwsrc=mac, psrc=ip4, pdst=VIP4)))
        frames.append(bytes(Ether(src=mac, dst=node) / IPv6(
            src=ip6, dst=VIP6, hlim=255) / ICMPv6ND_NS(tgt=VIP6) / ICMPv6NDOptSrcLLAddr(
            lladdr=mac)))
    d = bed.control
    site = d.ctl("site", "create", "--name", "acme")["site_id"]
    meetings = {}
    for family in (4, 6):
        m = d.ctl("meeting", "schedule", "--site", site, "--title", f"v{family}")["meeting_id"]
        d.ctl("meeting", "start", m)
        meetings[family] = m

    def join(h):
        for family in (4, 6):
            own = h.endpoint4(MEDIA_PORT) if family == 4 else h.endpoint6(MEDIA_PORT)
            d.ctl("participant", "join", "--meeting", meetings[family], "--name",
                  f"{h.name}v{family}", "--leg",
                  f"audio,{own},local={vip_endpoint(family, VIP_PORT_BASE + h.index)}")

    # p0 and p1 stream from the start; p2 joins (and must be resolved) while
    # the flood runs.
    count = int(MEDIA_RATE * 9)
    streams = []
    for family in (4, 6):
        for h in bed.members:
            own = h.endpoint4(MEDIA_PORT) if family == 4 else h.endpoint6(MEDIA_PORT)
            streams.append(Flow(host=h, sender_id=sender_id(h) + 10 * family, bind=own,
                                count=count, rate=MEDIA_RATE, size=160,
                                to=[vip_endpoint(family, VIP_PORT_BASE + h.index)]))
    for h in bed.members[:2]:
        join(h)
    run = FlowRun(bed.tb, streams)
    started = time.monotonic() + run.data_starts_after
    time.sleep(run.data_starts_after)
    before = bed.tables.stats()
    result = {}
    flood = threading.Thread(target=lambda: result.update(
        storm(bed, bed.stranger, {"flood": frames}, rate=10000, seconds=8.0)))
    flood.start()
    time.sleep(1.5)
    p2 = bed.members[2]
    joined = time.monotonic()
    into = joined - started
    join(p2)
    resolved_after = None
    while flood.is_alive():
        if not neighbour_problems(bed, bed.tables.stats(), [p2]):
            resolved_after = time.monotonic() - joined
            break
        time.sleep(0.1)
    flood.join()
    reports = run.wait()
    after = bed.tables.stats()
    table = after.get("neighbour_table", {})
    entries = [(n["ip"], n["state"]) for n in after.get("neighbours", [])]
    drops = drops_between(before, after)
    print(f"\nflood: {result['sent']['flood']} frames in {result['seconds']:.1f} s "
          f"({result['rate']:.0f}/s) from {len(frames) // 2} random sources; the switch received "
          f"{after['totals']['rx_packets'] - before['totals']['rx_packets']}, slow path "
          f"+{after['totals']['slow_path'] - before['totals']['slow_path']}, drops "
          f"{ {k: v for k, v in drops.items() if v} }")
    print(f"neighbour table {table}: {len(entries)} entries {entries[:12]}")
    print(f"p2 joined during the flood, resolved in both families after "
          f"{resolved_after if resolved_after is None else round(resolved_after, 2)} s")
    assert len(entries) <= 2 * len(bed.members), entries
    assert table.get("refused", 0) == 0, table
    assert resolved_after is not None, neighbour_problems(bed, after, [p2])
    assert not neighbour_problems(bed, after, bed.members), neighbour_problems(bed, after)
    # And p2 receives both others, in both families (their loss is printed:
    # it depends on the CPU the test bed has left).
    for family in (4, 6):
        rep = reports[sender_id(p2) + 10 * family]
        for s in bed.members[:2]:
            got = rep.from_sender(sender_id(s) + 10 * family)
            received = sum(st["received"] for st in got.values())
            print(f"v{family} {p2.name}<-{s.name}: {received} of the {count} sent ({p2.name} "
                  f"joined {into:.1f} s after they started)")
            assert received > 0, (family, s.name, got)
