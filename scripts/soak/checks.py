"""The soak's verdicts that are pure arithmetic on what it recorded, apart
from the run itself (scripts/soak/soak.py) so that they are tested on their
own (test_checks.py): a check that cannot be given fails, and so does a
takeover nobody injected.
"""


def takeovers_verdict(takeovers, first_epoch, last_epoch, takeover_every):
    """(ok, detail) of the takeovers check: every injected takeover happened
    and its failed node came back (ok in its record), at least one happened
    when they were asked for, and the epoch rose by exactly the injected
    ones. A takeover nobody injected (a false detection, a flap) or an
    injected one that did not raise the epoch fails the soak."""
    bad = [t for t in takeovers if not t.get("ok")]
    injected = len([t for t in takeovers if "epoch" in t])
    unexpected = (last_epoch - first_epoch) - injected
    ok = not bad and unexpected == 0 and (bool(takeovers) or takeover_every <= 0)
    lines = ", ".join(f"{t['cause']} {t['from']}->{t['to']} "
                      f"{t.get('detection_ms', '?')} ms" for t in takeovers)
    detail = (f"{len(takeovers)} done ({lines or 'none'}), {len(bad)} failed"
              + (f": {[t.get('error') or t.get('compare') for t in bad]}" if bad else "")
              + f"; epoch {first_epoch} -> {last_epoch} for {injected} injected")
    if unexpected > 0:
        detail += f": {unexpected} takeovers nobody injected"
    elif unexpected < 0:
        detail += f": {-unexpected} injected takeovers did not raise the epoch"
    else:
        detail += ", none that nobody injected"
    return ok, detail


def lost_lists_verdict(takeovers):
    """(ok, detail) of the `pair lost` check over the takeovers that worked:
    each must have been compared with what the churn driver lost, and match.
    The one answer that is not compared is `unknown` after kill -9 of both
    processes: the old active comes back without its log, and the pair says
    it cannot list what was lost. Any other takeover left uncompared (no
    list, a list still pending, no driver check to compare with) is a verdict
    not given, which fails."""
    compared, unknown, problems = 0, 0, []
    for t in takeovers:
        if not t.get("ok"):
            continue  # a failed takeover fails the takeovers check
        what = f"{t['cause']} at {t.get('t_s', '?')} s"
        if "lost_unlisted" in t:
            compared += 1
            if t["lost_unlisted"] or t["lost_overlisted"]:
                problems.append(f"{what}: {t.get('lost_compare')}")
        elif t["cause"] == "kill-node" and t.get("lost_list") == "unknown":
            unknown += 1
        else:
            why = t.get("lost_compare") or t.get("lost_list") or "no list read"
            problems.append(f"{what}: not compared ({why})")
    detail = (f"{compared} takeovers compared, {unknown} `unknown` after kill -9 of both "
              f"processes; " + ("; ".join(problems) if problems else "every list exact"))
    return not problems, detail


def peak_rise_per_min(pts):
    """(rise KiB/min, peak of the first half, peak of the second half) of
    (t seconds, KiB) samples: the highest of the window's second half less
    the highest of its first half, per minute of half-window."""
    t0, t1 = pts[0][0], pts[-1][0]
    mid = (t0 + t1) / 2
    peak1 = max(p[1] for p in pts if p[0] <= mid)
    peak2 = max((p[1] for p in pts if p[0] > mid), default=peak1)
    half_min = max((t1 - t0) / 2 / 60.0, 1e-9)
    return (peak2 - peak1) / half_min, peak1, peak2


def slope_per_min(points):
    """Least-squares slope of (t seconds, KiB) in KiB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den * 60.0
