// The shared-memory layouts that cross between tandem-control (writer of the
// session tables) and tandem-switch (reader of the session tables, writer of the
// state region). Both regions are plain files on a tmpfs (default /dev/shm),
// mapped MAP_SHARED by every process that uses them.
//
// Versioning: each region starts with a magic and a layout version; a process
// refuses to map a region whose magic, version, struct sizes or offsets do not
// match what it was built with (see Region::Validate in region.cc). Any change
// to a struct below bumps the version.
//
// Concurrency contract of the tables region (one writer, many readers):
//  - Entries are fully written before they are published by a release store of
//    a list link (hash chain or meeting-channel list); readers load links with
//    acquire. A key, meeting and channel never change while an entry is live.
//  - Mutable attributes (flags, rate limits) are single aligned words written
//    atomically, so no reader sees a half-written value.
//  - A removed entry is unlinked first and freed only after every registered
//    reader has passed a quiescent point (QSBR below), so a reader that still
//    holds it keeps walking valid links.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/net/addr.h"

namespace tandem::tables {

inline constexpr uint64_t kTablesMagic = 0x31424154444e4154ULL;  // "TANDTAB1"
inline constexpr uint64_t kStateMagic = 0x31545341444e4154ULL;   // "TANDAST1"
// 3: HashLegKey became a CRC-32C (chains of version 2 are in other buckets).
// 4: LegEntry::gen moved into the entry's first line (swapped with group_prev).
// 5: LegEntry::limited in the first line (where reserved0 was).
// 6: LegEntry::sums in the first line; group_prev moved to the second.
inline constexpr uint32_t kTablesVersion = 6;
// 5: LegCounters' per-packet fields in its first line (issue 15).
inline constexpr uint32_t kStateVersion = 5;

inline constexpr uint32_t kNil = 0xffffffffu;  // end of a chain or list
inline constexpr uint32_t kMaxVips = 64;
inline constexpr uint32_t kMaxReaders = 64;  // worker slots for QSBR
inline constexpr uint32_t kMaxWorkers = 16;
inline constexpr uint32_t kMaxPorts = 4;
inline constexpr uint32_t kChannels = 3;

enum class Channel : uint8_t { kAudio = 0, kVideo = 1, kShare = 2 };
const char* ChannelName(Channel c);

enum class Role : uint32_t { kStandby = 0, kActive = 1 };

// Leg flags (LegEntry::flags).
inline constexpr uint32_t kLegSend = 1u << 0;   // packets from this leg are forwarded
inline constexpr uint32_t kLegRecv = 1u << 1;   // this leg receives copies
inline constexpr uint32_t kLegMuted = 1u << 2;  // sending suspended by the application

enum class EntryState : uint8_t { kFree = 0, kLive = 1, kRetired = 2 };

// The lookup key: who sends (remote) to which of our addresses (local).
struct LegKey {
  IpAddr remote;
  IpAddr local;  // the VIP
  uint16_t remote_port = 0;  // host byte order
  uint16_t local_port = 0;   // host byte order
  friend bool operator==(const LegKey& a, const LegKey& b) {
    return a.remote == b.remote && a.local == b.local && a.remote_port == b.remote_port &&
           a.local_port == b.local_port;
  }
};
static_assert(sizeof(LegKey) == 36);

// CRC-32C (Castagnoli) over 64- and 32-bit words, as the SSE4.2 crc32
// instruction computes it (no final inversion). The switch is built for
// SSE4.2 (DPDK's baseline) and inlines the instruction; other builds of x86
// (the control plane) use it through a function where the CPU has it, and a
// bitwise loop otherwise: the same values everywhere, so the writer and the
// readers agree on every bucket.
namespace crc32c_detail {
inline uint32_t Soft(uint32_t crc, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    crc ^= uint8_t(v >> (8 * i));
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
  }
  return crc;
}
#if defined(__x86_64__) && !defined(__SSE4_2__)
__attribute__((target("sse4.2"))) inline uint32_t Hw64(uint32_t crc, uint64_t v) {
  return uint32_t(__builtin_ia32_crc32di(crc, v));
}
__attribute__((target("sse4.2"))) inline uint32_t Hw32(uint32_t crc, uint32_t v) {
  return __builtin_ia32_crc32si(crc, v);
}
inline const bool kHw = __builtin_cpu_supports("sse4.2");
#endif
}  // namespace crc32c_detail

