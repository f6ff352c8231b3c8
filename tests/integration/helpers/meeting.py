"""A meeting on the switch: its table lines, its flows, and the checks of what
each member received."""
from .netns import VIP4, VIP6
from .participants import Flow

MEDIA_PORT = 5000   # each participant's own UDP port
VIP_PORT_BASE = 20000  # member i talks to VIP:(20000 + i)


def vip_endpoint(family, port):
    return f"{VIP4}:{port}" if family == 4 else f"[{VIP6}]:{port}"


def own_endpoint(host, family, port=MEDIA_PORT):
    return host.endpoint4(port) if family == 4 else host.endpoint6(port)


def leg_id(host, meeting_id=1):
    return meeting_id * 100 + host.index + 1


def sender_id(host):
    return host.index + 1


def table_lines(members, family, meeting_id=1, channel="audio", preamble=True):
    """Lines for tandem-tables apply: the node active, the VIPs, one meeting,
    one leg per member: (member:5000) <-> VIP:(20000 + index)."""
    lines = []
    if preamble:
        lines += ["role active 1", f"vip {VIP4} {VIP6}"]
    lines.append(f"meeting {meeting_id} 1")
    for h in members:
        lines.append(f"leg {leg_id(h, meeting_id)} {meeting_id} {channel} "
                     f"{own_endpoint(h, family)} {vip_endpoint(family, VIP_PORT_BASE + h.index)} "
                     f"send,recv {sender_id(h)}")
    return "\n".join(lines) + "\n"


def member_flows(members, family, count=100, rate=50.0, size=200):
    return [Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, family), count=count,
                 rate=rate, size=size, to=[vip_endpoint(family, VIP_PORT_BASE + h.index)])
            for h in members]


def check_exactly_once(reports, receivers, senders, family, count):
    """Each receiver got every packet of every other sender exactly once,
    intact, from the VIP:port of its own leg, and nothing of its own."""
    problems = []
    for r in receivers:
        rep = reports[sender_id(r)]
        expected_src = vip_endpoint(family, VIP_PORT_BASE + r.index)
        for s in senders:
            got = rep.from_sender(sender_id(s))
            if s is r:
                if got:
                    problems.append(f"{r.name} received its own packets back: {got}")
                continue
            if list(got) != [expected_src]:
                problems.append(f"{r.name} got {s.name}'s packets from {sorted(got)}, "
                                f"expected only from {expected_src}")
            st = got.get(expected_src)
            if st is None:
                continue
            if (st["received"], st["duplicates"], st["corrupt"]) != (count, 0, 0):
                problems.append(
                    f"{r.name} from {s.name}: received {st['received']}/{count}, duplicates "
                    f"{st['duplicates']}, corrupt {st['corrupt']}, missing {st['missing'][:20]}")
        foreign = {src: st["foreign"] for src, st in rep.sources.items() if st["foreign"]}
        if foreign:
            problems.append(f"{r.name} received datagrams that are not media: {foreign}")
    return problems
