"""When a benchmark run fails: scripts/bench.sh exits non-zero and names
every scenario that did not forward what it should, so that a table of zeros
can never pass for a measurement.

A run fails when
  - a program could not run a scenario (an exception, a switch that is not
    built when the switch was asked for);
  - any rate of a measured row is zero;
  - a forwarding scenario delivered less than MIN_SHARE of what it expects:
    egress = received media packets x copies per packet (1 for unicast, K
    for fan-out 1:K; the capture's ARP/ND frames are not media), and for the
    unknown-source flood, packets dropped as unknown_leg = received media;
  - a paced memif run brought nothing back, or fewer than MIN_SHARE of the
    frames sent one at a time after idle gaps (nothing is in flight then, so
    every one must come back; the unpaced and half-rate runs may lose frames
    to a preempted forwarder on a loaded machine: their losses are printed,
    not judged).
Goals (ratios to testpmd) are reported, never judged here: the benchmark
measures speed, this module checks that it measured forwarding.
"""

import math
import xml.etree.ElementTree as ET

MIN_SHARE = 0.99


def expected_share(row, meta, drops_per_s, metric):
    """What a row delivered as a share of what its scenario expects.

    row: rx_pps/tx_pps (packets per second, wall clock); meta: the capture's
    media_packets, control_packets and copies_per_packet; drops_per_s: the
    switch's drop rates by reason (None for testpmd, which forwards
    everything it receives: expected tx = rx)."""
    rx, tx = row["rx_pps"], row["tx_pps"]
    if drops_per_s is None:
        return tx / rx if rx else 0.0
    media = rx * meta["media_packets"] / (meta["media_packets"] + meta["control_packets"])
    if not media:
        return 0.0
    if metric == "rx":
        return drops_per_s.get("unknown_leg", 0.0) / media
    return tx / (media * max(1, meta["copies_per_packet"]))


# Drops that a capture causes by design, never lost media: the replayed ARP/ND
# frames (control_packets per pass) come from one source far above the switch's
# per-source slow-path limit, so most of them are dropped as slow_path_limited.
BY_DESIGN = ("slow_path_limited",)


def split_drops(drops, metric, rx_packets, meta):
    """(lost, by_design) packet counts of a switch run's drops by reason.

    The flood's unknown_leg drops are its measure (metric "rx"), neither.
    A by-design reason counts as by design only up to the control frames the
    switch received (plus one pass of the capture for the readings' cut);
    whatever it dropped beyond that was media, and is lost."""
    total = meta["media_packets"] + meta["control_packets"]
    control = rx_packets * meta["control_packets"] / total if total else 0.0
    allowance = control + meta["control_packets"] if meta["control_packets"] else 0.0
    lost = by_design = 0
    for reason, n in drops.items():
        if metric == "rx" and reason == "unknown_leg":
            continue
        if reason in BY_DESIGN:
            ok = int(min(n, allowance))
            allowance -= ok
            by_design += ok
            n -= ok
        lost += n
    return lost, by_design


def _bad(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or v <= 0


def row_problems(r):
    """Problems of one table row (bench.py's make_row), as text."""
    where = "%s: %s" % (r["scenario"], r["program"])
    if "mpps_per_core" not in r:
        note = r.get("note", "")
        return [] if note.startswith("skipped") else ["%s %s" % (where, note or "no figures")]
    if r.get("note"):
        return ["%s %s" % (where, r["note"])]
    out = []
    zero = [k for k in ("rx_mpps_wall", "mpps_per_core") if _bad(r.get(k))]
    if r.get("key") == "egress" and _bad(r.get("tx_mpps_wall")):
        zero.append("tx_mpps_wall")
    if zero:
        out.append("%s %s zero" % (where, ", ".join(zero)))
    share = r.get("share_of_expected")
    if share is not None and not share >= MIN_SHARE:
        what = "dropped as unknown_leg" if r.get("key", "").startswith("received") else "forwarded"
        drops = ", ".join("%s %d" % kv for kv in sorted((r.get("drops") or {}).items()))
        out.append("%s %s %.2f%% of what the scenario expects (at least %.0f%%)%s" % (
            where, what, 100 * share, 100 * MIN_SHARE, "; drops " + drops if drops else ""))
    return out


def paced_problems(paced):
    """Problems of the paced memif runs ({forwarder: result})."""
    out = []
    for name, r in (paced or {}).items():
        where = "paced memif: %s" % name
        if "error" in r:
            out.append("%s: failed: %s" % (where, r["error"]))
            continue
        for run in ("max", "half"):
            if run in r and (_bad(r[run].get("received")) or _bad(r[run].get("rx_pps"))):
                out.append("%s: the %s-rate run got nothing back (%d sent)" % (
                    where, run, r[run].get("sent", 0)))
        a = r.get("after_idle")
        if a is None:
            out.append("%s: no run after idle" % where)
            continue
        want = a.get("expected", 0)
        if not want or a.get("stamped", 0) < MIN_SHARE * want:
            out.append("%s: %d of %d frames sent after idle gaps came back (at least %.0f%%)" % (
                where, a.get("stamped", 0), want, 100 * MIN_SHARE))
    return out


def problems(rows, paced=None, other=()):
    """Every problem of a run, one line each, "SUBJECT: what" (the subject
    is the scenario, "paced memif", "idle" or what else failed); empty when
    the run passes."""
    out = []
    for r in rows:
        out += row_problems(r)
    out += paced_problems(paced)
    out += list(other)
    return out


def write_junit(path, subjects, problem_lines):
    """One test case per subject (a scenario, "paced memif: tandem", ...)
    that was run, for scripts/test.sh's count: failed with its problems,
    skipped when the subject says "skipped: why". Problems whose subject was
    not run (a build that failed) are cases of their own."""
    suite = ET.Element("testsuite", name="bench")
    cases = {}
    for subject, skip in subjects:
        case = ET.SubElement(suite, "testcase", classname="bench", name=subject)
        cases[subject] = case
        if skip:
            ET.SubElement(case, "skipped", message=skip)
    for line in problem_lines:
        subject = max((s for s in cases if line.startswith(s + ":")), key=len, default=None)
        if subject is None:
            subject = line.split(":", 1)[0]
            cases[subject] = ET.SubElement(suite, "testcase", classname="bench", name=subject)
        ET.SubElement(cases[subject], "failure", message=line)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
