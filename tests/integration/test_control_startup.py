"""What the daemons refuse at start, and what they leave behind then.

Issue 13 (item 6): a bad flag or configuration key is found before anything is
made: no tables region, no store, no socket, no directory. Issue 14 (items 9
and 12), through the real binaries: region files, their directory and the pair
key file that someone else could have made or read are refused, naming the
file, its owner and its mode, and left as they were.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import control_binary, ctl_binary  # noqa: E402
from helpers import paths  # noqa: E402

NOBODY = 65534


@pytest.fixture
def root():
    d = pathlib.Path(tempfile.mkdtemp(prefix="tandem-startup-", dir="/dev/shm"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def key_file(root, mode=0o600, text=None):
    path = root / "pair.key"
    if text is None:
        subprocess.run([str(ctl_binary()), "pair", "keygen", str(path)], check=True,
                       capture_output=True)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def control_config(root, extra="", pair=""):
    """A configuration whose every path lies in root/run (not made yet).
    `extra` goes at the top unless it opens a table."""
    run = root / "run"
    top, extra = (extra, "") if not extra.startswith("[") else ("", extra)
    text = f"""node = "s"
shm_dir = "{run}/shm"
{top}
[tables]
legs = 1024
meetings = 64
[api]
listen = "unix:{run}/sock/api.sock"
[store]
path = "{run}/store/s.db"
[metrics]
listen = "127.0.0.1:0"
[access]
vips = ["198.18.0.100"]
{extra}
{pair}
"""
    # 127.0.0.1:0 is refused (no port): each case below replaces what it tests.
    text = text.replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:19464"')
    path = root / "control.toml"
    path.write_text(text)
    return path, run


def start_control(config, *flags):
    return subprocess.run([str(control_binary()), "--config", str(config), *flags],
                          capture_output=True, text=True, timeout=30)


BAD_CONTROL_FLAGS = [
    (["--metrics", "127.0.0.1"], "[metrics] listen"),
    (["--metrics", "127.0.0.1:99999"], "[metrics] listen"),
    (["--metrics", ":9464"], "[metrics] listen"),
    (["--api", "unix:"], "[api] listen"),
    (["--api", "localhost"], "[api] listen"),
    (["--api_tcp", "127.0.0.1:x"], "[api] tcp"),
    (["--api_socket_mode", "0999"], "socket_mode"),
    (["--api_socket_group", "tandem-no-such-group"], "socket_group"),
    (["--role", "primary"], "role"),
    (["--node", "a/b"], "node"),
    (["--shm_dir", "relative/dir"], "shm_dir"),
    (["--store", "/tmp/dir/"], "[store] path"),
    (["--api_tcp", "127.0.0.1:17443"], "tls_cert"),
    (["--api_tcp", "127.0.0.1:17443", "--api_tls_cert", "/nonexistent/c.pem", "--api_tls_key",
      "/nonexistent/k.pem", "--api_tls_ca", "/nonexistent/ca.pem"], "[api] tls_cert: cannot read"),
    (["--config", "/nonexistent/control.toml"], "/nonexistent/control.toml"),
    (["--legs", "many"], "flag 'legs'"),
]

BAD_CONTROL_KEYS = [
    ('shm_group = "tandem-no-such-group"', "shm_group"),
    ("[pool]\nports = \"9-2\"", "[pool]"),
    ('[pool]\nvips = ["198.18.0.200"]', "[pool] vip"),
    ("[watch]\nhistory = 0", "[watch]"),
    ('[api.roles]\nadmin = ["user:tandem-no-such-user"]', "[api.roles] admin"),
    ('[api.roles]\nroot = ["uid:0"]', "[api.roles]"),
    ("[pair]\nnode_id = 1\npeer_node_id = 2\nkey_file = \"KEY\"\nlisten = \"198.19.0.1\"\n"
     "peer = \"198.19.0.2:7400\"", "[pair] listen"),
    ("[pair]\nnode_id = 1\npeer_node_id = 2\nkey_file = \"KEY\"\nlisten = \"198.19.0.1:7400\"\n"
     "peer = \"peer:7400\"", "[pair] peer"),
    ("[pair]\nnode_id = 1\npeer_node_id = 1\nkey_file = \"KEY\"\nlisten = \"198.19.0.1:7400\"\n"
     "peer = \"198.19.0.2:7400\"", "node_id"),
    ("[pair]\nnode_id = 1\npeer_node_id = 2\nkey = \"short\"\nlisten = \"198.19.0.1:7400\"\n"
     "peer = \"198.19.0.2:7400\"", "pair.key"),
]


@pytest.mark.parametrize("flags,names", BAD_CONTROL_FLAGS, ids=lambda v: str(v))
def test_control_bad_flag_leaves_nothing_behind(root, flags, names):
    config, run = control_config(root)
    p = start_control(config, *flags)
    # absl's flag parser refuses a non-number itself, with exit code 1.
    assert p.returncode == (1 if flags[0] == "--legs" else 2), p.stderr
    assert names in p.stderr, p.stderr
    assert not run.exists(), f"refused, yet it made {sorted(map(str, run.rglob('*')))}"


@pytest.mark.parametrize("extra,names", BAD_CONTROL_KEYS, ids=lambda v: str(v)[:40])
def test_control_bad_key_leaves_nothing_behind(root, extra, names):
    extra = extra.replace("KEY", str(key_file(root)))
    config, run = control_config(root, extra=extra)
    p = start_control(config)
    assert p.returncode == 2, p.stderr
    assert names in p.stderr, p.stderr
    assert not run.exists(), f"refused, yet it made {sorted(map(str, run.rglob('*')))}"


PAIR = """[pair]
node_id = 1
peer_node_id = 2
key_file = "{key}"
listen = "198.19.0.1:7400"
peer = "198.19.0.2:7400"
"""


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_control_refuses_a_key_file_others_may_read(root, mode):
    key = key_file(root, mode)
    config, run = control_config(root, pair=PAIR.format(key=key))
    p = start_control(config)
    assert p.returncode == 2, p.stderr
    assert str(key) in p.stderr and f"mode {mode:04o}" in p.stderr, p.stderr
    assert not run.exists()


def test_control_refuses_a_short_key_file_and_warns_of_an_inline_key(root):
    key = key_file(root, text="0123456789abcdef\n")
    config, run = control_config(root, pair=PAIR.format(key=key))
    p = start_control(config)
    assert p.returncode == 2 and str(key) in p.stderr and "16 bytes" in p.stderr, p.stderr
    inline = PAIR.replace('key_file = "{key}"', 'key = "' + "k" * 40 + '"')
    config, run = control_config(root, pair=inline)
    p = start_control(config, "--metrics", "x")  # stops it once the key was read
    assert p.returncode == 2 and "[metrics] listen" in p.stderr, p.stderr
    assert "WARNING" in p.stderr and "pair.key_file" in p.stderr, p.stderr


def test_control_refuses_a_tables_region_someone_else_made(root):
    """A local user made the tables file first: the daemon must not map it."""
    config, run = control_config(root)
    shm = run / "shm"
    shm.mkdir(parents=True, mode=0o700)
    planted = shm / "tandem.s.tables"
    planted.write_bytes(b"\0" * 8192)
    os.chown(planted, NOBODY, NOBODY)
    planted.chmod(0o666)
    p = start_control(config)
    assert p.returncode == 1, p.stderr
    assert str(planted) in p.stderr and f"owned by uid {NOBODY}, mode 0666" in p.stderr, p.stderr
    assert planted.read_bytes() == b"\0" * 8192
    # A world-writable directory (such as /dev/shm itself) is refused too.
    planted.unlink()
    shm.chmod(0o1777)
    p = start_control(config)
    assert p.returncode == 1, p.stderr
    assert str(shm) in p.stderr and "mode 1777" in p.stderr, p.stderr
    assert list(shm.iterdir()) == []


def test_tables_tool_refuses_a_symlinked_region(root):
    shm = root / "shm"
    shm.mkdir(mode=0o700)
    target = root / "elsewhere"
    (shm / "tandem.s.tables").symlink_to(target)
    p = subprocess.run([str(paths.tables_binary()), "--shm-dir", str(shm), "--node", "s",
                        "--legs", "64", "--meetings", "8", "apply", "-"], input="",
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr
    assert "symbolic link" in p.stderr and str(shm / "tandem.s.tables") in p.stderr, p.stderr
    assert not target.exists()


# ---------------------------------------------------------------- tandem-switch

def switch_config(root, extra="", pair=""):
    run = root / "run"
    prefix = f"tdi{os.getpid()}-startup"
    eal = ", ".join(f'"{a}"' for a in [*paths.eal_memory_args(), "--file-prefix", prefix,
                                        "--no-pci", "--no-telemetry"])
    path = root / "switch.toml"
    path.write_text(f"""node = "s"
