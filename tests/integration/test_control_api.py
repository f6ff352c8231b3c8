"""The control API against the real tandem-control process, driven through
tandemctl --json as an operator or a script would: every call, every typed
error, the watch stream, metrics, durability across kill -9 and adoption of
live legs by a restarted daemon. No network namespaces are needed: the API is
a Unix socket and the tables are files in a temp dir."""
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.metrics import check_exposition, value  # noqa: E402
from control_helpers.control import ControlDaemon, CtlError, ctl_binary  # noqa: E402



@pytest.fixture
def daemon():
    workdir = tempfile.mkdtemp(prefix="tandem-ctl-", dir="/dev/shm")
    d = ControlDaemon(workdir)
    try:
        d.start()
        yield d
    finally:
        d.close()
        shutil.rmtree(workdir, ignore_errors=True)


def error_of(d, *args):
    with pytest.raises(CtlError) as e:
        d.ctl(*args)
    assert e.value.rc == 1, e.value
    return e.value


def live_meeting(d, site_name="acme", **site_opts):
    opts = [x for k, v in site_opts.items() for x in (f"--{k.replace('_', '-')}", v)]
    site = d.ctl("site", "create", "--name", site_name, *opts)
    m = d.ctl("meeting", "schedule", "--site", site["site_id"], "--title", "standup")
    d.ctl("meeting", "start", m["meeting_id"])
    return site["site_id"], m["meeting_id"]


def join(d, meeting, *legs, name="p", role=None):
    args = ["participant", "join", "--meeting", meeting, "--name", name]
    if role:
        args += ["--role", role]
    for leg in legs:
        args += ["--leg", leg]
    return d.ctl(*args)["participants"][0]


# ---------------------------------------------------------------- sites

def test_site_create_get_list_update_delete(daemon):
    d = daemon
    s = d.ctl("site", "create", "--name", "acme", "--look", "color=blue", "--look", "logo=a.png",
              "--pref", "lang=en", "--max-participants", "50", "--leg-kbps", "2000")
    assert s["site_id"] >= 1
    assert s["look_and_feel"] == {"color": "blue", "logo": "a.png"}
    assert s["preferences"] == {"lang": "en"}
    assert s["policy"]["max_participants_per_meeting"] == 50
    assert s["policy"]["leg_kbps"] == 2000
    assert d.ctl("site", "get", s["site_id"]) == s
    d.ctl("site", "create", "--name", "beta", "--id", "77")
    assert [x["name"] for x in d.ctl("site", "list")["sites"]] == ["acme", "beta"]

    u = d.ctl("site", "update", s["site_id"], "--name", "acme-corp", "--look", "color=red",
              "--unset-look", "logo", "--max-legs", "9")
    assert u["name"] == "acme-corp"
    assert u["look_and_feel"] == {"color": "red"}
    assert u["policy"]["max_legs"] == 9
    assert u["policy"]["max_participants_per_meeting"] == 50  # kept
    assert u["updated_unix_ns"] >= s["updated_unix_ns"]

    d.ctl("site", "delete", "77")
    assert error_of(d, "site", "get", "77").code == "NOT_FOUND"
    assert [x["name"] for x in d.ctl("site", "list")["sites"]] == ["acme-corp"]


def test_site_errors(daemon):
    d = daemon
    d.ctl("site", "create", "--name", "acme", "--id", "5")
    e = error_of(d, "site", "create", "--name", "acme")
    assert e.code == "ALREADY_EXISTS" and "acme" in e.message
    assert error_of(d, "site", "create", "--name", "other", "--id", "5").code == "ALREADY_EXISTS"
    assert error_of(d, "site", "create").code == "INVALID_ARGUMENT"
    assert error_of(d, "site", "get", "6").code == "NOT_FOUND"
    assert error_of(d, "site", "update", "6", "--name", "x").code == "NOT_FOUND"
    assert error_of(d, "site", "delete", "6").code == "NOT_FOUND"
    m = d.ctl("meeting", "schedule", "--site", "5", "--title", "t")
    d.ctl("meeting", "start", m["meeting_id"])
    e = error_of(d, "site", "delete", "5")
    assert e.code == "FAILED_PRECONDITION" and "live meeting" in e.message


