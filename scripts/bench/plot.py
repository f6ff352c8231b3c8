#!/usr/bin/python3
"""Plots out/bench/results.json: Mpps against fan-out and against table size.

  plot.py [RESULTS_JSON] [OUT_PNG]   (defaults: out/bench/results.json docs/perf.png)
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STYLE = {"tandem": ("tab:blue", "o", "tandem-switch"),
         "testpmd-io": ("tab:gray", "s", "testpmd io"),
         "testpmd-5tswap": ("tab:orange", "^", "testpmd 5tswap"),
         "l3fwd-em": ("tab:green", "D", "l3fwd exact match")}


def series(rows, axis):
    out = {}
    for r in rows:
        x = (r.get("plot") or {}).get(axis)
        if x is None or "mpps_per_core" not in r:
            continue
        out.setdefault(r["program"], []).append((x, r["mpps_per_core"]))
    return {k: sorted(v) for k, v in out.items()}


def main(argv):
    src = argv[0] if argv else os.path.join(ROOT, "out", "bench", "results.json")
    dst = argv[1] if len(argv) > 1 else os.path.join(ROOT, "docs", "perf.png")
    with open(src) as f:
        report = json.load(f)
    rows = report["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for program, pts in series(rows, "fanout").items():
        color, marker, label = STYLE.get(program, ("k", "x", program))
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color,
                 label=label)
    ax1.set_xlabel("receivers per sender (fan-out), 218-byte frames")
    ax1.set_ylabel("egress Mpps per worker core")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks([4, 16, 32], ["4", "16", "32"])
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    ax1.legend()
    for program, pts in series(rows, "legs").items():
        color, marker, label = STYLE.get(program, ("k", "x", program))
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color,
                 label=label)
    ax2.set_xlabel("legs in the tables (unicast, IPv4, 218 bytes)")
    ax2.set_ylabel("forwarded Mpps per worker core")
    ax2.set_xscale("log")
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.suptitle("Tandem vs dpdk-testpmd, net_pcap replay -> drop, 1 worker core\n%s, %s" %
                 (report["cpu"], report["date"][:10]), fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print("wrote %s" % dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
