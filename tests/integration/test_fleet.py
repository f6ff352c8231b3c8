"""The fleet's directory on a real three-member etcd cluster in namespaces
(issue 18, first stage): pairs registered under leases, 10,000 meetings placed
by two concurrent placers, a drained pair, an etcd member lost, the quorum
lost and back. Registrations of many pairs come from tandem-fleet-tool (the
same fleet::Registration tandem-control runs: the placement tests need pairs'
capacities and roles set at will); real tandem-control daemons with [fleet]
register themselves, and a meeting application on FleetClient (tandem_client)
reaches the active node of its meeting's pair."""
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from helpers import netns  # noqa: E402
from control_helpers.pki import Pki  # noqa: E402
from helpers.etcd import EtcdCluster, etcd_binary, etcdctl_binary  # noqa: E402
from helpers.fleet import fleet_ctl as ctl, fleet_daemon, tandemctl, wait_registered  # noqa: E402
from helpers.paths import build_dir  # noqa: E402

import pytest  # noqa: E402

PREFIX = "/tandem/fleet/"


def tool():
    return build_dir() / "tests" / "tools" / "tandem-fleet-tool"


class Registrar:
    """tandem-fleet-tool register: two nodes per pair under leases, fed on stdin."""

    def __init__(self, bed, host, endpoints, pairs, ttl=6):
        argv = [tool(), "register", "--etcd", endpoints, "--ttl", ttl,
                *[f"{p}={free}" for p, free in pairs.items()]]
        self.proc = bed.popen(host, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"fleet tool: {line!r} {self.proc.stderr.read()}")

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = [self.proc.stdout.readline().strip()]
        if line == "status":
            while out[-1] != "ok" and not out[-1].startswith("error"):
                out.append(self.proc.stdout.readline().strip())
            assert out[-1] == "ok", out
            return [json.loads(x) for x in out[:-1]]
        assert out == ["ok"], out
        return out

    def leave(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def place(bed, host, endpoints, first, count, threads=2, reverse=False, out=None, timeout=300):
    argv = [tool(), "place", "--etcd", endpoints, "--from", first, "--count", count,
            "--threads", threads]
    if reverse:
        argv.append("--reverse")
    if out:
        argv += ["--out", out]
    r = bed.run_in(host, argv, check=False, timeout=timeout)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    return summary


def read_placements(path):
    return dict(line.split() for line in path.read_text().splitlines())


def fleet_list(bed, host, endpoints):
    return json.loads(ctl(bed, host, endpoints, "fleet", "list").stdout)


@pytest.fixture
def fleet():
    bed = netns.Testbed()
    try:
        cluster = EtcdCluster(bed, members=3)
        yield bed, cluster
    finally:
        bed.close()


def test_ten_thousand_placements_agree_spread_and_respect_drain(fleet):
    bed, etcd = fleet
    client = etcd.client
    free = {"pair-1": 1000, "pair-2": 2000, "pair-3": 3000, "pair-4": 4000}
    Registrar(bed, client, etcd.endpoints, free)
    listed = fleet_list(bed, client, etcd.endpoints)
    assert [p["pair_id"] for p in listed["pairs"]] == list(free)
    assert all(p["state"] == "room" and p["active"] == "a" for p in listed["pairs"])

    # Two placers, each with two threads, place the same 10,000 meetings at
    # once, in opposite orders: each meeting is written once and both get the
    # same answers.
    out = bed.tmpdir("placements")
    argv = lambda o, rev: [tool(), "place", "--etcd", etcd.endpoints, "--from", 0,  # noqa: E731
                           "--count", 10000, "--threads", 2, "--out", out / o] + (
                               ["--reverse"] if rev else [])
    started = time.monotonic()
    pa = bed.popen(client, argv("a.txt", False), stdout=subprocess.PIPE, text=True)
    pb = bed.popen(client, argv("b.txt", True), stdout=subprocess.PIPE, text=True)
    sa, sb = (json.loads(p.communicate(timeout=600)[0].strip()) for p in (pa, pb))
    took = time.monotonic() - started
    print(f"placer a: {sa}\nplacer b: {sb}\n10,000 meetings by two placers in {took:.1f} s")
    assert sa["errors"] == 0 and sb["errors"] == 0, (sa, sb)
    assert sa["placed_now"] + sb["placed_now"] == 10000
    a, b = read_placements(out / "a.txt"), read_placements(out / "b.txt")
    assert len(a) == 10000 and a == b
    assert etcd.count(PREFIX + "meetings/") == 10000

    # Spread: within 10 % of each pair's share of the free legs.
    counts = collections.Counter(a.values())
    total = sum(free.values())
    for pair, f in free.items():
        want = 10000 * f / total
        assert abs(counts[pair] - want) <= 0.10 * want, (pair, counts[pair], want)

    # Drained: pair-4 (the largest) takes nothing new; its meetings stay.
    ctl(bed, client, etcd.endpoints, "fleet", "drain", "pair-4", "--reason", "maintenance")
    listed = {p["pair_id"]: p for p in fleet_list(bed, client, etcd.endpoints)["pairs"]}
    assert listed["pair-4"]["state"] == "drained" and listed["pair-4"]["weight_share"] == 0
    assert listed["pair-4"]["drain"]["reason"] == "maintenance"
    s = place(bed, client, etcd.endpoints, 10000, 2000, out=out / "new.txt")
    assert s["errors"] == 0 and s["placed_now"] == 2000, s
    new = read_placements(out / "new.txt")
    assert "pair-4" not in set(new.values())
    assert set(new.values()) == {"pair-1", "pair-2", "pair-3"}
    s = place(bed, client, etcd.endpoints, 0, 2000, out=out / "again.txt")
    assert s["placed_now"] == 0 and read_placements(out / "again.txt") == {
        m: p for m, p in a.items() if int(m[2:]) < 2000}

    # Undrained, it takes its share again.
    ctl(bed, client, etcd.endpoints, "fleet", "drain", "pair-4", "--undo")
    s = place(bed, client, etcd.endpoints, 20000, 500, out=out / "undrained.txt")
    assert "pair-4" in set(read_placements(out / "undrained.txt").values())

    # tandemctl fleet place answers what the placers wrote.
    r = json.loads(ctl(bed, client, etcd.endpoints, "fleet", "place", "m-42").stdout)
    assert r == {"meeting_id": "m-42", "pair_id": a["m-42"], "placed_now": False,
                 "active_api": f"unix:/run/tandem/{a['m-42']}-a.sock"}


def test_member_lost_then_quorum_lost_then_back(fleet):
    bed, etcd = fleet
    client = etcd.client
    Registrar(bed, client, etcd.endpoints, {"pair-1": 3000, "pair-2": 3000, "pair-3": 3000})
    assert place(bed, client, etcd.endpoints, 0, 200)["errors"] == 0

    # One member (the leader) killed: placement goes on.
    etcd.kill(etcd.leader())
    s = place(bed, client, etcd.endpoints, 200, 500)
    assert s["errors"] == 0 and s["placed_now"] == 500, s
    listed = fleet_list(bed, client, etcd.endpoints)
    assert [p["state"] for p in listed["pairs"]] == ["room"] * 3

    # The quorum killed: placement fails clearly, within its timeout.
    alive = [i for i, p in enumerate(etcd.procs) if p is not None]
    etcd.kill(alive[0])
    started = time.monotonic()
    r = ctl(bed, client, etcd.endpoints, "fleet", "place", "m-quorum", "--etcd-timeout", "3",
            check=False)
    took = time.monotonic() - started
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "UNAVAILABLE: etcd unreachable" in r.stderr, r.stderr
    for i in range(3):
        assert etcd.endpoint(i) in r.stderr
    assert 3 <= took < 3 + 1 + 2, took  # retry_timeout, one call timeout, process start
    # A meeting placed before cannot be looked up either (reads need the quorum).
    r = ctl(bed, client, etcd.endpoints, "fleet", "place", "m-1", "--etcd-timeout", "2",
            check=False)
    assert r.returncode == 3 and "etcd unreachable" in r.stderr

    # The members back: placement works again and every pair is registered.
    for i in range(3):
        if etcd.procs[i] is None:
            etcd.start(i, wait=False)
    etcd.wait_healthy([0, 1, 2])
    r = ctl(bed, client, etcd.endpoints, "fleet", "place", "m-after")
    assert json.loads(r.stdout)["pair_id"] in {"pair-1", "pair-2", "pair-3"}
    deadline = time.monotonic() + 15
    while True:
        listed = fleet_list(bed, client, etcd.endpoints)
        if [p["active"] for p in listed["pairs"]] == ["a"] * 3:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    assert etcd.count(PREFIX + "meetings/") == 700 + 1


def test_registration_follows_its_node_and_its_lease(fleet):
    bed, etcd = fleet
    client = etcd.client
    reg = Registrar(bed, client, etcd.endpoints, {"pair-1": 5000, "pair-2": 5000}, ttl=3)
    show = lambda: json.loads(ctl(bed, client, etcd.endpoints, "fleet", "show", "pair-1").stdout)  # noqa: E731

    # A load change is written within the refresh (1 s).
    reg.send("load pair-1 9500")
    deadline = time.monotonic() + 3
    while show()["nodes"][0]["load"].get("legs") != "9500":
        assert time.monotonic() < deadline, show()
        time.sleep(0.1)

    # A takeover: new meetings' answers name the new active node.
    reg.send("role pair-1 b active 2")
    reg.send("role pair-1 a standby 2")
    deadline = time.monotonic() + 3
    while [(n["role"], n["epoch"]) for n in show()["nodes"]] != [("standby", "2"), ("active", "2")]:
        assert time.monotonic() < deadline, show()
        time.sleep(0.1)
    assert show()["active"] == "b"
    r = json.loads(ctl(bed, client, etcd.endpoints, "fleet", "place", "m-b").stdout)
    if r["pair_id"] == "pair-1":
        assert r["active_api"] == "unix:/run/tandem/pair-1-b.sock"

    # At rest, no record is written again: only the leases are renewed.
    before = {s["node"]: s for s in reg.send("status")}
    time.sleep(2.5)
    after = {s["node"]: s for s in reg.send("status")}
    for node, s in after.items():
        assert s["writes"] == before[node]["writes"], (node, before[node], s)
        assert s["keepalives"] > before[node]["keepalives"]
        assert s["registered"]

    # Killed: the records stay until the lease expires (TTL 3 s, renewed every
    # second), then go (plus etcd's 500 ms expiry tick, and slack for a busy
    # machine).
    reg.kill()
    killed = time.monotonic()
    assert etcd.count(PREFIX + "pairs/") == 4
    while etcd.count(PREFIX + "pairs/") > 0:
        assert time.monotonic() - killed < 3 + 0.5 + 2.5
        time.sleep(0.1)

    # A clean stop revokes the lease: the records go at once.
    reg = Registrar(bed, client, etcd.endpoints, {"pair-3": 100}, ttl=6)
    assert etcd.count(PREFIX + "pairs/") == 2
    reg.leave()
    assert etcd.count(PREFIX + "pairs/") == 0


class App:
    """tandem-fleet-tool client: a meeting application on FleetClient."""

    def __init__(self, bed, host, endpoints):
        self.proc = bed.popen(host, [tool(), "client", "--etcd", endpoints],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())


def test_client_library_reaches_the_active_node_of_the_meetings_pair(fleet):
    bed, etcd = fleet
    client = etcd.client
    # pair-1: two control daemons (no switch: media is not the point here)
    # that register themselves, node a active, node b standby.
    nodes = {name: fleet_daemon(bed, client, etcd.endpoints, name, "pair-1", dc, role)
             for name, dc, role in (("a", "dc1", "active"), ("b", "dc2", "standby"))}
    try:
        for d in nodes.values():
            d.start()
        wait_registered(bed, client, etcd.endpoints, "pair-1", 2)
        app = App(bed, client, etcd.endpoints)
        r = app.send("place conf-1")
        assert (r["pair_id"], r["active_api"]) == ("pair-1", nodes["a"].api), r
        r = app.send("site conf-1 acme")
        assert r.get("answered_by") == nodes["a"].api, r
        assert nodes["a"].ctl("site", "list")["sites"][0]["name"] == "acme"

        # A takeover: a goes, b comes back as the active node; the same
        # application's next call for the meeting follows it.
        nodes["a"].kill9()
        nodes["b"].stop()
        nodes["b"].config.write_text(
            nodes["b"].config.read_text().replace('role = "standby"', 'role = "active"'))
        nodes["b"].start()
        r = app.send("site conf-1 globex")
        assert r.get("answered_by") == nodes["b"].api, r
        assert [s["name"] for s in nodes["b"].ctl("site", "list")["sites"]] == ["globex"]

        # An unknown meeting has no pair to call.
        assert "is not placed" in app.send("site conf-404 x")["error"]
    finally:
        for d in nodes.values():
            d.close()


def test_daemon_registers_refreshes_and_withdraws_its_node(fleet):
    bed, etcd = fleet
    client = etcd.client
    show = lambda: json.loads(ctl(bed, client, etcd.endpoints, "fleet", "show", "pair-1").stdout)  # noqa: E731

    # An unknown [fleet] key is an error, as in every other table.
    bad = fleet_daemon(bed, client, etcd.endpoints, "x", "pair-1", "dc1", extra='ttl = 3\n')
    r = bed.run_in(client, [build_dir() / "control" / "tandem-control", "--config", bad.config,
                            "--check-config"], check=False)
    assert r.returncode == 2 and "fleet.ttl" in r.stderr, r.stderr

    nodes = {"a": fleet_daemon(bed, client, etcd.endpoints, "a", "pair-1", "dc1"),
             "b": fleet_daemon(bed, client, etcd.endpoints, "b", "pair-1", "dc2", role="standby")}
    try:
        for d in nodes.values():
            d.start()
        s = wait_registered(bed, client, etcd.endpoints, "pair-1", 2)
        assert [(n["node_id"], n["data_center"], n["api"], n["role"]) for n in s["nodes"]] == [
            ("a", "dc1", nodes["a"].api, "active"), ("b", "dc2", nodes["b"].api, "standby")], s
        assert s["active"] == "a"
        assert s["nodes"][0]["capacity"] == {"legs": "4096", "meetings": "256"}
        assert s["nodes"][0]["vips"] == ["198.18.0.100", "2001:db8:1::100"]

        # A meeting started on a shows in its load within about a second.
        site = nodes["a"].ctl("site", "create", "--name", "acme")
        m = nodes["a"].ctl("meeting", "schedule", "--site", site["site_id"], "--title", "t")
        nodes["a"].ctl("meeting", "start", m["meeting_id"])
        started = time.monotonic()
        while show()["nodes"][0].get("load", {}).get("meetings") != "1":
            assert time.monotonic() - started < 1 + 2, show()
            time.sleep(0.1)

        # Drained before a stop: the pair takes no new meeting (it is the only
        # one: placement fails clearly), its live meeting goes on and ends there
        # normally, and `fleet show` counts it down to 0.
        ctl(bed, client, etcd.endpoints, "fleet", "drain", "pair-1", "--reason", "upgrade")
        s = show()
        assert (s["state"], s["drained"], s["live_meetings"]) == ("drained", True, 1), s
        text = bed.run_in(client, [tandemctl(), "fleet", "show", "pair-1", "--etcd",
                                   etcd.endpoints]).stdout
        assert "drained:  upgrade; 1 live meeting(s) on its active node\n" in text, text
        r = ctl(bed, client, etcd.endpoints, "fleet", "place", "m-after-drain", check=False)
        assert r.returncode == 1 and "RESOURCE_EXHAUSTED" in r.stderr, (r.returncode, r.stderr)
        assert "drained" in r.stderr, r.stderr
        assert nodes["a"].ctl("meeting", "get", m["meeting_id"])["state"] == "live"
        nodes["a"].ctl("meeting", "end", m["meeting_id"])
        ended = time.monotonic()
        while show()["live_meetings"] != 0:
            assert time.monotonic() - ended < 1 + 2, show()
            time.sleep(0.1)
        text = bed.run_in(client, [tandemctl(), "fleet", "show", "pair-1", "--etcd",
                                   etcd.endpoints]).stdout
        assert "0 live meeting(s) on its active node: it may be stopped" in text, text

        # A clean stop withdraws the record at once (the lease is revoked).
        nodes["b"].stop()
        assert [n["node_id"] for n in show()["nodes"]] == ["a"]

        # kill -9: the record stays until the lease (3 s) expires, then goes
        # (plus etcd's 500 ms expiry tick and slack for a busy machine).
        nodes["a"].kill9()
        killed = time.monotonic()
        assert etcd.count(PREFIX + "pairs/") == 1
        while etcd.count(PREFIX + "pairs/") > 0:
            assert time.monotonic() - killed < 3 + 0.5 + 2.5
            time.sleep(0.1)
        assert time.monotonic() - killed > 3 - 1.5  # not before the lease could expire
    finally:
        for d in nodes.values():
            d.close()


def test_daemon_registers_over_tls_with_a_client_certificate():
    """etcd with TLS and --client-cert-auth: [fleet] tls_ca, tls_cert, tls_key."""
    bed = netns.Testbed()
    try:
        host = bed.add_participant("et", 20)
        pki = Pki(bed.tmpdir("pki"))
        pki.ca("ca")
        pki.leaf("etcd", "ca", f"subjectAltName = IP:{host.ip4}\n"
                               "extendedKeyUsage = serverAuth, clientAuth\n")
        pki.leaf("node", "ca", "extendedKeyUsage = clientAuth\n")
        url = f"https://{host.ip4}:2379"
        log = open(bed.tmpdir("etcdlog") / "etcd.log", "wb")
        bed.popen(host, [etcd_binary(), "--data-dir", bed.tmpdir("etcd"),
                         "--listen-client-urls", url, "--advertise-client-urls", url,
                         "--listen-peer-urls", f"http://{host.ip4}:2380",
                         "--initial-advertise-peer-urls", f"http://{host.ip4}:2380",
                         "--initial-cluster", f"default=http://{host.ip4}:2380",
                         "--cert-file", pki.etcd_crt, "--key-file", pki.etcd_key,
                         "--trusted-ca-file", pki.ca_crt, "--client-cert-auth"],
                  stdout=log, stderr=subprocess.STDOUT)
        log.close()
        etcdctl = [etcdctl_binary(), "--endpoints", url, "--cacert", pki.ca_crt,
                   "--cert", pki.node_crt, "--key", pki.node_key]
        deadline = time.monotonic() + 20
        while bed.run_in(host, [*etcdctl, "endpoint", "health"], check=False).returncode != 0:
            assert time.monotonic() < deadline, "etcd with TLS not healthy"
            time.sleep(0.2)

        tls = f'tls_ca = "{pki.ca_crt}"\ntls_cert = "{pki.node_crt}"\ntls_key = "{pki.node_key}"\n'
        d = fleet_daemon(bed, host, url, "a", "pair-9", "dc1", extra=tls)
        # The CA without the client certificate: etcd refuses the handshake,
        # the daemon serves on and says why it is not registered.
        plain = fleet_daemon(bed, host, url, "b", "pair-9", "dc1", extra=f'tls_ca = "{pki.ca_crt}"\n')
        try:
            d.start()
            plain.start()
            deadline = time.monotonic() + 5
            key = PREFIX + "pairs/pair-9/"
            while True:
                r = bed.run_in(host, [*etcdctl, "get", key, "--prefix", "--keys-only"])
                if r.stdout.split() == [key + "a"]:
                    break
                assert time.monotonic() < deadline, r.stdout
                time.sleep(0.1)
            deadline = time.monotonic() + 5
            while "fleet: not registered" not in plain.log():
                assert time.monotonic() < deadline, plain.log()
                time.sleep(0.1)
            assert bed.run_in(host, [*etcdctl, "get", key + "b"]).stdout == ""

            # tandemctl fleet with the same files reads the directory; without
            # the client certificate etcd refuses it, and a file it cannot
            # read is named.
            tls_args = ["--etcd-ca", pki.ca_crt, "--etcd-cert", pki.node_crt,
                        "--etcd-key", pki.node_key]
            s = json.loads(ctl(bed, host, url, "fleet", "show", "pair-9", *tls_args).stdout)
            assert [n["node_id"] for n in s["nodes"]] == ["a"], s
            r = ctl(bed, host, url, "fleet", "show", "pair-9", "--etcd-ca", pki.ca_crt,
                    "--etcd-timeout", "1", check=False)
            assert r.returncode == 3 and "etcd unreachable" in r.stderr, (r.returncode, r.stderr)
            r = ctl(bed, host, url, "fleet", "list", "--etcd-ca", "/nonexistent/ca.crt",
                    check=False)
            assert r.returncode == 2 and "--etcd-ca: cannot read /nonexistent/ca.crt" in r.stderr, (
                r.returncode, r.stderr)
        finally:
            d.close()
            plain.close()
    finally:
        bed.close()
