"""`tandemctl top` as an operator sees it (issue 19): run in tmux while a
meeting's media flows, the screen refreshes with the ports, the workers and
the meeting's packets per second in and out; `q` quits."""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ctl_binary  # noqa: E402
from helpers.meeting import member_flows  # noqa: E402
from helpers.participants import FlowRun  # noqa: E402
from test_control_e2e import join_members  # noqa: E402


class Tmux:
    """A tmux server of this test's own (-L), so nothing else is touched."""

    def __init__(self):
        self.socket = f"tdi{os.getpid()}-top"

    def __call__(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=check, timeout=10)

    def screen(self):
        return self("capture-pane", "-p", "-t", "top").stdout

    def close(self):
        self("kill-server", check=False)


@pytest.fixture
def tmux():
    t = Tmux()
    try:
        yield t
    finally:
        t.close()


def rows(screen, header):
    """The lines of the table under the line starting with `header`."""
    lines = screen.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith(header))
    out = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        out.append(line.split())
    return out


def test_top_shows_a_meeting_live(meeting, control, tmux):
    d = control
    _, meeting_id, _ = join_members(d, meeting.members, 4)
    # 3 senders at 50 packets/s each: each receives the other two (100/s).
    run = FlowRun(meeting.bed, member_flows(meeting.members, 4, count=400, rate=50.0))
    try:
        time.sleep(run.data_starts_after)
        tmux("new-session", "-d", "-s", "top", "-x", "150", "-y", "45",
             f"{ctl_binary()} --api {d.api} top --interval 1")
        time.sleep(3.5)  # three refreshes: rates over the last second
        first = tmux.screen()
        time.sleep(1.2)
        screen = tmux.screen()
        # The figures may hold steady (a paced flow): the header's clock moves.
        clock = r"tandemctl top - node \S+, active epoch 1, .* - (\d\d:\d\d:\d\d)\n"
        before, now = re.search(clock, first), re.search(clock, screen)
        assert before and now, first + "\n" + screen
        assert before.group(1) != now.group(1), "the view did not refresh:\n" + screen
        ports = {r[0]: r for r in rows(screen, "PORT")}
        assert ports["access"][1] == "up", screen
        workers = rows(screen, "WORKER")
        assert len(workers) == 1 and workers[0][2] in ("polling", "idle"), screen
        (mrow,) = [r for r in rows(screen, "MEETING") if r[0] == str(meeting_id)]
        title, people, legs, pps_in, pps_out = mrow[1], int(mrow[2]), int(mrow[3]), mrow[4], mrow[5]
        assert (title, people, legs) == ("e2e", 3, 3), mrow
        # 150 packets/s in, 300 out; the machine is shared: a generous band.
        assert 75 <= float(pps_in) <= 225, mrow
        assert 150 <= float(pps_out) <= 450, mrow
        assert "DROPS:" in screen
        tmux("send-keys", "-t", "top", "q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and tmux("has-session", "-t", "top",
                                                   check=False).returncode == 0:
            time.sleep(0.1)
        assert tmux("has-session", "-t", "top", check=False).returncode != 0, "q did not quit"
    finally:
        run.wait()


def test_top_without_a_terminal_prints_screens(control):
    p = subprocess.run([str(ctl_binary()), "--api", control.api, "top", "--iterations", "2",
                        "--interval", "1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("tandemctl top - node") == 2 and "(no live meeting)" in p.stdout
