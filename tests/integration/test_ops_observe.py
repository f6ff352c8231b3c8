"""Seeing inside a node (issue 19): gRPC health (SERVING on the active node
only) and reflection, the `notify` command, logs for journald or with time
stamps, systemd's READY and watchdog, and the metrics an operator graphs
(build, processes, port bytes, worker busy time, the switch's latency
histogram), which the shipped dashboard and alert rules must name."""
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers import grpc_probe  # noqa: E402
from control_helpers.control import ControlDaemon, control_binary  # noqa: E402
from control_helpers.metrics import check_exposition  # noqa: E402
from helpers.meeting import member_flows  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import run_flows  # noqa: E402
from test_control_e2e import join_members  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


class EnvDaemon(ControlDaemon):
    """tandem-control with extra environment (NOTIFY_SOCKET, JOURNAL_STREAM)."""

    def __init__(self, *a, env=None, **kw):
        self.env = env or {}
        super().__init__(*a, **kw)

    def _spawn(self, argv, log):
        env = dict(os.environ, **self.env)
        if "JOURNAL_STREAM" in self.env:  # stderr is the log file: call it the journal
            st = os.fstat(log.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket collecting messages."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return self.messages

    def close(self):
        self.sock.close()


def test_health_reflection_notify_and_logs(tmp_path):
    work = pathlib.Path("/tmp") / f"tdi-obs-{os.getpid()}"
    work.mkdir(mode=0o700)
    record = work / "notify.log"
    script = work / "notify.sh"
    script.write_text(f"#!/bin/sh\necho \"$@ prev=$TANDEM_PREVIOUS_ROLE\" >> {record}\n")
    script.chmod(0o755)
    notify = NotifySocket(work / "notify.sock")
    d = EnvDaemon(work / "ctl", env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000",
                                     "JOURNAL_STREAM": "1"},
                  extra_toml=f'[notify]\ncommand = "{script}"\ntimeout_s = 5\n')
    try:
        d.start()
        # Type=notify: READY once the API serves, with a status line.
        msgs = notify.drain(1.5)
        ready = [m for m in msgs if "READY=1" in m]
        assert ready and "STATUS=serving node ct" in ready[0], msgs
        # WatchdogSec: fed every WATCHDOG_USEC/4 while the core answers.
        pings = [m for m in msgs if m == "WATCHDOG=1"]
        assert len(pings) >= 3, msgs

        # grpc.health.v1: SERVING on the active node; reflection without a .proto.
        assert grpc_probe.health(d.api) == "SERVING"
        services = grpc_probe.list_services(d.api)
        assert "tandem.control.v1.Control" in services and "grpc.health.v1.Health" in services, \
            services
        status = grpc_probe.call_by_reflection(d.api, "tandem.control.v1.Control/GetStatus")
        assert status.node == "ct" and status.role == "active"

        # notify ran once at start with the role the node starts in.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not record.exists():
            time.sleep(0.05)
        assert record.read_text() == "active ct 1 prev=\n"

        # Logs under journald: a priority prefix on every line of ours.
        log = d.log()
        assert "<5>tandem-control: serving node ct on unix:" in log, log
        assert "<5>tandem-control: node ct starts active in epoch 1" in log, log
        d.stop()
        assert any("STOPPING=1" in m for m in notify.drain(0.5))
    finally:
        d.close()
        notify.close()
        subprocess.run(["rm", "-rf", str(work)])


def test_standby_is_not_serving_and_logs_carry_time_stamps():
    work = pathlib.Path("/tmp") / f"tdi-obs2-{os.getpid()}"
    d = ControlDaemon(work, extra_toml="")
    d.config.write_text(d.config.read_text().replace('role = "active"', 'role = "standby"'))
    try:
        d.start()
        assert grpc_probe.health(d.api) == "NOT_SERVING"
        assert grpc_probe.health(d.api, "tandem.control.v1.Control") == "NOT_SERVING"
        line = [x for x in d.log().splitlines() if "serving node" in x][0]
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z notice tandem-control: serving", line), line
    finally:
        d.close()
        subprocess.run(["rm", "-rf", str(work)])


def metric_names_in(text):
    """Metric names in PromQL expressions (words starting tandem_ or process_)."""
    return set(re.findall(r"\b((?:tandem|process)_[a-z_]+)", text))


