"""The systemd units, tmpfiles.d and sysctl.d files as `meson install` lays
them out (issue 19): `systemd-analyze verify` passes on an instance of each
unit template, in a root holding this build's installed files and this
machine's own systemd units (the targets they order against). The package
test (test_package.py) verifies them again where dpkg installed them.

systemd-analyze verify exits 0 on unknown keys and unparsable values (it
ignores them, as systemd would): the test fails on anything it prints."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import paths  # noqa: E402

UNITS = ("tandem-switch@.service", "tandem-control@.service")


def sh(*argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          **kw)


@pytest.fixture(scope="module")
def root():
    """DESTDIR of `meson install` (prefix /usr, as the package), plus the
    machine's /lib/systemd/system."""
    r = pathlib.Path("/tmp") / f"tdi{os.getpid()}-units"
    shutil.rmtree(r, ignore_errors=True)
    try:
        p = sh("meson", "install", "-C", paths.build_dir(), "--no-rebuild", "--quiet",
               "--destdir", r)
        assert p.returncode == 0, p.stdout + p.stderr
        installed = {u: (r / next(r.rglob(u)).relative_to(r)).read_text() for u in UNITS}
        # The build's prefix may be /usr/local: the units name /usr/bin.
        bindir = next(r.rglob("bin/tandem-switch")).parent
        (r / "usr" / "bin").mkdir(parents=True, exist_ok=True)
        for b in ("tandem-switch", "tandem-control"):
            if not (r / "usr" / "bin" / b).exists():
                shutil.copy2(bindir / b, r / "usr" / "bin" / b)
        system = r / "lib" / "systemd" / "system"
        system.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree("/lib/systemd/system", system, symlinks=True, dirs_exist_ok=True)
        for u, text in installed.items():
            (system / u).write_text(text)
        yield r
    finally:
        shutil.rmtree(r, ignore_errors=True)


def verify(root, *units):
    system = root / "lib" / "systemd" / "system"
    return sh("systemd-analyze", "verify", f"--root={root}", "--man=no",
              *(system / u for u in units))


def instance(u):
    return u.replace("@", "@na")


def test_the_installed_units_verify(root):
    system = root / "lib" / "systemd" / "system"
    for u in UNITS:
        shutil.copy2(system / u, system / instance(u))
    v = verify(root, *(instance(u) for u in UNITS))
    assert v.returncode == 0 and not (v.stdout + v.stderr).strip(), v.stdout + v.stderr


@pytest.mark.parametrize("change,said", [
    (("NoNewPrivileges=yes", "NoNewPrivilege=yes"), "Unknown key 'NoNewPrivilege'"),
    (("Type=notify", "Type=notfy"), "Failed to parse service type"),
    (("ExecStart=/usr/bin/tandem-control", "ExecStart=/usr/bin/tandem-contrl"),
     "tandem-contrl is not executable"),
])
def test_a_broken_unit_fails_the_check(root, change, said):
    """What the check above would say of a unit with a mistake in it."""
    system = root / "lib" / "systemd" / "system"
    text = (system / "tandem-control@.service").read_text()
    assert change[0] in text
    broken = system / "tandem-control@broken.service"
    broken.write_text(text.replace(change[0], change[1]))
    v = verify(root, broken.name)
    assert said in v.stdout + v.stderr, v.stdout + v.stderr


def test_tmpfiles_make_the_runtime_directories(root):
    """systemd-tmpfiles --create, in the test's root (its own user tandem),
    makes the directories both units use, owned by tandem, mode 0750."""
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                "tandem:x:64990:64990::/var/lib/tandem:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\ntandem:x:64990:\n")
    conf = next(root.rglob("tmpfiles.d/tandem.conf"))
    p = sh("systemd-tmpfiles", f"--root={root}", "--create", conf)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    for d in ("run/tandem", "dev/shm/tandem"):
        st = os.stat(root / d)
        assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (64990, 64990, "0o750"), d
