"""The children's output reader (runners.Output): a match across the reads
of a pipe, offsets, and a child that prints a line per rule of a million.

  /usr/bin/python3 -m pytest -q scripts/bench/test_output.py
"""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runners import Output  # noqa: E402


def child(script):
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def test_the_line_after_a_million_rules_is_found_within_the_start_up_bound():
    # As l3fwd-em loading a million rules: a line per rule, 80 MB before the
    # line the benchmark waits for (a reader that copied and searched all of
    # it again for every read took minutes: the 1M row's l3fwd-em failed).
    p = child("import sys\n"
              "w = sys.stdout.write\n"
              "for i in range(1000000):\n"
              "    w('EM: Adding route 198.18.0.100, 198.19.2.63, 39999, %d, 17 (1)\\n' % i)\n"
              "w('Rx-pps: 12\\n   Tx-pps: 34\\nL3FWD: entering main loop\\n')\n"
              "sys.stdout.flush()\n"
              "import time; time.sleep(30)\n")
    try:
        out = Output(p.stdout)
        out.wait_for(r"entering main loop", 60, proc=p)
        m = out.wait_for(r"Rx-pps:\s+(\d+).*\n\s+Tx-pps:\s+(\d+)", 1)
        assert m.groups() == ("12", "34")
        assert len(out) > 60_000_000
        assert out.text.endswith("entering main loop\n")
        assert out.tail(2).splitlines() == ["   Tx-pps: 34", "L3FWD: entering main loop"]
        # From an offset past the match, it is not found again.
        with pytest.raises(TimeoutError):
            out.wait_for(r"Tx-pps", 0.2, len(out))
    finally:
        p.kill()
        p.wait()


def test_a_match_split_across_reads_is_found_once_it_is_whole():
    p = child("import sys, time\n"
              "sys.stdout.write('x' * 70000 + 'Port 0: 02:70:63'); sys.stdout.flush()\n"
              "time.sleep(0.5)\n"
              "sys.stdout.write(':61:70:00\\n'); sys.stdout.flush()\n"
              "time.sleep(30)\n")
    try:
        out = Output(p.stdout)
        m = out.wait_for(r"Port 0: ([0-9a-f:]{17})", 10, proc=p)
        assert m.group(1) == "02:70:63:61:70:00"
    finally:
        p.kill()
        p.wait()


def test_a_child_that_exits_without_the_line_is_an_error_with_its_last_words():
    p = child("print('Cause: rx-queue-size 65536 > 65535'); raise SystemExit(1)")
    out = Output(p.stdout)
    with pytest.raises(RuntimeError, match=r"exited \(1\).*\n.*rx-queue-size 65536"):
        out.wait_for(r"entering main loop", 10, proc=p)
    p.wait()
