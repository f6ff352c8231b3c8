// The poll-mode worker: RX burst -> parse -> bulk leg lookup -> checks ->
// fan-out with header rewrite -> TX burst. Run to completion, no locks, no
// system calls per packet. Each worker owns RX queue `queue` and TX queue
// `queue` of every port, its own counters, and its own policer state.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "switch/dataplane.h"
#include "switch/handoff.h"
#include "switch/policer.h"

namespace tandem::sw {


namespace {

using tables::Drop;
using tables::kNil;
using tables::LegEntry;

constexpr uint16_t kMaxBurst = 256;
// Sent once this many copies wait. A fan-out burst makes hundreds of copies;
// holding them all until the end of the burst took more mbufs than the
// mempool's per-lcore cache holds (256), so allocations came cold from the
// ring and rte_pktmbuf_reset and the payload copy missed the cache (perf:
// 16 % of the 1:16 fan-out in rte_pktmbuf_reset).
constexpr uint16_t kTxBufSize = 64;

// The usage counters are written for every packet: ask for the lines in a
// writable state so the store does not miss a second time.
inline void PrefetchForWrite(const void* p) { __builtin_prefetch(p, 1, 3); }

struct TxBuffer {
  uint16_t port = 0;
  uint16_t n = 0;
  rte_mbuf* pkts[kTxBufSize];
};

// IpAddr::is_v4 inline (IPv4 addresses are IPv4-mapped, ::ffff:0:0/96): it
// runs per receiver.
inline bool MappedV4(const IpAddr& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.b, kPrefix, 12) == 0;
}

// One receiver of one packet, gathered before any copy is made.
struct Receiver {
  tables::LegCounters* usage;  // this worker's block of the leg
  uint32_t slot;
  uint8_t mac[6];
};

// An epoch for LegHops that no other worker, and no earlier switch process on
// the same state region, used: the switch's restarts, its pid, the TSC and a
// count of workers made in this process, mixed.
uint32_t NewHopEpoch(const tables::StateView& state) {
  static std::atomic<uint32_t> made{0};
  uint64_t x = state.header().restarts.load(std::memory_order_relaxed) * 0x9e3779b97f4a7c15ULL;
  x ^= uint64_t(getpid()) << 32 ^ rte_rdtsc() ^ uint64_t(made.fetch_add(1) + 1) * 0xc2b2ae3d27d4eb4fULL;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  uint32_t e = uint32_t(x >> 32);
  return e ? e : 1;
}

class Worker {
 public:
  Worker(Dataplane& dp, uint32_t index, uint16_t queue)
      : dp_(dp), index_(index), queue_(queue), wc_(dp.state.worker_counters(index)),
        health_(dp.state.health(index)), usage_(&dp.state.leg_counters(index, 0)),
        hops_(dp.neigh, NextHops(dp.cfg.prefixes, dp.cfg.gateway4, dp.cfg.gateway6),
              NewHopEpoch(dp.state)) {
    for (size_t p = 0; p < dp.ports.size(); ++p) tx_[p].port = dp.ports[p].id;
    receivers_.resize(1024);
    sec_per_tsc_ = 1.0 / double(std::max<uint64_t>(dp.tsc_hz, 1));
    pcfg_.vlan = dp.cfg.vlan;
    pcfg_.mtu = dp.cfg.mtu;
    std::memcpy(pcfg_.mac, dp.ports[0].mac, 6);
    burst_ = std::min<uint16_t>(dp.cfg.burst, kMaxBurst);
  }

  int Run();
  // Run's first step: claims the worker's QSBR reader slot.
  absl::Status Register();
  // One iteration of Run's loop without its idle back-off: an RX burst from
  // every port, processed and sent, and for worker 0 the frames the main
  // thread queued; then a quiescent point. Returns the packets it handled.
  uint32_t Poll();
  // Run's last step: sends what is buffered, leaves QSBR.
  void Finish() {
    FlushAll();
    reader_.Unregister();
  }

