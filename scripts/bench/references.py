"""Reference rows beside testpmd (issue 15): what a user would pick instead of
Tandem, on the same net_pcap input (the capture replayed with infinite_rx)
and a net_null sink, one forwarding core, measured in the same run:

  - Open vSwitch with DPDK (Debian's openvswitch-switch-dpdk): a private
    ovsdb-server and ovs-vswitchd-dpdk in a temporary directory (their own db,
    sockets, EAL file prefix; never the system's OVS), a netdev bridge, one
    PMD core, and per leg of the capture one exact UDP 5-tuple OpenFlow rule
    that relays the packet to the meeting's other leg as the switch does
    (rewrites MACs, destination address and port, source port) and outputs
    it to the sink.
  - DPDK's l3fwd example (Debian's dpdk-doc) in exact-match mode
    (--lookup=em): the capture's 5-tuples as its rule file, every rule
    pointing at the sink. l3fwd rewrites MACs and the TTL, not addresses.

Rates come from each program's own port counters, read twice (OVS: `ovs-ofctl
dump-ports`; l3fwd: the DPDK telemetry socket), like the testpmd and switch
rows; bench.py judges them like a testpmd row (what reaches the sink as a
share of what was received: a reference that forwards nothing fails).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from runners import Output, mem_args, remove_runtime_dir, stop, thread_cpu_seconds

EXAMPLES = "/usr/share/dpdk/examples"
OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
SWITCH_MAC = "02:70:63:61:70:00"  # what the switch's port is, the captures' destination
GATEWAY_MAC = "02:00:00:00:00:01"  # the captures' source: the next hop of every leg


# ---- the capture's legs as rules ----

def capture_legs(tables_path):
    """[(meeting, remote_ip, remote_port, local_ip, local_port)] of the
    `leg` lines of a capture's tables file (gencap.py), in order."""
    legs = []
    with open(tables_path) as f:
        for line in f:
            p = line.split()
            if not p or p[0] != "leg":
                continue
            rip, rport = p[4].rsplit(":", 1)
            lip, lport = p[5].rsplit(":", 1)
            legs.append((int(p[2]), rip.strip("[]"), int(rport), lip.strip("[]"), int(lport)))
    return legs


def relay_pairs(legs):
    """(from_leg, to_leg) for each direction of each meeting of two legs:
    what the unicast captures hold. A meeting of another size is an error."""
    meetings = {}
    for leg in legs:
        meetings.setdefault(leg[0], []).append(leg)
    pairs = []
    for m, members in meetings.items():
        if len(members) != 2:
            raise ValueError("meeting %d has %d legs; the reference rules relay "
                             "meetings of two" % (m, len(members)))
        pairs += [(members[0], members[1]), (members[1], members[0])]
    return pairs


def ovs_flows(legs, in_port=1, out_port=2):
    """OpenFlow rules (ovs-ofctl add-flows syntax): one exact UDP 5-tuple
    match per leg that relays to the meeting's other leg, the rest dropped.
    IPv6 has no mod_nw_dst (it sets IPv4's field): its rules match udp6 and
    set the destination with set_field; mod_tp_* set UDP ports of both."""
    out = []
    for a, b in relay_pairs(legs):
        if ":" in a[1]:
            match = "udp6,in_port=%d,ipv6_src=%s,tp_src=%d,ipv6_dst=%s,tp_dst=%d"
            set_dst = "set_field:%s->ipv6_dst"
        else:
            match = "udp,in_port=%d,nw_src=%s,tp_src=%d,nw_dst=%s,tp_dst=%d"
            set_dst = "mod_nw_dst:%s"
        out.append(("priority=100," + match + ",actions=mod_dl_src:%s,mod_dl_dst:%s," + set_dst +
                    ",mod_tp_src:%d,mod_tp_dst:%d,output:%d") % (
                        in_port, a[1], a[2], a[3], a[4], SWITCH_MAC, GATEWAY_MAC, b[1], b[4],
                        b[2], out_port))
    out.append("priority=0,actions=drop")
    return "\n".join(out) + "\n"