def test_site_size_limits(daemon):
    """Every object goes to the standby as one record, which must fit one
    backbone frame: a site is bounded (docs/control.md, Limits), and each
    refusal names the limit and changes nothing."""
    d = daemon
    e = error_of(d, "site", "create", "--name", "big", "--look", f"logo={'x' * 65537}")
    assert e.code == "INVALID_ARGUMENT" and "logo" in e.message and "65536" in e.message, e
    e = error_of(d, "site", "create", "--name", "big", "--pref", f"{'k' * 257}=v")
    assert e.code == "INVALID_ARGUMENT" and "limit is 256" in e.message, e
    many = [x for i in range(1025) for x in ("--pref", f"k{i}=v")]
    e = error_of(d, "site", "create", "--name", "big", *many)
    assert e.code == "INVALID_ARGUMENT" and "limit is 1024" in e.message, e
    assert d.ctl("site", "list")["sites"] == []
    # At each limit: accepted.
    edge = d.ctl("site", "create", "--name", "edge", "--look", f"logo={'x' * 65536}",
                 "--pref", f"{'k' * 256}=v", *many[:-4])
    assert len(edge["preferences"]) == 1024
    # Grown by updates, a site stops at 1 MiB in all.
    site = d.ctl("site", "create", "--name", "growing")
    grow = [x for i in range(15) for x in ("--look", f"a{i}={'y' * 65536}")]
    d.ctl("site", "update", site["site_id"], *grow)
    before = d.ctl("site", "get", site["site_id"])
    grow = [x for i in range(15) for x in ("--look", f"b{i}={'y' * 65536}")]
    e = error_of(d, "site", "update", site["site_id"], *grow)
    assert e.code == "INVALID_ARGUMENT" and "limit is 1048576" in e.message, e
    assert d.ctl("site", "get", site["site_id"]) == before


# ---------------------------------------------------------------- meetings

def test_meeting_lifecycle(daemon):
    d = daemon
    site = d.ctl("site", "create", "--name", "acme")["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "standup", "--start", "1900000000",
              "--duration", "30", "--presenter-only")
    assert m["state"] == "scheduled" and m["presenter_only"] and m["listed"]
    assert m["scheduled_start_unix"] == 1900000000 and m["duration_minutes"] == 30
    hidden = d.ctl("meeting", "schedule", "--site", site, "--title", "secret", "--unlisted")
    assert not hidden["listed"]
    assert [x["title"] for x in d.ctl("meeting", "list", "--site", site, "--listed")["meetings"]] == [
        "standup"]
    live = d.ctl("meeting", "start", m["meeting_id"])
    assert live["state"] == "live" and live["started_unix_ns"] > 0
    assert [x["meeting_id"] for x in d.ctl("meeting", "list", "--state", "live")["meetings"]] == [
        m["meeting_id"]]
    u = d.ctl("meeting", "update", m["meeting_id"], "--title", "daily", "--presenter-only", "false")
    assert u["title"] == "daily" and not u["presenter_only"] and u["state"] == "live"
    ended = d.ctl("meeting", "end", m["meeting_id"])
    assert ended["state"] == "ended" and ended["ended_unix_ns"] >= ended["started_unix_ns"]
    got = d.ctl("meeting", "get", m["meeting_id"])
    assert got["state"] == "ended" and got["title"] == "daily"
    # A scheduled meeting can be ended (cancelled) without starting.
    assert d.ctl("meeting", "end", hidden["meeting_id"])["state"] == "ended"
    assert len(d.ctl("meeting", "list", "--state", "ended")["meetings"]) == 2