 private:
  void ProcessBurst(uint32_t port_index, rte_mbuf** pkts, uint16_t n);
  bool Admit(rte_mbuf* m, const Parsed& p, uint32_t slot);
  uint32_t GatherReceivers(const LegEntry& sender, uint32_t sender_slot, uint32_t at);
  void FanOut(rte_mbuf* m, const Parsed& p, const Receiver* rcv, uint32_t n);
  bool Police(tables::LegCounters& u, const LegEntry& e, uint32_t bytes);
  bool MeetingAllows(uint32_t meeting_slot, uint32_t copies);
  rte_mbuf* Replica(rte_mbuf* m, const Parsed& p);
  void Send(uint32_t port_index, rte_mbuf* m, uint32_t bytes);
  void Flush(uint32_t port_index);
  void FlushAll() {
    for (size_t p = 0; p < dp_.ports.size(); ++p) Flush(p);
  }
  tables::LegCounters& Usage(uint32_t slot, uint32_t gen);
  void DropPacket(rte_mbuf* m, Drop d) {
    wc_.drops[uint32_t(d)]++;
    rte_pktmbuf_free(m);
  }
  // Within a burst drops are freed together at its end (rte_pktmbuf_free_bulk
  // returns them to the pool cache in one call).
  void DropLater(rte_mbuf* m, Drop d) {
    wc_.drops[uint32_t(d)]++;
    dropped_[ndropped_++] = m;
  }
  // To the main thread (switch/handoff.h), or dropped by reason.
  void HandOff(rte_mbuf* m, SlowKind kind, uint16_t l3, uint16_t ethertype) {
    Drop d = handoff_.Offer(m, kind, l3, ethertype, now_tsc_);
    if (d == Drop::kCount) {
      wc_.slow_path++;
    } else {
      DropLater(m, d);
    }
  }
  bool IsVip(const IpAddr& a);
  void RefreshVips();
  void RecordLatency(uint64_t cycles, uint32_t packets);
  void UpdateClock(uint64_t tsc);