def l3fwd_rules(legs, out_port=1):
    """l3fwd's exact-match rule files (em_route_parse.c: "R<dst> <src>
    <dst port> <src port> <proto> <out port>", the same for both families):
    (IPv4 text, IPv6 text). l3fwd reads both files, so the family the
    capture lacks gets one rule, but fills its hash from one only (IPv6's
    with --ipv6: l3fwd_args)."""
    v4, v6 = [], []
    for _, rip, rport, lip, lport in legs:
        (v6 if ":" in rip else v4).append("R%s %s %d %d 0x11 %d" % (lip, rip, lport, rport,
                                                                    out_port))
    v4 = v4 or ["R198.18.0.100 198.19.0.0 30000 20000 0x11 %d" % out_port]
    v6 = v6 or ["R2001:db8:1::100 2001:db8:2:: 30000 20000 0x11 %d" % out_port]
    return "\n".join(v4) + "\n", "\n".join(v6) + "\n"


def l3fwd_args(legs):
    """--ipv6 for a capture of IPv6 legs: without it l3fwd-em loads only
    the IPv4 rules into its hash and every IPv6 lookup misses."""
    families = {":" in leg[1] for leg in legs}
    if len(families) != 1:
        raise ValueError("l3fwd-em looks up one family: the capture holds %s" % (
            "both" if families else "no legs"))
    return ["--ipv6"] if True in families else []


# ---- reading the programs' counters ----

def parse_dump_ports(text):
    """{port: {"rx": packets, "tx": packets}} of `ovs-ofctl dump-ports`."""
    out = {}
    for m in re.finditer(r"port\s+(\w+):\s+rx pkts=(\d+).*?\n\s+tx pkts=(\d+)", text):
        port = int(m.group(1)) if m.group(1).isdigit() else m.group(1)
        out[port] = {"rx": int(m.group(2)), "tx": int(m.group(3))}
    if not out:
        raise ValueError("no port counters in ovs-ofctl's answer: %r" % text[:200])
    return out


def parse_pmd_cycles(text):
    """The PMD thread's own busy cycles per packet from `ovs-appctl
    dpif-netdev/pmd-stats-show` (None when it received nothing)."""
    m = re.search(r"pmd thread.*?avg processing cycles per packet: ([\d.]+)", text, re.S)
    return float(m.group(1)) if m else None


