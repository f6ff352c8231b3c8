"""Outside a session (issue 8): after a takeover the pair keeps serving the
meeting application and operators through `tandemctl --pair`, which finds
the active node by itself; a standby refuses writes naming the active node;
a watch resumed across the takeover misses and repeats no change."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import CtlError, ctl_binary  # noqa: E402
from helpers.meeting import own_endpoint, sender_id, vip_endpoint  # noqa: E402
from helpers.pair import PairBed  # noqa: E402
from helpers.participants import Flow, run_flows  # noqa: E402

import pytest  # noqa: E402


def pair_ctl(bed, *args, timeout=30):
    argv = [str(ctl_binary()), "--pair", f"{bed.a.control.api},{bed.b.control.api}", "--json",
            "--timeout", "20", *map(str, args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise CtlError(p.returncode, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


@pytest.fixture
def bed():
    b = PairBed()
    try:
        b.start()
        yield b
    finally:
        b.close()


def test_pair_serves_clients_across_a_takeover(bed):
    site = pair_ctl(bed, "site", "create", "--name", "brand", "--look", "logo=tandem.svg",
                    "--pref", "tz=UTC")["site_id"]
    listed = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "weekly",
                      "--start", int(time.time()) + 86400)["meeting_id"]
    live = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "now")["meeting_id"]
    pair_ctl(bed, "meeting", "start", live)
    pair_ctl(bed, "participant", "join", "--meeting", live, "--name", "early", "--leg",
             f"audio,{own_endpoint(bed.participants[0], 4, port=6000)}")
    bed.wait_synced()

    # A write sent to the standby is refused with the active node's address.
    with pytest.raises(CtlError) as refused:
        bed.b.ctl("site", "create", "--name", "to-the-standby")
    assert "FAILED_PRECONDITION" in str(refused.value)
    assert bed.a.control.api in str(refused.value), str(refused.value)
    assert bed.b.ctl("site", "list")  # reads are still answered

    # A watch follows the pair through the takeover.
    watch = subprocess.Popen([str(ctl_binary()), "--pair",
                              f"{bed.a.control.api},{bed.b.control.api}", "--json",
                              "--timeout", "20", "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pair_ctl(bed, "site", "create", "--name", "before-failure")
    bed.wait_synced()

    sites_before = pair_ctl(bed, "site", "list")
    meetings_before = pair_ctl(bed, "meeting", "list")
    last_seen = bed.a.status()["change_seq"]
    bed.a.kill_all()
    bed.wait_role(bed.b, "active", timeout=10)
    # The new active says up to which change of the old active's log it got:
    # all of them here (the writes above were replicated before the kill).
    taken = bed.b.status()["pair"]
    assert int(taken["takeover_position"]) >= int(last_seen), taken

    # Without naming the new active: the same sites and meetings.
    assert pair_ctl(bed, "site", "list") == sites_before
    strip = lambda ms: [{k: v for k, v in m.items() if k not in ("usage", "participants", "legs")}
                        for m in ms["meetings"]]
    assert strip(pair_ctl(bed, "meeting", "list")) == strip(meetings_before)
    assert any(m["meeting_id"] == listed and m.get("listed") for m in
               pair_ctl(bed, "meeting", "list")["meetings"])
    pair_ctl(bed, "site", "create", "--name", "after-failure")

    # A new meeting on the new active, three participants, media flows.
    m = pair_ctl(bed, "meeting", "schedule", "--site", site, "--title", "next")["meeting_id"]
    pair_ctl(bed, "meeting", "start", m)
    flows = []
    for h in bed.participants:
        local = vip_endpoint(4, 21000 + h.index)
        pair_ctl(bed, "participant", "join", "--meeting", m, "--name", h.name, "--leg",
                 f"audio,{own_endpoint(h, 4)},local={local}")
        flows.append(Flow(host=h, sender_id=sender_id(h), bind=own_endpoint(h, 4), to=[local],
                          count=50, rate=50.0, size=160))
    reports = run_flows(bed.testbed, flows)
    for h in bed.participants:
        for other in bed.participants:
            if other is h:
                continue
            got = reports[sender_id(h)].from_sender(sender_id(other))
            assert got and next(iter(got.values()))["received"] == 50, \
                f"{h.name} from {other.name}: {reports[sender_id(h)]}"

    # The watch saw every change once, in order, across the takeover.
    time.sleep(0.5)
    watch.terminate()
    out, err = watch.communicate(timeout=10)
    changes = [json.loads(line) for line in out.splitlines() if line.strip()]
    seqs = [int(c["seq"]) for c in changes]
    assert seqs, f"the watch saw nothing: {err}"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or repeat: {seqs}"
    assert len({c["log_id"] for c in changes}) == 1
    names = [c["site"].get("name") for c in changes if "site" in c]
    assert "before-failure" in names and "after-failure" in names, names


def test_sync_mode_loses_no_acknowledged_write():
    bed = PairBed(mode="sync")
    try:
        bed.start()
        names = [f"sync-{i}" for i in range(40)]
        for n in names:
            bed.a.ctl("site", "create", "--name", n)  # returns once the standby applied it
        bed.a.kill_all()  # right after the last acknowledgement
        bed.wait_role(bed.b, "active", timeout=10)
        have = {s["name"] for s in bed.b.ctl("site", "list")["sites"]}
        missing = [n for n in names if n not in have]
        assert not missing, f"acknowledged writes lost by the takeover: {missing}"
        st = bed.b.status()["pair"]
        assert st["mode"] == "sync"
        assert bed.b.ctl("pair", "lost")["state"] == "pending"
        # The old active comes back with a fresh change log: what it held after
        # the takeover position (nothing, in sync mode) is no longer known.
        bed.a.start()
        bed.wait_synced(timeout=20)
        deadline = time.monotonic() + 10
        while bed.b.ctl("pair", "lost")["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bed.b.ctl("pair", "lost")["state"] == "unknown"
    finally:
        bed.close()


def test_writes_lost_at_a_takeover_are_listed_by_the_new_active(bed):
    """Asynchronous mode: writes the old active acknowledged but never
    replicated (here: made while it was cut off, still active in the lower
    epoch) are listed by the new active once the old one returns, with their
    contents, so that the meeting application can redo them."""
    site = bed.a.ctl("site", "create", "--name", "kept")["site_id"]
    bed.wait_synced()
    assert bed.b.ctl("pair", "lost")["state"] == "none"
    bed.partition(bed.a)
    bed.wait_role(bed.b, "active", timeout=5)
    assert bed.a.role() == "active", "the cut-off primary cannot know; it still takes writes"
    lost_sites = [bed.a.ctl("site", "create", "--name", f"lost-{i}")["site_id"] for i in range(2)]
    lost_meeting = bed.a.ctl("meeting", "schedule", "--site", site, "--title",
                             "lost-meeting")["meeting_id"]
    pending = bed.b.ctl("pair", "lost")
    assert pending["state"] == "pending", pending
    after = int(pending["after_seq"])

    bed.heal(bed.a)
    bed.wait_role(bed.a, "standby", timeout=5)
    bed.wait_synced(timeout=20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lost = bed.b.ctl("pair", "lost")
        if lost["state"] != "pending":
            break
        time.sleep(0.1)
    assert lost["state"] == "listed", lost
    assert int(lost["after_seq"]) == after
    changes = lost.get("changes", [])
    print(f"\nlisted by the new active: {len(changes)} lost changes after {after}")
    assert all(int(c["seq"]) > after for c in changes)
    assert [(c["kind"], c.get("site", {}).get("name") or c.get("meeting", {}).get("title"))
            for c in changes] == [("site_put", "lost-0"), ("site_put", "lost-1"),
                                  ("meeting_put", "lost-meeting")], changes
    assert [int(c["id"]) for c in changes] == [*map(int, lost_sites), int(lost_meeting)]
    # Lost indeed: neither node has them now, and the application can redo them.
    for node in (bed.a, bed.b):
        names = {s["name"] for s in node.ctl("site", "list").get("sites", [])}
        assert names == {"kept"}, (node.name, names)
    status = bed.b.status()["pair"]
    assert status["lost_writes"] == "listed" and int(status["lost_changes"]) == 3, status
    redone = pair_ctl(bed, "site", "create", "--name", changes[0]["site"]["name"])
    assert redone["name"] == "lost-0"
