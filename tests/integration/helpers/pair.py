"""A two-node test bed: an access bridge with participants and both Tandem
nodes, and a separate backbone veth between the nodes.

    node ns "<prefix>-na": sw0 (access, on the bridge), bb0 198.19.0.1/30 (backbone)
    node ns "<prefix>-nb": sw0 (access, on the bridge), bb0 198.19.0.2/30 (backbone)

Each node runs tandem-switch (af_packet on sw0 and bb0, pair heartbeats on
both) and tandem-control (in the node namespace, replication over bb0).
"""
import json
import os
import subprocess
import time

from . import netns
from .switch import Switch
from control_helpers.control import ControlDaemon, CtlError, build_dir, ctl_binary
REPL_PORT = 7400
HEARTBEAT_MS = 10
# Detection time of the test pairs: HEARTBEAT_MS x MULTIPLIER. The product default
# is 10 ms x 3; two switches, two daemons and the participants share two
# cores here (with the rest of the suite, and other work), and a starved
# process must not look dead. Measured on 2026-12-05: with 10 (100 ms), four
# CPU hogs beside other work (load average 14-22) made the pair take over
# when nobody failed in 6 of the 12 tests of test_pair.py; with 30, in 2 of
# the 90 tests of the integration suite so loaded and in 1 of 90 at load
# average ~15 without the hogs. No multiplier removes them all on such a
# machine: a thread sleeping 1 ms at a time there, pinned to one core, once
# woke 602 ms late (with 50, 4 of the 23 pair tests still failed so).
MULTIPLIER = 30
BACKBONE = {"na": "198.19.0.1", "nb": "198.19.0.2"}


def pair_key_file(testbed):
    """The test bed's pair key: one file both nodes read, made as an operator
    would, by `tandemctl pair keygen` (32 random bytes, mode 0600)."""
    path = getattr(testbed, "pair_key_file", None)
    if path is None:
        path = testbed.tmpdir("key", root="/tmp") / "pair.key"
        subprocess.run([str(ctl_binary()), "pair", "keygen", str(path)], check=True,
                       capture_output=True, text=True)
        testbed.pair_key_file = path
    return path


class NodeControl(ControlDaemon):
    """tandem-control inside a node namespace."""

    def __init__(self, testbed, host, **kwargs):
        self.testbed = testbed
        self.host = host
        super().__init__(**kwargs)

    def _spawn(self, argv, log):
        return self.testbed.popen(self.host, argv, stdout=log, stderr=subprocess.STDOUT)


class Node:
    def __init__(self, testbed, name, node_id, peer_name, peer_id, mode="async", preempt=False,
                 multiplier=None, pair_extra="", ports="20000-20099", heartbeat_ms=10,
                 worker_stall_ms=None):
        self.testbed = testbed
        self.multiplier = MULTIPLIER if multiplier is None else multiplier
        stall = worker_stall_ms or max(100, heartbeat_ms * self.multiplier)
        self.name = name
        self.node_id = node_id
        self.host = testbed.add_node(name)
        self.peer_name = peer_name
        key_file = pair_key_file(testbed)
        pair_sw = f"""
[[port]]
name = "backbone"
devargs = "net_af_packet1,iface=bb0,qpairs=1"

[pair]
node_id = {node_id}
peer_node_id = {peer_id}
key_file = "{key_file}"
heartbeat_ms = {heartbeat_ms}
worker_stall_ms = {stall}
"""
        self.switch = Switch(testbed, self.host, node=name, extra_toml=pair_sw, idle_sleep_us=200)
        self.workdir = testbed.tmpdir(f"ctl-{name}", root="/tmp")
        self.api_sock = self.workdir / "api.sock"
        pair_ctl = f"""
[pair]
node_id = {node_id}
peer_node_id = {peer_id}
key_file = "{key_file}"
listen = "{BACKBONE[name]}:{REPL_PORT}"
peer = "{BACKBONE[peer_name]}:{REPL_PORT}"
peer_api = "PEER_API"
mode = "{mode}"
heartbeat_ms = {heartbeat_ms}
multiplier = {self.multiplier}
preempt = {"true" if preempt else "false"}
usage_interval_ms = 100
"""
        pair_ctl += pair_extra
        self.control = NodeControl(testbed, self.host, workdir=self.workdir, node=name,
                                   shm_dir=self.switch.shm_dir, legs=65536, meetings=16384,
                                   ports=ports, extra_toml=pair_ctl)

    def set_peer_api(self, api):
        text = self.control.config.read_text().replace("PEER_API", api)
        self.control.config.write_text(text)

    def set_replication_peer(self, address):
        """Follows the active node at `address` (HOST:PORT) instead of the
        peer's backbone address, e.g. through a relay (before start)."""
        old = f'peer = "{BACKBONE[self.peer_name]}:{REPL_PORT}"'
        text = self.control.config.read_text()
        assert old in text
        self.control.config.write_text(text.replace(old, f'peer = "{address}"'))

    def set_store_path(self, path):
        """Puts the control daemon's SQLite store at `path` (before start)."""
        old = f'path = "{self.workdir / "control.db"}"'
        text = self.control.config.read_text()
        assert old in text
        self.control.config.write_text(text.replace(old, f'path = "{path}"'))

    def start(self):
        self.switch.start()
        self.control.start()
        return self

    def ctl(self, *args, timeout=30):
        return self.control.ctl(*args, timeout=timeout)

    def status(self):
        return self.ctl("status")

    def metrics(self):
        """The control daemon's /metrics, fetched inside the node's namespace."""
        url = f"http://127.0.0.1:{self.control.metrics_port}/metrics"
        return netns.run(["ip", "netns", "exec", self.host.ns, "/usr/bin/python3", "-c",
                          f"import urllib.request, sys; sys.stdout.write("
                          f"urllib.request.urlopen({url!r}, timeout=5).read().decode())"]).stdout

    def role(self):
        try:
            return self.status().get("role")
        except (CtlError, json.JSONDecodeError):
            return None

    def kill_all(self):
        self.switch.kill()
        if self.control.proc and self.control.proc.poll() is None:
            self.control.kill9()

    def close(self):
        self.control.close()
        self.switch.close()
        for i in range(1, self.control.starts + 1):
            log = self.workdir / f"control.{i}.log"
            if log.exists():
                print(f"----- tandem-control {self.name} (start {i}) -----")
                print(log.read_text(errors="replace"), end="")


