"""Fleet pieces shared by the fleet's tests and scripts/demo/fleet_demo.py:
`tandemctl fleet` run inside a namespace, tandem-control daemons with
[fleet] (no switch), and a node's own path to etcd.

    d = fleet_daemon(bed, host, endpoints, "a", "pair-1", "dc1")  # registers itself
    fleet_ctl(bed, host, endpoints, "fleet", "list")              # CompletedProcess, --json
    wait_registered(bed, host, endpoints, "pair-1", 2)            # `fleet show` once both are in
    link_to_etcd(bed.testbed, node, "198.18.0.41")                # et0 on the bridge
"""
import json
import time

from . import netns
from .pair import NodeControl
from .paths import build_dir


def tandemctl():
    return build_dir() / "control" / "tandemctl"


def fleet_ctl(bed, host, endpoints, *args, check=True, timeout=30):
    """tandemctl --json ARGS --etcd ENDPOINTS inside `host`'s namespace."""
    r = bed.run_in(host, [tandemctl(), "--json", *args, "--etcd", endpoints], check=False,
                   timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"tandemctl {' '.join(map(str, args))} exited {r.returncode}: "
                           f"{r.stderr}")
    return r


def wait_registered(bed, host, endpoints, pair, count, timeout=5):
    """`tandemctl fleet show PAIR` once the pair has `count` nodes registered."""
    deadline = time.monotonic() + timeout
    while True:
        r = fleet_ctl(bed, host, endpoints, "fleet", "show", pair, check=False)
        shown = json.loads(r.stdout) if r.returncode == 0 else {}
        if len(shown.get("nodes", [])) >= count:
            return shown
        assert time.monotonic() < deadline, (r.stdout, r.stderr)
        time.sleep(0.1)


def fleet_toml(endpoints, pair, dc, extra=""):
    """A [fleet] table: ENDPOINTS is "HOST:PORT,HOST:PORT,..."."""
    etcd = ", ".join(f'"{e}"' for e in endpoints.split(","))
    return f"""
[fleet]
etcd = [{etcd}]
pair_id = "{pair}"
data_center = "{dc}"
lease_ttl_s = 3
{extra}"""


def fleet_daemon(bed, host, endpoints, name, pair, dc, role="active", extra=""):
    """tandem-control with [fleet]: it registers its own node (no switch)."""
    d = NodeControl(bed, host, workdir=bed.tmpdir(f"fleet{pair}{name}"), node=name,
                    extra_toml=fleet_toml(endpoints, pair, dc, extra))
    d.config.write_text(d.config.read_text().replace('role = "active"', f'role = "{role}"'))
    return d


def link_to_etcd(testbed, node, ip4):
    """A path to etcd of the node's own (et0 on the bridge, `ip4`/24), apart
    from its switch's access port and the backbone: a node can be cut from
    etcd alone (`ip link set et0 down`)."""
    testbed._attach(f"{node.name}e", node.host.ns, "et0")
    netns.run(["ip", "-n", node.host.ns, "addr", "add", f"{ip4}/24", "dev", "et0"])
