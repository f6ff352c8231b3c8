"""scripts/demo.sh --fleet's driver (scripts/demo/fleet_demo.py), run short:
it exits 0 only if pair-1's media went on through the kill of its primary,
the directory named the standby, the meetings placed before stayed and new
ones were placed. Run as the demo runs it, apart from the suite's slower
detection for a busy machine (helpers/pair.py MULTIPLIER) and one etcd member
(the three-member cluster is test_fleet.py's subject)."""
import os
import pathlib
import signal
import subprocess

from helpers.pair import MULTIPLIER
from helpers.paths import PYTHON

DEMO = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "demo" / "fleet_demo.py"


def test_fleet_demo_carries_a_pairs_meetings_through_the_loss_of_its_primary(tmp_path):
    log = tmp_path / "demo.log"
    p = subprocess.Popen([PYTHON, DEMO, "--seconds", "4", "--etcd-members", "1",
                          "--multiplier", str(MULTIPLIER), "--log", log],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, _ = p.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        # SIGTERM: the driver removes its test bed, as on Ctrl-C.
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        raise AssertionError(f"the demo did not finish: {out}")
    print(out)
    assert p.returncode == 0, out
    for line in ("yes  the media went on after the kill",
                 "yes  the directory names nb pair-1's active node",
                 "yes  the meetings placed before stay on pair-1",
                 "yes  new meetings placed, pair-1's made on nb",
                 "The fleet carried pair-1's meetings through the loss of its primary"):
        assert line in out, line
