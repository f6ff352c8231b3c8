"""Runs participant tools (tools/participant.py) in their namespaces."""
import dataclasses
import json
import subprocess

from . import paths


@dataclasses.dataclass
class Flow:
    """One participant process: binds `bind`, sends `count` packets to each of `to`."""
    host: object  # netns.Host
    sender_id: int
    bind: str
    to: list = dataclasses.field(default_factory=list)
    count: int = 100
    rate: float = 50.0
    size: int = 200
    burst: int = 1  # packets back to back (a video frame), same average rate


class Report:
    """The JSON report of one participant, with the questions tests ask."""

    def __init__(self, data):
        self.data = data
        self.sent = data["sent"]
        self.sources = data["sources"]

    def from_sender(self, sender_id):
        """{source endpoint: per-sender stats} of the data from sender_id."""
        out = {}
        for src, st in self.sources.items():
            s = st["senders"].get(str(sender_id))
            if s is not None and (s["received"] or s["duplicates"] or s["corrupt"]):
                out[src] = s
        return out

    def data_packets(self):
        """Data packets received from all senders (warm-up excluded)."""
        return sum(s["received"] + s["duplicates"]
                   for st in self.sources.values() for s in st["senders"].values())

    def __repr__(self):
        return json.dumps(self.data, indent=1)


class FlowRun:
    """Participants running at once; wait() returns {sender_id: Report}.

    Each participant receives until all senders are done plus `tail` seconds.
    The data packets start `start_delay + warmup` seconds after start()."""

    def __init__(self, testbed, flows, start_delay=0.5, warmup=1.0, tail=1.5):
        send_time = max((f.count / f.rate for f in flows if f.to), default=0.0)
        self.data_starts_after = start_delay + warmup
        self.duration = start_delay + warmup + send_time + tail
        self.procs = []
        for f in flows:
            argv = [paths.PYTHON, paths.TOOLS / "participant.py", "--id", f.sender_id,
                    "--bind", f.bind, "--count", f.count, "--rate", f.rate, "--size", f.size,
                    "--burst", f.burst, "--start-delay", start_delay, "--warmup", warmup,
                    "--duration", self.duration]
            for t in f.to:
                argv += ["--to", t]
            self.procs.append((f, testbed.popen(f.host, argv, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, text=True)))

    def wait(self):
        reports = {}
        errors = []
        for f, p in self.procs:
            try:
                out, err = p.communicate(timeout=self.duration + 20)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            if p.returncode != 0:
                errors.append(f"participant {f.sender_id} exited {p.returncode}: {err.strip()}")
                continue
            reports[f.sender_id] = Report(json.loads(out))
        if errors:
            raise RuntimeError("; ".join(errors))
        return reports


def run_flows(testbed, flows, **kwargs):
    """Runs every flow at once to the end; returns {sender_id: Report}."""
    return FlowRun(testbed, flows, **kwargs).wait()
