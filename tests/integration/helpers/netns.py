"""Namespace test beds: a Linux bridge in its own namespace, with a veth pair
to each host namespace (participants and Tandem nodes).

    bridge ns "<prefix>-br":  br0 (no address, IPv6 off) with ports p0, p1, ..., node
    participant ns "<prefix>-p0":  eth0 198.18.0.10/24, 2001:db8:1::10/64
    node ns "<prefix>-node":  sw0, no address: tandem-switch owns it (net_af_packet)
    router ns "<prefix>-rt" (add_router): eth0 198.18.0.1/24, 2001:db8:1::1/64 on the
        bridge, and bridge far0 198.18.8.1/24, 2001:db8:8::1/64 for the hosts behind it
        (add_remote_participant: eth0 198.18.8.(10+i)/24, 2001:db8:8::(10+i)/64)

Every name of a run starts with RUN_TAG ("tdi<pid>"), and each test bed adds a
counter, so parallel runs and tests never collide; veth ends are created
directly inside their namespaces, so no interface ever appears in the root
namespace. Testbed.close() removes everything it made (processes,
namespaces, and with them the veths and the bridge, temp dirs), also after a
failure; sweep_stale() removes what a killed run left behind.
"""
import dataclasses
import ipaddress
import itertools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

RUN_TAG = f"tdi{os.getpid()}"
_STALE_NAME = re.compile(r"^tdi(\d+)-")
_testbeds = itertools.count()

ACCESS_V4 = ipaddress.ip_network("198.18.0.0/24")
ACCESS_V6 = ipaddress.ip_network("2001:db8:1::/64")
VIP4 = "198.18.0.100"
VIP6 = "2001:db8:1::100"
GATEWAY4 = str(ACCESS_V4[1])  # the router of add_router(), on the access network
GATEWAY6 = str(ACCESS_V6[1])
REMOTE_V4 = ipaddress.ip_network("198.18.8.0/24")  # behind the router
REMOTE_V6 = ipaddress.ip_network("2001:db8:8::/64")
ROUTER_FAR_MAC = "02:00:00:00:08:01"  # the router's side of REMOTE_V4/V6


def run(argv, check=True, input=None, timeout=30):
    """Runs a command, returns the CompletedProcess (text output captured)."""
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _netns_names():
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_netns_processes(ns):
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_netns(ns):
    _kill_netns_processes(ns)
    for _ in range(20):
        if run(["ip", "netns", "del", ns], check=False).returncode == 0:
            return
        if ns not in _netns_names():
            return
        time.sleep(0.1)


def sweep_stale():
    """Removes namespaces, shm dirs and DPDK runtime dirs of dead runs."""
    def dead(name):
        m = _STALE_NAME.match(name)
        return m is not None and not _pid_alive(int(m.group(1)))

    for ns in _netns_names():
        if dead(ns):
            _delete_netns(ns)
    for root in (pathlib.Path("/dev/shm"), pathlib.Path("/var/run/dpdk")):
        if root.is_dir():
            for p in root.iterdir():
                if dead(p.name):
                    shutil.rmtree(p, ignore_errors=True)


@dataclasses.dataclass
class Host:
    """A namespace on the bridge."""
    name: str
    ns: str
    iface: str
    index: int = 0
    ip4: str | None = None
    ip6: str | None = None

    def endpoint4(self, port):
        return f"{self.ip4}:{port}"

    def endpoint6(self, port):
        return f"[{self.ip6}]:{port}"

    def mac(self):
        out = run(["ip", "-n", self.ns, "-br", "link", "show", self.iface]).stdout.split()
        return out[2]

    def tx_checksum_offload(self):
        """Whether the host's interface leaves UDP checksums to "hardware"
        (on a veth: sends them partial)."""
        out = run(["ip", "netns", "exec", self.ns, "ethtool", "-k", self.iface]).stdout
        return re.search(r"^\s*tx-checksum-ip-generic: on", out, re.M) is not None

    def udp_in_csum_errors(self, family):
        """The host's UDP datagrams dropped for a bad checksum (Udp: InCsumErrors
        or Udp6InCsumErrors): the kernel counts them, no socket sees them."""
        if family == 4:
            lines = run(["ip", "netns", "exec", self.ns, "cat", "/proc/net/snmp"]).stdout
            head, values = [l.split() for l in lines.splitlines() if l.startswith("Udp:")]
            return int(values[head.index("InCsumErrors")])
        out = run(["ip", "netns", "exec", self.ns, "cat", "/proc/net/snmp6"]).stdout
        m = re.search(r"^Udp6InCsumErrors\s+(\d+)", out, re.M)
        return int(m.group(1))