def telemetry_stats(sock_path, ports):
    """[{"rx": ipackets, "tx": opackets}] of each port in turn over DPDK's
    telemetry socket (the v2 protocol: a JSON greeting, then one JSON answer
    per command)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    try:
        s.connect(sock_path)
        json.loads(s.recv(16384))
        out = []
        for p in ports:
            s.send(b"/ethdev/stats,%d" % p)
            out.append(parse_telemetry_stats(s.recv(65536)))
        return out
    finally:
        s.close()


def l3fwd_counters(sock_path):
    """{0: input, 1: sink} counters with the sink read before and after the
    input and averaged: each port is a request of its own, and l3fwd
    forwards in between (for milliseconds when the telemetry thread waits
    for a core), which moved the share forwarded by tenths of a percent."""
    before, inp, after = telemetry_stats(sock_path, [1, 0, 1])
    return {0: inp, 1: {k: (before[k] + after[k]) / 2 for k in before}}


def parse_telemetry_stats(answer):
    st = json.loads(answer).get("/ethdev/stats")
    if not isinstance(st, dict):
        raise ValueError("no port stats in the telemetry answer: %r" % answer[:200])
    return {"rx": int(st["ipackets"]), "tx": int(st["opackets"])}


def thread_cpu(pid, match):
    return sum(v for k, v in thread_cpu_seconds(pid).items() if match(k))


def measure(cfg, read, cpu, at_start=lambda: None):
    """Two readings of read() -> {port: {rx, tx}} cfg.duration apart (longer
    until the forwarding thread got half of it, at most 20 durations), after
    cfg.warmup and at_start(). Port 0 is the input, port 1 the sink."""
    time.sleep(cfg.warmup)
    at_start()
    cpu0 = cpu()
    t0 = time.monotonic()
    s0 = read()
    t0 = (t0 + time.monotonic()) / 2
    time.sleep(cfg.duration)
    deadline = time.monotonic() + 19 * cfg.duration
    while cpu() - cpu0 < 0.5 * cfg.duration and time.monotonic() < deadline:
        time.sleep(0.05)
    t1 = time.monotonic()
    s1 = read()
    t1 = (t1 + time.monotonic()) / 2
    cpu1 = cpu()
    dt = t1 - t0
    return {"rx_pps": (s1[0]["rx"] - s0[0]["rx"]) / dt, "tx_pps": (s1[1]["tx"] - s0[1]["tx"]) / dt,
            "interval_s": dt, "worker_cpu_s": cpu1 - cpu0}


# ---- l3fwd ----

def build_l3fwd(cfg):
    """Compiles DPDK's l3fwd example from /usr/share/dpdk/examples into
    BUILD/bench-l3fwd/; returns the binary. As shipped, l3fwd asks every
    port for RX checksum offload, which no virtual device has (net_pcap,
    net_null refuse the configuration): the copy asks for none, the one
    change made to it (it does not check IPv4 checksums in software either)."""
    out_dir = os.path.abspath(os.path.join(cfg.build, "bench-l3fwd"))
    binary = os.path.join(out_dir, "l3fwd")
    main_c = os.path.join(EXAMPLES, "l3fwd", "main.c")
    if not os.path.exists(main_c):
        raise RuntimeError("%s is missing (Debian package dpdk-doc)" % main_c)
    if os.path.exists(binary) and os.path.getmtime(binary) >= max(
            os.path.getmtime(main_c), os.path.getmtime(__file__)):
        return binary
    src = os.path.join(out_dir, "src")
    shutil.rmtree(src, ignore_errors=True)
    for d in ("l3fwd", "common"):
        shutil.copytree(os.path.join(EXAMPLES, d), os.path.join(src, d))
    path = os.path.join(src, "l3fwd", "main.c")
    with open(path) as f:
        text = f.read()
    wanted = ".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,"
    if text.count(wanted) != 1:
        raise RuntimeError("l3fwd's main.c no longer holds %r once; look again" % wanted)
    with open(path, "w") as f:
        f.write(text.replace(wanted, ".offloads = 0,"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libdpdk"], capture_output=True,
                           text=True, check=True).stdout.split()
    sources = ["main.c", "l3fwd_acl.c", "l3fwd_lpm.c", "l3fwd_fib.c", "l3fwd_em.c",
               "l3fwd_event.c", "l3fwd_event_generic.c", "l3fwd_event_internal_port.c"]
    cflags = [f for f in flags if not f.startswith(("-l", "-L", "-Wl"))]
    libs = [f for f in flags if f not in cflags]
    cwd = os.path.join(src, "l3fwd")
    # One compiler per source file at once: the scripts' tests build it too.
    jobs = [subprocess.Popen(["gcc", "-O3", "-DALLOW_EXPERIMENTAL_API", "-I../common", "-c",
                              c, "-o", c + ".o"] + cflags, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for c in sources]
    errors = [j.communicate()[0] for j in jobs if j.wait()]
    if not errors:
        r = subprocess.run(["gcc", "-o", binary] + [c + ".o" for c in sources] + libs, cwd=cwd,
                           capture_output=True, text=True)
        errors = [r.stderr] if r.returncode else []
    if errors:
        raise RuntimeError("l3fwd did not build: %s" % errors[0].strip()[-400:])
    return binary


def l3fwd_queue_size(packets):
    """RX/TX ring size: l3fwd sizes its one mbuf pool from the rings (2 ports
    x (rx + tx) descriptors), and net_pcap's infinite_rx keeps the whole
    capture in that pool. A ring holds at most 65535 (a 16-bit count)."""
    q = 1024
    while 4 * q < packets + 4096:
        q *= 2
    return min(q, 65535)


def run_l3fwd(pcap, tables, meta, cfg):
    """Returns {rx_pps, tx_pps, interval_s, worker_cpu_s} of l3fwd (one lcore)."""
    binary = build_l3fwd(cfg)
    prefix = "tbench-l3fwd-%d" % os.getpid()
    tmp = tempfile.mkdtemp(prefix="tbench-l3fwd-")
    legs = capture_legs(tables)
    v4, v6 = l3fwd_rules(legs)
    for name, text in (("rules.v4", v4), ("rules.v6", v6)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    q = l3fwd_queue_size(meta["media_packets"] + meta["control_packets"])
    # One lcore, the main one: l3fwd gives every lcore a TX queue on every
    # port, and net_pcap without tx_pcap has one.
    cmd = [binary, "-l", "1", "--file-prefix", prefix, "--no-pci",
           "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap,
           "--vdev", "net_null0,no-rx=1"] + mem_args(cfg.no_huge, 192 + q * 4 * 2432 // (1 << 20)) + [
           "--", "-p", "0x3", "--config=(0,0,1),(1,0,1)", "--lookup=em", "--parse-ptype",
           "--rule_ipv4=%s" % os.path.join(tmp, "rules.v4"),
           "--rule_ipv6=%s" % os.path.join(tmp, "rules.v6"),
           "--rx-queue-size=%d" % q, "--tx-queue-size=%d" % q] + l3fwd_args(legs)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Output(proc.stdout)
    try:
        out.wait_for(r"entering main loop", 120, proc=proc)
        sock = os.path.join("/var/run/dpdk", prefix, "dpdk_telemetry.v2")
        pid = proc.pid
        return measure(cfg, lambda: l3fwd_counters(sock),
                       lambda: thread_cpu(pid, lambda k: k.endswith("/%d" % pid)))
    finally:
        stop(proc)
        remove_runtime_dir(prefix)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- Open vSwitch ----

class OvsRun:
    """A private ovsdb-server and ovs-vswitchd-dpdk in a temporary directory."""

    def __init__(self, cfg, pcap, megabytes=512):
        self.dir = tempfile.mkdtemp(prefix="tbench-ovs-")
        self.prefix = "tbench-ovs-%d" % os.getpid()
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_LOGDIR=self.dir,
                        OVS_DBDIR=self.dir, OVS_SYSCONFDIR=self.dir)
        self.db_sock = "unix:%s/db.sock" % self.dir
        self.procs = []
        try:
            self._start(cfg, pcap, megabytes)
        except BaseException:
            self.close()
            raise
        self.bridge = "unix:%s/br0.mgmt" % self.dir

    def _start(self, cfg, pcap, megabytes):
        db = os.path.join(self.dir, "conf.db")
        self.run(["ovsdb-tool", "create", db, OVS_SCHEMA])
        self.start(["ovsdb-server", db, "--remote=p" + self.db_sock,
                    "--unixctl=%s/ovsdb-server.ctl" % self.dir, "--no-chdir"])
        self.wait_path(os.path.join(self.dir, "db.sock"))
        eal = ["--no-pci", "--file-prefix", self.prefix,
               "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap,
               "--vdev", "net_null0,no-rx=1"] + mem_args(cfg.no_huge, megabytes)
        if cfg.no_huge:
            # OVS adds --in-memory unless it is given --legacy-mem, and EAL
            # refuses --in-memory beside --no-huge (which implies legacy memory).
            eal.append("--legacy-mem")
        # The main thread on core 0, the one PMD thread on core 1, as the
        # other rows' main and worker lcores.
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true", "other_config:dpdk-lcore-mask=0x1",
                   "other_config:pmd-cpu-mask=0x2", "other_config:dpdk-extra=%s" % " ".join(eal))
        self.vswitchd = self.start([OVS_VSWITCHD, self.db_sock, "--no-chdir",
                                    "--unixctl=%s/ovs-vswitchd.ctl" % self.dir])
        # An EAL that does not start ends the run here, with its words,
        # rather than in ovs-vsctl's wait below.
        self.procs[-1][1].wait_for(r"DPDK Enabled - initialized", 120, proc=self.vswitchd)
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   "--", "add-port", "br0", "in", "--", "set", "Interface", "in", "type=dpdk",
                   "options:dpdk-devargs=net_pcap0", "ofport_request=1",
                   "--", "add-port", "br0", "out", "--", "set", "Interface", "out", "type=dpdk",
                   "options:dpdk-devargs=net_null0", "ofport_request=2")

    def run(self, cmd, stdin=None):
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env,
                           timeout=120)
        if r.returncode:
            raise RuntimeError("%s: %s" % (" ".join(cmd[:3]), r.stderr.strip()[-300:]))
        return r.stdout

    def start(self, cmd):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self.env)
        self.procs.append((proc, Output(proc.stdout)))
        return proc

    def wait_path(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            for proc, out in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited (%d): %s" % (proc.args[0], proc.returncode,
                                                               out.tail(5)))
            if time.monotonic() > deadline:
                raise TimeoutError("no %s within %ds" % (path, timeout))
            time.sleep(0.05)

    def vsctl(self, *args):
        return self.run(["ovs-vsctl", "--db=" + self.db_sock, "--timeout=120"] + list(args))

    def ofctl(self, *args, stdin=None):
        return self.run(["ovs-ofctl", "-O", "OpenFlow13"] + list(args), stdin=stdin)

    def appctl(self, *args):
        return self.run(["ovs-appctl", "-t", "%s/ovs-vswitchd.ctl" % self.dir] + list(args))

    def close(self):
        for proc, _ in reversed(self.procs):
            stop(proc)
        remove_runtime_dir(self.prefix)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_ovs(pcap, tables, meta, cfg):
    """Returns {rx_pps, tx_pps, interval_s, worker_cpu_s, busy_cycles_per_pkt}
    of ovs-vswitchd-dpdk with one PMD core and the capture's relay rules."""
    flows = ovs_flows(capture_legs(tables))
    ovs = OvsRun(cfg, pcap)
    try:
        ovs.wait_path(os.path.join(ovs.dir, "br0.mgmt"))
        ovs.ofctl("del-flows", ovs.bridge)
        ovs.ofctl("add-flows", ovs.bridge, "-", stdin=flows)
        installed = ovs.ofctl("dump-aggregate", ovs.bridge)
        m = re.search(r"flow_count=(\d+)", installed)
        if not m or int(m.group(1)) != flows.count("\n"):
            raise RuntimeError("OVS holds %s flows, %d written" % (
                m.group(1) if m else "no", flows.count("\n")))
        pid = ovs.vswitchd.pid

        def read():
            ports = parse_dump_ports(ovs.ofctl("dump-ports", ovs.bridge))
            return {0: ports[1], 1: ports[2]}

        def cpu():
            return thread_cpu(pid, lambda k: k.startswith("pmd"))

        r = measure(cfg, read, cpu, lambda: ovs.appctl("dpif-netdev/pmd-stats-clear"))
        r["busy_cycles_per_pkt"] = parse_pmd_cycles(ovs.appctl("dpif-netdev/pmd-stats-show"))
        return r
    finally:
        ovs.close()


RUNNERS = {"ovs-dpdk": run_ovs, "l3fwd-em": run_l3fwd}

