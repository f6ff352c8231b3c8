"""The control API at its limits and past them (issue 7), through tandemctl
--json as an operator's script would call it: every refused call gets a typed
error (a canonical code, or tandemctl's usage error) and changes nothing; the
daemon stays up; concurrent conflicting calls leave exactly one winner."""
import concurrent.futures
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import ControlDaemon, CtlError  # noqa: E402


TYPED = {"INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED",
         "FAILED_PRECONDITION", "OUT_OF_RANGE"}
V4 = "198.18.0.100"
V6 = "2001:db8:1::100"


@pytest.fixture
def daemon(testbed):
    d = ControlDaemon(testbed.tmpdir("api"), node="api", vips=(V4, V6), ports="20000-20009",
                      legs=64, meetings=16)
    try:
        d.start()
        yield d
    finally:
        d.close()


def _without_clock(x):
    """The state without what grows with time alone (participant-minutes)."""
    if isinstance(x, dict):
        return {k: _without_clock(v) for k, v in x.items() if k != "participant_minutes"}
    if isinstance(x, list):
        return [_without_clock(v) for v in x]
    return x


def snapshot(d, meeting_ids):
    state = {"sites": d.ctl("site", "list"), "meetings": d.ctl("meeting", "list"),
             "legs": d.ctl("show", "legs")}
    for m in meeting_ids:
        state[f"participants {m}"] = d.ctl("participant", "list", "--meeting", m, "--all")
    return json.dumps(_without_clock(state), sort_keys=True)


def refused(d, args, meeting_ids):
    """Runs tandemctl ARGS, which must fail with a typed error and change nothing."""
    before = snapshot(d, meeting_ids)
    p = d.run_ctl(*args)
    after = snapshot(d, meeting_ids)
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    problems = []
    if p.returncode == 0:
        problems.append(f"accepted: {p.stdout.strip()[:200]}")
    elif p.returncode == 2:
        pass  # tandemctl's usage error: refused before any call
    elif p.returncode != 1:
        problems.append(f"exit {p.returncode} (daemon unreachable?): {line[:200]}")
    else:
        code = line.split(": ", 2)[1] if line.count(": ") >= 2 else ""
        if code not in TYPED:
            problems.append(f"untyped error: {line[:200]}")
    if before != after:
        problems.append("state changed")
    if d.proc.poll() is not None:
        problems.append(f"tandem-control died (exit {d.proc.returncode})")
    return problems, line


