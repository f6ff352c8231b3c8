"""Runs one measurement: dpdk-testpmd (io or 5tswap) or tandem-switch on a
net_pcap port that replays a capture in a loop (infinite_rx) and drops what is
sent on it (no tx_pcap: the PMD frees the mbufs, like a null sink).

Both programs get the same devices, the same capture, the same lcores (main on
core 0, forwarding worker(s) on the next cores) and the same memory set-up.
Rates are taken over a fixed interval after a warm-up:
  - testpmd: two `show port stats all` in interactive mode; testpmd itself
    computes the rate between them from the TSC ("Throughput since last show").
  - tandem-switch: two `tandem-tables stats --json` readings; the interval is
    the monotonic time between the midpoints of the two calls.
"""

import json
import latency
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

from gencap import GW4, GW6


class Output:
    """Collects a child's merged stdout/stderr in a background thread.

    Appends are cheap and a wait reads only what came since it last looked:
    l3fwd prints a line per rule, 80 MB for a million rules, and a string
    grown by += and searched from its start every 20 ms took minutes."""

    OVERLAP = 4096  # a match may begin this far before the new text (two lines)

    def __init__(self, stream):
        self._chunks = []
        self._size = 0
        self._lock = threading.Lock()
        self._stream = stream
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        fd = self._stream.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            text = chunk.decode(errors="replace")
            with self._lock:
                self._chunks.append(text)
                self._size += len(text)

    def _from(self, pos):
        """The text from offset `pos` on, and the offset where it ends."""
        out = []
        with self._lock:  # from the end: only the chunks past `pos` are read
            size = at = self._size
            for c in reversed(self._chunks):
                if at <= pos:
                    break
                at -= len(c)
                out.append(c[max(0, pos - at):])
        return "".join(reversed(out)), size

    @property
    def text(self):
        return self._from(0)[0]

    def wait_for(self, pattern, timeout, start=0, proc=None):
        """Waits until `pattern` (regex) appears after offset `start`; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        pos = start

        def look():
            nonlocal pos
            text, end = self._from(pos)
            m = rx.search(text)
            pos = max(pos, end - self.OVERLAP)
            return m

        while time.monotonic() < deadline:
            m = look()
            if m:
                return m
            if proc is not None and proc.poll() is not None:
                time.sleep(0.1)
                m = look()
                if m:
                    return m
                raise RuntimeError("process exited (%d) before %r:\n%s" %
                                   (proc.returncode, pattern, self.tail()))
            time.sleep(0.02)
        raise TimeoutError("no %r within %ss:\n%s" % (pattern, timeout, self.tail()))

    def tail(self, n=25):
        text, _ = self._from(max(0, len(self) - 200 * n))
        return "\n".join(text.splitlines()[-n:])

    def __len__(self):
        with self._lock:
            return self._size


def mem_megabytes(mbufs):
    """Enough for `mbufs` mbufs of 2 KB data room plus what EAL and the PMDs take."""
    return 192 + (mbufs * 2432) // (1 << 20)


def mem_args(no_huge, megabytes):
    # --in-memory: no hugepage files or runtime dir are left behind, even after SIGKILL.
    return (["--no-huge", "-m", str(megabytes)] if no_huge
            else ["--in-memory", "-m", str(megabytes)])


# EAL names the threads of worker lcores "rte-worker-N" (DPDK 22.11; "lcore-worker-N"
# in later releases).
WORKER_THREADS = ("rte-worker", "lcore-worker")


def worker_threads_cpu(pid):
    """Sum of utime+stime seconds of the worker-lcore threads of `pid`."""
    return sum(v for k, v in thread_cpu_seconds(pid).items() if k.startswith(WORKER_THREADS))


def pcap_devargs(pcap, queues=1, sink=False):
    if sink:
        return "net_null0,no-rx=1"
    rx = ",".join("rx_pcap=%s" % pcap for _ in range(queues))
    return "net_pcap0,%s,infinite_rx=1" % rx


def remove_runtime_dir(prefix):
    """EAL leaves /var/run/dpdk/<file-prefix> behind even with --in-memory."""
    subprocess.run(["rm", "-rf", os.path.join("/var/run/dpdk", prefix)], check=False)


def stop(proc, timeout=15):
    """SIGTERM, then SIGKILL; only the process this module started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_worker_cpu(pid, cpu0, cfg, workers):
    """Sleeps the measured interval, then on until the worker threads got at
    least half of it in CPU time (at most 20 intervals in all): on a machine
    busy with other work a worker can get almost none of its core for a
    while, and a rate measured over no work is no figure."""
    time.sleep(cfg.duration)
    deadline = time.monotonic() + 19 * cfg.duration
    while (worker_threads_cpu(pid) - cpu0 < 0.5 * cfg.duration * workers and
           time.monotonic() < deadline):
        time.sleep(0.05)


