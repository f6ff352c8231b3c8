// Fuzz target: the switch's whole per-packet path, driven through fake ports.
//
// Set up once (LLVMFuzzerInitialize): the DPDK EAL without hugepages, shared
// files or PCI; two ports made from rings (rte_eth_from_rings), access and
// backbone, with two queues each, so the harness puts frames into a port's RX
// rings and takes what the switch sent out of its TX rings; real session
// tables in a temporary directory on /dev/shm, removed at exit (four
// meetings, one of them capped at 2 copies per second, IPv4 and IPv6 legs,
// one behind each gateway, a recv-only, a muted, a send-only and two policed
// legs (packet and bit rate), the node active) and a state region whose
// neighbour cache knows most members' MACs, one stale and two unknown; the mbuf pools and rings of switch/main.cc.
//
// Per input: the state region is restored from its snapshot (counters,
// neighbours), two workers (switch/worker.cc, WorkerPoller) and a slow path
// (switch/slowpath.cc, SlowPath::Poll) are made afresh, the input's frames
// are injected into the RX rings, and workers and slow path are polled until
// nothing moves (the slow path's answers and requests go out through worker
// 0, as in the switch). Then, besides ASan/UBSan:
//  - no mbuf of any pool is left in use, every ring is empty;
//  - every received frame has one fate: rx = forwarded_in + slow_path + drops
//    by packet reasons; the legs' usage agrees with the workers' counters;
//    what the TX rings held is what the workers counted as sent;
//  - every transmitted frame is well-formed and ours: media copies parse,
//    carry valid IPv4 header checksums and a valid UDP checksum whenever the
//    original's was valid or partial (the folded pseudo-header sum a sender
//    with TX checksum offload leaves), go to a live leg with `recv` of the same meeting and
//    channel as a sender of that payload, at the MAC the neighbour cache
//    holds for it; ARP, ND and ICMP frames speak only for our VIPs with valid
//    checksums; heartbeats decode with the pair key.
// The unused bytes of every received mbuf's buffer are poisoned, so ASan
// reports any read past a frame.
//
// Input: byte 0 configures the run (bit 0: VLAN 5 instead of untagged; bit 1:
// MTU 9000; bit 2: standby; bit 3: holding the active role; bits 4-5:
// zero_copy_min 512, 0, 64 or 1400; bit 6: no pair, heartbeats off); byte 1:
// the burst size (1 + (b & 31)). Then frames, each a 3-byte header and its
// bytes: flags (bit 0: backbone port; bit 1: queue 1; bit 2: the harness
// fixes the IPv4 header, UDP, ICMP and ICMPv6 checksums; bit 3: the harness
// dates and signs a heartbeat with the pair key; bit 4: poll until idle after
// this frame, so later frames see its effects; bit 5: split into 2 segments;
// bit 6: after bit 2's fixes, the UDP checksum left partial, as a sender with
// TX checksum offload leaves it), then the length (big-endian, up to 9216 and what is left).
#include <openssl/hmac.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <sanitizer/asan_interface.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/tables/tables.h"
#include "switch/dataplane.h"
#include "switch/handoff.h"
#include "switch/heartbeat.h"
#include "switch/packet.h"
#include "switch/slowpath.h"
#include "tests/fuzz/fuzz_check.h"

#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

namespace {

using tandem::IpAddr;
using tandem::IpPrefix;
namespace sw = tandem::sw;
namespace tb = tandem::tables;

constexpr uint32_t kWorkers = 2;
constexpr uint32_t kQueues = kWorkers;
constexpr uint32_t kPorts = 2;  // 0 access, 1 backbone
constexpr uint32_t kMaxFrames = 256;
constexpr uint32_t kMaxFrameLen = 9216;
constexpr uint32_t kMaxRounds = 10000;
constexpr uint32_t kPairNode = 1;
constexpr uint32_t kPairPeer = 2;  // make_seeds.py's heartbeats come from node 2
const char kPairKey[] = "fuzz-pair-key-0123456789abcdef";  // as heartbeat_fuzz.cc

// ---- an independent checksum (RFC 1071), not the switch's ----

uint32_t Sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) acc += uint32_t(p[n - 1]) << 8;
  return acc;
}
uint16_t Fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}
uint16_t Be16(const uint8_t* p) { return uint16_t(p[0]) << 8 | p[1]; }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
// The pseudo-header of a UDP message, folded: what a sender that leaves the
// checksum to offload puts in the field (a partial checksum).
uint16_t UdpPseudoSum(bool v4, const uint8_t* ip, size_t len) {
  return Fold(Sum16(ip + (v4 ? 12 : 8), v4 ? 8 : 32) + sw::kProtoUdp + static_cast<uint32_t>(len));
}
// The sum of an L4 message with its pseudo-header, folded: 0xffff when valid.
uint16_t L4Sum(bool v4, const uint8_t* ip, const uint8_t* l4, size_t len, uint8_t proto) {
  uint32_t acc = Sum16(ip + (v4 ? 12 : 8), v4 ? 8 : 32);
  acc += proto;
  acc += static_cast<uint32_t>(len);
  return Fold(Sum16(l4, len, acc));
}

// ---- the test bed ----

struct LegDef {
  const char* remote;
  uint16_t remote_port;
  const char* local;
  uint16_t local_port;
  uint64_t meeting;
  tb::Channel channel;
  uint32_t flags;
  uint32_t pps;
  uint32_t kbps = 0;
};

