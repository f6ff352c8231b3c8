"""A real etcd cluster in namespaces of a Testbed, for the fleet's tests.

    cluster = EtcdCluster(bed, members=3)   # e0, e1, e2 on the bridge, started
    cluster.endpoints                        # "198.18.0.30:2379,198.18.0.31:2379,..."
    cluster.kill(i)                          # kill -9 of member i
    cluster.start(i)                         # starts it again on its data dir
    cluster.leader()                         # index of the leader member

Members keep their data on tmpfs (the Testbed's tmpdir), so that fsync costs
what it costs on a fast disk, and everything goes with the Testbed.
"""
import json
import shutil
import subprocess
import time

from .paths import PYTHON

CLIENT_PORT = 2379
PEER_PORT = 2380
FIRST_INDEX = 20  # member i is participant index 20 + i: 198.18.0.(30 + i)


def etcd_binary():
    return shutil.which("etcd") or "/usr/bin/etcd"


def etcdctl_binary():
    return shutil.which("etcdctl") or "/usr/bin/etcdctl"


class EtcdCluster:
    def __init__(self, bed, members=3, client=None):
        self.bed = bed
        self.hosts = [bed.add_participant(f"e{i}", FIRST_INDEX + i) for i in range(members)]
        # Where etcdctl runs (any namespace on the bridge).
        self.client = client or bed.add_participant("ec", FIRST_INDEX + members)
        self.data = [bed.tmpdir(f"etcd{i}") for i in range(members)]
        self.logs = [bed.tmpdir(f"etcdlog{i}", root="/tmp") / "etcd.log" for i in range(members)]
        self.procs = [None] * members
        self.token = f"{bed.prefix}-etcd"
        self.initial_cluster = ",".join(
            f"e{i}=http://{h.ip4}:{PEER_PORT}" for i, h in enumerate(self.hosts))
        for i in range(members):
            self.start(i, wait=False)
        self.wait_healthy(list(range(members)))

    @property
    def endpoints(self):
        return ",".join(self.endpoint(i) for i in range(len(self.hosts)))

    def endpoint(self, i):
        return f"{self.hosts[i].ip4}:{CLIENT_PORT}"

    def start(self, i, wait=True):
        h = self.hosts[i]
        argv = [etcd_binary(), "--name", f"e{i}", "--data-dir", self.data[i],
                "--listen-client-urls", f"http://{h.ip4}:{CLIENT_PORT}",
                "--advertise-client-urls", f"http://{h.ip4}:{CLIENT_PORT}",
                "--listen-peer-urls", f"http://{h.ip4}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{h.ip4}:{PEER_PORT}",
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-state", "new", "--initial-cluster-token", self.token]
        log = open(self.logs[i], "ab")
        self.procs[i] = self.bed.popen(h, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_healthy([i])

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        self.procs[i] = None

    def ctl(self, *args, endpoints=None, check=True, timeout=20):
        return self.bed.run_in(self.client, [etcdctl_binary(), "--endpoints",
                                             endpoints or self.endpoints, *args],
                               check=check, timeout=timeout)

    def ctl_popen(self, *args):
        """etcdctl ARGS running (e.g. watch), its stdout a text pipe; killed
        with the Testbed."""
        return self.bed.popen(self.client, [etcdctl_binary(), "--endpoints", self.endpoints,
                                            *args], stdout=subprocess.PIPE, text=True, bufsize=1)

    def wait_healthy(self, members, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            eps = ",".join(self.endpoint(i) for i in members)
            r = self.ctl("endpoint", "health", endpoints=eps, check=False)
            if r.returncode == 0:
                return
            for i in members:
                p = self.procs[i]
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"etcd e{i} exited {p.returncode}: "
                                       f"{self.logs[i].read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd members {members} not healthy: {r.stderr.strip()}")
            time.sleep(0.2)

    def leader(self):
        r = self.ctl("endpoint", "status", "-w", "json")
        for i, st in enumerate(json.loads(r.stdout)):
            if st["Status"]["leader"] == st["Status"]["header"]["member_id"]:
                return i
        raise RuntimeError("no etcd leader")

    def count(self, prefix):
        # RangeResponse.count is the whole range's, whatever the limit.
        r = self.ctl("get", prefix, "--prefix", "--keys-only", "--limit", "1", "-w", "json")
        return int(json.loads(r.stdout).get("count", 0))

    def metric(self, i, name):
        """The sum of a Prometheus counter of member i (its /metrics page)."""
        r = self.bed.run_in(self.client, [PYTHON, "-c",
                            "import urllib.request,sys;"
                            f"print(urllib.request.urlopen('http://{self.endpoint(i)}/metrics',"
                            "timeout=5).read().decode())"])
        total = 0.0
        for line in r.stdout.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