def run_testpmd(mode, pcap, mbufs, cfg, workers=1):
    """Returns {rx_pps, tx_pps, busy_cycles_per_pkt, tsc_hz, mac}."""
    lcores = "0-%d" % workers
    prefix = "tbench-tp-%d" % os.getpid()
    # stdbuf: testpmd prints with stdio, block-buffered into a pipe.
    cmd = ["stdbuf", "-oL", "dpdk-testpmd", "-l", lcores, "--file-prefix", prefix, "--no-pci",
           "--vdev", pcap_devargs(pcap, workers)] + mem_args(cfg.no_huge, mem_megabytes(mbufs)) + [
           "--log-level=lib.eal:info", "--", "-i", "--forward-mode=%s" % mode,
           "--nb-cores=%d" % workers, "--rxq=%d" % workers, "--txq=%d" % workers,
           "--burst=32", "--total-num-mbufs=%d" % mbufs, "--record-core-cycles"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = Output(proc.stdout)
    try:
        out.wait_for(r"testpmd> ", 120, proc=proc)
        mac = out.wait_for(r"Port 0: ([0-9A-Fa-f:]{17})", 1).group(1).lower()

        def send(line):
            proc.stdin.write((line + "\n").encode())
            proc.stdin.flush()

        send("start")
        time.sleep(cfg.warmup)
        mark = len(out)
        cpu0 = worker_threads_cpu(proc.pid)
        t0 = time.monotonic()
        send("show port stats all")
        out.wait_for(r"Tx-pps:", 10, mark, proc)
        wait_worker_cpu(proc.pid, cpu0, cfg, workers)
        mark = len(out)
        cpu1 = worker_threads_cpu(proc.pid)
        t1 = time.monotonic()
        send("show port stats all")
        rates = out.wait_for(r"Rx-pps:\s+(\d+).*\n\s+Tx-pps:\s+(\d+)", 10, mark, proc)
        mark = len(out)
        send("stop")
        cyc = out.wait_for(r"CPU cycles/packet=([\d.]+).* at (\d+) MHz", 20, mark, proc)
        send("quit")
        proc.stdin.close()
        proc.wait(30)
        return {"rx_pps": float(rates.group(1)), "tx_pps": float(rates.group(2)),
                "busy_cycles_per_pkt": float(cyc.group(1)), "tsc_hz": int(cyc.group(2)) * 1e6,
                "mac": mac, "worker_cpu_s": cpu1 - cpu0, "interval_s": t1 - t0}
    finally:
        stop(proc)
        remove_runtime_dir(prefix)


# ---- tandem-switch ----

SWITCH_CONFIG = """\
node = "bench"
shm_dir = "{shm_dir}"

[tables]
legs = {legs}
meetings = {meetings}

[eal]
args = [{eal_args}]
main_lcore = 0
worker_lcores = [{workers}]
{cpus}

[switch]
burst = 32
rx_ring = 1024
tx_ring = 1024
mbufs = {mbufs}
idle_sleep_us = {idle_sleep_us}
idle_polls = 100
zero_copy_min = 512

[[port]]
name = "access"
devargs = "{devargs}"

[access]
prefixes = ["198.18.0.0/24", "2001:db8:1::/64"]
gateway4 = "198.18.0.1"
gateway6 = "2001:db8:1::1"
neigh_reachable_s = 30
neigh_probe_ms = 1000

[telemetry]
enabled = false
"""


def table_capacity(legs):
    """Region capacity for a table of `legs` (headroom for the update churn)."""
    cap = 1 << 16
    while cap < legs * 1.25 + 20000:
        cap <<= 1
    return cap


def cpus_line(workers):
    """eal.cpus when the lcores outnumber the CPUs (bench --quick only: does
    it forward with that many workers; a figure so measured means nothing)."""
    ncpu = os.cpu_count() or 1
    if workers + 1 <= ncpu:
        return ""
    return "cpus = [0, %s]" % ", ".join(str((1 + w) % ncpu) for w in range(workers))


def regions_parent(cfg):
    """Where the switch's tables and state regions go: on huge pages, as an
    operator with a large table would put them (docs/config.md, `shm_dir`),
    unless the run is on 4 KB pages or TANDEM_BENCH_SHM_PARENT says otherwise
    (empty: /dev/shm). A random line of a 512 MB region cost 2 to 6 times as
    much on 4 KB pages here (tests/bench/memory_bench.cc)."""
    env = os.environ.get("TANDEM_BENCH_SHM_PARENT")
    if env is not None:
        return env or None
    if cfg.no_huge:
        return None
    with open("/proc/mounts") as f:
        hugetlbfs = any(line.split()[1:3] == ["/dev/hugepages", "hugetlbfs"] for line in f)
    return "/dev/hugepages" if hugetlbfs else None


class SwitchRun:
    """A tandem-switch process with its own shm dir, tables and config."""

    def __init__(self, cfg, devargs, legs, mbufs, workers=1, idle_sleep_us=100):
        self.cfg = cfg
        self.dir = tempfile.mkdtemp(prefix="tbench-", dir="/dev/shm")
        # The regions' directory (hugetlbfs takes no write(2), so the config
        # stays in self.dir).
        parent = regions_parent(cfg)
        self.shm = tempfile.mkdtemp(prefix="tbench-", dir=parent) if parent else self.dir
        self.legs_cap = table_capacity(legs)
        self.meetings_cap = max(1 << 14, self.legs_cap // 2)
        self.prefix = "tbench-sw-%d" % os.getpid()
        eal = ["--file-prefix", self.prefix, "--no-pci"] + \
            mem_args(cfg.no_huge, mem_megabytes(mbufs))
        self.config = os.path.join(self.dir, "switch.toml")
        with open(self.config, "w") as f:
            f.write(SWITCH_CONFIG.format(
                shm_dir=self.shm, legs=self.legs_cap, meetings=self.meetings_cap,
                eal_args=", ".join('"%s"' % a for a in eal),
                workers=", ".join(str(1 + w) for w in range(workers)), mbufs=mbufs,
                cpus=cpus_line(workers),
                idle_sleep_us=idle_sleep_us, devargs=devargs))
        self.proc = None
        self.out = None

    def tables(self, *args, stdin=None, check=True):
        cmd = [self.cfg.tables_tool, "--shm-dir", self.shm, "--node", "bench",
               "--legs", str(self.legs_cap), "--meetings", str(self.meetings_cap)] + list(args)
        return subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, check=check,
                              timeout=600)

    def apply(self, path):
        with open(path) as f:
            r = self.tables("apply", "-", stdin=f, check=False)
        if r.returncode:
            raise RuntimeError("tandem-tables apply %s: %s" % (path, r.stderr.strip()))

    def start(self):
        profile = ["--profile"] if getattr(self.cfg, "profile", False) else []
        self.proc = subprocess.Popen([self.cfg.switch, "--config", self.config] + profile,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = Output(self.proc.stdout)
        self.out.wait_for(r"tandem-switch: forwarding", 120, proc=self.proc)

    def stats(self):
        r = self.tables("stats", "--json")
        return json.loads(r.stdout)

    def wait_resolved(self, ip, timeout=30.0):
        """Waits until the switch holds a reachable entry for `ip` (the
        gateway, which the capture's replayed answers resolve); the switch
        forwards nothing before. Raises naming what it holds instead."""
        deadline = time.monotonic() + timeout
        while True:
            neigh = self.stats().get("neighbours", [])
            if any(n["ip"] == ip and n["state"] == "reachable" for n in neigh):
                return time.monotonic()
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the switch did not resolve the gateway %s within %gs "
                                   "(neighbours: %s)" % (ip, timeout, neigh or "none"))
            time.sleep(0.05)

    def timed_stats(self):
        t0 = time.monotonic()
        s = self.stats()
        t1 = time.monotonic()
        return (t0 + t1) / 2, s

    def close(self):
        if self.proc is not None:
            stop(self.proc)
            if getattr(self.cfg, "profile", False):  # the switch's table, printed at exit
                time.sleep(0.2)
                print("\n".join(l for l in self.out.text.splitlines() if l.startswith("profile:")))
        subprocess.run(["rm", "-rf", self.dir, self.shm], check=False)
        remove_runtime_dir(self.prefix)


class Updater:
    """Streams table changes into `tandem-tables apply -` at a fixed rate:
    a leg added to, then removed from, a churn meeting that carries no traffic,
    so forwarding of the measured legs must not change."""

    MEETING = 9_000_000

    def __init__(self, run, rate):
        self.run, self.rate = run, rate
        self.sent = 0
        self.stop_flag = threading.Event()
        cmd = [run.cfg.tables_tool, "--shm-dir", run.shm, "--node", "bench", "apply", "-"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.proc.stdin.write(b"meeting %d 1\n" % self.MEETING)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _lines(self, first, count):
        out = []
        for n in range(first, first + count):
            leg = 50_000_000 + n // 2
            if n % 2 == 0:
                host = (leg % 16000)
                port = 1024 + (leg // 16000) % 60000
                out.append("leg %d %d audio 198.19.%d.%d:%d 198.18.0.100:%d recv\n" % (
                    leg, self.MEETING, 64 + host // 256, host % 256, port, 40000 + leg % 20000))
            else:
                out.append("remove-leg %d\n" % leg)
        return "".join(out).encode()

    def _loop(self):
        start = time.monotonic()
        chunk = max(1, self.rate // 200)  # a batch every 5 ms
        while not self.stop_flag.is_set():
            due = int((time.monotonic() - start) * self.rate)
            if self.sent < due:
                n = min(chunk * 4, due - self.sent)
                n -= n % 2  # keep add/remove pairs together
                if n == 0:
                    n = 2
                try:
                    self.proc.stdin.write(self._lines(self.sent, n))
                    self.proc.stdin.flush()
                except BrokenPipeError:
                    return
                self.sent += n
            else:
                time.sleep(0.002)

    def start(self):
        self.t0 = time.monotonic()
        self.thread.start()

    def finish(self):
        self.stop_flag.set()
        self.thread.join()
        elapsed = time.monotonic() - self.t0
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait(60)
        err = self.proc.stderr.read().decode().strip()
        if rc:
            raise RuntimeError("updater: tandem-tables apply failed: %s" % err)
        # Changes are applied in order as they are read; once apply has exited
        # every written change was applied, so this is the rate achieved.
        return self.sent / elapsed


def read_latency(path):
    try:
        return latency.read(path)
    except (OSError, ValueError):
        return None


def counters_delta(a, b, key):
    return b["totals"][key] - a["totals"][key]


def run_switch(capture_paths, meta, cfg, mbufs, workers=1, updates_per_s=0):
    """Returns {rx_pps, tx_pps, drops{}, per_worker[], mac, ...} for tandem-switch.
    The warm-up starts once the switch has resolved the capture's gateway."""
    pcap, tables = capture_paths
    # The churn of the update scenario adds and removes legs; a removed leg's
    # slot is reused only after every worker passed a quiescent point, so
    # leave room for the retired ones.
    legs = meta["legs"] + (1 << 17 if updates_per_s else 0)
    run = SwitchRun(cfg, pcap_devargs(pcap, workers), legs, mbufs, workers)
    updater = None
    try:
        run.apply(tables)
        run.start()
        t_start = time.monotonic()
        # A flood forwards nothing: the switch never needs the gateway, and
        # it resolves only a next hop it needs (the gateway's own requests
        # make no entry), so there is nothing to wait for.
        resolved = None
        if meta["kind"] != "flood":
            resolved = run.wait_resolved(str(GW4 if meta["family"] == 4 else GW6)) - t_start
        time.sleep(cfg.warmup)
        if updates_per_s:
            updater = Updater(run, updates_per_s)
            updater.start()
            time.sleep(0.2)
        state = os.path.join(run.shm, "tandem.bench.state")
        lat0 = read_latency(state)
        cpu0 = worker_threads_cpu(run.proc.pid)
        t0, s0 = run.timed_stats()
        wait_worker_cpu(run.proc.pid, cpu0, cfg, workers)
        t1, s1 = run.timed_stats()
        cpu1 = worker_threads_cpu(run.proc.pid)
        lat1 = read_latency(state)
        dt = t1 - t0
        result = {
            "rx_pps": counters_delta(s0, s1, "rx_packets") / dt,
            "tx_pps": counters_delta(s0, s1, "tx_packets") / dt,
            "forwarded_in_pps": counters_delta(s0, s1, "forwarded_in") / dt,
            "drops": {k: s1["totals"]["drops"][k] - s0["totals"]["drops"].get(k, 0)
                      for k in s1["totals"]["drops"]},
            "per_worker_rx_pps": [(w1["rx_packets"] - w0["rx_packets"]) / dt
                                  for w0, w1 in zip(s0["workers"], s1["workers"])],
            "mac": (s1.get("ports") or [{}])[0].get("mac", ""),
            "neighbours": len(s1.get("neighbours", [])),
            "interval_s": dt,
            "worker_cpu_s": cpu1 - cpu0,
            "gateway_resolved_s": resolved,
        }
        if lat0 and lat1:
            hist = [0] * latency.LATENCY_BUCKETS
            for h0, h1 in zip(lat0[1], lat1[1]):
                for i in range(len(hist)):
                    hist[i] += h1[i] - h0[i]
            result["latency_ns"] = latency.percentiles(hist, lat1[0])
            result["latency_hist"] = hist
        if updater is not None:
            result["updates_per_s"] = updater.finish()
            updater = None
        return result
    finally:
        if updater is not None:
            try:
                updater.finish()
            except Exception:  # the run already failed; report that error
                pass
        run.close()


def thread_cpu_seconds(pid):
    """{thread name: utime+stime seconds} of every thread of `pid`."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out["%s/%s" % (name, tid)] = (int(fields[11]) + int(fields[12])) / hz
    return out


def run_idle(cfg, seconds=5.0, idle_sleep_us=100):
    """CPU share of each switch thread with no traffic (net_null with no-rx)."""
    run = SwitchRun(cfg, pcap_devargs(None, sink=True), 1000, 16383,
                    idle_sleep_us=idle_sleep_us)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".tables") as f:
            f.write("role active 1\nvip 198.18.0.100 2001:db8:1::100\n")
            f.flush()
            run.apply(f.name)
        run.start()
        time.sleep(1.0)
        a, t0 = thread_cpu_seconds(run.proc.pid), time.monotonic()
        time.sleep(seconds)
        b, t1 = thread_cpu_seconds(run.proc.pid), time.monotonic()
        shares = {k: (b[k] - a.get(k, 0.0)) / (t1 - t0) for k in b}
        worker = sum(v for k, v in shares.items() if k.startswith(WORKER_THREADS))
        return {"threads": shares, "process": sum(shares.values()), "worker": worker,
                "seconds": t1 - t0, "idle_sleep_us": idle_sleep_us}
    finally:
        run.close()


# ---- paced latency over net_memif (scripts/bench/pacer.cc) ----

def build_pacer(cfg):
    """Compiles the paced generator into the build directory; returns its path or None."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pacer.cc")
    out = os.path.join(cfg.build, "bench-pacer")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libdpdk"], capture_output=True,
                           text=True)
    if flags.returncode:
        return None
    # DPDK's headers as system headers: they do not compile warning-free in C++20.
    args = [a.replace("-I", "-isystem", 1) if a.startswith("-I") else a
            for a in flags.stdout.split()]
    r = subprocess.run(["g++", "-O2", "-std=c++20", "-o", out, src] + args, capture_output=True,
                       text=True)
    return out if r.returncode == 0 else None


def memif_devargs(sock, role):
    # The switch side carries the MAC the captures are addressed to.
    mac = ",mac=02:70:63:61:70:00" if role == "server" else ""
    return "net_memif0,role=%s,socket=%s,socket-abstract=no%s" % (role, sock, mac)


class TestpmdForwarder:
    """testpmd io on the memif server port, looping it back (the reference)."""

    def __init__(self, cfg, sock):
        self.prefix = "tbench-tpm-%d" % os.getpid()
        cmd = ["stdbuf", "-oL", "dpdk-testpmd", "-l", "0-1", "--file-prefix", self.prefix,
               "--no-pci", "--vdev", memif_devargs(sock, "server")] + \
            mem_args(cfg.no_huge, 512) + ["--", "-i", "--forward-mode=io",
                                          "--port-topology=loop", "--total-num-mbufs=16384"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = Output(self.proc.stdout)
        self.out.wait_for(r"testpmd> ", 120, proc=self.proc)
        self.proc.stdin.write(b"start\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.close()
            self.proc.wait(10)
        except Exception:
            pass
        stop(self.proc)
        remove_runtime_dir(self.prefix)


def run_pacer(cfg, pacer, pcap, sock, extra):
    prefix = "tbench-pacer-%d" % os.getpid()
    cmd = [pacer, "-l", "0", "--file-prefix", prefix, "--no-pci",
           "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap,
           "--vdev", memif_devargs(sock, "client")] + mem_args(cfg.no_huge, 512) + \
        ["--log-level=lib.eal:error", "--", "--pcap-port", "0", "--memif-port", "1"] + \
        [str(a) for a in extra]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        remove_runtime_dir(prefix)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("pacer failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1])


def run_latency(cfg, pacer, capture_paths, legs, idle_sleep_us_list=(200, 40), quick=False):
    """Max rate through memif, latency at half of it, and the first frame after
    10 ms idle gaps, for testpmd io and tandem-switch. Returns a dict per forwarder.
    quick: tandem-switch alone, the maximum rate for cfg.duration and 20 frames
    after idle gaps (does the memif path forward?)."""
    pcap, tables = capture_paths
    out = {}
    sock = "/run/tbench-memif-%d.sock" % os.getpid()
    after_idle = 20 if quick else 200
    names = ["tandem"] if quick else ["testpmd-io", "tandem"] + [
        "tandem idle_sleep_us=%d" % us for us in idle_sleep_us_list]
    for name in names:
        fwd = run = None
        try:
            if name == "testpmd-io":
                fwd = TestpmdForwarder(cfg, sock)
            else:
                us = int(name.split("=")[1]) if "=" in name else 100
                run = SwitchRun(cfg, memif_devargs(sock, "server"), legs, 16383,
                                idle_sleep_us=us)
                run.apply(tables)
                run.start()
            res = {}
            if "=" not in name:
                # Warm-up (neighbours learnt), then as fast as the forwarder goes.
                run_pacer(cfg, pacer, pcap, sock, ["--rate", 0, "--seconds", cfg.warmup])
                res["max"] = run_pacer(cfg, pacer, pcap, sock, ["--rate", 0, "--seconds",
                                                                cfg.duration])
                if not quick:
                    rate = max(1000, res["max"]["rx_pps"] / 2)
                    res["half"] = run_pacer(cfg, pacer, pcap, sock, ["--rate", int(rate),
                                                                     "--seconds", cfg.duration])
            else:
                run_pacer(cfg, pacer, pcap, sock, ["--every-ms", 5, "--count", 20])
            res["after_idle"] = run_pacer(cfg, pacer, pcap, sock, ["--every-ms", 10,
                                                                   "--count", after_idle])
            res["after_idle"]["expected"] = after_idle  # stamped frames sent
            out[name] = res
        except Exception as e:
            out[name] = {"error": str(e).splitlines()[0][:160] if str(e) else repr(e)}
        finally:
            if fwd:
                fwd.close()
            if run:
                run.close()
            try:
                os.unlink(sock)
            except OSError:
                pass
    return out