constexpr uint32_t kSR = tb::kLegSend | tb::kLegRecv;
const LegDef kLegs[] = {
    // Meeting 1, audio: IPv4 and IPv6 members, one behind each gateway.
    {"198.18.0.10", 5000, "198.18.0.100", 20000, 1, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.11", 5000, "198.18.0.100", 20002, 1, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.12", 5000, "198.18.0.100", 20004, 1, tb::Channel::kAudio, tb::kLegRecv, 0},
    {"203.0.113.7", 6000, "198.18.0.100", 20006, 1, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.13", 5000, "198.18.0.100", 20008, 1, tb::Channel::kAudio, kSR | tb::kLegMuted, 0},
    {"198.18.0.14", 5000, "198.18.0.100", 20010, 1, tb::Channel::kAudio, kSR, 2},
    {"198.18.0.15", 5000, "198.18.0.100", 20012, 1, tb::Channel::kAudio, kSR, 0},  // stale
    {"198.18.0.16", 5000, "198.18.0.100", 20014, 1, tb::Channel::kAudio, kSR, 0},  // unknown
    {"198.18.0.17", 5000, "198.18.0.100", 20016, 1, tb::Channel::kAudio, tb::kLegSend, 0},
    {"2001:db8:1::10", 5000, "2001:db8:1::100", 20000, 1, tb::Channel::kAudio, kSR, 0},
    {"2001:db8:1::11", 5000, "2001:db8:1::100", 20002, 1, tb::Channel::kAudio, kSR, 0},
    {"2001:db8:2::50", 6000, "2001:db8:1::100", 20004, 1, tb::Channel::kAudio, kSR, 0},
    {"2001:db8:1::12", 5000, "2001:db8:1::100", 20006, 1, tb::Channel::kAudio, kSR, 0},
    // Meeting 1, video.
    {"198.18.0.10", 5002, "198.18.0.100", 20020, 1, tb::Channel::kVideo, kSR, 0},
    {"198.18.0.11", 5002, "198.18.0.100", 20022, 1, tb::Channel::kVideo, kSR, 0},
    {"2001:db8:1::10", 5002, "2001:db8:1::100", 20020, 1, tb::Channel::kVideo, kSR, 0},
    {"2001:db8:1::11", 5002, "2001:db8:1::100", 20022, 1, tb::Channel::kVideo, kSR, 0},
    // Meeting 1, share: one leg alone.
    {"198.18.0.10", 5004, "198.18.0.100", 20030, 1, tb::Channel::kShare, kSR, 0},
    // Meeting 2 on the second IPv4 VIP, sharing hosts with meeting 1.
    {"198.18.0.20", 5000, "198.18.0.101", 20000, 2, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.21", 5000, "198.18.0.101", 20002, 2, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.10", 5010, "198.18.0.101", 20004, 2, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.22", 5000, "198.18.0.101", 20006, 2, tb::Channel::kAudio, kSR, 0, 64},  // 64 kbit/s
    // Meeting 3: IPv6 only.
    {"2001:db8:1::20", 5000, "2001:db8:1::100", 21000, 3, tb::Channel::kAudio, kSR, 0},
    {"2001:db8:1::21", 5000, "2001:db8:1::100", 21002, 3, tb::Channel::kAudio, kSR, 0},
    // Meeting 4: capped at kMeeting4Copies copies per second.
    {"198.18.0.10", 5020, "198.18.0.101", 20020, 4, tb::Channel::kAudio, kSR, 0},
    {"198.18.0.11", 5020, "198.18.0.101", 20022, 4, tb::Channel::kAudio, kSR, 0},
};
constexpr uint32_t kMeeting4Copies = 2;

struct NeighDef {
  const char* ip;
  uint8_t mac_last;  // 02:00:00:00:01:xx
  bool stale;
};
// 198.18.0.16, 2001:db8:1::12 and 2001:db8:1::21 are not known.
const NeighDef kNeighbours[] = {
    {"198.18.0.1", 0x01, false},     {"198.18.0.10", 0x10, false},
    {"198.18.0.11", 0x11, false},    {"198.18.0.12", 0x12, false},
    {"198.18.0.13", 0x13, false},    {"198.18.0.14", 0x14, false},
    {"198.18.0.15", 0x15, true},     {"198.18.0.17", 0x17, false},
    {"198.18.0.20", 0x20, false},    {"198.18.0.21", 0x21, false},
    {"198.18.0.22", 0x22, false},    {"2001:db8:1::1", 0x61, false},
    {"2001:db8:1::10", 0x70, false}, {"2001:db8:1::11", 0x71, false},
    {"2001:db8:1::20", 0x80, false},
};

IpAddr Ip(const char* s) {
  auto a = IpAddr::Parse(s);
  FUZZ_CHECK(a.ok(), "bad address %s", s);
  return *a;
}

struct Bed {
  std::string dir;
  std::unique_ptr<tb::TablesWriter> writer;
  tb::Mapping tables_map, state_map;
  std::vector<uint8_t> state_snapshot;
  sw::Dataplane* dp = nullptr;
  rte_mempool* rx_pool = nullptr;  // the ports' RX buffers (the harness's "NIC")
  rte_ring* rx[kPorts][kQueues] = {};
  rte_ring* tx[kPorts][kQueues] = {};
  std::vector<IpAddr> vips;
  unsigned baseline[4] = {};
};

Bed* g_bed = nullptr;

bool Alive(const std::string& pid) {
  char* end = nullptr;
  long n = std::strtol(pid.c_str(), &end, 10);
  if (n <= 0 || *end != '\0') return true;  // not named after a pid: not ours to remove
  return kill(static_cast<pid_t>(n), 0) == 0 || errno != ESRCH;
}

// What runs that crashed (no atexit) left: directories named after a pid
// that no longer runs, in `dir`, named `prefix` + pid (+ ".XXXXXX").
void SweepStale(const std::filesystem::path& dir, const std::string& prefix) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size());
    if (!Alive(pid)) std::filesystem::remove_all(e.path(), ec);
  }
}

void RemoveDirs() {
  if (!g_bed) return;
  std::error_code ec;
  if (!g_bed->dir.empty()) std::filesystem::remove_all(g_bed->dir, ec);
  // DPDK's runtime directory (/var/run/dpdk/<prefix>), empty without shared files.
  rmdir(rte_eal_get_runtime_dir());
}

std::vector<rte_mempool*> Pools(const Bed& b) {
  return {b.rx_pool, b.dp->pool, b.dp->hdr_pool, b.dp->clone_pool};
}

std::string CpuList() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string out;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "0";
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    if (!out.empty()) out += ",";
    out += std::to_string(c);
  }
  return out.empty() ? "0" : out;
}

void InitEal(const char* argv0) {
  // Lcore 0 may run on any CPU this process may use; no hugepages, no shared
  // configuration (--no-shconf), a file prefix of its own: tests run in parallel.
  std::string prefix = "tandem-fuzz-datapath-" + std::to_string(getpid());
  std::string lcores = "0@(" + CpuList() + ")";
  // clang-format off
  std::vector<std::string> args = {argv0 ? argv0 : "fuzz_datapath",
                                   "--no-huge", "-m", "256", "--no-shconf",
                                   "--file-prefix", prefix, "--no-pci", "--no-telemetry",
                                   "--lcores", lcores, "--log-level", "*:error"};
  // clang-format on
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
  FUZZ_CHECK(rc >= 0, "EAL init failed: %s", rte_strerror(rte_errno));
}