def test_metrics_operators_graph(meeting, control):
    d = control
    join_members(d, meeting.members, 4)
    run_flows(meeting.bed, member_flows(meeting.members, 4, count=100, rate=100.0))
    time.sleep(0.3)  # the switch's port statistics refresh every 100 ms
    text = d.metrics()
    samples = check_exposition(text)  # promtool check metrics, and the text parser
    m = {}
    for (name, labels), v in samples.items():
        m.setdefault(name, []).append((dict(labels), v))

    build = m["tandem_build_info"]
    assert len(build) == 1 and build[0][1] == 1
    labels = build[0][0]
    assert labels["version"] and re.fullmatch(r"[0-9a-f]{12}(-dirty)?", labels["commit"]), labels
    # The wire format the binary says it speaks (mirror/wire.h's kWireVersion).
    version = subprocess.run([str(control_binary()), "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    assert labels["wire_version"] == re.search(r"wire format (\d+)", version).group(1), version
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_open_fds",
                 "tandem_switch_cpu_seconds_total", "tandem_switch_resident_memory_bytes"):
        assert m[name] and m[name][0][1] > 0, name
    port = {(lb["port"], lb["direction"]): v for lb, v in m["tandem_port_bytes_total"]}
    # 3 senders x 100 packets of 200+ bytes in, twice as many copies out.
    assert port[("access", "rx")] > 3 * 100 * 200 and port[("access", "tx")] > 6 * 100 * 200, port
    assert [v for lb, v in m["tandem_port_rx_nombuf_total"]] == [0]
    busy = [v for lb, v in m["tandem_worker_busy_seconds_total"]]
    assert busy and busy[0] > 0, busy
    # The latency histogram: one observation per forwarded packet, cumulative buckets.
    buckets = sorted((float(lb["le"]), v) for lb, v in m["tandem_switch_latency_seconds_bucket"])
    count = m["tandem_switch_latency_seconds_count"][0][1]
    assert count >= 300, count
    assert buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    assert 0 < m["tandem_switch_latency_seconds_sum"][0][1] < count * 0.1

    # Every metric the shipped dashboard and alert rules use is one the node
    # serves (the pair's: test_pair_roles_health_notify_and_metrics).
    served = set(m) | {n.rsplit("_bucket", 1)[0] for n in m}
    missing = {n for n in dashboard_and_alert_metrics() if not n.startswith("tandem_pair_")}
    missing -= served
    assert not missing, f"named by the dashboard or the alerts but not served: {missing}"


def dashboard_and_alert_metrics():
    dashboard = json.loads((REPO / "dist" / "grafana" / "tandem.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    rules = (REPO / "dist" / "prometheus" / "tandem-alerts.yml").read_text()
    return metric_names_in(exprs) | metric_names_in(rules)


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.05)


def test_pair_roles_health_notify_and_metrics():
    """A switchover as a load balancer, a notify script, the journal and a
    dashboard see it: health follows the active node, each node's notify
    command runs with its new role, the role change is logged at notice, and
    every tandem_pair_* metric the dashboard and alerts name is served."""
    bed = PairBed(participants=1)
    try:
        records = {}
        for n in bed.nodes():
            records[n.name] = n.workdir / "notify.log"
            script = n.workdir / "notify.sh"
            script.write_text(f"#!/bin/sh\necho \"$@ prev=$TANDEM_PREVIOUS_ROLE\" "
                              f">> {records[n.name]}\n")
            script.chmod(0o755)
            with open(n.control.config, "a") as f:
                f.write(f'\n[notify]\ncommand = "{script}"\n')
        bed.start()
        a, b = bed.a, bed.b
        assert grpc_probe.health(a.control.api) == "SERVING"
        assert grpc_probe.health(b.control.api) == "NOT_SERVING"

        samples = check_exposition(a.metrics())
        served = {name for name, _ in samples} | {name.rsplit("_bucket", 1)[0]
                                                  for name, _ in samples}
        named = {n for n in dashboard_and_alert_metrics() if n.startswith("tandem_pair_")}
        assert named and not named - served, f"not served by a pair: {named - served}"

        epoch = int(a.status()["epoch"])
        a.ctl("pair", "switchover", timeout=60)
        bed.wait_role(b, "active", timeout=10)
        bed.wait_role(a, "standby", timeout=10)
        # The observer looks every 20 ms; a busy machine gets 5 s.
        wait_for("health did not follow the roles",
                 lambda: (grpc_probe.health(b.control.api), grpc_probe.health(a.control.api))
                 == ("SERVING", "NOT_SERVING"), 5)
        new_epoch = int(b.status()["epoch"])
        assert new_epoch > epoch
        # Each node starts standby; A takes the active role when it finds no
        # active peer, then hands it to B.
        want = {"na": [r"standby na \d+ prev=", f"active na {epoch} prev=standby",
                       f"standby na {new_epoch} prev=active"],
                "nb": [r"standby nb \d+ prev=", f"active nb {new_epoch} prev=standby"]}
        wait_for(lambda: repr({n: r.read_text() for n, r in records.items()}),
                 lambda: all(len(records[n].read_text().splitlines()) == len(want[n])
                             for n in want), 5)
        for n, lines in want.items():
            got = records[n].read_text().splitlines()
            assert all(re.fullmatch(w, g) for w, g in zip(lines, got)), (n, got)
        assert re.search(r"notice tandem-control: role change: standby -> active, epoch \d+ -> "
                         rf"{new_epoch}", b.control.log()), b.control.log()
    finally:
        bed.close()


def test_switch_tells_systemd_it_forwards_and_feeds_the_watchdog(testbed):
    """tandem-switch@.service is Type=notify with WatchdogSec: READY=1 once
    the ports are up and the workers forward, WATCHDOG=1 from the main loop
    (every WATCHDOG_USEC/4 while the workers' heartbeats are fresh),
    STOPPING=1 on the way out."""
    from helpers.switch import Switch
    work = testbed.tmpdir("notify", root="/tmp")
    notify = NotifySocket(work / "notify.sock")
    sw = Switch(testbed, testbed.add_node("node"))
    try:
        sw.wrapper = ["env", f"NOTIFY_SOCKET={notify.path}", "WATCHDOG_USEC=400000"]
        sw.start()
        msgs = notify.drain(1.5)
        ready = [m for m in msgs if "READY=1" in m]
        assert ready and "STATUS=forwarding: node a, 1 worker(s)" in ready[0], msgs
        pings = [m for m in msgs if m == "WATCHDOG=1"]
        assert len(pings) >= 3, msgs
        sw.stop()
        assert any("STOPPING=1" in m for m in notify.drain(0.5)), notify.messages
    finally:
        sw.close()
        notify.close()


def _switch_tasks(pid):
    """The switch's threads (tid -> name), found under the wrapper if any."""
    for _ in range(3):
        if pathlib.Path(f"/proc/{pid}/exe").resolve().name == "tandem-switch":
            break
        kids = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pid = int(kids[0])
    tasks = pathlib.Path(f"/proc/{pid}/task")
    return {int(t.name): (t / "comm").read_text().strip() for t in tasks.iterdir()}


class ThreadStop:
    """Stops one thread of a process, not the others: SIGSTOP to a thread
    stops its whole process, ptrace's SEIZE and INTERRUPT only that thread.
    If the test dies, the kernel detaches it (and the thread runs on)."""
    SEIZE, INTERRUPT, DETACH = 0x4206, 0x4207, 17

    def __init__(self, tid):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.tid = tid
        for req in (self.SEIZE, self.INTERRUPT):
            assert self.libc.ptrace(req, tid, None, None) == 0, os.strerror(ctypes.get_errno())
        os.waitpid(tid, 0x40000000)  # __WALL: the thread is stopped

    def resume(self):
        if self.tid is not None:
            self.libc.ptrace(self.DETACH, self.tid, None, None)
            self.tid = None


def test_a_stalled_worker_stops_feeding_the_watchdog(testbed):
    """WatchdogSec is fed only while the workers are healthy: a worker thread
    stopped (by ptrace, the others running on) starves systemd's watchdog, which would
    restart the unit; once it runs again the main loop feeds it again."""
    from helpers.switch import Switch
    work = testbed.tmpdir("stall", root="/tmp")
    notify = NotifySocket(work / "notify.sock")
    sw = Switch(testbed, testbed.add_node("node"))
    worker = None
    try:
        sw.wrapper = ["env", f"NOTIFY_SOCKET={notify.path}", "WATCHDOG_USEC=400000"]
        sw.start()
        notify.drain(1.0)
        assert notify.messages.count("WATCHDOG=1") >= 3, notify.messages
        tasks = _switch_tasks(sw.pid)
        workers = [t for t, name in tasks.items() if "worker" in name]
        assert len(workers) == 1, tasks
        worker = ThreadStop(workers[0])
        deadline = time.monotonic() + 5
        while "a worker stalled" not in sw.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        notify.drain(0.3)  # a ping already on its way
        seen = len(notify.messages)
        # Two watchdog periods (0.8 s) without a ping: systemd would restart it.
        notify.drain(0.8)
        assert "WATCHDOG=1" not in notify.messages[seen:], notify.messages[seen:]
        assert "the watchdog is no longer fed" in sw.log_text(), sw.log_text()
        assert sw.alive()
        worker.resume()
        seen = len(notify.messages)
        notify.drain(1.0)
        assert notify.messages[seen:].count("WATCHDOG=1") >= 3, notify.messages[seen:]
        assert "every worker runs again" in sw.log_text(), sw.log_text()
    finally:
        if worker is not None:
            worker.resume()
        sw.close()
        notify.close()
