"""Amplification by default (issue 14.13): the node's default limits, set by
tandem-control for every leg and meeting whose site says nothing, bound what
a spoofer can make the switch send, and leave real media alone.

The test bed puts one member behind a router (helpers/netns.py add_router):
the switch hears that member, and anyone behind the same router, through the
router's MAC, so its source-MAC check cannot tell a spoofer of the member's
address from the member. Only the leg's rate limit bounds what the spoofer
gets fanned out. tandem-control runs with no [limits] section: the shipped
defaults (control/media_limits.h, docs/control.md).
"""
import json
import time

import pytest
from scapy.all import IP, UDP, Ether, IPv6, Raw

from control_helpers.control import ControlDaemon
from helpers import netns, paths
from helpers.meeting import VIP_PORT_BASE, own_endpoint, sender_id, vip_endpoint
from helpers.participants import Flow, FlowRun
from helpers.switch import Switch
from helpers.tables import Tables

FAMILIES = pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
# The node's defaults for an audio leg (control/media_limits.h) and the
# policer's bucket (switch/policer.h: a second of traffic at the limit).
AUDIO_PPS = 200
AUDIO_BUCKET = AUDIO_PPS
VIDEO_PORT = 6000  # each participant's own video port; its VIP port is VIP_PORT_BASE + 10 + i


class Bed:
    """p0 and p1 on the access network, `far` (the victim) and `spoofer`
    behind a router, the switch (with the router as its gateway) and
    tandem-control with its defaults."""

    def __init__(self, bed):
        self.bed = bed
        self.router = bed.add_router()
        self.near = [bed.add_participant(f"p{i}", i) for i in range(2)]
        self.far = bed.add_remote_participant("far", 2, self.router)
        self.spoofer = bed.add_remote_participant("spoof", 3, self.router)
        self.members = self.near + [self.far]
        self.node = bed.add_node("node")
        self.switch = Switch(bed, self.node, gateways=(netns.GATEWAY4, netns.GATEWAY6))
        self.switch.start()
        self.tables = Tables.of(self.switch)
        sw = self.switch
        self.control = ControlDaemon(bed.tmpdir("ctl"), node=sw.node, shm_dir=sw.shm_dir,
                                     vips=(netns.VIP4, netns.VIP6),
                                     ports=f"{VIP_PORT_BASE}-{VIP_PORT_BASE + 99}",
                                     legs=sw.legs, meetings=sw.meetings)
        self.control.start()

    def close(self):
        self.control.close()
        self.switch.close()

    def meeting(self, family, channels=("audio",), site_args=()):
        """A site, a live meeting, and a leg per member and channel: audio at
        (own :5000) <-> VIP:(20000 + i), video at (own :6000) <-> VIP:(20010 + i).
        Returns {(member name, channel): leg id}."""
        d = self.control
        site = d.ctl("site", "create", "--name", f"s{time.monotonic_ns()}", *site_args)["site_id"]
        m = d.ctl("meeting", "schedule", "--site", site, "--title", "t")["meeting_id"]
        d.ctl("meeting", "start", m)
        legs = {}
        for h in self.members:
            args = []
            for ch in channels:
                if ch == "audio":
                    own, vip = own_endpoint(h, family), VIP_PORT_BASE + h.index
                else:
                    own, vip = own_endpoint(h, family, VIDEO_PORT), VIP_PORT_BASE + 10 + h.index
                args += ["--leg", f"{ch},{own},local={vip_endpoint(family, vip)}"]
            p = d.ctl("participant", "join", "--meeting", m, "--name", h.name, *args)
            for leg in p["participants"][0]["legs"]:
                legs[(h.name, leg["channel"].lower())] = leg
        return legs

    def drops(self):
        return dict(self.tables.stats()["totals"]["drops"])


@pytest.fixture
def amp():
    bed = netns.Testbed()
    b = None
    try:
        b = Bed(bed)
        yield b
    finally:
        if b is not None:
            b.close()
        bed.close()


def audio_flows(members, family, count, rate=50.0):
    return [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, family), count=count,
                 rate=rate, size=160, to=[vip_endpoint(family, VIP_PORT_BASE + h.index)])
            for h in members]


