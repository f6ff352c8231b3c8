"""What every binary says about itself (issue 19): --version with the
project's version and commit, --help listing the real flags, flags spelled
with dashes everywhere, and --check-config, which validates a file without
side effects and names an unknown key."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import build_dir, control_binary, ctl_binary  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


def binaries():
    b = build_dir()
    return {
        "tandem-switch": b / "switch" / "tandem-switch",
        "tandem-control": control_binary(),
        "tandemctl": ctl_binary(),
        "tandem-tables": b / "common" / "tables" / "tool" / "tandem-tables",
        "tandem-routing": b / "control" / "tandem-routing",
    }


def project_version():
    text = (REPO / "meson.build").read_text()
    return re.search(r"version\s*:\s*'([^']+)'", text).group(1)


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.parametrize("name", sorted(binaries()))
def test_version_names_the_release_and_the_commit(name):
    p = run([binaries()[name], "--version"])
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    # "tandem-switch 0.1.0 (commit 1a2b3c4d5e6f[-dirty])": the build's own commit
    # (the build may predate the checkout's latest commit only in a stale tree).
    m = re.fullmatch(rf"{name} {re.escape(project_version())} \(commit ([0-9a-f]{{12}})(-dirty)?\)",
                     first)
    assert m, first
    assert m.group(1) == commit or subprocess.run(
        ["git", "-C", str(REPO), "merge-base", "--is-ancestor", m.group(1), "HEAD"]).returncode == 0


@pytest.mark.parametrize("name", sorted(binaries()))
def test_help_lists_flags_spelled_with_dashes(name):
    p = run([binaries()[name], "--help"])
    assert p.returncode == 0, p.stderr
    flags = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_-]*)", p.stdout))
    assert "version" in flags and "help" in flags or name == "tandemctl" and "version" in flags, \
        p.stdout
    assert not [f for f in flags if "_" in f], f"{name} spells flags with underscores: {flags}"


def test_control_help_lists_every_flag_it_takes():
    """Each flag --help names is accepted (with dashes and with underscores),
    and a flag it does not name is refused."""
    p = run([control_binary(), "--help"])
    flags = re.findall(r"^  --([a-z0-9-]+)", p.stdout, re.M)
    for want in ("config", "check-config", "node", "shm-dir", "api", "api-socket-mode",
                 "api-tls-cert", "store", "metrics", "role", "legs", "meetings", "log-level"):
        assert want in flags, p.stdout
    bad = run([control_binary(), "--no-such-flag"])
    assert bad.returncode == 2 and bad.stderr == \
        "tandem-control: unknown flag --no-such-flag (see --help)\n", bad.stderr
    assert run([control_binary(), "--shm_dir", "/x", "--check-config"]).returncode == 0
    # A flag's value is not a flag, however short (a one-letter value crashed it).
    p = run([control_binary(), "--check-config", "--metrics", "x"])
    assert p.returncode == 2 and "[metrics] listen" in p.stderr, p.stderr


@pytest.fixture
def workdir(tmp_path):
    d = pathlib.Path("/tmp") / f"tdi-ops-{os.getpid()}-{tmp_path.name}"
    d.mkdir(parents=True)
    d.chmod(0o700)
    yield d
    subprocess.run(["rm", "-rf", str(d)])


SWITCH_OK = """
node = "chk"
shm_dir = "{shm}"
log_level = "notice"
[eal]
args = ["--no-huge", "-m", "64"]
[[port]]
name = "access"
devargs = "net_null0"
"""


def test_switch_check_config_validates_without_side_effects(workdir):
    shm = workdir / "shm"
    cfg = workdir / "switch.toml"
    cfg.write_text(SWITCH_OK.format(shm=shm))
    p = run([binaries()["tandem-switch"], "--check-config", "--config", cfg])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{cfg}: ok"
    assert not shm.exists(), "--check-config created the region directory"
    assert not list(pathlib.Path("/var/run/dpdk").glob("*chk*")), "--check-config started DPDK"

    cfg.write_text(SWITCH_OK.format(shm=shm) + "[switch]\nidle_sleep_ms = 100\n")
    p = run([binaries()["tandem-switch"], "--check-config", "--config", cfg])
    assert p.returncode == 2
    assert p.stderr.strip() == (f"tandem-switch: {cfg}: unknown key 'switch.idle_sleep_ms' "
                                "(did you mean switch.idle_sleep_us?)")
    # The same file stops a real start, naming the key, before anything is made.
    p = run([binaries()["tandem-switch"], "--config", cfg])
    assert p.returncode == 1 and "unknown key 'switch.idle_sleep_ms'" in p.stderr
    assert not shm.exists()


def control_config(workdir, extra=""):
    return f"""
