"""The scenarios of issue 5 and the captures they replay.

Each scenario names one capture (written by gencap.py) and what its key figure
is: forwarded packets for unicast, egress packets for fan-out, dropped packets
for the unknown-source flood. Captures are shared between scenarios that replay
the same packets (the table-update scenario reuses the 1,000-leg capture).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capture:
    name: str
    kind: str  # unicast | fanout | flood
    family: int = 4
    size: int = 218
    legs: int = 1000
    receivers: int = 0
    packets: int = 8192

    def gencap_args(self):
        args = ["--kind", self.kind, "--family", str(self.family), "--size", str(self.size),
                "--legs", str(self.legs), "--packets", str(self.packets)]
        if self.kind == "fanout":
            args += ["--receivers", str(self.receivers)]
        return args

    @property
    def table_legs(self):
        return self.receivers + 1 if self.kind == "fanout" else self.legs


@dataclass(frozen=True)
class Scenario:
    name: str
    capture: Capture
    metric: str = "tx"        # tx: egress packets; rx: received (the flood's drop rate)
    updates_per_s: int = 0    # table changes per second while forwarding
    workers: int = 1
    goal: str = ""            # the goal of issue 5 or 15 this scenario checks, if any
    plot: dict = field(default_factory=dict)  # {"fanout": K} or {"legs": N}
    # Also these references on it (names of references.RUNNERS).
    references: tuple = ()


def _uni(family, size, legs=1000, packets=8192):
    tag = "1m" if legs == 1_000_000 else ("%dk" % (legs // 1000))
    if packets != 8192:
        tag += "-%dkp" % (packets // 1024)
    return Capture("uni-v%d-%d-%s" % (family, size, tag), "unicast", family, size, legs, 0,
                   packets)


# The table-size series replays 131072 packets in every scenario: net_pcap keeps
# the capture in mbufs, and a large capture costs more to replay (its mbufs
# miss the cache too), so only the table size may change along the series.
TABLE_SERIES_PACKETS = 131072


def _fan(k, size=218):
    return Capture("fan-%d-v4-%d" % (k, size), "fanout", 4, size, 0, k, 8192)


UNI_218 = _uni(4, 218)
# The names of references.RUNNERS (test_references.py holds them equal).
ALL_REFERENCES = ("ovs-dpdk", "l3fwd-em")
# The table series: l3fwd-em's own exact-match hash at 1k and at 1M flows is
# what the memory system allows a forwarder that reads two lines a packet.
TABLE_REFERENCES = ("l3fwd-em",)

SCENARIOS = [
    Scenario("unicast v4 64B 1k legs", _uni(4, 64), references=ALL_REFERENCES),
    Scenario("unicast v4 218B 1k legs", UNI_218, goal="unicast", references=ALL_REFERENCES),
    Scenario("unicast v4 1250B 1k legs", _uni(4, 1250), references=ALL_REFERENCES),
    # The smallest RTP frame over IPv6.
    Scenario("unicast v6 78B 1k legs", _uni(6, 64), references=ALL_REFERENCES),
    Scenario("unicast v6 218B 1k legs", _uni(6, 218), goal="unicast6", references=ALL_REFERENCES),
    Scenario("unicast v6 1250B 1k legs", _uni(6, 1250), references=ALL_REFERENCES),
    Scenario("fan-out 1:4 218B", _fan(4), plot={"fanout": 4}),
    Scenario("fan-out 1:16 218B", _fan(16), goal="fanout", plot={"fanout": 16}),
    Scenario("fan-out 1:32 218B", _fan(32), plot={"fanout": 32}),
    Scenario("fan-out 1:16 1250B", _fan(16, 1250)),
    Scenario("table 1k legs, 128k-packet capture", _uni(4, 218, 1000, TABLE_SERIES_PACKETS),
             goal="thousand", plot={"legs": 1000}, references=TABLE_REFERENCES),
    Scenario("table 10k legs", _uni(4, 218, 10_000, TABLE_SERIES_PACKETS),
             plot={"legs": 10_000}),
    Scenario("table 100k legs", _uni(4, 218, 100_000, TABLE_SERIES_PACKETS),
             plot={"legs": 100_000}),
    Scenario("table 1M legs", _uni(4, 218, 1_000_000, TABLE_SERIES_PACKETS), goal="million",
             plot={"legs": 1_000_000}, references=TABLE_REFERENCES),
    Scenario("unknown-source flood 218B", Capture("flood-v4-218", "flood", 4, 218, 1000),
             metric="rx", goal="flood"),
    Scenario("unicast 218B + 100k updates/s", UNI_218, updates_per_s=100_000, goal="updates"),
    Scenario("unicast v4 218B 1k legs, 2 workers", UNI_218, workers=2, goal=""),
]
