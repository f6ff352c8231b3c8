"""The Debian package (issue 19): built from the repository with
scripts/package.sh (dpkg-buildpackage from a clean clone), installed on this
machine and removed afterwards; its files, conffiles, user, units
(`systemd-analyze verify`), man pages and completion checked; then its
installed binaries run a pair on the namespace test bed the way the units
run them (user tandem, the switch with the unit's capabilities), reached by a
rolling upgrade from the build tree with a meeting's media flowing:
upgrade the standby, `tandemctl pair switchover`, upgrade the old active.

The package build reuses a package of the same source tree (build/deb), and
builds with the project's compiler flags (TANDEM_DEB_FLAGS=project) so that
ccache serves the objects of the build tree: see docs/operations.md for what
it costs."""
import fcntl
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import netns, paths  # noqa: E402
from helpers.pair import PairBed, durable_view  # noqa: E402
from helpers.participants import Flow, FlowRun  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
# scripts/test.sh builds the package before the suite; run alone on a cold
# ccache, the fixture's build takes minutes (docs/operations.md).
pytestmark = pytest.mark.timeout(1500)
UNITS = ("tandem-switch@.service", "tandem-control@.service")
# The capabilities of tandem-switch@.service (AmbientCapabilities=).
SWITCH_CAPS = ("net_raw", "net_admin", "bpf", "perfmon", "sys_admin", "ipc_lock", "sys_rawio",
               "dac_override", "sys_nice")


def unit_caps():
    text = (REPO / "dist" / "systemd" / "tandem-switch@.service").read_text()
    line = re.search(r"^AmbientCapabilities=(.*)$", text, re.M).group(1)
    return tuple(c.lower().removeprefix("cap_") for c in line.split())