inline uint32_t Crc32c64(uint32_t crc, uint64_t v) {
#if defined(__SSE4_2__)
  return uint32_t(__builtin_ia32_crc32di(crc, v));
#elif defined(__x86_64__)
  return crc32c_detail::kHw ? crc32c_detail::Hw64(crc, v) : crc32c_detail::Soft(crc, v, 8);
#else
  return crc32c_detail::Soft(crc, v, 8);
#endif
}
inline uint32_t Crc32c32(uint32_t crc, uint32_t v) {
#if defined(__SSE4_2__)
  return __builtin_ia32_crc32si(crc, v);
#elif defined(__x86_64__)
  return crc32c_detail::kHw ? crc32c_detail::Hw32(crc, v) : crc32c_detail::Soft(crc, v, 4);
#else
  return crc32c_detail::Soft(crc, v, 4);
#endif
}

// Deterministic across processes and builds (the writer hashes, readers look
// up). A hardware CRC of the words that carry information, as DPDK's l3fwd
// hashes its exact-match keys: for IPv4 (both addresses IPv4-mapped) 12 bytes,
// three crc32 instructions (about 9 cycles of latency); otherwise all 36
// bytes. It replaced five rounds of multiply-and-shift mixing, 16 % of the
// unicast worker's time (perf, issue 15).
inline uint64_t HashLegKey(const LegKey& k) {
  uint64_t w[4];
  __builtin_memcpy(w, k.remote.b, 16);
  __builtin_memcpy(w + 2, k.local.b, 16);
  uint32_t ports = uint32_t{k.remote_port} << 16 | k.local_port;
  // ::ffff:0:0/96 in little-endian words: the low half of the second word.
  constexpr uint64_t kMappedMask = 0xffffffffULL;
  constexpr uint64_t kMapped = 0xffff0000ULL;
  uint32_t h = 0x27a3cbd9u;
  if ((w[0] | w[2]) == 0 && (w[1] & kMappedMask) == kMapped && (w[3] & kMappedMask) == kMapped) {
    h = Crc32c64(h, w[1]);
    h = Crc32c32(h, uint32_t(w[3] >> 32));
    return Crc32c32(h, ports);
  }
  for (uint64_t v : w) h = Crc32c64(h, v);
  return Crc32c32(h, ports);
}

// One's complement sums (RFC 1071) of a key's 16-bit big-endian words,
// folded: of its two addresses (4 bytes each for IPv4, 16 for IPv6), and of
// the addresses and both ports. They are what a rewrite from or to the leg
// takes out of or puts into the IPv4 header checksum and the UDP checksum
// (switch/packet.h). Neither is ever 0: a key's ports are not 0.
struct EndpointSums {
  uint16_t addrs = 0;
  uint16_t all = 0;  // addresses and ports
  friend bool operator==(const EndpointSums&, const EndpointSums&) = default;
};

// Computed by the writer when it stores a key; the switch adds the stored
// words instead of summing the key's bytes for every packet and every copy.
inline EndpointSums SumEndpoints(const LegKey& k) {
  auto fold = [](uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return uint16_t(s);
  };
  uint32_t s = 0;
  for (int i = k.remote.is_v4() ? 12 : 0; i < 16; i += 2) {
    s += uint32_t(k.remote.b[i]) << 8 | k.remote.b[i + 1];
    s += uint32_t(k.local.b[i]) << 8 | k.local.b[i + 1];
  }
  EndpointSums r;
  r.addrs = fold(s);
  r.all = fold(uint32_t{r.addrs} + k.remote_port + k.local_port);
  return r;
}

