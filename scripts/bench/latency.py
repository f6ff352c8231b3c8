"""Reads the switch's latency histograms straight from its state region.

`tandem-tables stats --json` does not print WorkerCounters::latency_hist yet,
so this reads <shm_dir>/tandem.<node>.state with the layout of
common/tables/layout.h (StateHeader, WorkerCounters) and refuses a region
whose magic or offsets do not match what it expects.

Histogram: bucket i counts packets whose time in the switch t (TSC cycles, RX
burst returned -> TX burst of that burst done) has floor(4*log2(t)) == i, so a
bucket spans a quarter octave (about 19%).
"""

import struct

STATE_MAGIC = 0x31545341444E4154  # "TANDAST1"
STATE_VERSION = 5  # kStateVersion
DROP_COUNT = 16
LATENCY_BUCKETS = 128
# rx_packets, rx_bytes, tx_packets, tx_bytes, forwarded_in, slow_path,
# csum_completed, drops[DROP_COUNT], loops, idle_sleeps, then latency_hist[128];
# the struct is alignas(64).
HIST_OFFSET = 8 * (7 + DROP_COUNT + 2)
WORKER_COUNTERS_SIZE = (HIST_OFFSET + 8 * LATENCY_BUCKETS + 63) // 64 * 64


def read(path):
    """Returns (tsc_hz, [histogram per worker]) or raises ValueError."""
    with open(path, "rb") as f:
        head = f.read(4096)
        magic, version = struct.unpack_from("<QI", head, 0)
        if magic != STATE_MAGIC:
            raise ValueError("%s: not a state region" % path)
        if version != STATE_VERSION:
            raise ValueError("%s: state layout version %d, scripts/bench/latency.py reads %d"
                             % (path, version, STATE_VERSION))
        max_workers, = struct.unpack_from("<I", head, 28)
        wc_off, health_off = struct.unpack_from("<QQ", head, 40)
        n_workers, = struct.unpack_from("<I", head, 132)
        tsc_hz, = struct.unpack_from("<Q", head, 160)
        expect_health = (wc_off + max_workers * WORKER_COUNTERS_SIZE + 4095) // 4096 * 4096
        if health_off != expect_health or tsc_hz == 0:
            raise ValueError("%s: layout differs from scripts/bench/latency.py" % path)
        hists = []
        for w in range(min(n_workers, max_workers)):
            f.seek(wc_off + w * WORKER_COUNTERS_SIZE + HIST_OFFSET)
            hists.append(list(struct.unpack("<%dQ" % LATENCY_BUCKETS,
                                            f.read(8 * LATENCY_BUCKETS))))
        return tsc_hz, hists


def bucket_cycles(i):
    """Middle of bucket i in cycles."""
    lo = 2 ** (i // 4) * (1 + (i % 4) / 4)
    hi = 2 ** ((i + 1) // 4) * (1 + ((i + 1) % 4) / 4)
    return (lo + hi) / 2


def percentiles(hist, tsc_hz, ps=(50, 99, 99.9)):
    """{p: nanoseconds} from a histogram (delta of two readings)."""
    total = sum(hist)
    if total == 0:
        return {}
    out = {}
    for p in ps:
        need = total * p / 100
        acc = 0
        for i, c in enumerate(hist):
            acc += c
            if acc >= need:
                out[p] = bucket_cycles(i) / tsc_hz * 1e9
                break
    return out