def storm(bed, host, frames, seconds, rate=0):
    """helpers/storm.py in `host`'s namespace; returns its report."""
    spec = bed.tmpdir("storm") / "spec.json"
    spec.write_text(json.dumps({"iface": host.iface, "duration": seconds, "rate": rate,
                                "groups": {"spoof": [bytes(f).hex() for f in frames]}}))
    p = bed.run_in(host, [paths.PYTHON, paths.REPO / "tests/integration/helpers/storm.py",
                          "--spec", spec], timeout=seconds + 60)
    return json.loads(p.stdout.strip().splitlines()[-1])


def foreign(report):
    return sum(st["foreign"] for st in report.sources.values())


@FAMILIES
def test_offlink_spoofer_is_fanned_out_at_most_at_the_default_limit(amp, family):
    legs = amp.meeting(family)
    victim, spoofer = amp.far, amp.spoofer
    if family == 4:
        ip = IP(src=victim.ip4, dst=netns.VIP4, ttl=64)
    else:
        ip = IPv6(src=victim.ip6, dst=netns.VIP6, hlim=64)
    frame = (Ether(src=spoofer.mac(), dst=netns.ROUTER_FAR_MAC) / ip
             / UDP(sport=5000, dport=VIP_PORT_BASE + victim.index) / Raw(b"SPOOF" * 32))
    count = 50 * 8
    before = amp.drops()
    run = FlowRun(amp.bed, audio_flows(amp.members, family, count))
    time.sleep(run.data_starts_after + 1.0)
    # 100 times the leg's limit: enough to show the bound, and no more, so the
    # sender, the router and the switch do not starve each other of the
    # test bed's two cores (as fast as AF_PACKET goes, ~450,000 frames/s).
    flood = storm(amp.bed, spoofer, [frame], seconds=3.0, rate=100 * AUDIO_PPS)
    reports = run.wait()
    after = amp.drops()

    sent, seconds = flood["sent"]["spoof"], flood["seconds"]
    # The victim's leg may pass AUDIO_PPS a second plus a full bucket, over
    # the flood and a second more for the frames still queued when the
    # sender stopped (the switch shares two cores with the sender, the
    # router and the participants).
    allowed = AUDIO_PPS * (seconds + 1.0) + AUDIO_BUCKET
    got = {h.name: foreign(reports[sender_id(h)]) for h in amp.near}
    usage = amp.control.ctl("show", "usage", "--leg", legs[(victim.name, "audio")]["leg_id"])
    victim_data = {h.name: sum(s["received"] for s in
                               reports[sender_id(h)].from_sender(sender_id(victim)).values())
                   for h in amp.near}
    print(f"IPv{family} spoofer behind the router: {sent} frames in {seconds:.1f}s "
          f"({sent / seconds:.0f}/s), send errors {flood['errors']}; fanned out to each "
          f"receiver: {got} (at most {allowed:.0f} allowed); policed "
          f"+{after['policed'] - before['policed']}")
    print(f"billed to the victim's leg: packets_in {usage['packets_in']}, dropped (policed) "
          f"{usage['drop_policed']}; the victim's own {count} packets reached "
          f"{victim_data}")
    assert not flood["errors"], f"the spoofer could not send: {flood}"
    assert sent >= 4 * allowed, f"the spoofer sent too little to show a bound: {flood}"
    for name, n in got.items():
        assert n <= allowed, (f"{name} received {n} spoofed copies; the default audio limit "
                              f"allows {allowed:.0f}")
    # What reached the switch on the victim's leg (the router and the port
    # drop some of the flood) and was not passed on was policed and counted,
    # on the leg and in the switch's totals.
    arrived = usage["packets_in"] - (count + 3)
    assert usage["drop_policed"] >= arrived - allowed, usage
    assert after["policed"] - before["policed"] >= usage["drop_policed"]
    # The other members' media: what they lost measures the test bed's CPU
    # under the flood (the flood's sender, the router and the switch share
    # its two cores), printed, not bounded here.
    near = {f"{r.name}<-{s.name}": sum(st["received"] for st in
                                       reports[sender_id(r)].from_sender(sender_id(s)).values())
            for r, s in ((amp.near[0], amp.near[1]), (amp.near[1], amp.near[0]))}
    print(f"the members on the link received of each other's {count}: {near}")