  Dataplane& dp_;
  uint32_t index_;
  uint16_t queue_;
  uint16_t burst_;
  tables::WorkerCounters& wc_;
  tables::WorkerHealth& health_;
  tables::LegCounters* usage_;  // this worker's usage blocks, by leg slot
  tables::ReaderHandle reader_;
  ParseConfig pcfg_;
  TxBuffer tx_[tables::kMaxPorts];
  LegHops hops_;
  std::vector<Receiver> receivers_;  // of the whole burst, per packet in order
  // A member, not a local: a local array of Parsed would run its default
  // initialisers for all kMaxBurst entries on every burst.
  Parsed parsed_[kMaxBurst];
  std::vector<MeetingBudget> budgets_;  // by meeting slot, made at first use
  std::vector<IpAddr> vips_;
  uint32_t vip_seq_ = ~0u;
  rte_mbuf* dropped_[kMaxBurst];
  uint16_t ndropped_ = 0;
  uint64_t now_unix_ns_ = 0;
  uint64_t now_tsc_ = 0;
  // Wall-clock time from the TSC: a clock_gettime per burst cost more than
  // the rest of a small burst's bookkeeping. Re-anchored every second.
  uint64_t clock_unix_ns_ = 0, clock_tsc_ = 0;
  uint64_t tx_bytes_pending_[tables::kMaxPorts] = {};  // bytes of packets in tx_
  unsigned __int128 ns_per_tsc_q32_ = 0;  // 2^32 * 1e9 / tsc_hz
  double sec_per_tsc_ = 0;  // 1 / tsc_hz: the policers multiply, never divide
  // Last: its rate limiters' tables are large and touched only by the slow
  // path's frames.
  SlowHandoff handoff_{dp_};
};

bool Worker::IsVip(const IpAddr& a) {
  for (const IpAddr& v : vips_) {
    if (v == a) return true;
  }
  return false;
}

void Worker::RefreshVips() {
  uint32_t s = dp_.tables.header().vip_seq.load(std::memory_order_relaxed);
  if (s == vip_seq_) return;
  vips_ = dp_.tables.Vips();
  vip_seq_ = s;
}

void Worker::UpdateClock(uint64_t tsc) {
  now_tsc_ = tsc;
  if (clock_tsc_ == 0 || tsc - clock_tsc_ > dp_.tsc_hz) {
    clock_unix_ns_ = UnixNs();
    clock_tsc_ = rte_rdtsc();
    ns_per_tsc_q32_ = ((unsigned __int128)1000000000u << 32) / std::max<uint64_t>(dp_.tsc_hz, 1);
  }
  uint64_t dt = tsc > clock_tsc_ ? tsc - clock_tsc_ : 0;
  now_unix_ns_ = clock_unix_ns_ + uint64_t((dt * ns_per_tsc_q32_) >> 32);
}

tables::LegCounters& Worker::Usage(uint32_t slot, uint32_t gen) {
  tables::LegCounters& c = usage_[slot];
  if (c.gen.load(std::memory_order_relaxed) != gen) [[unlikely]] {
    // The slot's previous occupant left; its counts are not this leg's.
    c.packets_in = c.bytes_in = c.packets_out = c.bytes_out = 0;
    c.drop_not_allowed = c.drop_policed = c.drop_other = 0;
    c.first_unix_ns = c.last_unix_ns = 0;
    c.policer_tsc = 0;
    c.hop_epoch = 0;  // the next hop was the previous occupant's
    c.gen.store(gen, std::memory_order_release);
  }
  return c;
}

// A leg's packets mostly arrive on one worker (RSS on the 5-tuple), so
// per-worker policing holds the leg to its rate.
bool Worker::Police(tables::LegCounters& u, const LegEntry& e, uint32_t bytes) {
  return PoliceLeg(u, e.pps_limit.load(std::memory_order_relaxed),
                   e.kbps_limit.load(std::memory_order_relaxed), bytes, now_tsc_, sec_per_tsc_);
}

// The meeting's cap is split evenly over the workers, so that the node as a
// whole keeps to it.
bool Worker::MeetingAllows(uint32_t meeting_slot, uint32_t copies) {
  const tables::MeetingEntry& mt = dp_.tables.meeting(meeting_slot);
  uint32_t limit = mt.copies_limit.load(std::memory_order_relaxed);
  if (limit == 0) return true;
  if (budgets_.empty()) budgets_.resize(dp_.tables.meeting_capacity());
  double share = double(limit) / double(std::max<size_t>(1, dp_.cfg.worker_lcores.size()));
  return SpendMeetingBudget(budgets_[meeting_slot], mt.gen, share, copies, now_tsc_,
                            sec_per_tsc_);
}

// `bytes` is the packet's length, known to the caller: Flush then counts
// the bytes sent without reading every mbuf again.
void Worker::Send(uint32_t port_index, rte_mbuf* m, uint32_t bytes) {
  tx_bytes_pending_[port_index] += bytes;
  TxBuffer& t = tx_[port_index];
  t.pkts[t.n++] = m;
  if (t.n == kTxBufSize) Flush(port_index);
}

void Worker::Flush(uint32_t port_index) {
  TxBuffer& t = tx_[port_index];
  if (t.n == 0) return;
  uint16_t sent = 0;
  for (int tries = 0; tries < 3 && sent < t.n; ++tries) {
    sent += rte_eth_tx_burst(t.port, queue_, t.pkts + sent, t.n - sent);
  }
  uint64_t bytes = tx_bytes_pending_[port_index];
  tx_bytes_pending_[port_index] = 0;
  for (uint16_t i = sent; i < t.n; ++i) {
    rte_mbuf* m = t.pkts[i];
    bytes -= rte_pktmbuf_pkt_len(m);
    // The receiver's slot rides in hash.usr (PMDs do not read it on TX), so a
    // copy the queue refused is counted against the leg that missed it.
    uint32_t slot = m->hash.usr;
    if (slot < dp_.tables.leg_capacity()) {
      tables::LegCounters& c = usage_[slot];
      if (c.packets_out) {
        c.packets_out--;
        c.bytes_out -= std::min<uint64_t>(c.bytes_out, rte_pktmbuf_pkt_len(m));
        c.drop_other++;
      }
    }
    DropPacket(m, Drop::kTxFull);
  }
  wc_.tx_packets += sent;
  wc_.tx_bytes += bytes;
  t.n = 0;
}

// A copy for one more receiver. Large packets share the payload: a fresh
// header mbuf in front of an indirect mbuf that references the original's
// data, so no payload byte is copied per receiver.
rte_mbuf* Worker::Replica(rte_mbuf* m, const Parsed& p) {
  const uint8_t* src = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t hdr_len = p.l4 + 8u;
  if (p.frame_len >= dp_.cfg.zero_copy_min && p.frame_len > hdr_len) {
    rte_mbuf* h = rte_pktmbuf_alloc(dp_.hdr_pool);
    if (!h) return nullptr;
    rte_mbuf* body = rte_pktmbuf_clone(m, dp_.clone_pool);
    if (!body) {
      rte_pktmbuf_free(h);
      return nullptr;
    }
    std::memcpy(rte_pktmbuf_append(h, hdr_len), src, hdr_len);
    rte_pktmbuf_adj(body, hdr_len);
    rte_pktmbuf_trim(body, rte_pktmbuf_pkt_len(body) - (p.frame_len - hdr_len));
    if (rte_pktmbuf_chain(h, body) != 0) {
      rte_pktmbuf_free(h);
      rte_pktmbuf_free(body);
      return nullptr;
    }
    return h;
  }
  rte_mbuf* c = rte_pktmbuf_alloc(dp_.pool);
  if (!c) return nullptr;
  char* dst = rte_pktmbuf_append(c, p.frame_len);
  if (!dst) {
    rte_pktmbuf_free(c);
    return nullptr;
  }
  std::memcpy(dst, src, p.frame_len);
  return c;
}

// The sender's checks and its inbound usage. False when the packet is dropped.
bool Worker::Admit(rte_mbuf* m, const Parsed& p, uint32_t slot) {
  const LegEntry& s = dp_.tables.leg(slot);
  tables::LegCounters& u = Usage(slot, s.gen.load(std::memory_order_relaxed));
  // Anti-spoofing: a leg's packets come from the MAC its address (or its
  // gateway) resolved to; another host on the access network sending with a
  // member's address and port reaches nobody, nor counts as the member's.
  // Until the neighbour is known there is nothing to compare with.
  uint8_t known[6];
  if (hops_.Mac(u, s.key.remote, known) &&
      std::memcmp(known, rte_pktmbuf_mtod(m, const uint8_t*) + 6, 6) != 0) {
    DropLater(m, Drop::kNotForUs);
    return false;
  }
  uint32_t flags = s.flags.load(std::memory_order_acquire);
  u.packets_in++;
  u.bytes_in += p.frame_len;
  if (!u.first_unix_ns) u.first_unix_ns = now_unix_ns_;
  u.last_unix_ns = now_unix_ns_;
  if (!(flags & tables::kLegSend) || (flags & tables::kLegMuted)) {
    u.drop_not_allowed++;
    DropLater(m, Drop::kNotAllowed);
    return false;
  }
  if (!Police(u, s, p.frame_len)) {
    u.drop_policed++;
    DropLater(m, Drop::kPoliced);
    return false;
  }
  return true;
}

// Appends the receivers of a packet from `sender` at receivers_[at...] (every
// other leg of its meeting and channel with `recv` and a resolved neighbour)
// and returns how many. Their usage lines are prefetched for FanOut.
uint32_t Worker::GatherReceivers(const LegEntry& sender, uint32_t sender_slot, uint32_t at) {
  const tables::MeetingEntry& mt = dp_.tables.meeting(sender.meeting);
  uint32_t n = 0;
  uint32_t capacity = dp_.tables.leg_capacity();
  uint32_t guard = capacity;
  const bool v4 = MappedV4(sender.key.remote);
  for (uint32_t i = mt.head[sender.channel].load(std::memory_order_acquire);
       i != kNil && i < capacity && guard--;
       i = dp_.tables.leg(i).group_next.load(std::memory_order_acquire)) {
    if (i == sender_slot) continue;
    const LegEntry& r = dp_.tables.leg(i);
    if (!(r.flags.load(std::memory_order_relaxed) & tables::kLegRecv)) continue;
    // The switch does not translate between IPv4 and IPv6: a leg receives the
    // packets of its own family only. (A copy of an IPv4 packet for an IPv6
    // leg went out with the low 32 bits of the leg's addresses.)
    if (MappedV4(r.key.remote) != v4) continue;
    if (at + n == receivers_.size()) receivers_.resize(receivers_.size() * 2);
    Receiver& rc = receivers_[at + n];
    tables::LegCounters& u = Usage(i, r.gen.load(std::memory_order_relaxed));
    if (!hops_.Mac(u, r.key.remote, rc.mac)) {
      ResolveRequest req{hops_.next_hops().Of(r.key.remote)};
      rte_ring_mp_enqueue_elem(dp_.resolve_ring, &req, sizeof(req));
      wc_.drops[uint32_t(Drop::kNoNeighbour)]++;
      u.drop_other++;
      continue;
    }
    rc.usage = &u;
    rc.slot = i;
    ++n;
  }
  return n;
}

void Worker::FanOut(rte_mbuf* m, const Parsed& p, const Receiver* rcv, uint32_t n) {
  if (n == 0) {
    dropped_[ndropped_++] = m;  // counted per receiver as no_neighbour, or nobody listens
    return;
  }
  // Where the port knows (virtio, vhost), it says the checksum is not filled
  // in; AF_PACKET and AF_XDP say nothing, and the field itself tells.
  bool port_says_partial =
      (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_NONE;
  UdpCsumBase base =
      UdpCsumWithoutEndpoints(rte_pktmbuf_mtod(m, const uint8_t*), p, port_says_partial);
  wc_.csum_completed += base.completed;
  Rewrite rw;
  std::memcpy(rw.src_mac, dp_.ports[0].mac, 6);
  if (rte_pktmbuf_pkt_len(m) > p.frame_len) {
    rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
  }
  // Copies of a small packet come from one bulk allocation: one pool-cache
  // access for all of them instead of one each.
  rte_mbuf* copies[64];
  uint32_t bulk = 0;
  bool small = p.frame_len < dp_.cfg.zero_copy_min;
  if (small && n > 1 && n - 1 <= 64 &&
      rte_pktmbuf_alloc_bulk(dp_.pool, copies, n - 1) == 0) {
    bulk = n - 1;
  }
  const uint8_t* src = rte_pktmbuf_mtod(m, const uint8_t*);
  for (uint32_t k = 0; k < n; ++k) {
    // The last receiver gets the original packet, rewritten in place.
    rte_mbuf* c;
    if (k + 1 == n) {
      c = m;
    } else if (k < bulk) {
      c = copies[k];
      std::memcpy(rte_pktmbuf_mtod(c, uint8_t*), src, p.frame_len);
      c->data_len = p.frame_len;
      c->pkt_len = p.frame_len;
    } else {
      c = Replica(m, p);
    }
    uint32_t slot = rcv[k].slot;
    const LegEntry& r = dp_.tables.leg(slot);
    tables::LegCounters& u = *rcv[k].usage;
    if (!c) {
      wc_.drops[uint32_t(Drop::kNoBuffer)]++;
      u.drop_other++;
      continue;
    }
    std::memcpy(rw.dst_mac, rcv[k].mac, 6);
    rw.to = &r.key;
    RewriteHeaders(rte_pktmbuf_mtod(c, uint8_t*), p, base, rw);
    c->hash.usr = slot;
    u.packets_out++;
    u.bytes_out += p.frame_len;
    Send(0, c, p.frame_len);
  }
}

// A burst goes through the lookup in phases so that the cache misses of one
// packet overlap those of the others: each phase starts the loads that the
// next needs (bucket, leg entry, meeting and usage lines, receivers), so at
// a million legs a packet waits for memory about once per phase instead of
// once per dependent load.
void Worker::ProcessBurst(uint32_t port_index, rte_mbuf** pkts, uint16_t n) {
  Parsed* parsed = parsed_;
  uint64_t hashes[kMaxBurst];
  uint32_t slots[kMaxBurst];
  uint16_t fwd[kMaxBurst];
  uint32_t rcv_at[kMaxBurst + 1];
  uint16_t nfwd = 0;
  bool active = dp_.Active();
  bool access = dp_.ports[port_index].role == PortRole::kAccess;
  ndropped_ = 0;

  // Phase 1: parse, sort out the slow path and the drops, hash and prefetch
  // the bucket.
  uint64_t rx_bytes = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 3 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 3], void*));
    rte_mbuf* m = pkts[i];
    rx_bytes += rte_pktmbuf_pkt_len(m);
    if (!access) {
      // The backbone carries only the pair's heartbeats (replication runs
      // over the host's IP stack).
      const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
      if (rte_pktmbuf_data_len(m) >= 14 && (f[12] << 8 | f[13]) == kEthHeartbeat) {
        HandOff(m, SlowKind::kBackboneHeartbeat, 14, kEthHeartbeat);
      } else {
        DropLater(m, Drop::kNotForUs);
      }
      continue;
    }
    if (m->nb_segs != 1) {
      DropLater(m, Drop::kUnsupported);
      continue;
    }
    // Built in place (guaranteed copy elision): an assignment went through a
    // temporary, a 64-byte copy per packet.
    Parsed& p = *::new (&parsed[i])
        Parsed(Parse(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), pcfg_));
    if (p.verdict == Verdict::kDrop) {
      DropLater(m, p.drop);
      continue;
    }
    if (p.verdict == Verdict::kSlowPath) {
      HandOff(m, p.ethertype == kEthHeartbeat ? SlowKind::kAccessHeartbeat : SlowKind::kOther,
              p.l3, p.ethertype);
      continue;
    }
    if (!active) {
      DropLater(m, Drop::kNotActive);
      continue;
    }
    fwd[nfwd++] = i;
  }
  wc_.rx_packets += n;
  wc_.rx_bytes += rx_bytes;

  // Hash and prefetch the bucket, apart from the parse: the key's bytes were
  // just stored by Parse, and reading them back at once as wider words
  // cannot be forwarded from the store buffer (a stall per packet, perf).
  for (uint16_t k = 0; k < nfwd; ++k) {
    uint16_t i = fwd[k];
    hashes[i] = tables::HashLegKey(parsed[i].key);
    rte_prefetch0(&dp_.tables.bucket(hashes[i]));
  }

  // Phase 2: the buckets are on their way; fetch the first entry of each chain.
  // The heads are kept: phase 3 starts its walk there instead of loading the
  // bucket again, and an empty bucket decides the packet at once.
  uint32_t capacity = dp_.tables.leg_capacity();
  for (uint16_t k = 0; k < nfwd; ++k) {
    uint32_t head = dp_.tables.bucket(hashes[fwd[k]]).load(std::memory_order_acquire);
    slots[k] = head;
    if (head != kNil && head < capacity) rte_prefetch0(&dp_.tables.leg(head));
  }

  // Phase 3: compare keys. A packet of no leg stops here: the flood of
  // unknown sources costs a parse, a hash and a bucket. Known legs get their
  // meeting and usage lines on the way.
  uint16_t nhit = 0;
  for (uint16_t k = 0; k < nfwd; ++k) {
    uint16_t i = fwd[k];
    // slots[k] holds the chain's head (phase 2); nhit <= k, so writing
    // slots[nhit] below never overwrites a head still to be read.
    uint32_t slot = slots[k] == kNil ? kNil : dp_.tables.FindFrom(parsed[i].key, slots[k]);
    if (slot == kNil) {
      RefreshVips();
      DropLater(pkts[i], IsVip(parsed[i].key.local) ? Drop::kUnknownLeg : Drop::kNotForUs);
      continue;
    }
    const LegEntry& s = dp_.tables.leg(slot);
    rte_prefetch0(&dp_.tables.meeting(s.meeting));
    rte_prefetch0(reinterpret_cast<const char*>(&s) + 64);  // the rate limits (Police)
    const auto* u = reinterpret_cast<const char*>(&usage_[slot]);
    PrefetchForWrite(u);
    PrefetchForWrite(u + 64);  // first/last_unix_ns live in the second line
    slots[nhit] = slot;
    fwd[nhit++] = i;
  }

  // Phase 4: the sender's checks; start loading the first receiver.
  uint16_t nadm = 0;
  for (uint16_t k = 0; k < nhit; ++k) {
    uint16_t i = fwd[k];
    uint32_t slot = slots[k];
    if (!Admit(pkts[i], parsed[i], slot)) continue;
    const LegEntry& s = dp_.tables.leg(slot);
    uint32_t first = dp_.tables.meeting(s.meeting).head[s.channel].load(std::memory_order_acquire);
    if (first == slot) first = s.group_next.load(std::memory_order_acquire);
    if (first != kNil && first < capacity) {
      rte_prefetch0(&dp_.tables.leg(first));
      // Its usage block: counters in the first line, the next hop in the second.
      const auto* ru = reinterpret_cast<const char*>(&usage_[first]);
      PrefetchForWrite(ru);
      PrefetchForWrite(ru + 64);
    }
    if (!budgets_.empty()) PrefetchForWrite(&budgets_[s.meeting]);
    slots[nadm] = slot;
    fwd[nadm++] = i;
  }

  // Phase 5: the receivers of every packet, with their MACs; the meeting's
  // output cap.
  uint32_t at = 0;
  uint16_t nout = 0;
  for (uint16_t k = 0; k < nadm; ++k) {
    const LegEntry& s = dp_.tables.leg(slots[k]);
    uint32_t n = GatherReceivers(s, slots[k], at);
    if (!MeetingAllows(s.meeting, n)) [[unlikely]] {
      Usage(slots[k], s.gen.load(std::memory_order_relaxed)).drop_policed++;
      DropLater(pkts[fwd[k]], Drop::kMeetingCapped);
      continue;  // its receivers' entries are overwritten by the next packet's
    }
    wc_.forwarded_in++;
    rcv_at[nout] = at;
    fwd[nout++] = fwd[k];
    at += n;
  }
  rcv_at[nout] = at;

  // Phase 6: copy, rewrite, send.
  for (uint16_t k = 0; k < nout; ++k) {
    uint16_t i = fwd[k];
    FanOut(pkts[i], parsed[i], &receivers_[rcv_at[k]], rcv_at[k + 1] - rcv_at[k]);
  }
  if (ndropped_) rte_pktmbuf_free_bulk(dropped_, ndropped_);
  ndropped_ = 0;
}