shm_dir = "{run}/shm"
{extra}
[tables]
legs = 1024
meetings = 64
[eal]
args = [{eal}]
main_lcore = 0
worker_lcores = [1]
[[port]]
name = "access"
devargs = "net_null0"
{pair}
""")
    return path, run, pathlib.Path("/var/run/dpdk") / prefix


def start_switch(config):
    return subprocess.run([str(paths.switch_binary()), "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


BAD_SWITCH_KEYS = [
    ('shm_group = "tandem-no-such-group"', "", "shm_group"),
    ('shm_dir = "relative"', "", "shm_dir"),
    ("", "[switch]\nburst = 0", "switch.burst"),
    ("", "[pair]\nnode_id = 1\nkey_file = \"KEY\"", "mode 0644"),
    ("", "[pair]\nnode_id = 1\nkey = \"short\"", "pair.key"),
    ("", "[pair]\nnode_id = 1\nkey_file = \"/nonexistent/pair.key\"", "pair.key_file"),
]


@pytest.mark.parametrize("extra,pair,names", BAD_SWITCH_KEYS, ids=lambda v: str(v)[:30])
def test_switch_bad_key_leaves_nothing_behind(root, extra, pair, names):
    pair = pair.replace("KEY", str(key_file(root, 0o644)))
    if extra.startswith("shm_dir"):
        config, run, dpdk = switch_config(root, pair=pair)
        config.write_text(config.read_text().replace(f'shm_dir = "{run}/shm"', extra))
    else:
        config, run, dpdk = switch_config(root, extra=extra, pair=pair)
    p = start_switch(config)
    assert p.returncode != 0, p.stderr
    assert names in p.stderr, p.stderr
    assert not run.exists(), f"refused, yet it made {sorted(map(str, run.rglob('*')))}"
    assert not dpdk.exists(), f"refused, yet DPDK made {dpdk}"


def test_switch_refuses_a_region_directory_others_may_write(root):
    config, run, dpdk = switch_config(root)
    shm = run / "shm"
    shm.mkdir(parents=True)
    shm.chmod(0o777)
    try:
        p = start_switch(config)
        assert p.returncode != 0, p.stderr
        assert str(shm) in p.stderr and "mode 0777" in p.stderr, p.stderr
        assert list(shm.iterdir()) == []
    finally:
        shutil.rmtree(dpdk, ignore_errors=True)
