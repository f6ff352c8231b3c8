"""The soak's verdicts (checks.py): a takeover nobody injected and a verdict
that could not be given fail the soak.

  /usr/bin/python3 -m pytest -q scripts/soak/test_checks.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import lost_lists_verdict, peak_rise_per_min, takeovers_verdict  # noqa: E402


def takeover(cause, epoch, ok=True, **kw):
    t = {"cause": cause, "from": "na", "to": "nb", "t_s": 60.0 * epoch, "ok": ok,
         "detection_ms": 5.0, "epoch": epoch}
    t.update(kw)
    return t


def test_injected_takeovers_alone_pass():
    ts = [takeover("kill-switch", 2), takeover("kill-node", 3), takeover("switchover", 4)]
    ok, detail = takeovers_verdict(ts, 1, 4, 3.0)
    assert ok, detail
    assert "none that nobody injected" in detail


def test_a_takeover_nobody_injected_fails():
    """soak.py counted these and passed anyway (issue 14)."""
    ts = [takeover("kill-switch", 2), takeover("kill-node", 4)]
    ok, detail = takeovers_verdict(ts, 1, 4, 3.0)
    assert not ok
    assert "1 takeovers nobody injected" in detail


def test_an_injected_takeover_without_a_new_epoch_fails():
    ok, detail = takeovers_verdict([takeover("kill-switch", 2)], 1, 1, 3.0)
    assert not ok and "did not raise the epoch" in detail


def test_failed_or_missing_takeovers_fail():
    failed = takeover("switchover", 2, ok=False, error="switchover refused 9 times")
    del failed["epoch"]
    assert not takeovers_verdict([failed], 1, 1, 3.0)[0]
    assert not takeovers_verdict([], 1, 1, 3.0)[0]  # asked for, none happened
    assert takeovers_verdict([], 1, 1, 0)[0]        # none asked for


def test_lost_lists_compared_and_exact_pass():
    ts = [takeover("kill-switch", 2, lost_list="listed", lost_unlisted=0, lost_overlisted=0),
          takeover("kill-node", 3, lost_list="unknown")]
    ok, detail = lost_lists_verdict(ts)
    assert ok, detail
    assert detail.startswith("1 takeovers compared, 1 `unknown`")


def test_lost_list_not_compared_is_no_pass():
    """The check used to vanish when no takeover could be compared."""
    for t in (takeover("kill-switch", 2, lost_list="pending"),
              takeover("switchover", 2, lost_list="listed",
                       lost_compare="no driver check of this takeover"),
              takeover("kill-switch", 2, lost_list="unknown"),  # only kill-node may say so
              takeover("kill-node", 2)):
        ok, detail = lost_lists_verdict([t])
        assert not ok, t
        assert "not compared" in detail


def test_lost_list_that_differs_fails():
    t = takeover("kill-node", 3, lost_list="listed", lost_unlisted=2, lost_overlisted=0,
                 lost_compare="3 leg changes listed, the driver lost 5")
    ok, detail = lost_lists_verdict([t])
    assert not ok and "the driver lost 5" in detail


def test_peak_rise_is_per_minute_of_half_window():
    pts = [(0, 100.0), (60, 100.0), (120, 160.0), (240, 220.0)]
    rise, p1, p2 = peak_rise_per_min(pts)
    assert (p1, p2) == (160.0, 220.0) and rise == 60.0 / 2