void Worker::RecordLatency(uint64_t cycles, uint32_t packets) {
  if (cycles == 0) cycles = 1;
  uint32_t lz = 63 - __builtin_clzll(cycles);
  uint32_t frac = lz >= 2 ? (cycles >> (lz - 2)) & 3 : 0;
  uint32_t b = std::min<uint32_t>(lz * 4 + frac, tables::kLatencyBuckets - 1);
  wc_.latency_hist[b] += packets;
}

absl::Status Worker::Register() {
  auto reg = tables::ReaderHandle::Register(dp_.tables, index_);
  if (!reg.ok()) return reg.status();
  reader_ = *reg;
  health_.lcore.store(rte_lcore_id());
  return absl::OkStatus();
}

uint32_t Worker::Poll() {
  rte_mbuf* pkts[kMaxBurst];
  uint32_t got = 0;
  for (uint32_t p = 0; p < dp_.ports.size(); ++p) {
    uint16_t n = rte_eth_rx_burst(dp_.ports[p].id, queue_, pkts, burst_);
    if (n == 0) continue;
    uint64_t t0 = rte_rdtsc();
    UpdateClock(t0);
    got += n;
    ProcessBurst(p, pkts, n);
    FlushAll();
    RecordLatency(rte_rdtsc() - t0, n);
  }
  if (index_ == 0) {
    // Frames from the main thread (ARP/ND/ICMP replies and requests).
    unsigned k = rte_ring_sc_dequeue_burst(dp_.inject_ring, reinterpret_cast<void**>(pkts),
                                           burst_, nullptr);
    for (unsigned i = 0; i < k; ++i) {
      pkts[i]->hash.usr = tables::kNil;
      uint32_t out = 0;  // the main thread names the port by its id
      for (uint32_t p = 0; p < dp_.ports.size(); ++p) {
        if (dp_.ports[p].id == pkts[i]->port) out = p;
      }
      Send(out, pkts[i], rte_pktmbuf_pkt_len(pkts[i]));
    }
    if (k) {
      FlushAll();
      got += k;
    }
  }
  reader_.Quiescent();
  return got;
}