def test_meeting_errors(daemon):
    d = daemon
    assert error_of(d, "meeting", "schedule", "--site", "9", "--title", "t").code == "NOT_FOUND"
    site = d.ctl("site", "create", "--name", "acme", "--max-meetings", "1")["site_id"]
    assert error_of(d, "meeting", "schedule", "--site", site).code == "INVALID_ARGUMENT"
    a = d.ctl("meeting", "schedule", "--site", site, "--title", "a", "--id", "10")
    assert error_of(d, "meeting", "schedule", "--site", site, "--title", "b",
                    "--id", "10").code == "ALREADY_EXISTS"
    b = d.ctl("meeting", "schedule", "--site", site, "--title", "b")
    for verb in ("start", "end", "get", "update"):
        assert error_of(d, "meeting", verb, "999").code == "NOT_FOUND", verb
    assert error_of(d, "meeting", "list", "--site", "999").code == "NOT_FOUND"
    d.ctl("meeting", "start", a["meeting_id"])
    e = error_of(d, "meeting", "start", a["meeting_id"])
    assert e.code == "FAILED_PRECONDITION" and "already live" in e.message
    e = error_of(d, "meeting", "start", b["meeting_id"])
    assert e.code == "RESOURCE_EXHAUSTED" and "at most 1 live meetings" in e.message
    d.ctl("meeting", "end", a["meeting_id"])
    assert error_of(d, "meeting", "start", a["meeting_id"]).code == "FAILED_PRECONDITION"
    assert error_of(d, "meeting", "end", a["meeting_id"]).code == "FAILED_PRECONDITION"
    assert error_of(d, "meeting", "update", a["meeting_id"], "--title", "x").code == \
        "FAILED_PRECONDITION"


# ---------------------------------------------------------------- participants

def test_join_list_role_mute_leave(daemon):
    d = daemon
    site, m = live_meeting(d)
    alice = join(d, m, "audio,198.18.0.10:5000", "video,198.18.0.10:5002", name="alice",
                 role="host")
    assert alice["role"] == "host" and alice["name"] == "alice"
    assert [leg["channel"] for leg in alice["legs"]] == ["audio", "video"]
    assert [leg["local"] for leg in alice["legs"]] == ["198.18.0.100:20000", "198.18.0.100:20001"]
    assert all(leg["send"] and leg["recv"] and not leg["muted"] for leg in alice["legs"])
    bob = join(d, m, "audio,[2001:db8:1::20]:6000,local=[2001:db8:1::100]:30000,recv-only",
               name="bob")
    assert bob["role"] == "attendee"
    assert bob["legs"][0]["local"] == "[2001:db8:1::100]:30000"
    assert not bob["legs"][0]["send"] and bob["legs"][0]["recv"]

    # Add a leg to a present participant.
    more = d.ctl("participant", "join", "--meeting", m, "--participant", alice["participant_id"],
                 "--leg", "share,198.18.0.10:5004")["participants"][0]
    assert more["participant_id"] == alice["participant_id"]
    assert [leg["channel"] for leg in more["legs"]] == ["share"]

    legs = d.ctl("show", "legs", "--meeting", m)["legs"]
    assert len(legs) == 4
    assert len(d.ctl("show", "legs", "--participant", alice["participant_id"])["legs"]) == 3
    parts = d.ctl("participant", "list", "--meeting", m)["participants"]
    assert [p["name"] for p in parts] == ["alice", "bob"]
    assert d.ctl("meeting", "get", m)["participants"] == 2
    assert d.ctl("meeting", "get", m)["legs"] == 4

    p = d.ctl("participant", "role", bob["participant_id"], "presenter")
    assert p["role"] == "presenter" and p["participant_id"] == bob["participant_id"]

    assert d.ctl("participant", "mute", alice["participant_id"])["legs_changed"] == 3
    legs = d.ctl("show", "legs", "--participant", alice["participant_id"])["legs"]
    assert all(leg["muted"] and not leg["send"] and leg["recv"] for leg in legs)
    assert d.ctl("participant", "list", "--meeting", m)["participants"][0]["muted"]
    d.ctl("participant", "unmute", "--leg", legs[0]["leg_id"])
    legs = d.ctl("show", "legs", "--participant", alice["participant_id"])["legs"]
    assert [leg["muted"] for leg in legs] == [False, True, True]

    # One leg leaves, then a whole participant.
    r = d.ctl("participant", "leave", "--leg", legs[2]["leg_id"])
    assert r == {"participants_left": 0, "legs_removed": 1}
    r = d.ctl("participant", "leave", bob["participant_id"])
    assert r == {"participants_left": 1, "legs_removed": 1}
    assert len(d.ctl("show", "legs")["legs"]) == 2
    assert [p["name"] for p in d.ctl("participant", "list", "--meeting", m)["participants"]] == [
        "alice"]
    everyone = d.ctl("participant", "list", "--meeting", m, "--all")["participants"]
    assert [p["left_unix_ns"] > 0 for p in everyone] == [False, True]
    # The freed local ports are allocated again.
    carol = join(d, m, "audio,198.18.0.12:5000", name="carol")
    assert carol["legs"][0]["local"].startswith("198.18.0.100:")


