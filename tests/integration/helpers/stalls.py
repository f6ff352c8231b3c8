"""How late a busy machine runs a thread that only sleeps: one probe process
per core, pinned to it, sleeping 1 ms at a time and recording each wake-up
more than 5 ms late (time.monotonic(), the clock of participant.py's gaps).

A test that bounds a delay (a media gap, a loss) adds what the probes saw at
the same moment: a stall of the machine delays the processes under test as
much, and no product can do better than the CPU it is given. The probes cost
nothing measurable (a wake-up per millisecond and core).

    probe = StallProbe(seconds=10)
    ...                                   # the run
    probe.wait()
    probe.worst(begin, end)               # ms, the longest stall in [begin, end]
    probe.stalled(over_ms=50, cpu=1)      # ms of stalls longer than 50 ms on core 1
"""
import json
import os
import subprocess

from . import paths

PROBE = r"""
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
late = []
while True:
    t = time.monotonic()
    if t >= end:
        break
    time.sleep(0.001)
    d = time.monotonic() - t - 0.001
    if d > 0.005:
        late.append([t, d * 1000.0])
print(json.dumps(late))
"""


class StallProbe:
    def __init__(self, seconds):
        self.seconds = seconds
        self.cpus = sorted(os.sched_getaffinity(0))
        self.procs = [subprocess.Popen([paths.PYTHON, "-c", PROBE, str(c), str(seconds)],
                                       stdout=subprocess.PIPE, text=True) for c in self.cpus]
        self.stalls = None  # [(cpu, began, ms)]

    def wait(self):
        self.stalls = []
        for cpu, p in zip(self.cpus, self.procs):
            out, _ = p.communicate(timeout=self.seconds + 30)
            self.stalls += [(cpu, t, ms) for t, ms in json.loads(out)]
        return self

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def _within(self, begin, end, cpu):
        return [(c, t, ms) for c, t, ms in self.stalls
                if (cpu is None or c == cpu) and (begin is None or t + ms / 1000.0 >= begin)
                and (end is None or t <= end)]

    def worst(self, begin=None, end=None, cpu=None):
        """The longest stall (ms) under way in [begin, end], on `cpu` or any."""
        return max((ms for _, _, ms in self._within(begin, end, cpu)), default=0.0)

    def stalled(self, over_ms, begin=None, end=None, cpu=None):
        """Milliseconds of stalls longer than over_ms, beyond their first
        over_ms, in [begin, end] (on `cpu`, or summed over the cores)."""
        return sum(ms - over_ms for _, _, ms in self._within(begin, end, cpu) if ms > over_ms)