struct alignas(64) LegEntry {
  LegKey key;                          // immutable while live
  uint32_t meeting = kNil;             // meeting slot; immutable while live
  uint8_t channel = 0;                 // immutable while live
  std::atomic<uint8_t> state{0};       // EntryState
  // pps_limit or kbps_limit is set (written after them, release): a worker
  // reads the second line, where the limits are, only for a limited leg.
  std::atomic<uint8_t> limited{0};
  uint8_t reserved0 = 0;
  std::atomic<uint32_t> flags{0};      // kLeg*
  std::atomic<uint32_t> hash_next{kNil};
  std::atomic<uint32_t> group_next{kNil};  // next leg of the same meeting and channel
  // In the first line with the key and flags: a worker reads it for every
  // receiver of every packet (Worker::Usage), and the second line held only
  // it and the rate limits, which a receiver never reads (issue 15).
  std::atomic<uint32_t> gen{0};        // bumped at each allocation; ties usage to a leg
  // SumEndpoints(key), written with the key and, like it, immutable while
  // live. In the first line: the switch reads the sender's for the checksum
  // base of each packet and each receiver's for its copy (issue 15).
  EndpointSums sums;
  // Second line: what only the sender's checks read, and the writer's own.
  std::atomic<uint32_t> pps_limit{0};  // 0 = unlimited
  std::atomic<uint32_t> kbps_limit{0};
  uint32_t group_prev = kNil;          // writer-only
  uint64_t leg_id = 0;                 // the control plane's id
  uint64_t participant_id = 0;
  uint64_t retire_token = 0;           // QSBR token at retirement (writer-only)
  uint64_t created_unix_ns = 0;
};
static_assert(sizeof(LegEntry) == 128);
static_assert(offsetof(LegEntry, gen) < 64 && offsetof(LegEntry, flags) < 64 &&
              offsetof(LegEntry, group_next) < 64 && offsetof(LegEntry, limited) < 64 &&
              offsetof(LegEntry, sums) + sizeof(EndpointSums) <= 64);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

inline constexpr uint32_t kMeetingPresenterOnly = 1u << 0;

struct alignas(64) MeetingEntry {
  uint64_t meeting_id = 0;
  uint64_t site_id = 0;
  std::atomic<uint8_t> state{0};  // EntryState
  uint8_t reserved0[3] = {};
  std::atomic<uint32_t> flags{0};
  std::atomic<uint32_t> head[kChannels] = {kNil, kNil, kNil};
  uint32_t count[kChannels] = {};  // writer-only
  uint32_t gen = 0;
  // The meeting's output cap: copies per second over all its receivers, all
  // workers together; 0 = unlimited.
  std::atomic<uint32_t> copies_limit{0};
  uint64_t retire_token = 0;
};
static_assert(sizeof(MeetingEntry) == 64);
static_assert(offsetof(MeetingEntry, copies_limit) == 52);

struct Vip {
  IpAddr addr;
};

// One per reader thread (a switch worker). `seen` is the last QSBR token the
// reader observed at a quiescent point, or 0 while it is offline (sleeping).
struct alignas(64) ReaderSlot {
  std::atomic<uint64_t> seen{0};
  std::atomic<int32_t> pid{0};  // 0 = slot unused; a dead pid counts as offline
  uint32_t worker = 0;
};
static_assert(sizeof(ReaderSlot) == 64);

struct alignas(64) TablesHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;
  uint64_t region_size;
  uint32_t leg_size, meeting_size;
  uint32_t leg_capacity;
  uint32_t bucket_count;  // power of two
  uint32_t meeting_capacity;
  uint32_t max_readers;
  uint64_t buckets_offset, legs_offset, meetings_offset, readers_offset;
  uint64_t created_unix_ns;

  alignas(64) std::atomic<uint64_t> qsbr_token;  // starts at 1
  std::atomic<uint64_t> change_count;  // bumped by each committed change
  std::atomic<int32_t> writer_pid;
  std::atomic<uint32_t> role;   // Role
  std::atomic<uint64_t> epoch;
  std::atomic<uint32_t> leg_count;
  std::atomic<uint32_t> meeting_count;
  // Written by the control plane for the switch's pair heartbeats: its
  // replication position, and a request that the peer take over.
  std::atomic<uint64_t> mirror_position;
  std::atomic<uint32_t> handover;
  // [fleet] witness: when (CLOCK_MONOTONIC ns) this node's hold on the pair's
  // key in etcd ends; 0 = no witness. Past it, a switch that hears its peer
  // on neither path stops answering for the VIPs and forwarding, even when
  // its control plane is dead (docs/fleet.md "Step-down enforced by the switch").
  std::atomic<uint64_t> active_until_ns;

  // VIPs change rarely: a sequence lock (odd while being written).
  alignas(64) std::atomic<uint32_t> vip_seq;
  uint32_t vip_count;
  Vip vips[kMaxVips];
};
static_assert(sizeof(TablesHeader) <= 4096);

// ---- State region: written by tandem-switch, read by control and tools ----

