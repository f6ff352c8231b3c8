"""Abuse through a meeting set up by tandem-control (issue 7): a participant
flooding its meeting is cut to its leg's rate (the site policy's per-leg
limits), and no media payload reaches a file any process writes."""
import os
import pathlib
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))

from helpers.meeting import (MEDIA_PORT, VIP_PORT_BASE, own_endpoint, sender_id,  # noqa: E402
                             vip_endpoint)
from helpers.netns import VIP4  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402
from helpers.stalls import StallProbe  # noqa: E402


LEG_PPS = 100


def _join(d, members, **policy):
    args = ["site", "create", "--name", "abuse"]
    for k, v in policy.items():
        args += [f"--{k.replace('_', '-')}", v]
    site = d.ctl(*args)["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "abuse")["meeting_id"]
    d.ctl("meeting", "start", m)
    for h in members:
        local = vip_endpoint(4, VIP_PORT_BASE + h.index)
        d.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
              f"audio,{own_endpoint(h, 4)},local={local}")
    return site, m


def test_flooding_participant_is_cut_to_its_leg_rate(meeting, control):
    members = meeting.members
    flooder, others = members[0], members[1:]
    _join(control, members, leg_pps=LEG_PPS)
    legs = control.ctl("show", "legs")
    print(f"legs: {legs}")
    seconds, normal_rate, flood_rate = 5.0, 50.0, 2000.0
    flows = [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4),
                  count=int(normal_rate * seconds), rate=normal_rate, size=160,
                  to=[vip_endpoint(4, VIP_PORT_BASE + h.index)]) for h in others]
    flows.append(Flow(host=flooder, sender_id=sender_id(flooder),
                      bind=own_endpoint(flooder, 4), count=int(flood_rate * seconds),
                      rate=flood_rate, size=160,
                      to=[vip_endpoint(4, VIP_PORT_BASE + flooder.index)]))
    run = FlowRun(meeting.bed, flows)
    probe = StallProbe(run.duration)
    try:
        reports = run.wait()
        probe.wait()
    finally:
        probe.close()
    sent_flood = reports[sender_id(flooder)].sent
    got_from_flooder = {}
    loss = {}
    for r in members:
        rep = reports[sender_id(r)]
        if r is not flooder:
            got = rep.from_sender(sender_id(flooder))
            got_from_flooder[r.name] = sum(st["received"] for st in got.values())
        for s in others:
            if s is r:
                continue
            got = rep.from_sender(sender_id(s))
            received = sum(st["received"] for st in got.values())
            loss[f"{r.name}<-{s.name}"] = 1.0 - received / int(normal_rate * seconds)
    usage = control.ctl("show", "usage")
    print(f"flooder sent {sent_flood} at {flood_rate:.0f}/s for {seconds:.0f}s, leg limit "
          f"{LEG_PPS} pps; each other member received {got_from_flooder} of it")
    print("legitimate media loss during the flood: "
          + ", ".join(f"{k} {v:.2%}" for k, v in sorted(loss.items())))
    print(f"usage: {usage}")
    # What the policer lets through while the flood lasts, as long as the
    # flooder actually took to send it (longer than `seconds` when it gets
    # less CPU), plus its warm-up and a second of bucket and scheduling slack.
    flood_seconds = reports[sender_id(flooder)].data["send_seconds"]
    allowed = LEG_PPS * (flood_seconds + 1.0) + LEG_PPS
    print(f"the flood lasted {flood_seconds:.2f} s: at most {allowed:.0f} packets may pass")
    assert sent_flood == int(flood_rate * seconds), f"the flooder sent {sent_flood}"
    for name, n in got_from_flooder.items():
        assert n <= allowed, f"{name} received {n} packets of the flood, limit ~{allowed:.0f}"
        assert n >= 0.5 * LEG_PPS * seconds, f"{name} received only {n}: policed below the rate"
    # Media is lost only while the switch's worker cannot run: its receive
    # ring (net_af_packet's default 512 frames, ~240 ms of this traffic)
    # overflows then. So the bound is 1% plus the share of the run that the
    # stall probe on the worker's core (worker_lcores = [1],
    # helpers/switch.py) spent in stalls beyond 100 ms.
    stalled = probe.stalled(over_ms=100, cpu=1) / 1000.0
    bound = 0.01 + stalled / seconds
    print(f"stalls beyond 100 ms on the worker's core: {stalled:.2f} s; media-loss bound "
          f"{bound:.2%}")
    assert max(loss.values()) <= bound, f"legitimate media lost during the flood: {loss}"


def _files_under(paths):
    for root in paths:
        root = pathlib.Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            for p in root.rglob("*"):
                if p.is_file():
                    yield p


def test_no_media_payload_reaches_any_file(meeting, control):
    members = meeting.members
    _join(control, members)
    marker = f"TANDEM-PAYLOAD-MARKER-{uuid.uuid4().hex}".encode()
    # Media with the marker from every member, through the switch, while the
    # others listen on their media ports.
    script = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"s.bind((sys.argv[1],{MEDIA_PORT}))\n"
        "s.settimeout(0.01)\n"
        "got=0\n"
        "for i in range(200):\n"
        f"  s.sendto({marker!r}+b' %d' % i,({VIP4!r},int(sys.argv[2])))\n"
        "  try:\n"
        "    while True:\n"
        "      s.recv(2048); got+=1\n"
        "  except OSError: pass\n"
        "  time.sleep(0.01)\n"
        "print(got)\n")
    procs = [meeting.bed.popen(h, ["/usr/bin/python3", "-c", script, h.ip4,
                                   VIP_PORT_BASE + h.index], stdout=__import__("subprocess").PIPE,
                               text=True) for h in members]
    received = [int(p.communicate(timeout=60)[0].strip() or 0) for p in procs]
    print(f"marker datagrams received by each member: {received}")
    assert min(received) > 0, "the marked media did not flow"
    control.ctl("show", "usage")
    control.stop()
    meeting.switch.stop()
    # Every file the processes wrote: the tables and state regions, the store
    # (with WAL), the logs, the generated configs, DPDK's runtime dir.
    roots = [meeting.switch.shm_dir, meeting.switch.workdir, control.workdir,
             pathlib.Path("/var/run/dpdk") / meeting.switch.file_prefix]
    found, scanned = [], 0
    for f in _files_under(roots):
        scanned += 1
        try:
            if marker in f.read_bytes():
                found.append(str(f))
        except OSError:
            pass
    print(f"scanned {scanned} files under {[str(r) for r in roots]}")
    assert scanned > 3
    assert not found, f"media payload written to: {found}"