def test_presenter_only_meeting_forwards_presenters_only(daemon):
    d = daemon
    site = d.ctl("site", "create", "--name", "acme")["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "webinar", "--presenter-only")
    d.ctl("meeting", "start", m["meeting_id"])
    host = join(d, m["meeting_id"], "audio,198.18.0.10:1", role="host")
    att = join(d, m["meeting_id"], "audio,198.18.0.11:1")
    assert host["legs"][0]["send"]
    assert not att["legs"][0]["send"] and att["legs"][0]["recv"]
    d.ctl("participant", "role", att["participant_id"], "presenter")
    assert d.ctl("show", "legs", "--participant", att["participant_id"])["legs"][0]["send"]
    d.ctl("meeting", "update", m["meeting_id"], "--presenter-only", "false")
    d.ctl("participant", "role", att["participant_id"], "attendee")
    assert d.ctl("show", "legs", "--participant", att["participant_id"])["legs"][0]["send"]


def test_participant_errors(daemon):
    d = daemon
    site, m = live_meeting(d, max_participants="2", max_legs="3", leg_pps="100")
    scheduled = d.ctl("meeting", "schedule", "--site", site, "--title", "later")["meeting_id"]

    def join_error(*args):
        return error_of(d, "participant", "join", *args)

    e = join_error("--meeting", "999", "--leg", "audio,198.18.0.10:1")
    assert e.code == "NOT_FOUND" and "meeting 999" in e.message
    e = join_error("--meeting", scheduled, "--leg", "audio,198.18.0.10:1")
    assert e.code == "FAILED_PRECONDITION" and "not live" in e.message
    for bad in ("audio,198.18.0.300:1", "audio,198.18.0.10", "audio,198.18.0.10:0",
                "audio,224.1.1.1:5000", "audio,198.18.0.100:5000",
                "audio,198.18.0.10:1,local=198.18.0.55:20000",
                "audio,198.18.0.10:1,local=[2001:db8:1::100]:20000"):
        e = join_error("--meeting", m, "--leg", bad)
        assert e.code == "INVALID_ARGUMENT", (bad, e)
    e = join_error("--meeting", m, "--participant", "999", "--leg", "audio,198.18.0.10:1")
    assert e.code == "NOT_FOUND"

    first = join(d, m, "audio,198.18.0.10:1,local=198.18.0.100:30000")
    assert first["legs"][0]["pps_limit"] == 100
    # The same leg again (same remote and local), and its local port for another remote.
    e = join_error("--meeting", m, "--leg", "audio,198.18.0.10:1,local=198.18.0.100:30000")
    assert e.code == "ALREADY_EXISTS"
    e = join_error("--meeting", m, "--leg", "audio,198.18.0.11:1,local=198.18.0.100:30000")
    assert e.code == "ALREADY_EXISTS" and "already in use" in e.message
    # Site policy: 3 legs, 2 participants per meeting.
    e = join_error("--meeting", m, "--leg", "audio,198.18.0.11:1", "--leg", "video,198.18.0.11:2",
                   "--leg", "share,198.18.0.11:3")
    assert e.code == "RESOURCE_EXHAUSTED" and "legs" in e.message
    join(d, m, "audio,198.18.0.11:1")
    e = join_error("--meeting", m, "--leg", "audio,198.18.0.12:1")
    assert e.code == "RESOURCE_EXHAUSTED" and "participants per meeting" in e.message
    # Nothing of the failed calls stayed.
    assert len(d.ctl("show", "legs")["legs"]) == 2

    for args in (("participant", "leave", "999"), ("participant", "leave", "--leg", "999"),
                 ("participant", "mute", "999"), ("participant", "unmute", "--leg", "999"),
                 ("participant", "role", "999", "host"), ("participant", "list", "--meeting", "999"),
                 ("show", "legs", "--meeting", "999"), ("show", "usage", "--leg", "999"),
                 ("show", "usage", "--participant", "999"), ("show", "usage", "--meeting", "999"),
                 ("show", "usage", "--site", "999")):
        assert error_of(d, *args).code == "NOT_FOUND", args
    # A batch with one unknown participant leaves nobody.
    e = error_of(d, "participant", "leave", first["participant_id"], "999")
    assert e.code == "NOT_FOUND"
    assert len(d.ctl("show", "legs")["legs"]) == 2


def test_pool_exhausted(daemon):
    d = daemon
    d.close()
    small = ControlDaemon(d.workdir / "small", ports="20000-20001", vips=("198.18.0.100",))
    small.start()
    try:
        site, m = live_meeting(small)
        join(small, m, "audio,198.18.0.10:1", "video,198.18.0.10:2")
        e = error_of(small, "participant", "join", "--meeting", m, "--leg", "audio,198.18.0.11:1")
        assert e.code == "RESOURCE_EXHAUSTED" and "pool exhausted" in e.message
        e = error_of(small, "participant", "join", "--meeting", m, "--leg",
                     "audio,[2001:db8:1::10]:1")
        assert e.code == "RESOURCE_EXHAUSTED" and "IPv6" in e.message
        assert small.ctl("status")["pool_free"] == 0
    finally:
        small.close()


def test_table_full(daemon):
    d = daemon
    d.close()
    tiny = ControlDaemon(d.workdir / "tiny", legs=2, meetings=1)
    tiny.start()
    try:
        site, m = live_meeting(tiny)
        join(tiny, m, "audio,198.18.0.10:1", "video,198.18.0.10:2")
        e = error_of(tiny, "participant", "join", "--meeting", m, "--leg", "audio,198.18.0.11:1")
        assert e.code == "RESOURCE_EXHAUSTED" and "table full" in e.message
        other = tiny.ctl("meeting", "schedule", "--site", site, "--title", "b")["meeting_id"]
        e = error_of(tiny, "meeting", "start", other)
        assert e.code == "RESOURCE_EXHAUSTED" and "table full" in e.message
        assert tiny.ctl("meeting", "get", other)["state"] == "scheduled"
        assert tiny.ctl("status")["legs"] == 2
    finally:
        tiny.close()


# ---------------------------------------------------------------- usage, status

def test_usage_of_live_and_ended_meetings(daemon):
    d = daemon
    site, m = live_meeting(d)
    a = join(d, m, "audio,198.18.0.10:1")
    for args in (("--leg", a["legs"][0]["leg_id"]), ("--participant", a["participant_id"]),
                 ("--meeting", m), ("--site", site)):
        u = d.ctl("show", "usage", *args)
        assert u["packets_in"] == 0 and u["packets_out"] == 0, args
    live = d.ctl("show", "usage", "--meeting", m)
    assert live["participant_minutes"] > 0
    ended = d.ctl("meeting", "end", m)
    assert ended["usage"]["participant_minutes"] >= live["participant_minutes"]
    after = d.ctl("show", "usage", "--meeting", m)
    assert after == ended["usage"]
    assert d.ctl("show", "usage", "--participant", a["participant_id"])["participant_minutes"] > 0
    assert d.ctl("show", "usage", "--site", site) == ended["usage"]
    assert len(d.ctl("participant", "list", "--meeting", m, "--all")["participants"]) == 1
    assert d.ctl("show", "usage")["legs"] == []


def test_status_ports_neighbours_without_switch(daemon):
    d = daemon
    s = d.ctl("status")
    assert s["node"] == "ct" and s["role"] == "active" and s["epoch"] == 1
    assert s["vips"] == ["198.18.0.100", "2001:db8:1::100"]
    assert s["leg_capacity"] == 4096 and s["meeting_capacity"] == 256
    assert not s["switch_running"]
    assert d.ctl("show", "ports") == {"ports": []}
    assert d.ctl("show", "neighbours") == {"neighbours": []}
    text = d.run_ctl("status", json_out=False)
    assert text.returncode == 0 and "role:" in text.stdout and "not running" in text.stdout


def test_cli_usage_errors_and_help(daemon):
    d = daemon
    p = d.run_ctl("--help", json_out=False)
    assert p.returncode == 0 and "participant join" in p.stdout
    for cmd in (["status"], ["site", "create"], ["meeting", "schedule"], ["participant", "join"],
                ["show", "usage"], ["watch"]):
        p = d.run_ctl(*cmd, "--help", json_out=False)
        assert p.returncode == 0 and p.stdout.startswith("usage: tandemctl"), cmd
    p = d.run_ctl("site", "frobnicate")
    assert p.returncode == 2 and "unknown command" in p.stderr
    p = d.run_ctl("site", "get", "abc")
    assert p.returncode == 2 and "invalid site id" in p.stderr
    p = d.run_ctl("site", "create", "--bogus", "1")
    assert p.returncode == 2 and "unknown option --bogus" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([str(ctl_binary()), "--api", f"unix:{d.workdir}/nobody.sock", "--timeout",
                        "2", "status"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "UNAVAILABLE" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- watch, metrics

def test_watch_streams_changes_with_sequence_numbers(daemon):
    d = daemon
    start = d.ctl("status")
    site, m = live_meeting(d)
    a = join(d, m, "audio,198.18.0.10:1")
    d.ctl("participant", "leave", a["participant_id"])
    p = d.run_ctl("watch", "--from", start["change_seq"] + 1, "--count", "7", json_out=False)
    assert p.returncode == 0, p.stderr
    import json
    changes = [json.loads(line) for line in p.stdout.splitlines()]
    assert [c["kind"] for c in changes] == ["site_put", "meeting_put", "meeting_put",
                                            "participant_put", "leg_put", "leg_removed",
                                            "participant_left"]
    assert [c["seq"] for c in changes] == list(range(start["change_seq"] + 1,
                                                     start["change_seq"] + 8))
    assert all(c["log_id"] == start["log_id"] for c in changes)
    assert changes[2]["meeting"]["state"] == "live"
    assert changes[4]["leg"]["remote"] == "198.18.0.10:1"
    # Resuming in another log (the daemon restarted) asks for a resync.
    p = d.run_ctl("watch", "--log", start["log_id"] + 1, "--from", "1", json_out=False)
    assert p.returncode == 1 and "OUT_OF_RANGE" in p.stderr


def test_watch_follows_live_changes(daemon):
    d = daemon
    seq = d.ctl("status")["change_seq"]
    watcher = subprocess.Popen([str(ctl_binary()), "--api", d.api, "watch", "--from", str(seq + 1),
                                "--count", "2"], stdout=subprocess.PIPE, text=True)
    try:
        d.ctl("site", "create", "--name", "w1")
        d.ctl("site", "create", "--name", "w2")
        out, _ = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
    assert [line.count('"site_put"') for line in out.splitlines()] == [1, 1]


def test_metrics(daemon):
    d = daemon
    site, m = live_meeting(d)
    join(d, m, "audio,198.18.0.10:1")
    error_of(d, "site", "get", "999")
    text = d.metrics()
    lines = text.splitlines()
    assert "tandem_legs 1" in lines
    assert "tandem_role_active 1" in lines
    assert 'tandem_meetings{state="live"} 1' in lines
    assert "tandem_switch_up 0" in lines
    assert any(line.startswith('tandem_api_calls_total{method="Join",code="OK"}') for line in lines)
    assert 'tandem_api_calls_total{method="GetSite",code="NOT_FOUND"} 1' in lines
    # Every sample has HELP and TYPE lines.
    names = {line.split("{")[0].split(" ")[0] for line in lines if line and line[0] != "#"}
    for name in names:
        assert f"# TYPE {name} " in text, name
    # As Prometheus reads it: promtool's linter and the client library's parser.
    samples = check_exposition(text)
    assert value(samples, "tandem_legs") == 1
    assert value(samples, "tandem_legs_capacity") == 4096
    assert value(samples, "tandem_api_calls_total", method="GetSite", code="NOT_FOUND") == 1


# ---------------------------------------------------------------- restarts

# Its own bound (1 s here): the main thread spins until 40 writes are
# acknowledged, for ever if the writers stop first.
@pytest.mark.timeout(60)
def test_acknowledged_writes_survive_kill9(daemon):
    """Writers keep creating sites and meetings while the daemon is killed:
    every write tandemctl acknowledged is there after the restart."""
    d = daemon
    site = d.ctl("site", "create", "--name", "base")["site_id"]
    acked_sites, acked_meetings = [], []
    killed = threading.Event()

    def writer(i):
        """Writes until a call fails; returns the error, which must come
        after the kill."""
        for j in range(1000):
            try:
                s = d.ctl("site", "create", "--name", f"w{i}-{j}")
                acked_sites.append(s["site_id"])
                mt = d.ctl("meeting", "schedule", "--site", site, "--title", f"m{i}-{j}")
                acked_meetings.append(mt["meeting_id"])
            except CtlError as e:
                return e, killed.is_set()
        return None, killed.is_set()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(writer, i) for i in range(2)]
        # 40 acknowledged meetings (80 calls) before the kill. The deadline
        # only turns a stuck daemon or tandemctl into a failure that says so:
        # a call takes 10-50 ms here, several hundred on a loaded machine.
        deadline = time.monotonic() + 120
        while len(acked_meetings) < 40:
            ended = [f.result() for f in futures if f.done()]
            assert not ended, f"a writer stopped before the kill: {ended}"
            assert time.monotonic() < deadline, (
                f"only {len(acked_meetings)} of 40 meetings acknowledged in 120 s")
            time.sleep(0.01)
        killed.set()
        d.kill9()
        for f in futures:
            err, after_kill = f.result(timeout=120)
            assert err is not None and after_kill, f"the writer did not end at the kill: {err}"
    d.start()
    sites = {s["site_id"] for s in d.ctl("site", "list")["sites"]}
    meetings = {x["meeting_id"] for x in d.ctl("meeting", "list")["meetings"]}
    assert set(acked_sites) <= sites
    assert set(acked_meetings) <= meetings
    # Ids are not reused after the restart.
    new = d.ctl("site", "create", "--name", "after")["site_id"]
    assert new > max(sites)


def test_restart_adopts_live_legs(daemon):
    d = daemon
    site, m = live_meeting(d)
    a = join(d, m, "audio,198.18.0.10:1", "video,198.18.0.10:2", name="a")
    b = join(d, m, "audio,[2001:db8:1::11]:1", name="b", role="presenter")
    d.ctl("participant", "mute", "--leg", a["legs"][1]["leg_id"])
    before = d.ctl("show", "legs")["legs"]
    parts_before = d.ctl("participant", "list", "--meeting", m)["participants"]
    d.kill9()
    d.start()
    assert "adopted 3 legs" in d.log()
    assert d.ctl("show", "legs")["legs"] == before

    def without_usage(parts):
        return [{k: v for k, v in p.items() if k != "usage"} for p in parts]
    assert without_usage(d.ctl("participant", "list", "--meeting", m)["participants"]) == \
        without_usage(parts_before)
    assert d.ctl("status")["legs"] == 3
    # They can be changed, and new legs do not collide with them.
    d.ctl("participant", "unmute", "--leg", a["legs"][1]["leg_id"])
    assert not d.ctl("show", "legs", "--participant", a["participant_id"])["legs"][1]["muted"]
    c = join(d, m, "audio,198.18.0.12:1", name="c")
    locals_before = {leg["local"] for leg in before}
    assert c["legs"][0]["local"] not in locals_before
    assert c["legs"][0]["leg_id"] > max(leg["leg_id"] for leg in before)
    d.ctl("participant", "leave", b["participant_id"])
    assert len(d.ctl("show", "legs")["legs"]) == 3
    # A clean stop and start adopts them as well.
    assert d.stop() == 0
    d.start()
    assert len(d.ctl("show", "legs")["legs"]) == 3