class PairBed:
    """Participants p0..p(n-1) and nodes na (id 1) and nb (id 2).

    `multiplier` overrides the heartbeat multiplier of both control daemons
    (default MULTIPLIER); the benchmark runs the product default, 3.
    `pair_extra` is added to both control daemons' [pair] table ("key = value" lines);
    `ports` is their VIP port pool; `heartbeat_ms` the heartbeat interval of
    both nodes (detection = heartbeat_ms x multiplier, and a switch worker
    silent that long counts as dead, unless `worker_stall_ms` overrides it:
    a test whose subject is not the workers' health may keep a test bed
    starved of CPU from reporting them dead).
    `backbone_delay_ms` > 0 puts tools/delay_relay.py between the nodes'
    backbone ends (a namespace of its own): a long backbone of twice that
    round trip for replication and the heartbeats on it (`self.relay`);
    `relay_late_log`, a file where the relay writes each frame it sent more
    than 1 ms late (delay_relay.py --late-log)."""

    def __init__(self, participants=3, mode="async", preempt_a=False, multiplier=None,
                 pair_extra="", ports="20000-20099", heartbeat_ms=10, worker_stall_ms=None,
                 backbone_delay_ms=0, relay_late_log=None):
        self.relay_late_log = relay_late_log
        self.relay = None
        self.testbed = netns.Testbed()
        try:
            self.participants = [self.testbed.add_participant(f"p{i}", i)
                                 for i in range(participants)]
            self.a = Node(self.testbed, "na", 1, "nb", 2, mode=mode, preempt=preempt_a,
                          multiplier=multiplier, pair_extra=pair_extra, ports=ports,
                          heartbeat_ms=heartbeat_ms,
                          worker_stall_ms=worker_stall_ms)
            self.b = Node(self.testbed, "nb", 2, "na", 1, mode=mode, multiplier=multiplier,
                          pair_extra=pair_extra, ports=ports, heartbeat_ms=heartbeat_ms,
                          worker_stall_ms=worker_stall_ms)
            self.a.set_peer_api(self.b.control.api)
            self.b.set_peer_api(self.a.control.api)
            # The backbone: one veth between the node namespaces (or two, to
            # the delay relay), with kernel addresses for replication; the
            # switches' af_packet ports share it.
            if backbone_delay_ms > 0:
                self._relay(backbone_delay_ms)
            else:
                netns.run(["ip", "-n", self.a.host.ns, "link", "add", "bb0", "type", "veth",
                           "peer", "name", "bb0", "netns", self.b.host.ns])
            for node in (self.a, self.b):
                ns = node.host.ns
                netns.run(["ip", "-n", ns, "addr", "add", f"{BACKBONE[node.name]}/30", "dev", "bb0"])
                netns.run(["ip", "-n", ns, "link", "set", "bb0", "up"])
                # Whole, checksummed frames (the relay forwards them as they are).
                netns.run(["ip", "netns", "exec", ns, "ethtool", "-K", "bb0", "gro", "off"] +
                          (["tx", "off", "tso", "off", "gso", "off"] if backbone_delay_ms else []),
                          check=False)
        except BaseException:
            self.close()
            raise

    def _relay(self, delay_ms):
        ns = f"{self.testbed.prefix}-bb"
        self.testbed._add_netns(ns)
        for node, end in ((self.a, "la"), (self.b, "lb")):
            netns.run(["ip", "-n", node.host.ns, "link", "add", "bb0", "type", "veth", "peer",
                       "name", end, "netns", ns])
            netns.run(["ip", "-n", ns, "link", "set", end, "up"])
            netns.run(["ip", "netns", "exec", ns, "ethtool", "-K", end, "gro", "off"], check=False)
        tool = os.path.join(os.path.dirname(__file__), "..", "tools", "delay_relay.py")
        log = ["--late-log", str(self.relay_late_log)] if self.relay_late_log else []
        self.relay = self.testbed.popen(ns, ["/usr/bin/python3", tool, "--a", "la", "--b", "lb",
                                             "--delay-ms", delay_ms] + log,
                                        stdout=subprocess.PIPE, text=True)
        if self.relay.stdout.readline().strip() != "relaying":
            raise RuntimeError("delay_relay.py did not start")

    def backbone_rtts(self, count=10):
        """Ping round trips (ms, sorted) from A to B over the backbone."""
        out = netns.run(["ip", "netns", "exec", self.a.host.ns, "ping", "-c", str(count), "-i",
                         "0.05", "-W", "2", BACKBONE["nb"]], check=False, timeout=30).stdout
        return sorted(float(x.split("time=")[1].split()[0])
                      for x in out.splitlines() if "time=" in x)

    def timed_writes(self, n, warm=5):
        """n single writes through the client library (tandem-app-example,
        which follows the active node), after `warm` unmeasured ones: the
        milliseconds each took. Fails if one failed."""
        app = subprocess.Popen([str(build_dir() / "control" / "client" / "tandem-app-example"),
                                "--pair", f"{self.a.control.api},{self.b.control.api}",
                                "--timeout", "20"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        try:
            app.stdin.write(f"burst warm {warm}\nburst w {n}\n")
            out = [json.loads(app.stdout.readline()) for _ in range(warm + n)]
        finally:
            app.kill()
            app.wait()
        assert all(r["ok"] for r in out), out
        return [r["ms"] for r in out[warm:]]

    def nodes(self):
        return [self.a, self.b]

    def active(self):
        for n in self.nodes():
            if n.role() == "active":
                return n
        return None

    def wait_role(self, node, role, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.role() == role:
                return
            time.sleep(0.05)
        raise AssertionError(f"node {node.name} did not become {role}: {node.status()}")

    def start(self):
        """Starts A, waits until it is active, then B as its standby."""
        self.a.start()
        self.wait_role(self.a, "active")
        self.b.start()
        self.wait_synced()
        return self

    def wait_synced(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            act = self.active()
            if act is not None:
                other = self.b if act is self.a else self.a
                try:
                    mine = act.status()["pair"]
                    theirs = other.status()["pair"]
                except Exception:  # the other node may be down or starting
                    time.sleep(0.1)
                    continue
                # Both hold the same change log: equal positions mean caught up.
                if mine.get("replication") == "serving standby" and \
                        theirs.get("replication") == "following" and \
                        int(theirs.get("position", 0)) == int(mine.get("position", 0)):
                    return
            time.sleep(0.1)
        raise AssertionError(f"the standby did not catch up: {[n.status() for n in self.nodes()]}")

    def drop_heartbeats_program(self):
        """The tc classifier of partition(), compiled once per bed (a test
        that times a partition compiles it before the cut)."""
        if getattr(self, "_drop_obj", None) is None:
            obj = self.testbed.tmpdir("bpf", root="/tmp") / "drop.o"
            netns.run(["clang", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
                       os.path.join(os.path.dirname(__file__), "..", "tools",
                                    "drop_heartbeats.bpf.c"), "-o", str(obj)])
            self._drop_obj = obj
        return self._drop_obj

    def partition(self, node):
        """Cuts `node` off from its peer on both paths, while both still reach
        the participants: its backbone veth goes down and a tc classifier on
        its bridge port drops the pair's heartbeat frames."""
        obj = self.drop_heartbeats_program()
        br = self.testbed.bridge_ns
        netns.run(["ip", "-n", node.host.ns, "link", "set", "bb0", "down"])
        netns.run(["tc", "-n", br, "qdisc", "add", "dev", node.name, "clsact"])
        for direction in ("ingress", "egress"):
            netns.run(["tc", "-n", br, "filter", "add", "dev", node.name, direction, "bpf", "da",
                       "obj", str(obj), "sec", "classifier"])

    def heal(self, node):
        netns.run(["tc", "-n", self.testbed.bridge_ns, "qdisc", "del", "dev", node.name, "clsact"])
        netns.run(["ip", "-n", node.host.ns, "link", "set", "bb0", "up"])

    def close(self):
        for n in (getattr(self, "a", None), getattr(self, "b", None)):
            if n is not None:
                n.close()
        self.testbed.close()


def durable_view(node):
    """Sites, meetings and legs of a node, without counters: equal on both nodes."""
    sites = node.ctl("site", "list")
    meetings = node.ctl("meeting", "list")
    legs = node.ctl("show", "legs")

    def strip(obj, drop):
        if isinstance(obj, dict):
            return {k: strip(v, drop) for k, v in obj.items() if k not in drop}
        if isinstance(obj, list):
            return [strip(v, drop) for v in obj]
        return obj
    # Counters move; a leg's creation time is when this node's table got it.
    view = {"sites": sites,
            "meetings": strip(meetings, ("usage", "participants", "legs")),
            "legs": strip(legs, ("usage", "created_unix_ns"))}
    return json.dumps(view, sort_keys=True)