int Worker::Run() {
  if (auto st = Register(); !st.ok()) {
    std::fprintf(stderr, "tandem-switch: worker %u: %s\n", index_,
                 std::string(st.message()).c_str());
    dp_.stop = true;
    return -1;
  }
  // Sleeps of tens of microseconds must not be stretched by the default 50 us slack.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint32_t idle = 0;
  uint32_t sleep_us = 1;
  uint64_t loops = 0;
  while (!dp_.stop.load(std::memory_order_relaxed)) {
    uint64_t poll_start = rte_rdtsc();  // issue 19: busy share (tandem_worker_busy_seconds_total)
    uint32_t got = Poll();
    if (got) wc_.busy_cycles += rte_rdtsc() - poll_start;  // issue 19
    ++loops;
    if ((loops & 63) == 0) {
      wc_.loops = loops;
      health_.heartbeat_ns.store(MonotonicNs(), std::memory_order_relaxed);
    }
    if (got) {
      idle = 0;
      sleep_us = 1;
      continue;
    }
    if (++idle < dp_.cfg.idle_polls || dp_.cfg.idle_sleep_us == 0) continue;
    // Idle back-off: go offline for QSBR (the writer need not wait for a
    // sleeping worker), sleep, double the sleep up to the configured bound.
    reader_.Offline();
    health_.sleeping.store(1, std::memory_order_relaxed);
    timespec ts{0, long(sleep_us) * 1000};
    nanosleep(&ts, nullptr);
    wc_.idle_sleeps++;
    sleep_us = std::min(sleep_us * 2, dp_.cfg.idle_sleep_us);
    health_.sleeping.store(0, std::memory_order_relaxed);
    health_.heartbeat_ns.store(MonotonicNs(), std::memory_order_relaxed);
    reader_.Online();
  }
  Finish();
  return 0;
}

}  // namespace

int RunWorker(Dataplane& dp, uint32_t worker_index, uint16_t queue) {
  Worker w(dp, worker_index, queue);
  return w.Run();
}

struct WorkerPoller::Impl {
  Impl(Dataplane& dp, uint32_t index, uint16_t queue) : w(dp, index, queue) {}
  Worker w;
};

WorkerPoller::WorkerPoller(Dataplane& dp, uint32_t worker_index, uint16_t queue)
    : impl_(std::make_unique<Impl>(dp, worker_index, queue)) {}

WorkerPoller::~WorkerPoller() {
  if (started_) impl_->w.Finish();
}

absl::Status WorkerPoller::Start() {
  auto st = impl_->w.Register();
  started_ = st.ok();
  return st;
}

uint32_t WorkerPoller::Poll() { return impl_->w.Poll(); }

}  // namespace tandem::sw