class Testbed:
    """One bridge and the hosts on it. Use as a context manager or call close()."""

    def __init__(self, mtu=1500):
        self.prefix = f"{RUN_TAG}-{next(_testbeds)}"
        self.mtu = mtu
        self.bridge_ns = f"{self.prefix}-br"
        self.hosts = {}
        self._namespaces = []
        self._procs = []
        self._tmpdirs = []
        try:
            self._make_bridge()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- construction -------------------------------------------------------
    def _add_netns(self, ns):
        run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def sysctl(self, ns, key, value, check=True):
        return self.sysctls(ns, [(key, value)], check=check)

    def sysctls(self, ns, settings, check=True):
        """Several settings in one process (each `ip netns exec` costs about
        10 ms; the suite set about 3,800 one by one)."""
        return run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    *(f"{k}={v}" for k, v in settings)], check=check)

    def _make_bridge(self):
        ns = self.bridge_ns
        self._add_netns(ns)
        # The bridge only forwards frames: no IPv6 of its own (no RS, MLD).
        self.sysctls(ns, [("net.ipv6.conf.all.disable_ipv6", 1),
                          ("net.ipv6.conf.default.disable_ipv6", 1)])
        # Never hand bridged frames to iptables/conntrack (which would
        # reassemble fragments the switch must see as they are).
        self.sysctls(ns, [(f"net.bridge.{key}", 0) for key in (
            "bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")],
            check=False)
        # No snooping: ND multicast always floods, as on a plain switch.
        run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
             "forward_delay", "0", "mcast_snooping", "0"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])

    def _attach(self, name, ns, iface):
        if len(name) > 15:
            raise ValueError(f"host name {name!r} is too long for an interface name")
        run(["ip", "-n", self.bridge_ns, "link", "add", name, "type", "veth",
             "peer", "name", iface, "netns", ns])
        run(["ip", "-n", self.bridge_ns, "link", "set", name, "mtu", str(self.mtu),
             "master", "br0", "up"])
        run(["ip", "-n", ns, "link", "set", iface, "mtu", str(self.mtu), "up"])

    def add_participant(self, name, index):
        """A participant host: eth0 with 198.18.0.(10+index) and 2001:db8:1::(10+index)."""
        ns = f"{self.prefix}-{name}"
        self._add_netns(ns)
        # Addresses usable at once: no duplicate address detection.
        self.sysctls(ns, [(f"net.ipv6.conf.{conf}.accept_dad", 0) for conf in ("all", "default")])
        self._attach(name, ns, "eth0")
        ip4 = str(ACCESS_V4[10 + index])
        ip6 = str(ACCESS_V6[0x10 + index])
        run(["ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])
        # TX checksum offload stays on, as on every container's veth and VM's
        # virtio NIC: the switch receives partial checksums (CHECKSUM_PARTIAL)
        # and must complete them (docs/architecture.md).
        host = Host(name=name, ns=ns, iface="eth0", index=index, ip4=ip4, ip6=ip6)
        self.hosts[name] = host
        return host

    def add_router(self, name="rt"):
        """A router between the access network and REMOTE_V4/V6 (bridge far0 in
        its namespace), for participants that are not on the switch's link:
        the switch reaches them, and hears them, through the router's MAC."""
        ns = f"{self.prefix}-{name}"
        self._add_netns(ns)
        self.sysctls(ns, [*((f"net.ipv6.conf.{c}.{k}", v) for c in ("all", "default")
                            for k, v in (("accept_dad", 0), ("forwarding", 1))),
                          ("net.ipv4.ip_forward", 1)])
        self._attach(name, ns, "eth0")
        run(["ip", "-n", ns, "addr", "add", f"{GATEWAY4}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "addr", "add", f"{GATEWAY6}/64", "dev", "eth0", "nodad"])
        # A fixed MAC: a bridge otherwise takes its lowest port's, which
        # changes as hosts join.
        run(["ip", "-n", ns, "link", "add", "far0", "address", ROUTER_FAR_MAC, "type", "bridge",
             "stp_state", "0", "forward_delay", "0"])
        run(["ip", "-n", ns, "link", "set", "far0", "mtu", str(self.mtu), "up"])
        run(["ip", "-n", ns, "addr", "add", f"{REMOTE_V4[1]}/24", "dev", "far0"])
        run(["ip", "-n", ns, "addr", "add", f"{REMOTE_V6[1]}/64", "dev", "far0", "nodad"])
        host = Host(name=name, ns=ns, iface="eth0", ip4=GATEWAY4, ip6=GATEWAY6)
        self.hosts[name] = host
        return host

    def add_remote_participant(self, name, index, router):
        """A participant behind `router` (add_router): eth0 with
        198.18.8.(10+index) and 2001:db8:8::(10+index), default routes via it."""
        ns = f"{self.prefix}-{name}"
        self._add_netns(ns)
        self.sysctls(ns, [(f"net.ipv6.conf.{conf}.accept_dad", 0) for conf in ("all", "default")])
        run(["ip", "-n", router.ns, "link", "add", name, "type", "veth", "peer", "name", "eth0",
             "netns", ns])
        run(["ip", "-n", router.ns, "link", "set", name, "mtu", str(self.mtu), "master", "far0",
             "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "mtu", str(self.mtu), "up"])
        ip4 = str(REMOTE_V4[10 + index])
        ip6 = str(REMOTE_V6[0x10 + index])
        run(["ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])
        run(["ip", "-n", ns, "route", "add", "default", "via", str(REMOTE_V4[1])])
        run(["ip", "-n", ns, "-6", "route", "add", "default", "via", str(REMOTE_V6[1])])
        host = Host(name=name, ns=ns, iface="eth0", index=index, ip4=ip4, ip6=ip6)
        self.hosts[name] = host
        return host

    def add_node(self, name="node"):
        """A Tandem node host: sw0 without addresses, for the switch's PMD."""
        ns = f"{self.prefix}-{name}"
        self._add_netns(ns)
        self.sysctls(ns, [*((f"net.ipv6.conf.{c}.disable_ipv6", 1) for c in ("all", "default")),
                          *((f"net.ipv4.conf.{c}.rp_filter", 0) for c in ("all", "default"))])
        self._attach(name, ns, "sw0")
        self.sysctls(ns, [("net.ipv4.conf.sw0.rp_filter", 0),
                          ("net.ipv6.conf.sw0.disable_ipv6", 1)])
        # Whole frames to the PMD, never coalesced by GRO.
        run(["ip", "netns", "exec", ns, "ethtool", "-K", "sw0", "gro", "off"], check=False)
        host = Host(name=name, ns=ns, iface="sw0")
        self.hosts[name] = host
        return host

    # -- processes and files ------------------------------------------------
    def popen(self, host, argv, **kwargs):
        """Starts argv inside the host's namespace; killed at close()."""
        ns = host.ns if isinstance(host, Host) else host
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], **kwargs)
        self._procs.append(p)
        return p

    def run_in(self, host, argv, check=True, input=None, timeout=60):
        ns = host.ns if isinstance(host, Host) else host
        return run(["ip", "netns", "exec", ns, *map(str, argv)], check=check, input=input,
                   timeout=timeout)

    def tmpdir(self, what="tmp", root="/dev/shm"):
        """A fresh directory (on tmpfs by default), removed at close()."""
        d = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{what}-", dir=root))
        self._tmpdirs.append(d)
        return d

    def close(self):
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 3
        for p in self._procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs.clear()
        # Host namespaces first (their veths vanish with them), the bridge last.
        for ns in reversed(self._namespaces):
            _delete_netns(ns)
        self._namespaces.clear()
        for d in self._tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        self._tmpdirs.clear()
