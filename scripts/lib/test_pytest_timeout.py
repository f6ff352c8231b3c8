"""The integration suite's per-test time bound (tests/integration/pytest.ini):
a hung test fails alone, counts as failed in scripts/test.sh's closing line
(junit_summary.py), and the tests after it still run.

  /usr/bin/python3 -m pytest -q scripts/lib/test_pytest_timeout.py
"""
import pathlib
import re
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]

HUNG = '''
import time
import pytest


@pytest.fixture
def resource(tmp_path):
    mark = tmp_path / "cleaned"
    yield
    mark.write_text("yes")  # the fixture's clean-up still runs


def test_busy_loop(resource):
    while True:  # as test_control_api.py's wait for acknowledged meetings could
        pass


def test_blocked_in_sleep():
    time.sleep(60)


def test_after_the_hung_ones():
    assert True
'''


def test_a_hung_test_fails_alone_and_is_counted(tmp_path):
    (tmp_path / "test_hung.py").write_text(HUNG)
    # The integration suite's ini, its bound cut to 1 s.
    ini = (REPO / "tests" / "integration" / "pytest.ini").read_text()
    ini, n = re.subn(r"(?m)^timeout = \d+$", "timeout = 1", ini)
    assert n == 1, "tests/integration/pytest.ini sets no timeout"
    (tmp_path / "pytest.ini").write_text(ini)
    junit = tmp_path / "out.xml"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "-p",
                        "no:cacheprovider", f"--junitxml={junit}", "--basetemp",
                        str(tmp_path / "base"), str(tmp_path / "test_hung.py")],
                       capture_output=True, text=True, timeout=50)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Timeout" in r.stdout
    assert took < 30, f"the run took {took:.0f}s: the bound did not cut the hung tests"
    counts = subprocess.run([sys.executable, str(HERE / "junit_summary.py"), str(junit)],
                            capture_output=True, text=True, check=True)
    assert counts.stdout.split() == ["1", "2", "0"]
    assert "test_busy_loop" in counts.stderr and "test_blocked_in_sleep" in counts.stderr
    assert list((tmp_path / "base").rglob("cleaned")), "the fixture's clean-up did not run"


def test_the_integration_suite_has_a_bound_per_test():
    r = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True,
                       text=True, cwd=REPO / "tests" / "integration")
    assert "--timeout" in r.stdout, "pytest-timeout is not installed (python3-pytest-timeout)"
    ini = (REPO / "tests" / "integration" / "pytest.ini").read_text()
    assert "\ntimeout = " in ini and "\ntimeout_method = signal" in ini
