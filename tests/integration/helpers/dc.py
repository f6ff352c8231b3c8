"""A test bed of two data centers (issue 17): the VIPs move by BGP.

    participants p0.. --- bridge --- edge router (AS 65000)
                                       |                 |
                          DC A router (AS 65010)   DC B router (AS 65020)
                                       |                 |
                           node na (AS 65101)      node nb (AS 65102)
                                       +--- backbone ----+

    participants' LAN   198.18.10.0/24    2001:db8:10::/64   (edge .1 / ::1)
    edge - DC A router  198.18.20.0/30    2001:db8:20::/64   (edge .1, router .2)
    edge - DC B router  198.18.21.0/30    2001:db8:21::/64
    DC A access         198.18.30.0/30    2001:db8:30::/64   (router .1, node .2)
    DC B access         198.18.31.0/30    2001:db8:31::/64
    backbone            198.19.0.1/30, .2 (direct, or through a delay relay)
    VIPs                198.18.100.10     2001:db8:100::10

Every router runs BIRD 2 (BGP with BFD toward the nodes, kernel routes from
BGP); so do the nodes, driven by tandem-routing (control/routing.h) from a
tandem-control configuration in routed mode. The participants' traffic to a
VIP follows the edge router's best BGP path. Each node's tandem-switch owns
its access interface sw0 through net_af_packet, which the node's kernel
shares (BGP and BFD run over the kernel's address on it), and the backbone
bb0 (pair heartbeats).

BFD at 10 ms x 3 needs each BIRD to be scheduled within 30 ms: the BIRDs run
with a real-time priority (chrt -r), as a router would run BFD. They sleep
between packets.
"""
import ipaddress
import json
import subprocess
import time

from . import netns, paths
from .netns import Host, run
from .pair import HEARTBEAT_MS, MULTIPLIER, pair_key_file
from .switch import Switch

VIP4 = "198.18.100.10"
VIP6 = "2001:db8:100::10"
LAN4 = ipaddress.ip_network("198.18.10.0/24")
LAN6 = ipaddress.ip_network("2001:db8:10::/64")
EDGE_AS = 65000
BIRD_RT_PRIORITY = 5

DC = {
    "a": {"router_as": 65010, "node_as": 65101, "edge_net": 20, "access_net": 30, "node_id": 1},
    "b": {"router_as": 65020, "node_as": 65102, "edge_net": 21, "access_net": 31, "node_id": 2},
}
BACKBONE = {"a": "198.19.0.1", "b": "198.19.0.2"}
# The routing-only tests run both switches active and independent: each
# expects heartbeats from a node that is not in the bed, so neither holds back
# for the other (two actives of one epoch would). start_pair() pairs them.
UNPAIRED_PEER = 99
WORKER_STALL_MS = 2000


def routing_binary():
    return paths.build_dir() / "control" / "tandem-routing"


def _v4(net, host):
    return f"198.18.{net}.{host}"


def _v6(net, host):
    return f"2001:db8:{net}::{host}"