enum class Drop : uint32_t {
  kMalformed = 0,    // truncated or inconsistent headers, bad lengths
  kNotForUs,         // wrong destination MAC or IP, or not a VIP
  kUnsupported,      // fragments, IP options, non-UDP to a VIP, oversized
  kUnknownLeg,       // no leg for (remote, VIP, port)
  kNotAllowed,       // leg may not send, or is muted
  kPoliced,          // over the leg's packet or bit rate
  kNoNeighbour,      // receiver's MAC not resolved yet
  kTxFull,           // TX queue full
  kNoBuffer,         // mbuf pool exhausted
  kNotActive,        // this node is standby
  kSlowPathFull,     // ARP/ND/ICMP queue to the main thread full
  kTtlExceeded,
  kBadChecksum,
  kMeetingCapped,    // the meeting's copies per second over its cap (MeetingEntry::copies_limit)
  kSlowPathLimited,  // ARP/ND/ICMP or heartbeat over its source MAC's rate to the main thread
  kNeighConflict,    // ARP/ND naming a known neighbour's address from another MAC
  kCount
};
const char* DropName(Drop d);
inline constexpr uint32_t kDropCount = static_cast<uint32_t>(Drop::kCount);

inline constexpr uint32_t kLatencyBuckets = 128;

// Per-worker totals, summed on read.
struct alignas(64) WorkerCounters {
  uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
  uint64_t forwarded_in;   // packets that matched a leg and were fanned out
  uint64_t slow_path;      // packets handed to the main thread
  uint64_t csum_completed;  // media packets that came with a partial UDP checksum
  uint64_t drops[kDropCount];
  uint64_t loops, idle_sleeps;
  // Time in the switch, RX burst to TX burst, in TSC cycles: bucket i counts
  // bursts' packets whose time t has floor(4*log2(t)) == i (quarter octaves).
  uint64_t latency_hist[kLatencyBuckets];
  // TSC cycles of polls that found packets: the worker's busy time. In the
  // padding of the 64-byte aligned block: same size and offsets as before, an
  // older switch leaves it 0 (no layout version change).
  uint64_t busy_cycles;
};

struct alignas(64) WorkerHealth {
  std::atomic<uint64_t> heartbeat_ns;  // CLOCK_MONOTONIC, updated every loop batch
  std::atomic<uint32_t> lcore;
  std::atomic<uint32_t> sleeping;
};

// Per worker, per leg slot. A block whose gen differs from the leg's gen
// belongs to an earlier occupant of the slot and counts as zero.
//
// The first line holds everything a forwarded packet reads or writes (the
// sender's inbound counters and the receiver's outbound ones, the next-hop
// memo, the generation): a packet touches one line of each leg's block, not
// two (state layout 5, issue 15). The second holds what only drops, the
// first packet and limited legs touch.
struct alignas(64) LegCounters {
  std::atomic<uint32_t> gen;
  // The worker's memo of the leg's next hop (switch/neigh.h, LegHops): the
  // neighbour entry it resolved to, that entry's sequence number and MAC
  // when read. Valid only while hop_epoch is the running switch's (0 = none)
  // and the entry's sequence is unchanged, so a restarted switch or a
  // reused slot never trusts it.
  uint32_t hop_epoch;
  uint32_t hop_seq;
  uint32_t hop_neigh;
  uint8_t hop_mac[6];
  uint8_t hop_usable;
  uint8_t reserved;
  uint64_t packets_in, bytes_in, packets_out, bytes_out;
  uint64_t last_unix_ns;
  // Second line. first_unix_ns is written once, when packets_in is still 0.
  uint64_t first_unix_ns;
  uint64_t drop_not_allowed, drop_policed, drop_other;
  // The worker's policer of the leg (the switch's own), touched only when
  // the leg has a limit: TSC of the last refill (0 = full), tokens left in
  // packets and in bytes.
  uint64_t policer_tsc;
  double policer_packets, policer_bytes;
  uint64_t reserved2;
};
static_assert(sizeof(LegCounters) == 128);
static_assert(offsetof(LegCounters, last_unix_ns) < 64 && offsetof(LegCounters, hop_usable) < 64 &&
              offsetof(LegCounters, bytes_out) < 64);