def test_every_bad_call_gets_a_typed_error_and_changes_nothing(daemon):
    d = daemon
    site = d.ctl("site", "create", "--name", "acme")["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "t")["meeting_id"]
    d.ctl("meeting", "start", m)
    alice = d.ctl("participant", "join", "--meeting", m, "--name", "alice", "--leg",
                  f"audio,198.18.0.10:5000,local={V4}:20000")["participants"][0]
    huge = "x" * 100_000  # about the longest argument Linux passes (128 KiB)
    bad_calls = {
        "site with an empty name": ["site", "create", "--name", ""],
        "site with a 100 kB name": ["site", "create", "--name", huge],
        "duplicate site name": ["site", "create", "--name", "acme"],
        "duplicate site id": ["site", "create", "--name", "other", "--id", site],
        "site limit not a number": ["site", "create", "--name", "n", "--max-legs", "many"],
        "site limit negative": ["site", "create", "--name", "n", "--leg-pps", "-5"],
        "site limit past 32 bits": ["site", "create", "--name", "n", "--leg-pps", "4294967296"],
        "unknown site": ["site", "get", "999999"],
        "site id past 64 bits": ["site", "get", "18446744073709551616"],
        "delete a site with a live meeting": ["site", "delete", site],
        "meeting of an unknown site": ["meeting", "schedule", "--site", "999", "--title", "t"],
        "meeting with an empty title": ["meeting", "schedule", "--site", site, "--title", ""],
        "meeting with a 100 kB title": ["meeting", "schedule", "--site", site, "--title", huge],
        "duplicate meeting id": ["meeting", "schedule", "--site", site, "--title", "t",
                                 "--id", m],
        "start a live meeting": ["meeting", "start", m],
        "start an unknown meeting": ["meeting", "start", "424242"],
        "join an unknown meeting": ["participant", "join", "--meeting", "424242", "--leg",
                                    "audio,198.18.0.11:5000"],
        "join with an empty leg": ["participant", "join", "--meeting", m, "--leg", ""],
        "unknown channel": ["participant", "join", "--meeting", m, "--leg",
                            "smell,198.18.0.11:5000"],
        "bad address": ["participant", "join", "--meeting", m, "--leg", "audio,198.18.0.300:5000"],
        "port 0": ["participant", "join", "--meeting", m, "--leg", "audio,198.18.0.11:0"],
        "port 65536": ["participant", "join", "--meeting", m, "--leg", "audio,198.18.0.11:65536"],
        "local of the other family": ["participant", "join", "--meeting", m, "--leg",
                                      f"audio,198.18.0.11:5000,local=[{V6}]:20001"],
        "local not a VIP": ["participant", "join", "--meeting", m, "--leg",
                            "audio,198.18.0.11:5000,local=198.18.0.99:20001"],
        "local address in use": ["participant", "join", "--meeting", m, "--leg",
                                 f"audio,198.18.0.11:5000,local={V4}:20000"],
        "duplicate leg (same remote and local)": [
            "participant", "join", "--meeting", m, "--leg",
            f"audio,198.18.0.10:5000,local={V4}:20000"],
        "two identical legs in one call": [
            "participant", "join", "--meeting", m, "--name", "twin", "--leg",
            f"audio,198.18.0.12:5000,local={V4}:20002", "--leg",
            f"audio,198.18.0.12:5000,local={V4}:20002"],
        "second leg of a call bad": [
            "participant", "join", "--meeting", m, "--name", "half", "--leg",
            f"audio,198.18.0.13:5000,local={V4}:20003", "--leg", "audio,198.18.0.13:0"],
        "unknown participant leaves": ["participant", "leave", "99999"],
        "unknown leg leaves": ["participant", "leave", "--leg", "99999"],
        "mute an unknown participant": ["participant", "mute", "99999"],
        "role of an unknown participant": ["participant", "role", "99999", "host"],
        "unknown role": ["participant", "role", str(alice["participant_id"]), "king"],
        "pool exhausted": ["participant", "join", "--meeting", m, "--name", "many"]
        + sum((["--leg", f"audio,198.18.0.20:{6000 + i}"] for i in range(11)), []),
    }
    problems = []
    for what, args in bad_calls.items():
        p, line = refused(d, args, [m])
        print(f"{what}: {line[:120]}")
        if p:
            problems.append(f"{what}: {'; '.join(p)}")
    assert d.proc.poll() is None, "tandem-control died"
    assert not problems, "\n".join(problems)


def test_concurrent_joins_for_one_local_address_have_one_winner(daemon):
    d = daemon
    site = d.ctl("site", "create", "--name", "race")["site_id"]
    m = d.ctl("meeting", "schedule", "--site", site, "--title", "race")["meeting_id"]
    d.ctl("meeting", "start", m)

    def join(i):
        return d.run_ctl("participant", "join", "--meeting", m, "--name", f"r{i}", "--leg",
                         f"audio,198.18.0.{30 + i}:5000,local={V4}:20005")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(join, range(8)))
    ok = [r for r in results if r.returncode == 0]
    codes = sorted(r.stderr.strip().split(": ", 2)[1] for r in results if r.returncode != 0)
    legs = d.ctl("show", "legs")
    present = d.ctl("participant", "list", "--meeting", m)
    print(f"8 racing joins for {V4}:20005: {len(ok)} succeeded, refusals {codes}; legs {legs}")
    assert len(ok) == 1, [r.stderr for r in results]
    assert set(codes) == {"ALREADY_EXISTS"}, codes
    n_legs = len(legs.get("legs", legs) if isinstance(legs, dict) else legs)
    n_present = len(present.get("participants", present) if isinstance(present, dict)
                    else present)
    assert n_legs == 1 and n_present == 1, (legs, present)


def test_concurrent_conflicting_site_calls(daemon):
    """Creates of one site name racing, and a delete racing a meeting start."""
    d = daemon

    def create(i):
        return d.run_ctl("site", "create", "--name", "dup")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    ok = [r for r in results if r.returncode == 0]
    sites = d.ctl("site", "list")
    n_sites = len(sites.get("sites", sites) if isinstance(sites, dict) else sites)
    print(f"8 racing creates of one name: {len(ok)} succeeded; sites {n_sites}")
    assert len(ok) == 1 and n_sites == 1, [r.stderr for r in results]
    with pytest.raises(CtlError) as e:
        d.ctl("site", "create", "--name", "dup")
    assert e.value.code == "ALREADY_EXISTS"