def sh(*argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def installed():
    """Builds (or reuses) the package and installs it, one test run at a time
    on this machine; purges it afterwards, with the user it made."""
    env = dict(os.environ, TANDEM_DEB_FLAGS="project")
    start = time.monotonic()
    p = sh(REPO / "scripts" / "package.sh", env=env, timeout=3600)
    assert p.returncode == 0, p.stderr[-4000:]
    deb = pathlib.Path(p.stdout.strip().splitlines()[-1])
    print(f"package: {deb} in {time.monotonic() - start:.0f} s ({p.stderr.strip()[-200:]})")
    lock = open("/run/lock/tandem-package-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another suite on this machine waits here
    had_user = sh("getent", "passwd", "tandem").returncode == 0
    had_package = sh("dpkg-query", "-W", "-f=${Status}", "tandem").stdout == "install ok installed"
    assert not had_package, "a tandem package is installed on this machine already; not touching it"
    try:
        inst = sh("dpkg", "-i", deb, timeout=300)
        assert inst.returncode == 0, inst.stdout + inst.stderr
        yield deb
    finally:
        sh("dpkg", "--purge", "tandem", timeout=300)
        if not had_user:
            sh("deluser", "--system", "tandem")
            sh("delgroup", "--system", "tandem")
        subprocess.run(["rm", "-rf", "/run/tandem", "/dev/shm/tandem"])
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def test_package_contents_units_and_user(installed):
    for b in ("tandem-switch", "tandem-control", "tandemctl", "tandem-tables", "tandem-routing"):
        v = sh(f"/usr/bin/{b}", "--version")
        assert v.returncode == 0 and v.stdout.startswith(f"{b} "), (b, v.stdout, v.stderr)
        assert sh("man", "-w", b).returncode == 0, f"no man page for {b}"
    assert pathlib.Path("/usr/lib/tandem/tandem_steer.bpf.o").is_file()
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "tandem").stdout
    for f in ("switch-a.toml", "control-a.toml", "notify.sh"):
        assert f"/etc/tandem/{f} " in conffiles, conffiles
    # postinst: the system user and group, /etc/tandem readable by the group only.
    pw = sh("getent", "passwd", "tandem").stdout.split(":")
    assert pw[6].strip() == "/usr/sbin/nologin" and int(pw[2]) < 1000, pw
    st = os.stat("/etc/tandem")
    assert oct(st.st_mode & 0o777) == "0o750" and st.st_gid == int(pw[3])
    # tmpfiles.d ran at install: the runtime directory of both daemons.
    st = os.stat("/run/tandem")
    assert st.st_uid == int(pw[2]) and oct(st.st_mode & 0o777) == "0o750"
    # Completion: what tandemctl generates from its command table.
    comp = pathlib.Path("/usr/share/bash-completion/completions/tandemctl").read_text()
    assert comp == sh("/usr/bin/tandemctl", "completion", "bash").stdout
    assert pathlib.Path("/usr/share/tandem/grafana/tandem.json").is_file()
    rules = pathlib.Path("/usr/share/tandem/prometheus")
    assert sh("promtool", "test", "rules", rules / "tests" / "tandem-alerts.test.yml").returncode == 0
    # The units verify, instances of both templates (man pages checked too).
    unitdir = pathlib.Path("/lib/systemd/system")
    v = sh("systemd-analyze", "verify", "--man=yes", *(unitdir / u.replace("@", "@na") for u in UNITS))
    assert v.returncode == 0 and not v.stderr.strip(), v.stdout + v.stderr
    assert unit_caps() == SWITCH_CAPS, "the test's capability list follows the unit's"
    # The example configurations are valid but for the key the operator makes.
    p = sh("/usr/bin/tandem-control", "--check-config", "--config", "/etc/tandem/control-a.toml")
    assert p.returncode == 2 and "/etc/tandem/pair.key" in p.stderr, p.stderr


def run_as_tandem(bed, node, switch_binary, control_binary):
    """The node's two daemons from now on: these binaries, as user tandem, the
    switch with the capabilities of its unit; their files given to tandem."""
    uid = sh("id", "-u", "tandem").stdout.strip()
    key = bed.testbed.pair_key_file
    for d in (node.switch.workdir, node.switch.shm_dir, node.workdir, key.parent, node.runtime_dir):
        sh("chown", "-R", f"{uid}:{uid}", d, check=True)
    caps = ",".join(f"+{c}" for c in SWITCH_CAPS)
    base = ["setpriv", "--reuid=tandem", "--regid=tandem", "--init-groups"]
    node.switch.binary = switch_binary
    node.switch.wrapper = [*base, f"--inh-caps={caps}", f"--ambient-caps={caps}", "env",
                           f"XDG_RUNTIME_DIR={node.runtime_dir}"]
    node.control.binary = control_binary
    node.control.wrapper = base


def restart(node):
    node.control.stop()
    node.switch.stop()
    node.start()


def build_info(node):
    line = [x for x in node.metrics().splitlines() if x.startswith("tandem_build_info")][0]
    return dict(re.findall(r'(\w+)="([^"]*)"', line))


def test_rolling_upgrade_to_the_installed_package(installed):
    build = paths.build_dir()
    old = (build / "switch" / "tandem-switch", build / "control" / "tandem-control")
    new = ("/usr/bin/tandem-switch", "/usr/bin/tandem-control")
    bed = PairBed(participants=3)
    try:
        for n in bed.nodes():
            n.runtime_dir = bed.testbed.tmpdir(f"run-{n.name}", root="/tmp")
            run_as_tandem(bed, n, *old)
        bed.start()
        a, b = bed.a, bed.b
        site = a.ctl("site", "create", "--name", "acme")["site_id"]
        m = a.ctl("meeting", "schedule", "--site", site, "--title", "upgrade")["meeting_id"]
        a.ctl("meeting", "start", m)
        vip = netns.VIP4
        for i, h in enumerate(bed.participants):
            a.ctl("participant", "join", "--meeting", m, "--name", h.name, "--leg",
                  f"audio,{h.ip4}:5000,local={vip}:{20050 + i}")
        bed.wait_synced()
        count, rate = 1500, 50.0  # 30 s of media from each participant
        flows = [Flow(host=h, sender_id=100 + i, bind=f"{h.ip4}:5000", count=count, rate=rate,
                      to=[f"{vip}:{20050 + i}"]) for i, h in enumerate(bed.participants)]
        run = FlowRun(bed.testbed, flows)
        try:
            time.sleep(run.data_starts_after + 2)
            # 1. The standby.
            run_as_tandem(bed, b, *new)
            restart(b)
            bed.wait_synced(timeout=30)
            # 2. Switch over to it.
            a.ctl("pair", "switchover", timeout=60)
            bed.wait_role(b, "active", timeout=10)
            bed.wait_role(a, "standby", timeout=10)
            bed.wait_synced(timeout=30)
            # 3. The old active.
            run_as_tandem(bed, a, *new)
            restart(a)
            bed.wait_synced(timeout=30)
        finally:
            reports = run.wait()
        pkg_commit = build_info(b)["commit"]
        assert build_info(a)["commit"] == pkg_commit
        assert sh("/usr/bin/tandem-control", "--version").stdout.find(pkg_commit) > 0
        # No takeover but the switchover: B took over once, A (restarted) never.
        assert int(b.status()["pair"]["takeovers"]) == 1
        assert int(a.status()["pair"].get("takeovers", 0)) == 0
        assert durable_view(a) == durable_view(b)
        assert len(b.ctl("show", "legs")["legs"]) == 3
        # Media went on: each receiver got the others' data but for the switchover's gap.
        for sid, r in reports.items():
            got = r.data_packets()
            assert got >= 2 * count * 0.9, (sid, got, r)
    finally:
        bed.close()