class Bird:
    """One BIRD process in a namespace, on its own control socket."""

    def __init__(self, testbed, ns, name, conf_text=None):
        self.testbed = testbed
        self.ns = ns
        self.name = name
        self.dir = testbed.tmpdir(f"bird-{name}", root="/tmp")
        self.conf = self.dir / "bird.conf"
        self.socket = self.dir / "bird.ctl"
        self.log = self.dir / "bird.log"
        if conf_text is not None:
            self.conf.write_text(conf_text)
        self.proc = None

    def start(self, timeout=10):
        self.proc = self.testbed.popen(
            self.ns, ["chrt", "-r", BIRD_RT_PRIORITY, "bird", "-f", "-c", self.conf,
                      "-s", self.socket], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.socket.exists() and self.cmd("show status", check=False).returncode == 0:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"bird {self.name} exited {self.proc.returncode}: {self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"bird {self.name} did not open {self.socket}")

    def cmd(self, line, check=True):
        return run(["birdc", "-s", str(self.socket), *line.split()], check=check, timeout=10)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def paths(self, prefix):
        """The BGP paths of `prefix` in this BIRD's table: a list of (the
        session it came from, its AS path, whether it is the best)."""
        out = self.cmd(f"show route for {prefix} all", check=False).stdout
        found = []
        for line in out.splitlines():
            if "unicast [" in line:
                session = line.split("unicast [", 1)[1].split()[0]
                found.append([session, None, " * " in line])
            elif found and line.strip().startswith("BGP.as_path:"):
                found[-1][1] = line.split(":", 1)[1].strip()
        return [tuple(f) for f in found]

    def established(self):
        """Names of the BGP sessions that are up."""
        out = self.cmd("show protocols", check=False).stdout
        return {f[0] for f in (l.split() for l in out.splitlines())
                if len(f) >= 6 and f[1] == "BGP" and f[5] == "Established"}


def _session(name, local, local_as, peer, peer_as, bfd, add_paths_tx=False):
    fam = "ipv4" if "." in peer else "ipv6"
    return f"""
protocol bgp {name} {{
  local {local} as {local_as};
  neighbor {peer} as {peer_as};
  direct;
  {"bfd on;" if bfd else ""}
  hold time 3; keepalive time 1; connect delay time 1; connect retry time 1;
  error wait time 1, 4;
  {fam} {{ import all; export all; {"add paths tx;" if add_paths_tx else ""} }};
}}
"""


def _router_conf(router_id, log, sessions, bfd_ms, bfd_mult):
    return f"""# a test bed router (helpers/dc.py)
router id {router_id};
log "{log}" all;
protocol device {{ scan time 10; }}
protocol direct {{ ipv4; ipv6; interface "*"; }}
protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; }}
protocol kernel {{ ipv6 {{ export where source = RTS_BGP; }}; }}
protocol bfd {{
  interface "*" {{ min rx interval {bfd_ms} ms; min tx interval {bfd_ms} ms; multiplier {bfd_mult}; }};
}}
{"".join(sessions)}"""


class DcNode:
    """A Tandem node of one DC: tandem-switch on sw0 (+ bb0), its BIRD and
    tandem-routing (the routing driver) from a routed-mode control config."""

    def __init__(self, bed, dc, standby="prepend", bfd_ms=10, bfd_mult=3, preferred_dc="any"):
        self.bed = bed
        self.dc = dc
        d = DC[dc]
        self.name = f"n{dc}"
        self.ns = bed.add_ns(self.name)
        self.as_ = d["node_as"]
        self.ip4 = _v4(d["access_net"], 2)
        self.ip6 = _v6(d["access_net"], 2)
        self.gw4 = _v4(d["access_net"], 1)
        self.gw6 = _v6(d["access_net"], 1)
        self.host = Host(name=self.name, ns=self.ns, iface="sw0")
        # A worker silent this long counts as dead (the health gate withdraws,
        # the peer takes over). No test of the bed is about the workers'
        # health (a killed switch is seen by its lock): at 100 ms, and still
        # at 300 ms, a switch starved of CPU on this shared machine (load
        # average 12 to 27) reported its data plane dead and made B take over
        # while the bed was starting.
        extra = f"""
[[port]]
name = "backbone"
devargs = "net_af_packet1,iface=bb0,qpairs=1"

[pair]
node_id = {d["node_id"]}
peer_node_id = {UNPAIRED_PEER}
key_file = "{pair_key_file(bed.testbed)}"
heartbeat_ms = {HEARTBEAT_MS}
worker_stall_ms = {WORKER_STALL_MS}
"""
        self.switch = Switch(bed.testbed, self.host, node=self.name, extra_toml=extra,
                             idle_sleep_us=200)
        self._route_switch_access(d["access_net"])
        self.bird = Bird(bed.testbed, self.ns, self.name)
        self.workdir = bed.testbed.tmpdir(f"ctl-{self.name}", root="/tmp")
        self.config = self.workdir / "control.toml"
        self.config.write_text(f"""# tandem-control, routed mode (helpers/dc.py)
node = "{self.name}"
shm_dir = "{self.switch.shm_dir}"
[access]
mode = "routed"
vips = ["{VIP4}", "{VIP6}"]
[routing]
control_socket = "{self.bird.socket}"
config_file = "{self.bird.conf}"
log = "{self.bird.log}"
local_as = {self.as_}
router_id = "{self.ip4}"
standby = "{standby}"
prepend = 3
bfd_interval_ms = {bfd_ms}
bfd_multiplier = {bfd_mult}
preferred_dc = "{preferred_dc}"
[[routing.neighbor]]
address = "{self.gw4}"
as = {d["router_as"]}
local = "{self.ip4}"
[[routing.neighbor]]
address = "{self.gw6}"
as = {d["router_as"]}
local = "{self.ip6}"
""")
        self.driver = None
        self.control = None

    def _route_switch_access(self, net):
        """Receivers are off-link: the switch sends them to its DC router."""
        text = self.switch.config_path.read_text()
        old = f'prefixes = ["{netns.ACCESS_V4}", "{netns.ACCESS_V6}"]'
        assert old in text, "helpers/switch.py changed its [access] lines"
        text = text.replace(old, f'prefixes = ["198.18.{net}.0/30", "2001:db8:{net}::/64"]\n'
                                 f'gateway4 = "{self.gw4}"\ngateway6 = "{self.gw6}"')
        self.switch.config_path.write_text(text)

    def start_bird(self, announce="withdrawn"):
        text = run([routing_binary(), "--config", self.config, "print", announce]).stdout
        self.bird.conf.write_text(text)
        self.bird.start()

    def start_driver(self, announce):
        """tandem-routing run: the routing driver as the pair will hold it."""
        self.driver = self.bed.testbed.popen(
            self.ns, [routing_binary(), "--config", self.config, "run", announce],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.driver.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"tandem-routing did not start: {line} {self.driver.stdout.read()}")

    def _driver_cmd(self, line):
        self.driver.stdin.write(line + "\n")
        self.driver.stdin.flush()
        return self.driver.stdout.readline().strip()

    def announce(self, what):
        """Asks the driver to announce `what`; returns when BIRD took it."""
        out = self._driver_cmd(what)
        if not out.startswith("applied"):
            raise RuntimeError(f"tandem-routing {what}: {out}; {self.routing_status()}")
        return out

    def routing_status(self):
        return json.loads(self._driver_cmd("status"))

    def pair_switch_with(self, peer):
        """The switch takes the peer's heartbeats (before it starts)."""
        text = self.switch.config_path.read_text()
        old = f"peer_node_id = {UNPAIRED_PEER}"
        assert old in text
        self.switch.config_path.write_text(
            text.replace(old, f'peer_node_id = {DC[peer.dc]["node_id"]}'))

    def start_control(self, peer, multiplier=MULTIPLIER, extra_toml=""):
        """tandem-control of a pair in routed mode: the routing driver is the
        control daemon's own (no tandem-routing), its decisions move the
        announcements; heartbeats on the backbone (bb0), replication over it.
        `extra_toml`: tables added to its configuration (e.g. [fleet])."""
        from .pair import REPL_PORT, NodeControl
        routing = self.config.read_text().split("[routing]", 1)[1]
        pair = f"""
[pair]
node_id = {DC[self.dc]["node_id"]}
peer_node_id = {DC[peer.dc]["node_id"]}
key_file = "{pair_key_file(self.bed.testbed)}"
listen = "{BACKBONE[self.dc]}:{REPL_PORT}"
peer = "{BACKBONE[peer.dc]}:{REPL_PORT}"
peer_api = "unix:{peer.workdir / 'api.sock'}"
heartbeat_ms = 10
multiplier = {multiplier}
[routing]{routing}{extra_toml}"""
        self.control = NodeControl(self.bed.testbed, self.host, workdir=self.workdir,
                                   node=self.name, shm_dir=self.switch.shm_dir, vips=(VIP4, VIP6),
                                   legs=4096, meetings=64, extra_toml=pair)
        text = self.control.config.read_text()
        assert "\n[access]\n" in text
        self.control.config.write_text(text.replace("\n[access]\n", '\n[access]\nmode = "routed"\n'))
        self.control.start()
        return self.control

    def ctl(self, *args):
        return self.control.ctl(*args)

    def pair_status(self):
        return self.control.ctl("status")

    def tables_lines(self, legs, role="active"):
        lines = [f"role {role} 1", f"vip {VIP4} {VIP6}", "meeting 1 1"]
        return "\n".join(lines + legs) + "\n"

    def set_role(self, role, epoch):
        """Writes role and epoch into the switch's tables, as the pair does."""
        from .tables import Tables
        Tables.of(self.switch).apply(f"role {role} {epoch}\n")


class DcBed:
    """The whole test bed. Use as a context manager; close() removes it all.

    `backbone_delay_ms` > 0 puts a delay relay (tools/delay_relay.py) on the
    backbone: each way that long. `preferred_dc`: each node's [routing]
    preferred_dc, e.g. {"a": "this", "b": "peer"} (default "any")."""

    def __init__(self, participants=2, standby="prepend", bfd_ms=10, bfd_mult=3,
                 backbone_delay_ms=0, preferred_dc=None):
        self.testbed = netns.Testbed()
        self.bfd = (bfd_ms, bfd_mult)
        self.relay = None
        try:
            self.edge = self.add_ns("ed")
            self.routers = {dc: self.add_ns(f"r{dc}") for dc in DC}
            self.nodes = {dc: DcNode(self, dc, standby, bfd_ms, bfd_mult,
                                     (preferred_dc or {}).get(dc, "any")) for dc in DC}
            self.participants = [self._participant(i) for i in range(participants)]
            self._wire()
            self._backbone(backbone_delay_ms)
            self.birds = self._router_birds()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def a(self):
        return self.nodes["a"]

    @property
    def b(self):
        return self.nodes["b"]

    # -- construction -------------------------------------------------------
    def add_ns(self, name):
        ns = f"{self.testbed.prefix}-{name}"
        self.testbed._add_netns(ns)
        self.testbed.sysctls(ns, [("net.ipv4.ip_forward", 1), ("net.ipv6.conf.all.forwarding", 1),
                                  ("net.ipv4.conf.all.rp_filter", 0),
                                  ("net.ipv4.conf.default.rp_filter", 0),
                                  ("net.ipv6.conf.all.accept_dad", 0),
                                  ("net.ipv6.conf.default.accept_dad", 0),
                                  # An interface taken down keeps its IPv6 addresses.
                                  ("net.ipv6.conf.all.keep_addr_on_down", 1),
                                  ("net.ipv6.conf.default.keep_addr_on_down", 1)])
        return ns

    def _veth(self, ns1, if1, ns2, if2):
        run(["ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2,
             "netns", ns2])

    def _addr(self, ns, iface, *addrs):
        for a in addrs:
            run(["ip", "-n", ns, "addr", "add", a, "dev", iface, *(["nodad"] if ":" in a else [])])
        run(["ip", "-n", ns, "link", "set", iface, "up"])

    def _participant(self, i):
        name = f"p{i}"
        ns = self.add_ns(name)
        self.testbed.sysctls(ns, [("net.ipv4.ip_forward", 0), ("net.ipv6.conf.all.forwarding", 0)])
        self.testbed._attach(name, ns, "eth0")
        ip4, ip6 = str(LAN4[10 + i]), str(LAN6[0x10 + i])
        run(["ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])
        run(["ip", "-n", ns, "route", "add", "default", "via", str(LAN4[1])])
        run(["ip", "-n", ns, "-6", "route", "add", "default", "via", str(LAN6[1])])
        run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"], check=False)
        host = Host(name=name, ns=ns, iface="eth0", index=i, ip4=ip4, ip6=ip6)
        self.testbed.hosts[name] = host
        return host

    def _wire(self):
        # The edge on the participants' bridge.
        self.testbed._attach("edge", self.edge, "lan0")
        self._addr(self.edge, "lan0", f"{LAN4[1]}/24", f"{LAN6[1]}/64")
        for dc, d in DC.items():
            r, n = self.routers[dc], self.nodes[dc]
            e, acc = d["edge_net"], d["access_net"]
            self._veth(self.edge, f"to{dc}", r, "up0")
            self._addr(self.edge, f"to{dc}", f"{_v4(e, 1)}/30", f"{_v6(e, 1)}/64")
            self._addr(r, "up0", f"{_v4(e, 2)}/30", f"{_v6(e, 2)}/64")
            self._veth(r, "acc0", n.ns, "sw0")
            self._addr(r, "acc0", f"{_v4(acc, 1)}/30", f"{_v6(acc, 1)}/64")
            # The node's kernel keeps an address on sw0 (BGP, BFD); the switch
            # shares the interface through net_af_packet.
            self._addr(n.ns, "sw0", f"{n.ip4}/30", f"{n.ip6}/64")
            for iface in ("sw0",):
                run(["ip", "netns", "exec", n.ns, "ethtool", "-K", iface, "gro", "off"],
                    check=False)
            self.testbed.sysctls(n.ns, [("net.ipv4.ip_forward", 0),
                                        ("net.ipv6.conf.all.forwarding", 0)])

    def _backbone(self, delay_ms):
        na, nb = self.a.ns, self.b.ns
        if delay_ms <= 0:
            self._veth(na, "bb0", nb, "bb0")
        else:
            relay_ns = self.add_ns("bb")
            self._veth(na, "bb0", relay_ns, "la")
            self._veth(nb, "bb0", relay_ns, "lb")
            for i in ("la", "lb"):
                run(["ip", "-n", relay_ns, "link", "set", i, "up"])
                run(["ip", "netns", "exec", relay_ns, "ethtool", "-K", i, "gro", "off"], check=False)
            # Each frame it sends more than 1 ms late, in the bed's directory.
            self.relay_late_log = self.testbed.tmpdir("relay") / "late.log"
            self.relay = self.testbed.popen(
                relay_ns, [paths.PYTHON, paths.TOOLS / "delay_relay.py", "--a", "la", "--b", "lb",
                           "--delay-ms", delay_ms, "--late-log", self.relay_late_log],
                stdout=subprocess.PIPE, text=True)
            if self.relay.stdout.readline().strip() != "relaying":
                raise RuntimeError("delay_relay.py did not start")
        for dc, n in self.nodes.items():
            self._addr(n.ns, "bb0", f"{BACKBONE[dc]}/30")
            # Whole, checksummed frames (the relay forwards them as they are).
            run(["ip", "netns", "exec", n.ns, "ethtool", "-K", "bb0", "gro", "off", "tx", "off",
                 "tso", "off", "gso", "off"], check=False)

    def _router_birds(self):
        bfd_ms, bfd_mult = self.bfd
        birds = {}
        edge_sessions = []
        for dc, d in DC.items():
            e = d["edge_net"]
            n = self.nodes[dc]
            sessions = [
                _session("edge4", _v4(e, 2), d["router_as"], _v4(e, 1), EDGE_AS, False),
                _session("edge6", _v6(e, 2), d["router_as"], _v6(e, 1), EDGE_AS, False),
                # Every path it has for the VIPs goes to its node (add-path):
                # the node sees whether another DC's announcement wins.
                _session("node4", n.gw4, d["router_as"], n.ip4, n.as_, True, add_paths_tx=True),
                _session("node6", n.gw6, d["router_as"], n.ip6, n.as_, True, add_paths_tx=True),
            ]
            b = Bird(self.testbed, self.routers[dc], f"r{dc}")
            b.conf.write_text(_router_conf(_v4(e, 2), b.log, sessions, bfd_ms, bfd_mult))
            birds[f"r{dc}"] = b
            edge_sessions += [
                _session(f"dc{dc}4", _v4(e, 1), EDGE_AS, _v4(e, 2), d["router_as"], False),
                _session(f"dc{dc}6", _v6(e, 1), EDGE_AS, _v6(e, 2), d["router_as"], False),
            ]
        b = Bird(self.testbed, self.edge, "ed")
        b.conf.write_text(_router_conf(str(LAN4[1]), b.log, edge_sessions, bfd_ms, bfd_mult))
        birds["ed"] = b
        return birds

    # -- running ------------------------------------------------------------
    def start(self, a="active", b="standby", legs=None, roles=("active", "active"), timeout=30):
        """Starts the routers, both nodes (switch, BIRD, driver announcing
        `a` / `b`), fills both switches' tables with `legs` (tandem-tables
        lines) and the tables' `roles` (A's, B's: a standby switch does not
        forward, and keeps its receivers' neighbours resolved), and waits until
        every BGP session is up."""
        for bird in self.birds.values():
            bird.start()
        for dc, n in self.nodes.items():
            n.switch.start()
            if legs:
                from .tables import Tables
                Tables.of(n.switch).apply(n.tables_lines(legs, roles[0 if dc == "a" else 1]))
            n.start_bird()
            n.start_driver(a if dc == "a" else b)
        self.wait_sessions(timeout)
        return self

    def start_pair(self, timeout=30, multiplier=MULTIPLIER, control_extra=None):
        """Starts the routers and both nodes as a pair in routed mode: switch,
        BIRD (nothing announced yet) and tandem-control, A first (it becomes
        active), then B (standby); waits until every BGP session is up.
        `multiplier`: of the 10 ms heartbeats (helpers/pair.py MULTIPLIER, for
        a loaded test machine; the product's default is 3). `control_extra`:
        {dc: TOML added to that node's control configuration}."""
        extra = control_extra or {}
        for bird in self.birds.values():
            bird.start()
        for n in self.nodes.values():
            n.start_bird()
        self.a.pair_switch_with(self.b)
        self.b.pair_switch_with(self.a)
        # B's switch waits for A to be active: A alone takes the role after a
        # detection time; hearing a standby B of a lower epoch it would wait.
        self.a.switch.start()
        self.a.start_control(self.b, multiplier, extra.get("a", ""))
        deadline = time.monotonic() + timeout
        while self.a.pair_status()["role"] != "active":
            assert time.monotonic() < deadline, self.a.pair_status()
            time.sleep(0.05)
        self.b.switch.start()
        self.b.start_control(self.a, multiplier, extra.get("b", ""))
        while self.b.pair_status()["role"] != "standby":
            assert time.monotonic() < deadline, self.b.pair_status()
            time.sleep(0.05)
        self.wait_sessions(timeout)
        return self

    def wait_sessions(self, timeout=30):
        want = {"ed": {"dca4", "dca6", "dcb4", "dcb6"},
                "ra": {"edge4", "edge6", "node4", "node6"},
                "rb": {"edge4", "edge6", "node4", "node6"}}
        deadline = time.monotonic() + timeout
        missing = {}
        while time.monotonic() < deadline:
            missing = {k: want[k] - self.birds[k].established() for k in want}
            if not any(missing.values()):
                return
            time.sleep(0.1)
        raise AssertionError(f"BGP sessions not established after {timeout}s: {missing}\n"
                             + "\n".join(f"--- {k}\n{b.log_text()[-3000:]}"
                                         for k, b in self.birds.items()))

    def switch_drops(self):
        """{node: {reason: count}} of the drops each running switch counted."""
        from .tables import Tables
        out = {}
        for n in self.nodes.values():
            if n.switch.alive():
                out[n.name] = {k: v for k, v in Tables.of(n.switch).drops().items()
                               if v and k != "not_for_us"}
        return out

    def edge_next_hop(self, vip):
        """The edge router's kernel next hop toward `vip` ("a", "b" or None)."""
        fam = "-6" if ":" in vip else "-4"
        out = run(["ip", "-n", self.edge, fam, "route", "show", vip], check=False).stdout
        for dc, d in DC.items():
            if (_v4(d["edge_net"], 2) if fam == "-4" else _v6(d["edge_net"], 2)) in out:
                return dc
        return None

    def wait_edge(self, vip, dc, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.edge_next_hop(vip) == dc:
                return
            time.sleep(0.005)
        raise AssertionError(f"the edge routes {vip} via {self.edge_next_hop(vip)}, not {dc}:\n"
                             + self.birds["ed"].cmd(f"show route for {vip} all").stdout)

    def close(self):
        for n in getattr(self, "nodes", {}).values():
            if n.driver is not None and n.driver.poll() is None:
                try:
                    n.driver.stdin.write("quit\n")
                    n.driver.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
            if n.control is not None:
                n.control.close()
                # Kept in the test's captured output, shown when a test fails.
                print(f"----- tandem-control {n.name} -----\n{n.control.log()}", end="")
            n.switch.close()
        self.testbed.close()
