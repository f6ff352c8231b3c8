"""Two releases of different backbone wire formats paired (issue 19, the
rolling upgrade of docs/operations.md): node B's tandem-control is a second
build speaking the next wire version (scripts/build_wire_peer.sh). Each node
refuses the other's replication with a message naming both versions and the
alarm `peer_incompatible`; the standby is left without the active's data and
does not take over (the switches' heartbeats still reach it). The same B
restarted on this build follows at once: the refusal was the version."""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers.pair import PairBed, durable_view  # noqa: E402
from helpers.paths import REPO, build_dir  # noqa: E402

# The fixture may build the other release (minutes on a cold ccache).
pytestmark = pytest.mark.timeout(1800)


def wire_version(binary):
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                         check=True).stdout
    return int(re.search(r"wire format (\d+)", out).group(1))


@pytest.fixture(scope="module")
def other_release():
    """tandem-control of the next wire version (built here when the suite's
    phase did not, e.g. when this file is run alone)."""
    p = subprocess.run([str(REPO / "scripts" / "build_wire_peer.sh")], capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.strip().splitlines()[-1]


def alarms(node):
    return node.status()["pair"].get("alarms", [])


def wait_for(what, check, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_node_refuses_a_peer_of_another_wire_version_then_pairs_with_its_own(other_release):
    ours = wire_version(build_dir() / "control" / "tandem-control")
    theirs = wire_version(other_release)
    assert theirs == ours + 1, (ours, theirs)

    bed = PairBed(participants=1)
    try:
        bed.a.start()
        bed.wait_role(bed.a, "active")
        bed.a.ctl("site", "create", "--name", "acme")
        bed.b.control.binary = other_release
        bed.b.start()

        # Both sides refuse, each naming the version it got and the one it reads.
        wait_for("A raises peer_incompatible", lambda: "peer_incompatible" in alarms(bed.a))
        wait_for("B raises peer_incompatible", lambda: "peer_incompatible" in alarms(bed.b))
        wait_for("A logs the refusal", lambda: re.search(
            rf"wire format version {theirs}, this build .* reads only version {ours}",
            bed.a.control.log()))
        wait_for("B logs the refusal", lambda: re.search(
            rf"wire format version {ours}, this build .* reads only version {theirs}",
            bed.b.control.log()))
        print(f"\nA (wire {ours}) refused B (wire {theirs}) and B refused A: "
              f"A status {bed.a.status()['pair']}\nB status {bed.b.status()['pair']}")

        # B holds nothing of A's and stays standby: no takeover over a format.
        time.sleep(1.0)
        sb = bed.b.status()
        assert sb["role"] == "standby", sb
        assert sb["pair"].get("replication") != "following", sb
        assert "acme" not in str(durable_view(bed.b)), durable_view(bed.b)
        assert bed.a.role() == "active"

        # The same node on this release pairs at once: the refusal was the version.
        bed.b.control.stop()
        bed.b.control.binary = None
        bed.b.control.start()
        bed.wait_synced(timeout=20)
        assert durable_view(bed.a) == durable_view(bed.b)
        assert "acme" in str(durable_view(bed.b))
    finally:
        bed.close()