uint16_t MakePort(Bed& b, uint32_t p) {
  rte_ring* rx[kQueues];
  rte_ring* tx[kQueues];
  for (uint32_t q = 0; q < kQueues; ++q) {
    std::string n = "fz_rx" + std::to_string(p) + std::to_string(q);
    b.rx[p][q] = rx[q] =
        rte_ring_create(n.c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    n = "fz_tx" + std::to_string(p) + std::to_string(q);
    b.tx[p][q] = tx[q] =
        rte_ring_create(n.c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    FUZZ_CHECK(rx[q] && tx[q], "rings: %s", rte_strerror(rte_errno));
  }
  std::string name = p == 0 ? "fza" : "fzb";  // the device is net_ring_<name>
  int id = rte_eth_from_rings(name.c_str(), rx, kQueues, tx, kQueues, SOCKET_ID_ANY);
  FUZZ_CHECK(id >= 0, "rte_eth_from_rings: %s", rte_strerror(rte_errno));
  uint16_t port = static_cast<uint16_t>(id);
  // As switch/main.cc SetUpPort does.
  rte_eth_conf conf{};
  FUZZ_CHECK(rte_eth_dev_configure(port, kQueues, kQueues, &conf) == 0, "configure");
  for (uint16_t q = 0; q < kQueues; ++q) {
    FUZZ_CHECK(rte_eth_rx_queue_setup(port, q, 1024, SOCKET_ID_ANY, nullptr, b.dp->pool) == 0,
               "rx queue");
    FUZZ_CHECK(rte_eth_tx_queue_setup(port, q, 1024, SOCKET_ID_ANY, nullptr) == 0, "tx queue");
  }
  FUZZ_CHECK(rte_eth_dev_start(port) == 0, "start");
  return port;
}

void Setup(const char* argv0) {
  InitEal(argv0);
  auto* b = new Bed;
  g_bed = b;
  SweepStale("/dev/shm", "tandem-fuzz-datapath.");
  SweepStale(std::filesystem::path(rte_eal_get_runtime_dir()).parent_path(),
             "tandem-fuzz-datapath-");
  std::string tmpl = "/dev/shm/tandem-fuzz-datapath." + std::to_string(getpid()) + ".XXXXXX";
  FUZZ_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
  b->dir = tmpl;
  std::atexit(RemoveDirs);

  auto* dp = new sw::Dataplane;
  b->dp = dp;
  sw::SwitchConfig& c = dp->cfg;
  c.node = "fz";
  c.shm_dir = b->dir;
  c.capacity = tb::Capacity{64, 16};
  c.worker_lcores = {1, 2};
  c.burst = 32;
  c.zero_copy_min = 512;
  c.mtu = 1500;
  c.ports = {sw::PortConfig{"access", sw::PortRole::kAccess, "net_ring_fza", false},
             sw::PortConfig{"backbone", sw::PortRole::kBackbone, "net_ring_fzb", false}};
  c.prefixes = {*IpPrefix::Parse("198.18.0.0/24"), *IpPrefix::Parse("2001:db8:1::/64")};
  c.gateway4 = Ip("198.18.0.1");
  c.gateway6 = Ip("2001:db8:1::1");
  c.neigh_reachable_s = 7 * 24 * 3600;  // the known neighbours stay known while fuzzing
  c.neigh_probe_ms = 200;
  c.pair_node_id = kPairNode;
  c.pair_peer_node_id = kPairPeer;
  c.heartbeat_key = kPairKey;
  c.heartbeat_ms = 10;

  // Tables: made by the single writer, mapped by the "switch" as it does.
  std::string tp = tb::TablesPath(b->dir, c.node);
  auto w = tb::TablesWriter::Open(tp, c.capacity);
  FUZZ_CHECK(w.ok(), "writer: %s", w.status().ToString().c_str());
  b->writer = std::move(*w);
  b->vips = {Ip("198.18.0.100"), Ip("198.18.0.101"), Ip("2001:db8:1::100")};
  FUZZ_CHECK(b->writer->SetVips(b->vips).ok(), "vips");
  b->writer->SetRole(tb::Role::kActive, 1);
  for (uint64_t m = 1; m <= 4; ++m) {
    FUZZ_CHECK(b->writer->AddMeeting(m, 1, 0, m == 4 ? kMeeting4Copies : 0).ok(), "meeting");
  }
  uint64_t id = 100;
  for (const LegDef& d : kLegs) {
    tb::LegSpec s;
    s.leg_id = ++id;
    s.participant_id = id;
    s.meeting_id = d.meeting;
    s.channel = d.channel;
    s.key.remote = Ip(d.remote);
    s.key.remote_port = d.remote_port;
    s.key.local = Ip(d.local);
    s.key.local_port = d.local_port;
    s.flags = d.flags;
    s.pps_limit = d.pps;
    s.kbps_limit = d.kbps;
    auto st = b->writer->AddLeg(s);
    FUZZ_CHECK(st.ok(), "leg: %s", st.ToString().c_str());
  }
  auto t = tb::AttachTables(tp);
  FUZZ_CHECK(t.ok(), "attach: %s", t.status().ToString().c_str());
  b->tables_map = std::move(t->first);
  dp->tables = t->second;

  auto s =
      tb::OpenOrCreateState(tb::StatePath(b->dir, c.node), dp->tables.leg_capacity(), kWorkers + 1);
  FUZZ_CHECK(s.ok(), "state: %s", s.status().ToString().c_str());
  b->state_map = std::move(s->first);
  dp->state = s->second;
  dp->neigh = sw::NeighTable(&dp->state.neigh(0));
  dp->tsc_hz = rte_get_tsc_hz();

  // Pools and rings as switch/main.cc makes them (smaller).
  constexpr uint32_t kMbufs = 8191;
  dp->pool =
      rte_pktmbuf_pool_create("pkt", kMbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  dp->hdr_pool =
      rte_pktmbuf_pool_create("hdr", kMbufs, 256, 0, RTE_PKTMBUF_HEADROOM + 128, SOCKET_ID_ANY);
  dp->clone_pool = rte_pktmbuf_pool_create("clone", kMbufs, 256, 0, 0, SOCKET_ID_ANY);
  // The frames the harness receives come from a pool of their own, so that
  // no allocation of the switch gets a buffer whose tail is poisoned.
  b->rx_pool =
      rte_pktmbuf_pool_create("fz_rx", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  FUZZ_CHECK(dp->pool && dp->hdr_pool && dp->clone_pool && b->rx_pool, "pools: %s",
             rte_strerror(rte_errno));
  auto rings = sw::CreateSlowRings(*dp);
  FUZZ_CHECK(rings.ok(), "rings: %s", rings.ToString().c_str());

  for (uint32_t p = 0; p < kPorts; ++p) {
    sw::Port port;
    port.id = MakePort(*b, p);
    port.role = p == 0 ? sw::PortRole::kAccess : sw::PortRole::kBackbone;
    port.state_index = p;
    // Fixed MACs, so that seeds can address the switch: 02:00:00:00:00:01
    // (access, as make_seeds.py writes frames) and :02 (backbone).
    rte_ether_addr mac = {{0x02, 0, 0, 0, 0, uint8_t(p + 1)}};
    rte_eth_dev_default_mac_addr_set(port.id, &mac);  // the ring PMD filters nothing anyway
    std::memcpy(port.mac, mac.addr_bytes, 6);
    dp->ports.push_back(port);
    tb::PortState& ps = dp->state.port(p);
    std::snprintf(ps.name, sizeof ps.name, "%s", c.ports[p].name.c_str());
    std::memcpy(ps.mac, port.mac, 6);
    ps.present = 1;
    ps.link_up = 1;
  }
  FUZZ_CHECK(std::memcmp(dp->ports[0].mac, dp->ports[1].mac, 6) != 0, "port MACs");
  dp->state.header().n_workers.store(kWorkers);
  dp->state.header().n_ports.store(kPorts);

  // Known neighbours, one stale (re-confirmed by the slow path's ageing).
  uint64_t now = tandem::MonotonicNs();
  for (const NeighDef& n : kNeighbours) {
    tb::NeighEntry* e = dp->neigh.FindOrAdd(Ip(n.ip));
    FUZZ_CHECK(e != nullptr, "neighbour");
    uint8_t mac[6] = {0x02, 0, 0, 0, 0x01, n.mac_last};
    sw::NeighTable::Confirm(*e, mac, now);
    if (n.stale) {
      sw::NeighTable::Write(*e, [&] { e->state.store(uint8_t(tb::NeighState::kStale)); });
    }
  }
  // What every input starts from.
  const auto* base = static_cast<const uint8_t*>(b->state_map.base());
  b->state_snapshot.assign(base, base + b->state_map.size());
  auto pools = Pools(*b);
  for (size_t i = 0; i < pools.size(); ++i) b->baseline[i] = rte_mempool_in_use_count(pools[i]);
}

// ---- one input ----

// A frame as injected, with what the harness knows of it.
struct Injected {
  std::vector<uint8_t> bytes;
  bool forward = false;        // Parse says kForward (a media packet)
  bool udp_valid = false;      // its UDP checksum is valid or partial (or absent in IPv4)
  uint32_t sender = tb::kNil;  // its leg slot, if any
  bool v4 = false;
  std::vector<uint8_t> payload;  // UDP payload
};

struct Run {
  Bed& b;
  sw::Dataplane& dp;
  std::vector<Injected> injected;
  uint64_t injected_ok = 0;
  uint64_t tx_frames = 0, tx_bytes = 0, tx_media = 0;
  sw::ParseConfig pcfg;
};

void UnpoisonMbuf(rte_mbuf* m) { ASAN_UNPOISON_MEMORY_REGION(m->buf_addr, m->buf_len); }

// Poisons the buffer outside the segment's data: a read past the frame (or
// before it) by the switch is an ASan report.
void PoisonAroundData(rte_mbuf* m) {
  auto* buf = static_cast<uint8_t*>(m->buf_addr);
  ASAN_POISON_MEMORY_REGION(buf, m->data_off);
  uint32_t end = m->data_off + m->data_len;
  ASAN_POISON_MEMORY_REGION(buf + end, m->buf_len - end);
}

// The L2 header's length (one optional tag) or 0 if too short.
uint32_t L2Len(const uint8_t* f, size_t len) {
  if (len < 14) return 0;
  if (Be16(f + 12) == sw::kEthVlan) return len >= 18 ? 18 : 0;
  return 14;
}

void FixChecksums(std::vector<uint8_t>& f) {
  uint32_t l2 = L2Len(f.data(), f.size());
  if (!l2) return;
  uint16_t type = Be16(f.data() + l2 - 2);
  uint8_t* ip = f.data() + l2;
  size_t avail = f.size() - l2;
  if (type == sw::kEthIPv4 && avail >= 20 && (ip[0] & 0x0f) == 5) {
    PutBe16(ip + 10, 0);
    PutBe16(ip + 10, static_cast<uint16_t>(~Fold(Sum16(ip, 20))));
    size_t total = std::min<size_t>(Be16(ip + 2), avail);
    if (total < 20) return;
    uint8_t* l4 = ip + 20;
    size_t len = total - 20;
    if (ip[9] == sw::kProtoUdp && len >= 8) {
      PutBe16(l4 + 4, static_cast<uint16_t>(len));
      if (Be16(l4 + 6) == 0) return;  // no checksum stays none
      PutBe16(l4 + 6, 0);
      uint16_t c = static_cast<uint16_t>(~L4Sum(true, ip, l4, len, sw::kProtoUdp));
      PutBe16(l4 + 6, c == 0 ? 0xffff : c);
    } else if (ip[9] == sw::kProtoIcmp && len >= 4) {
      PutBe16(l4 + 2, 0);
      PutBe16(l4 + 2, static_cast<uint16_t>(~Fold(Sum16(l4, len))));
    }
  } else if (type == sw::kEthIPv6 && avail >= 40) {
    size_t len = std::min<size_t>(Be16(ip + 4), avail - 40);
    uint8_t* l4 = ip + 40;
    if (ip[6] == sw::kProtoUdp && len >= 8) {
      PutBe16(l4 + 4, static_cast<uint16_t>(len));
      PutBe16(l4 + 6, 0);
      uint16_t c = static_cast<uint16_t>(~L4Sum(false, ip, l4, len, sw::kProtoUdp));
      PutBe16(l4 + 6, c == 0 ? 0xffff : c);
    } else if (ip[6] == sw::kProtoIcmp6 && len >= 4) {
      PutBe16(l4 + 2, 0);
      PutBe16(l4 + 2, static_cast<uint16_t>(~L4Sum(false, ip, l4, len, sw::kProtoIcmp6)));
    }
  }
}

// Leaves a UDP checksum partial: the folded pseudo-header sum in the field.
void MakePartial(std::vector<uint8_t>& f) {
  uint32_t l2 = L2Len(f.data(), f.size());
  if (!l2) return;
  uint16_t type = Be16(f.data() + l2 - 2);
  uint8_t* ip = f.data() + l2;
  size_t avail = f.size() - l2;
  if (type == sw::kEthIPv4 && avail >= 28 && (ip[0] & 0x0f) == 5 && ip[9] == sw::kProtoUdp) {
    size_t len = std::min<size_t>(Be16(ip + 2), avail);
    if (len >= 28) PutBe16(ip + 26, UdpPseudoSum(true, ip, len - 20));
  } else if (type == sw::kEthIPv6 && avail >= 48 && ip[6] == sw::kProtoUdp) {
    size_t len = std::min<size_t>(Be16(ip + 4), avail - 40);
    if (len >= 8) PutBe16(ip + 46, UdpPseudoSum(false, ip, len));
  }
}

// Dates the heartbeat after the L2 header (so the replay guard's skew check
// passes) and signs it, as the peer does.
void SignHeartbeat(std::vector<uint8_t>& f) {
  uint32_t l2 = L2Len(f.data(), f.size());
  if (!l2 || f.size() < l2 + sw::kHeartbeatLen) return;
  uint8_t* body = f.data() + l2;
  uint64_t now = tandem::UnixNs();
  for (int i = 7; i >= 0; --i, now >>= 8) body[48 + i] = now & 0xff;
  unsigned len = 32;
  HMAC(EVP_sha256(), kPairKey, static_cast<int>(std::strlen(kPairKey)), body, sw::kHeartbeatBodyLen,
       body + sw::kHeartbeatBodyLen, &len);
}

void Inject(Run& r, uint32_t port, uint32_t queue, bool split, const std::vector<uint8_t>& f) {
  if (f.empty()) return;
  // Segments of at most the data room, or two when asked to split.
  std::vector<std::pair<size_t, size_t>> segs;
  size_t room = RTE_MBUF_DEFAULT_DATAROOM;
  if (split && f.size() >= 2) {
    segs.push_back({0, f.size() / 2});
    segs.push_back({f.size() / 2, f.size() - f.size() / 2});
  }
  if (segs.empty() || segs[0].second > room || segs[1].second > room) {
    segs.clear();
    for (size_t at = 0; at < f.size(); at += room)
      segs.push_back({at, std::min(room, f.size() - at)});
  }
  rte_mbuf* head = nullptr;
  rte_mbuf* last = nullptr;
  for (auto [at, len] : segs) {
    rte_mbuf* m = rte_pktmbuf_alloc(r.b.rx_pool);
    FUZZ_CHECK(m != nullptr, "the harness's RX pool is empty: mbufs leaked");
    UnpoisonMbuf(m);
    std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), f.data() + at, len);
    m->data_len = static_cast<uint16_t>(len);
    m->port = r.dp.ports[port].id;  // what a PMD sets on receive
    if (!head) {
      head = m;
      head->pkt_len = 0;
      head->nb_segs = 0;
    } else {
      last->next = m;
    }
    head->pkt_len += static_cast<uint32_t>(len);
    head->nb_segs++;
    last = m;
  }
  for (rte_mbuf* m = head; m; m = m->next) PoisonAroundData(m);
  if (rte_ring_sp_enqueue(r.b.rx[port][queue], head) != 0) {
    for (rte_mbuf* m = head; m; m = m->next) UnpoisonMbuf(m);
    rte_pktmbuf_free(head);
    return;
  }
  r.injected_ok++;
}

// The IP whose MAC a copy to `remote` needs, by IpPrefix::Contains: an
// oracle apart from the switch's NextHops.
IpAddr NextHopOf(const sw::SwitchConfig& c, const IpAddr& remote) {
  for (const IpPrefix& p : c.prefixes) {
    if (p.Contains(remote)) return remote;
  }
  const IpAddr& gw = remote.is_v4() ? c.gateway4 : c.gateway6;
  return c.prefixes.empty() || gw.is_zero() ? remote : gw;
}

bool IsVip(const Bed& b, const IpAddr& a) {
  return std::find(b.vips.begin(), b.vips.end(), a) != b.vips.end();
}

IpAddr V4At(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return IpAddr::FromV4(v);
}

bool Unicast(const uint8_t* mac) {
  static const uint8_t zero[6] = {};
  return !(mac[0] & 1) && std::memcmp(mac, zero, 6) != 0;
}

// A media copy: parses, goes to a receiving leg of the meeting and channel of
// a sender of the same payload, at the neighbour cache's MAC for it.
void CheckMedia(Run& r, const uint8_t* f, size_t len) {
  sw::ParseConfig pc = r.pcfg;
  std::memcpy(pc.mac, f, 6);
  FUZZ_CHECK(Unicast(f), "media copy to a group or zero MAC");
  sw::Parsed p = sw::Parse(f, static_cast<uint32_t>(len), pc);
  FUZZ_CHECK(p.verdict == sw::Verdict::kForward, "a media copy does not parse (verdict %d drop %u)",
             int(p.verdict), unsigned(p.drop));
  FUZZ_CHECK(p.frame_len == len, "media copy with %zu bytes of padding", len - p.frame_len);
  const uint8_t* ip = f + p.l3;
  FUZZ_CHECK((p.v4 ? ip[8] : ip[7]) == sw::kTtl, "TTL/hop limit of a copy is not %u", sw::kTtl);
  FUZZ_CHECK(IsVip(r.b, p.key.remote), "media copy from %s, not a VIP",
             p.key.remote.ToString().c_str());
  tb::LegKey to;
  to.remote = p.key.local;
  to.remote_port = p.key.local_port;
  to.local = p.key.remote;
  to.local_port = p.key.remote_port;
  uint32_t slot = r.dp.tables.Find(to);
  FUZZ_CHECK(slot != tb::kNil, "media copy to %s port %u from %s port %u: no such leg",
             to.remote.ToString().c_str(), to.remote_port, to.local.ToString().c_str(),
             to.local_port);
  const tb::LegEntry& rcv = r.dp.tables.leg(slot);
  FUZZ_CHECK(rcv.flags.load() & tb::kLegRecv, "copy to a leg without recv");
  uint8_t mac[6];
  FUZZ_CHECK(r.dp.neigh.Lookup(NextHopOf(r.dp.cfg, rcv.key.remote), mac), "copy to an unresolved leg");
  FUZZ_CHECK(std::memcmp(mac, f, 6) == 0, "copy sent to another MAC than the neighbour's");

  const uint8_t* udp = f + p.l4;
  size_t plen = p.frame_len - p.l4 - 8;
  bool valid = p.v4 && Be16(udp + 6) == 0
                   ? true
                   : L4Sum(p.v4, ip, udp, p.frame_len - p.l4, sw::kProtoUdp) == 0xffff;
  bool matched = false, originals_valid = true;
  for (const Injected& in : r.injected) {
    if (!in.forward || in.v4 != p.v4 || in.payload.size() != plen ||
        std::memcmp(in.payload.data(), udp + 8, plen) != 0) {
      continue;
    }
    originals_valid = originals_valid && in.udp_valid;
    if (in.sender == tb::kNil || in.sender == slot) continue;
    const tb::LegEntry& s = r.dp.tables.leg(in.sender);
    uint32_t sf = s.flags.load();
    if (s.meeting == rcv.meeting && s.channel == rcv.channel && (sf & tb::kLegSend) &&
        !(sf & tb::kLegMuted)) {
      matched = true;
    }
  }
  FUZZ_CHECK(matched,
             "copy to %s port %u (meeting slot %u channel %u) of no sender in its "
             "meeting and channel",
             to.remote.ToString().c_str(), to.remote_port, rcv.meeting, rcv.channel);
  if (originals_valid) FUZZ_CHECK(valid, "a valid UDP checksum became invalid in a copy");
  r.tx_media++;
}

void CheckHeartbeat(Run& r, const uint8_t* body, size_t len, uint32_t path) {
  auto m = sw::DecodeHeartbeat(body, len, kPairKey);
  FUZZ_CHECK(m.ok(), "our heartbeat does not decode: %s", m.status().ToString().c_str());
  FUZZ_CHECK(m->node_id == r.dp.cfg.pair_node_id && m->path == path, "heartbeat fields");
}

// Everything the switch sends: media copies, its own ARP/ND/ICMP frames and heartbeats.
void CheckTx(Run& r, uint32_t port, uint32_t queue, const uint8_t* f, size_t len) {
  FUZZ_CHECK(len >= 14, "a %zu-byte frame sent", len);
  const sw::Port& our = r.dp.ports[port];
  FUZZ_CHECK(std::memcmp(f + 6, our.mac, 6) == 0, "sent with another source MAC");
  if (port == 1) {
    // The backbone carries only our heartbeats, untagged.
    FUZZ_CHECK(Be16(f + 12) == sw::kEthHeartbeat, "backbone frame of type %04x", Be16(f + 12));
    FUZZ_CHECK(queue == 0, "the main thread's frames go out on worker 0's queue");
    CheckHeartbeat(r, f + 14, len - 14, 1);
    return;
  }
  uint32_t l2 = 14;
  if (r.dp.cfg.vlan) {
    FUZZ_CHECK(
        len >= 18 && Be16(f + 12) == sw::kEthVlan && (Be16(f + 14) & 0x0fff) == r.dp.cfg.vlan,
        "access frame without our VLAN tag");
    l2 = 18;
  } else {
    FUZZ_CHECK(Be16(f + 12) != sw::kEthVlan, "tagged frame on an untagged access port");
  }
  uint16_t type = Be16(f + l2 - 2);
  const uint8_t* l3 = f + l2;
  size_t avail = len - l2;
  bool udp = (type == sw::kEthIPv4 && avail >= 20 && l3[9] == sw::kProtoUdp) ||
             (type == sw::kEthIPv6 && avail >= 40 && l3[6] == sw::kProtoUdp);
  if (udp) {
    CheckMedia(r, f, len);
    return;
  }
  FUZZ_CHECK(queue == 0, "the main thread's frames go out on worker 0's queue");
  if (type == sw::kEthHeartbeat) {
    CheckHeartbeat(r, l3, avail, 0);
  } else if (type == sw::kEthArp) {
    FUZZ_CHECK(avail >= 28, "short ARP");
    FUZZ_CHECK(Be16(l3) == 1 && Be16(l3 + 2) == sw::kEthIPv4 && l3[4] == 6 && l3[5] == 4,
               "ARP header");
    uint16_t op = Be16(l3 + 6);
    FUZZ_CHECK(op == 1 || op == 2, "ARP op %u", op);
    FUZZ_CHECK(std::memcmp(l3 + 8, our.mac, 6) == 0, "ARP sender MAC is not ours");
    IpAddr spa = V4At(l3 + 14), tpa = V4At(l3 + 24);
    FUZZ_CHECK(IsVip(r.b, spa) || (op == 1 && spa.v4() == 0), "ARP for %s, not one of our VIPs",
               spa.ToString().c_str());
    if (op == 2) {
      FUZZ_CHECK(!IsVip(r.b, tpa) && Unicast(l3 + 18) && std::memcmp(f, l3 + 18, 6) == 0,
                 "ARP reply to a VIP or a group");
    }
  } else if (type == sw::kEthIPv4) {
    FUZZ_CHECK(avail >= 20 && l3[0] == 0x45 && Fold(Sum16(l3, 20)) == 0xffff,
               "IPv4 header of a frame we built");
    FUZZ_CHECK(l3[9] == sw::kProtoIcmp, "IPv4 protocol %u", l3[9]);
    size_t total = Be16(l3 + 2);
    FUZZ_CHECK(total >= 28 && total <= avail, "ICMP length");
    FUZZ_CHECK(IsVip(r.b, V4At(l3 + 12)), "ICMP not from a VIP");
    FUZZ_CHECK(l3[20] == 0 && Fold(Sum16(l3 + 20, total - 20)) == 0xffff, "ICMP echo reply");
    FUZZ_CHECK(Unicast(f), "echo reply to a group MAC");
  } else if (type == sw::kEthIPv6) {
    FUZZ_CHECK(avail >= 48 && (l3[0] >> 4) == 6, "IPv6 header of a frame we built");
    FUZZ_CHECK(l3[6] == sw::kProtoIcmp6, "IPv6 next header %u", l3[6]);
    size_t plen = Be16(l3 + 4);
    FUZZ_CHECK(plen >= 8 && 40 + plen <= avail, "ICMPv6 length");
    const uint8_t* icmp = l3 + 40;
    FUZZ_CHECK(L4Sum(false, l3, icmp, plen, sw::kProtoIcmp6) == 0xffff, "ICMPv6 checksum");
    IpAddr src = IpAddr::FromV6(l3 + 8);
    uint8_t t = icmp[0];
    if (t == 136 || t == 135) {
      FUZZ_CHECK(l3[7] == 255, "ND hop limit %u", l3[7]);
      FUZZ_CHECK(plen >= 24, "short ND");
      if (t == 136) {
        FUZZ_CHECK(IsVip(r.b, src) && IsVip(r.b, IpAddr::FromV6(icmp + 8)),
                   "NA for %s, not one of our VIPs", src.ToString().c_str());
        // Solicited: to the asker; unsolicited: to all nodes.
        static const uint8_t all_nodes[6] = {0x33, 0x33, 0, 0, 0, 1};
        FUZZ_CHECK((icmp[4] & 0x40) ? Unicast(f) : std::memcmp(f, all_nodes, 6) == 0,
                   "NA (flags %02x) to %02x:%02x:%02x:%02x:%02x:%02x", icmp[4], f[0], f[1], f[2],
                   f[3], f[4], f[5]);
      } else {
        FUZZ_CHECK(IsVip(r.b, src) || src.is_zero(), "NS from %s", src.ToString().c_str());
        FUZZ_CHECK(!IsVip(r.b, IpAddr::FromV6(icmp + 8)), "NS for our own VIP");
      }
    } else {
      FUZZ_CHECK(t == 129, "ICMPv6 type %u sent", t);
      FUZZ_CHECK(IsVip(r.b, src) && Unicast(f), "echo reply not from a VIP or to a group");
    }
  } else {
    FUZZ_CHECK(false, "sent a frame of type %04x", type);
  }
}

// Takes every frame out of the TX rings, checks it and frees it.
uint32_t DrainTx(Run& r) {
  uint32_t n = 0;
  std::vector<uint8_t> buf;
  for (uint32_t p = 0; p < kPorts; ++p) {
    for (uint32_t q = 0; q < kQueues; ++q) {
      void* obj;
      while (rte_ring_sc_dequeue(r.b.tx[p][q], &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        buf.clear();
        uint32_t segs = 0;
        for (rte_mbuf* s = m; s; s = s->next) {
          const auto* d = rte_pktmbuf_mtod(s, const uint8_t*);
          buf.insert(buf.end(), d, d + s->data_len);
          ++segs;
        }
        FUZZ_CHECK(segs == m->nb_segs && buf.size() == m->pkt_len,
                   "mbuf chain: %u segments of %zu bytes, header says %u of %u", segs, buf.size(),
                   m->nb_segs, m->pkt_len);
        CheckTx(r, p, q, buf.data(), buf.size());
        r.tx_frames++;
        r.tx_bytes += buf.size();
        rte_pktmbuf_free(m);
        ++n;
      }
    }
  }
  return n;
}

bool RingsEmpty(const Run& r) {
  if (rte_ring_count(r.dp.slow_ring) || rte_ring_count(r.dp.known_ring) ||
      rte_ring_count(r.dp.wanted_ring) ||
      rte_ring_count(r.dp.hb_ring[0]) || rte_ring_count(r.dp.hb_ring[1]) ||
      rte_ring_count(r.dp.resolve_ring) || rte_ring_count(r.dp.inject_ring)) {
    return false;
  }
  for (uint32_t p = 0; p < kPorts; ++p) {
    for (uint32_t q = 0; q < kQueues; ++q) {
      if (rte_ring_count(r.b.rx[p][q]) || rte_ring_count(r.b.tx[p][q])) return false;
    }
  }
  return true;
}

// Polls the workers and the slow path, in the switch's order, until nothing
// moves. TX is drained after each worker so that a copy is judged against
// the neighbour cache the worker read.
void Settle(Run& r, sw::WorkerPoller* workers[], sw::SlowPath& slow) {
  for (uint32_t round = 0; round < kMaxRounds; ++round) {
    uint32_t got = 0;
    for (uint32_t w = 0; w < kWorkers; ++w) {
      got += workers[w]->Poll();
      got += DrainTx(r);
    }
    got += slow.Poll(tandem::MonotonicNs());
    if (got == 0 && RingsEmpty(r)) return;
  }
  FUZZ_CHECK(false, "the switch did not settle in %u rounds", kMaxRounds);
}

// The workers' blocks only, unlike tables::SumWorkerCounters: the main
// thread's block (index kWorkers) counts the frames the slow path built.
tb::WorkerCounters SumWorkers(const tb::StateView& s) {
  tb::WorkerCounters t{};
  for (uint32_t w = 0; w < kWorkers; ++w) {
    const tb::WorkerCounters& c = s.worker_counters(w);
    t.rx_packets += c.rx_packets;
    t.rx_bytes += c.rx_bytes;
    t.tx_packets += c.tx_packets;
    t.tx_bytes += c.tx_bytes;
    t.forwarded_in += c.forwarded_in;
    t.slow_path += c.slow_path;
    t.csum_completed += c.csum_completed;
    for (uint32_t d = 0; d < tb::kDropCount; ++d) t.drops[d] += c.drops[d];
  }
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  Setup(argc && *argc > 0 ? (*argv)[0] : nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Bed& b = *g_bed;
  sw::Dataplane& dp = *b.dp;
  // Every input starts from the same state region and configuration.
  std::memcpy(b.state_map.base(), b.state_snapshot.data(), b.state_snapshot.size());
  uint8_t c0 = data[0], c1 = data[1];
  dp.cfg.vlan = (c0 & 1) ? 5 : 0;
  dp.cfg.mtu = (c0 & 2) ? 9000 : 1500;
  bool standby = c0 & 4;
  dp.hold_active.store((c0 & 8) != 0);
  static const uint32_t kZeroCopyMin[4] = {512, 0, 64, 1400};
  dp.cfg.zero_copy_min = kZeroCopyMin[(c0 >> 4) & 3];
  dp.cfg.pair_node_id = (c0 & 0x40) ? 0 : kPairNode;
  dp.cfg.burst = static_cast<uint16_t>(1 + (c1 & 31));
  if (standby) b.writer->SetRole(tb::Role::kStandby, 1);

  Run r{b, dp, {}, 0, 0, 0, 0, {}};
  std::memcpy(r.pcfg.mac, dp.ports[0].mac, 6);
  r.pcfg.vlan = dp.cfg.vlan;
  r.pcfg.mtu = dp.cfg.mtu;
  {
    sw::WorkerPoller w0(dp, 0, 0), w1(dp, 1, 1);
    sw::WorkerPoller* workers[kWorkers] = {&w0, &w1};
    for (auto* w : workers) {
      auto st = w->Start();
      FUZZ_CHECK(st.ok(), "worker: %s", st.ToString().c_str());
    }
    sw::SlowPath slow(dp);
    // As in the switch, the main thread has run (read the VIPs, announced
    // them) before frames arrive.
    Settle(r, workers, slow);
    size_t pos = 2;
    while (pos + 3 <= size && r.injected.size() < kMaxFrames) {
      uint8_t flags = data[pos];
      size_t len = std::min<size_t>({size_t(Be16(data + pos + 1)), size - pos - 3, kMaxFrameLen});
      pos += 3;
      Injected in;
      in.bytes.assign(data + pos, data + pos + len);
      pos += len;
      if (flags & 4) FixChecksums(in.bytes);
      if (flags & 0x40) MakePartial(in.bytes);
      if (flags & 8) SignHeartbeat(in.bytes);
      uint32_t port = flags & 1;
      if (port == 0 && !in.bytes.empty()) {
        sw::Parsed p = sw::Parse(in.bytes.data(), static_cast<uint32_t>(in.bytes.size()), r.pcfg);
        if (p.verdict == sw::Verdict::kForward) {
          in.forward = true;
          in.v4 = p.v4;
          const uint8_t* udp = in.bytes.data() + p.l4;
          const uint8_t* ip = in.bytes.data() + p.l3;
          size_t udp_len = p.frame_len - p.l4;
          in.udp_valid = (p.v4 && Be16(udp + 6) == 0) ||
                         L4Sum(p.v4, ip, udp, udp_len, sw::kProtoUdp) == 0xffff ||
                         Be16(udp + 6) == UdpPseudoSum(p.v4, ip, udp_len);
          const uint8_t* end = in.bytes.data() + p.frame_len;
          in.payload.assign(udp + 8, end);
          in.sender = dp.tables.Find(p.key);
        }
      }
      Inject(r, port, (flags >> 1) & 1, flags & 0x20, in.bytes);
      r.injected.push_back(std::move(in));
      if (flags & 0x10) Settle(r, workers, slow);
    }
    Settle(r, workers, slow);
  }
  // The workers left (flushing what they held): nothing may remain anywhere.
  DrainTx(r);
  FUZZ_CHECK(RingsEmpty(r), "frames left in a ring");
  auto pools = Pools(b);
  for (size_t i = 0; i < pools.size(); ++i) {
    unsigned in_use = rte_mempool_in_use_count(pools[i]);
    FUZZ_CHECK(in_use == b.baseline[i], "pool %s: %u mbufs in use after the input, %u before",
               pools[i]->name, in_use, b.baseline[i]);
  }

  // Every received frame has one fate, and the counters agree.
  tb::WorkerCounters t = SumWorkers(dp.state);
  auto D = [&](tb::Drop d) { return t.drops[uint32_t(d)]; };
  uint64_t packet_drops = 0;
  for (uint32_t d = 0; d < tb::kDropCount; ++d) {
    auto drop = tb::Drop(d);
    // Drops counted per copy, not per received packet.
    if (drop == tb::Drop::kNoNeighbour || drop == tb::Drop::kNoBuffer ||
        drop == tb::Drop::kTxFull) {
      continue;
    }
    packet_drops += t.drops[d];
  }
  FUZZ_CHECK(t.rx_packets == r.injected_ok, "rx_packets %llu, %llu frames injected",
             (unsigned long long)t.rx_packets, (unsigned long long)r.injected_ok);
  FUZZ_CHECK(t.rx_packets == t.forwarded_in + t.slow_path + packet_drops,
             "rx %llu != forwarded %llu + slow path %llu + dropped %llu",
             (unsigned long long)t.rx_packets, (unsigned long long)t.forwarded_in,
             (unsigned long long)t.slow_path, (unsigned long long)packet_drops);
  FUZZ_CHECK(t.csum_completed <= t.forwarded_in, "%llu checksums completed, %llu forwarded",
             (unsigned long long)t.csum_completed, (unsigned long long)t.forwarded_in);
  FUZZ_CHECK(t.tx_packets == r.tx_frames && t.tx_bytes == r.tx_bytes,
             "tx counted %llu frames %llu bytes, %llu / %llu seen",
             (unsigned long long)t.tx_packets, (unsigned long long)t.tx_bytes,
             (unsigned long long)r.tx_frames, (unsigned long long)r.tx_bytes);
  FUZZ_CHECK(D(tb::Drop::kTxFull) == 0 && D(tb::Drop::kNoBuffer) == 0 &&
                 dp.state.worker_counters(kWorkers).drops[uint32_t(tb::Drop::kTxFull)] == 0,
             "tx_full or no_buffer with rings and pools to spare");
  tb::LegUsage sum;
  for (uint32_t slot = 0; slot < dp.tables.leg_capacity(); ++slot) {
    const tb::LegEntry& e = dp.tables.leg(slot);
    if (e.state.load() != uint8_t(tb::EntryState::kLive)) continue;
    tb::LegUsage u = tb::SumLegUsage(dp.state, slot, e.gen.load());
    sum.packets_in += u.packets_in;
    sum.packets_out += u.packets_out;
    sum.bytes_out += u.bytes_out;
    sum.drop_not_allowed += u.drop_not_allowed;
    sum.drop_policed += u.drop_policed;
  }
  FUZZ_CHECK(sum.packets_out == r.tx_media, "legs' packets_out %llu, %llu copies sent",
             (unsigned long long)sum.packets_out, (unsigned long long)r.tx_media);
  FUZZ_CHECK(sum.packets_in == t.forwarded_in + D(tb::Drop::kNotAllowed) +
                                   D(tb::Drop::kPoliced) + D(tb::Drop::kMeetingCapped),
             "legs' packets_in %llu != forwarded %llu + not_allowed + policed + meeting_capped",
             (unsigned long long)sum.packets_in, (unsigned long long)t.forwarded_in);
  FUZZ_CHECK(sum.drop_not_allowed == D(tb::Drop::kNotAllowed) &&
                 sum.drop_policed == D(tb::Drop::kPoliced) + D(tb::Drop::kMeetingCapped),
             "legs' drops disagree with the workers'");
  if (standby) {
    FUZZ_CHECK(t.forwarded_in == 0 && r.tx_media == 0, "a standby forwarded media");
    b.writer->SetRole(tb::Role::kActive, 1);
  }
  if (std::getenv("TANDEM_FUZZ_VERBOSE")) {
    // What the input did, to see that a seed reaches what it is meant to.
    const tb::PeerPath* peer = dp.state.header().peer;
    std::fprintf(stderr,
                 "  rx %llu forwarded_in %llu slow_path %llu tx %llu (media %llu) "
                 "peer frames ok %llu/%llu refused %llu/%llu other %llu/%llu hold %d\n ",
                 (unsigned long long)t.rx_packets, (unsigned long long)t.forwarded_in,
                 (unsigned long long)t.slow_path, (unsigned long long)r.tx_frames,
                 (unsigned long long)r.tx_media, (unsigned long long)peer[0].frames_ok,
                 (unsigned long long)peer[1].frames_ok, (unsigned long long)peer[0].frames_refused,
                 (unsigned long long)peer[1].frames_refused, (unsigned long long)peer[0].frames_other,
                 (unsigned long long)peer[1].frames_other, int(dp.hold_active.load()));
    const tb::WorkerCounters& m = dp.state.worker_counters(kWorkers);
    for (uint32_t d = 0; d < tb::kDropCount; ++d) {
      if (t.drops[d] || m.drops[d]) {
        std::fprintf(stderr, " %s %llu/%llu", tb::DropName(tb::Drop(d)),
                     (unsigned long long)t.drops[d], (unsigned long long)m.drops[d]);
      }
    }
    std::fprintf(stderr, "\n");
  }
  return 0;
}