@FAMILIES
def test_real_media_rates_are_never_policed(amp, family):
    """Audio at 50 pps and video at real rates, frames sent as bursts (30
    frames/s of 10 packets, 2.8 Mbit/s) and unpaced key frames (120 packets,
    138 kB, back to back once a second), pass the defaults untouched."""
    legs = amp.meeting(family, channels=("audio", "video"))
    p0, p1, far = amp.members
    seconds = 6
    flows = audio_flows(amp.members, family, count=50 * seconds)
    video = lambda h, rate, burst: Flow(
        host=h, sender_id=10 + sender_id(h), bind=own_endpoint(h, family, VIDEO_PORT),
        count=rate * seconds, rate=float(rate), size=1150, burst=burst,
        to=[vip_endpoint(family, VIP_PORT_BASE + 10 + h.index)])
    flows += [video(p1, 300, 10), video(far, 120, 120),
              Flow(host=p0, sender_id=10 + sender_id(p0),
                   bind=own_endpoint(p0, family, VIDEO_PORT))]  # receives only
    before = amp.drops()
    reports = FlowRun(amp.bed, flows).wait()
    after = amp.drops()

    problems = []
    for r in amp.members:
        for s in amp.members:
            if s is r:
                continue
            got = sum(st["received"] for st in
                      reports[sender_id(r)].from_sender(sender_id(s)).values())
            if got != 50 * seconds:
                problems.append(f"audio {r.name} <- {s.name}: {got} of {50 * seconds}")
    for r in amp.members:
        for s, rate in ((p1, 300), (far, 120)):
            if s is r:
                continue
            got = sum(st["received"] for st in
                      reports[10 + sender_id(r)].from_sender(10 + sender_id(s)).values())
            if got != rate * seconds:
                problems.append(f"video {r.name} <- {s.name}: {got} of {rate * seconds}")
    policed = {f"{name} {ch}": u["drop_policed"] for (name, ch), leg in legs.items()
               for u in [amp.control.ctl("show", "usage", "--leg", leg["leg_id"])]
               if u["drop_policed"]}
    limits = {f"{n} {c}": (leg["pps_limit"], leg["kbps_limit"]) for (n, c), leg in legs.items()}
    print(f"IPv{family}: legs' limits (pps, kbit/s) {limits}; policed {policed}, switch "
          f"policed +{after['policed'] - before['policed']}")
    assert all(leg["pps_limit"] and leg["kbps_limit"] for leg in legs.values()), legs
    assert not policed and after["policed"] == before["policed"], policed
    assert not problems, "\n".join(problems)


@FAMILIES
def test_meeting_output_cap_holds(amp, family):
    """A site's meeting_copies_per_s caps what its meeting's switch sends;
    the copies over it are counted as meeting_capped."""
    cap = 100
    amp.meeting(family, site_args=("--meeting-copies", str(cap)))
    count, rate = 300, 50.0  # 3 senders x 2 receivers x 50/s = 300 copies/s offered
    before = amp.drops()
    run = FlowRun(amp.bed, audio_flows(amp.members, family, count, rate=rate))
    reports = run.wait()
    after = amp.drops()
    received = 0
    for r in amp.members:
        for src in reports[sender_id(r)].sources.values():
            for st in src["senders"].values():
                received += st["received"] + st["duplicates"] + st["warmup"]
    offered = len(amp.members) * (len(amp.members) - 1) * (count + 3)
    # Warm-up and data span warmup + count / rate seconds, plus a second for
    # what is still queued; the bucket holds a second of the cap, and one
    # packet's copies may overdraw it.
    seconds = 1.0 + count / rate
    most = cap * (seconds + 1.0) + cap + len(amp.members)
    capped = after["meeting_capped"] - before["meeting_capped"]
    print(f"IPv{family}: cap {cap} copies/s over {seconds:.0f}s: {received} copies received of "
          f"{offered} offered (at most {most:.0f}); meeting_capped +{capped}")
    assert received <= most
    # Not far below the cap either: offered at three times the cap, the
    # meeting gets what the cap allows but for what a stalled switch cannot
    # bank (at most a bucket, a second, per stall).
    assert received >= cap * (seconds - 2.0) * 0.6, "the cap let through much less than it allows"
    assert capped > 0