struct alignas(64) PortState {
  char name[32];       // "access" or "backbone"
  char devargs[128];
  uint8_t mac[6];
  uint8_t link_up;
  uint8_t present;
  uint32_t speed_mbps;
  uint32_t rx_queues, tx_queues;
  // Shared-NIC mode: "<attach mode>, <socket mode>" (e.g. "native, copy"),
  // empty when the port has no steering program.
  char xdp_mode[32];
  uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

// kEvicted: a freed entry inside a probe chain (a tombstone): readers go on
// past it, the writer reuses it.
enum class NeighState : uint8_t {
  kFree = 0,
  kIncomplete = 1,
  kReachable = 2,
  kStale = 3,
  kEvicted = 4
};

// Neighbour cache (IP -> MAC), open addressing, written by the switch's main
// thread only. `seq` is a sequence lock (odd while written); every write,
// including a reuse of the entry for another address, moves it.
struct alignas(64) NeighEntry {
  std::atomic<uint32_t> seq;
  std::atomic<uint8_t> state;  // NeighState
  uint8_t mac[6];
  uint8_t probes;
  IpAddr ip;
  uint64_t updated_ns;    // CLOCK_MONOTONIC of last confirmation
  uint64_t requested_ns;  // last request we sent
};
static_assert(sizeof(NeighEntry) == 64);

inline constexpr uint32_t kNeighCapacity = 65536;  // power of two

// What the switch last heard from the pair's other node on one path
// (0 = access, 1 = backbone), from authenticated heartbeats. Written by the
// switch's main thread under `seq` (sequence lock), read by the control plane.
inline constexpr uint32_t kHbDataPlaneOk = 1u << 0;
inline constexpr uint32_t kHbAccessLinkUp = 1u << 1;
inline constexpr uint32_t kHbActive = 1u << 2;
inline constexpr uint32_t kHbHandover = 1u << 3;

struct alignas(64) PeerPath {
  std::atomic<uint32_t> seq;
  uint32_t node_id;
  uint64_t last_heard_ns;  // CLOCK_MONOTONIC; 0 = never
  uint64_t epoch;
  uint64_t position;
  uint32_t flags;          // kHb*
  uint32_t reserved;
  uint64_t frames_ok;
  uint64_t frames_refused;  // bad HMAC, replayed, stale or malformed
  uint64_t frames_other;    // authenticated, but of another node id or the other path
  // The peer's clock minus ours at its last accepted heartbeat (wall clock,
  // CLOCK_REALTIME): reported, never used to judge a heartbeat's freshness.
  int64_t clock_skew_ns;
  uint8_t mac[6];           // the Ethernet source of its last accepted heartbeat
  uint8_t reserved2[2];
};
static_assert(sizeof(PeerPath) == 128);

// What the switch's neighbour logic (switch/neigh_policy.h) did, written by
// its main thread under `seq`, read by the control plane and tools.
struct alignas(64) NeighStats {
  std::atomic<uint32_t> seq;
  uint32_t entries;           // in use (not free, not evicted)
  uint64_t conflicts;         // an address claimed or answered for by two MACs
  uint64_t moves;             // entries moved to a MAC that alone answered our probe
  uint64_t evictions;         // entries freed: unanswered, or no longer needed
  uint64_t refused;           // resolutions refused: the table was full
  uint64_t last_conflict_ns;  // CLOCK_MONOTONIC; 0 = never
  IpAddr last_conflict_ip;
  uint8_t last_conflict_mac[6];   // the MAC that claimed it
  uint8_t last_conflict_owner[6]; // the MAC the entry kept (zero if none)
};

struct alignas(64) StateHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;
  uint64_t region_size;
  uint32_t leg_capacity;
  uint32_t max_workers;
  uint32_t neigh_capacity;
  uint32_t leg_counters_size;
  uint64_t worker_counters_offset, health_offset, ports_offset, neigh_offset,
      leg_counters_offset;

  alignas(64) std::atomic<int32_t> switch_pid;
  std::atomic<uint32_t> n_workers;
  std::atomic<uint32_t> n_ports;
  std::atomic<uint64_t> started_unix_ns;
  std::atomic<uint64_t> restarts;  // times a switch adopted this region
  std::atomic<uint64_t> tsc_hz;    // for latency_hist
  // This node's own view, refreshed by the switch's main thread.
  std::atomic<uint32_t> local_flags;  // kHbDataPlaneOk | kHbAccessLinkUp
  std::atomic<uint32_t> heartbeat_node_id;  // 0 = heartbeats off
  std::atomic<uint64_t> heartbeats_sent;
  PeerPath peer[2];
  NeighStats neigh_stats;
  // Why the switch is quiet although the tables say active (kQuiet*; 0 = it
  // serves as the tables say). Last, so the fields above keep their offsets.
  std::atomic<uint32_t> quiet;
};
inline constexpr uint32_t kQuietPeerActive = 1u << 0;  // the peer is active over us
inline constexpr uint32_t kQuietWitness = 1u << 1;     // the hold on the key has ended
static_assert(sizeof(StateHeader) <= 4096);

}  // namespace tandem::tables