node = "chk"
shm_dir = "{workdir / 'shm'}"
[api]
listen = "unix:{workdir / 'api.sock'}"
[store]
path = "{workdir / 'store' / 'chk.db'}"
[metrics]
listen = "127.0.0.1:1"
[access]
vips = ["198.18.0.100"]
{extra}"""


def test_control_check_config_validates_without_side_effects(workdir):
    cfg = workdir / "control.toml"
    cfg.write_text(control_config(workdir))
    p = run([control_binary(), "--check-config", "--config", cfg])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{cfg}: ok"
    assert sorted(x.name for x in workdir.iterdir()) == ["control.toml"], \
        "--check-config made files"
    # Flags are checked too, with dashes.
    p = run([control_binary(), "--check-config", "--config", cfg, "--api-socket-mode", "0999"])
    assert p.returncode == 2 and "socket_mode" in p.stderr, p.stderr

    cfg.write_text(control_config(workdir, '[pair]\nmultiplyer = 3\n'))
    p = run([control_binary(), "--check-config", "--config", cfg])
    assert p.returncode == 2
    assert f"{cfg}: unknown key 'pair.multiplyer' (did you mean pair.multiplier?)" in p.stderr
    assert sorted(x.name for x in workdir.iterdir()) == ["control.toml"]


def test_shipped_example_configurations_are_valid(workdir):
    """dist/examples (the package's /etc/tandem) pass --check-config once
    their pair key exists (it is the operator's to make) and group tandem
    exists; every key in them is one the daemons read."""
    key = workdir / "pair.key"
    subprocess.run([str(ctl_binary()), "pair", "keygen", str(key)], check=True,
                   capture_output=True)
    for name, binary in (("switch-a.toml", binaries()["tandem-switch"]),
                         ("control-a.toml", control_binary())):
        text = (REPO / "dist" / "examples" / name).read_text()
        text = text.replace("/etc/tandem/pair.key", str(key))
        text = text.replace('shm_group = "tandem"', 'shm_group = "root"')
        text = text.replace('"group:tandem"', '"group:root"')
        text = text.replace('socket_group = "tandem"', 'socket_group = "root"')
        cfg = workdir / name
        cfg.write_text(text)
        p = run([binary, "--check-config", "--config", cfg])
        assert p.returncode == 0, (name, p.stderr)


def test_tandemctl_completion_comes_from_its_command_table(workdir):
    """The generated completion offers the commands, the sub-commands of a
    word and the options of a command, as bash completes them."""
    script = workdir / "tandemctl.bash"
    p = run([ctl_binary(), "completion", "bash"])
    assert p.returncode == 0, p.stderr
    script.write_text(p.stdout)

    def complete(line):
        words = line.split(" ")
        prog = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                f"COMP_CWORD={len(words) - 1}\n_tandemctl\necho \"${{COMPREPLY[@]}}\"\n")
        r = subprocess.run(["/bin/bash", "-c", prog], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return set(r.stdout.split())

    top = complete("tandemctl ")
    assert {"status", "site", "meeting", "participant", "pair", "top", "watch"} <= top, top
    assert complete("tandemctl si") == {"site"}
    assert complete("tandemctl site ") == {"create", "get", "list", "update", "delete"}
    opts = complete("tandemctl top --")
    assert {"--interval=", "--iterations=", "--meetings=", "--api=", "--json"} <= opts, opts
    # An option's value is not taken for a command word.
    assert complete("tandemctl --api unix:/x site ") == {"create", "get", "list", "update",
                                                         "delete"}
