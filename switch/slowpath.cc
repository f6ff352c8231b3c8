#include "switch/slowpath.h"

#include <rte_ethdev.h>

#include <cstdio>
#include <cstring>

namespace tandem::sw {
namespace {

using tables::Drop;
using tables::NeighState;

constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint8_t kZeroMac[6] = {};
constexpr uint16_t kArpRequest = 1, kArpReply = 2;
constexpr uint8_t kIcmpEchoRequest = 8, kIcmpEchoReply = 0;
constexpr uint8_t kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129;
constexpr uint8_t kNdNs = 135, kNdNa = 136;
constexpr uint8_t kOptSlla = 1, kOptTlla = 2;
constexpr uint8_t kAllNodesMac[6] = {0x33, 0x33, 0, 0, 0, 1};
constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

bool UnicastMac(const uint8_t* mac) {
  return !(mac[0] & 1) && std::memcmp(mac, kZeroMac, 6) != 0;
}

IpAddr V6At(const uint8_t* p) { return IpAddr::FromV6(p); }

IpAddr V4At(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return IpAddr::FromV4(v);
}

// Finds a link-layer address option of `type` in ND options; nullptr if none.
const uint8_t* FindLlOption(const uint8_t* opt, int len, uint8_t type) {
  while (len >= 8) {
    int olen = opt[1] * 8;
    if (olen == 0 || olen > len) return nullptr;  // malformed options
    if (opt[0] == type && olen >= 8) return opt + 2;
    opt += olen;
    len -= olen;
  }
  return nullptr;
}


NeighPolicyConfig NeighConfigOf(const SwitchConfig& c) {
  NeighPolicyConfig n;
  n.probe_ns = c.neigh_probe_ms * 1000000ull;
  n.reachable_ns = c.neigh_reachable_s * 1000000000ull;
  return n;
}

}  // namespace

SlowPath::SlowPath(Dataplane& dp)
    : dp_(dp),
      neigh_(dp.neigh, NeighConfigOf(dp.cfg), &dp.state.header().neigh_stats),
      pair_(dp),
      next_hops_(NextHopsOf(dp.cfg)) {
  neigh_.Adopt(MonotonicNs());
}

tables::WorkerCounters& SlowPath::Counters() {
  // The main thread's block follows the workers'.
  return dp_.state.worker_counters(dp_.cfg.worker_lcores.size());
}

void SlowPath::Heard(const IpAddr& ip, const uint8_t mac[6], bool answer) {
  if (!UnicastMac(mac) || ip.is_unspecified() || vips_.Contains(ip)) return;
  NeighPolicy::Verdict v;
  if (answer) {
    neigh_.Answer(ip, mac, now_ns_, &v);
  } else {
    neigh_.Claim(ip, mac, now_ns_, &v);
  }
  if (v == NeighPolicy::Verdict::kConflict) Counters().drops[uint32_t(Drop::kNeighConflict)]++;
}

unsigned SlowPath::Poll(uint64_t now_ns) {
  now_ns_ = now_ns;
  rte_mbuf* pkts[64];
  unsigned got = 0;
  // Heartbeats first (the backbone's, then the access network's), then ARP
  // and ND from known neighbours, about addresses we hold, from anyone
  // (switch/handoff.h).
  struct {
    rte_ring* ring;
    Source from;
    unsigned burst;
  } const queues[] = {{dp_.hb_ring[1], Source::kBackboneHeartbeat, 64},
                      {dp_.hb_ring[0], Source::kAccessHeartbeat, 64},
                      {dp_.known_ring, Source::kAccess, 32},
                      {dp_.wanted_ring, Source::kAccess, 32},
                      {dp_.slow_ring, Source::kAccess, 32}};
  for (const auto& q : queues) {
    unsigned n =
        rte_ring_sc_dequeue_burst(q.ring, reinterpret_cast<void**>(pkts), q.burst, nullptr);
    for (unsigned i = 0; i < n; ++i) Handle(pkts[i], q.from);
    got += n;
  }
  ResolveRequest req[32];
  unsigned r = rte_ring_sc_dequeue_burst_elem(dp_.resolve_ring, req, sizeof(ResolveRequest), 32,
                                              nullptr);
  for (unsigned i = 0; i < r; ++i) neigh_.Resolve(req[i].ip, now_ns);
  Tick(now_ns);
  Flush();
  return got + r;
}

void SlowPath::Transmit(rte_mbuf* m) { out_.push_back(m); }

void SlowPath::Flush() {
  if (out_.empty()) return;
  unsigned n = static_cast<unsigned>(out_.size());
  unsigned queued =
      rte_ring_mp_enqueue_burst(dp_.inject_ring, reinterpret_cast<void**>(out_.data()), n, nullptr);
  tables::WorkerCounters& wc = Counters();
  for (unsigned i = queued; i < n; ++i) {
    wc.drops[uint32_t(Drop::kTxFull)]++;
    rte_pktmbuf_free(out_[i]);
  }
  out_.clear();
}

void SlowPath::SendArp(uint16_t op, const uint8_t dst_mac[6], const IpAddr& sender,
                       const uint8_t target_mac[6], const IpAddr& target) {
  uint8_t* a;
  rte_mbuf* m = NewFrame(dp_, dst_mac, kEthArp, 28, &a);
  if (!m) return;
  PutBe16(a, 1);
  PutBe16(a + 2, kEthIPv4);
  a[4] = 6;
  a[5] = 4;
  PutBe16(a + 6, op);
  std::memcpy(a + 8, dp_.ports[0].mac, 6);
  std::memcpy(a + 14, sender.b + 12, 4);
  std::memcpy(a + 18, target_mac, 6);
  std::memcpy(a + 24, target.b + 12, 4);
  Transmit(m);
}

void SlowPath::SendNa(const IpAddr& target, const IpAddr& dst_ip, const uint8_t dst_mac[6],
                      bool solicited) {
  uint8_t* ip;
  rte_mbuf* m = NewFrame(dp_, dst_mac, kEthIPv6, 40 + 32, &ip);
  if (!m) return;
  ip[0] = 0x60;
  PutBe16(ip + 4, 32);
  ip[6] = kProtoIcmp6;
  ip[7] = 255;
  std::memcpy(ip + 8, target.b, 16);
  std::memcpy(ip + 24, dst_ip.b, 16);
  uint8_t* icmp = ip + 40;
  icmp[0] = kNdNa;
  icmp[4] = solicited ? 0x60 : 0x20;  // Solicited, Override
  std::memcpy(icmp + 8, target.b, 16);
  icmp[24] = kOptTlla;
  icmp[25] = 1;
  std::memcpy(icmp + 26, dp_.ports[0].mac, 6);
  PutBe16(icmp + 2, L4Checksum(false, ip, icmp, 32, kProtoIcmp6));
  Transmit(m);
}

void SlowPath::SendNs(const IpAddr& target, bool from_vip) {
  const IpAddr* src = nullptr;
  for (const auto& v : vips_.all()) {
    if (!v.is_v4()) {
      src = &v;
      break;
    }
  }
  static const IpAddr kUnspecified6{};
  if (!from_vip) {
    src = &kUnspecified6;
  } else if (!src) {
    return;  // no IPv6 VIP to speak from
  }
  // From :: an NS carries no source link-layer option (RFC 4861 7.1.1).
  uint16_t len = from_vip ? 32 : 24;
  uint8_t mac[6] = {0x33, 0x33, 0xff, target.b[13], target.b[14], target.b[15]};
  uint8_t* ip;
  rte_mbuf* m = NewFrame(dp_, mac, kEthIPv6, 40 + len, &ip);
  if (!m) return;
  ip[0] = 0x60;
  PutBe16(ip + 4, len);
  ip[6] = kProtoIcmp6;
  ip[7] = 255;
  std::memcpy(ip + 8, src->b, 16);
  uint8_t solicited[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff,
                           target.b[13], target.b[14], target.b[15]};
  std::memcpy(ip + 24, solicited, 16);
  uint8_t* icmp = ip + 40;
  icmp[0] = kNdNs;
  std::memcpy(icmp + 8, target.b, 16);
  if (from_vip) {
    icmp[24] = kOptSlla;
    icmp[25] = 1;
    std::memcpy(icmp + 26, dp_.ports[0].mac, 6);
  }
  PutBe16(icmp + 2, L4Checksum(false, ip, icmp, len, kProtoIcmp6));
  Transmit(m);
}

void SlowPath::Handle(rte_mbuf* m, Source from) {
  if (from == Source::kBackboneHeartbeat) {
    pair_.Receive(m, 1, 14, now_ns_);  // the backbone carries nothing else to us
    return;
  }
  ParseConfig pc;
  std::memcpy(pc.mac, dp_.ports[0].mac, 6);
  pc.vlan = dp_.cfg.vlan;
  pc.mtu = dp_.cfg.mtu;
  Parsed p = Parse(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), pc);
  if (p.verdict != Verdict::kSlowPath) {
    rte_pktmbuf_free(m);
    return;
  }
  if (p.ethertype == kEthHeartbeat) {
    pair_.Receive(m, 0, p.l3, now_ns_);
  } else if (p.ethertype == kEthArp) {
    HandleArp(m, p);
  } else if (p.v4) {
    HandleIcmp4(m, p);
  } else {
    HandleIcmp6(m, p);
  }
}

void SlowPath::HandleArp(rte_mbuf* m, const Parsed& p) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint8_t* a = f + p.l3;
  tables::WorkerCounters& wc = Counters();
  if (Be16(a) != 1 || Be16(a + 2) != kEthIPv4 || a[4] != 6 || a[5] != 4 ||
      std::memcmp(a + 8, f + 6, 6) != 0) {
    // A sender hardware address that is not the frame's source is a poisoning attempt.
    wc.drops[uint32_t(Drop::kMalformed)]++;
    rte_pktmbuf_free(m);
    return;
  }
  uint16_t op = Be16(a + 6);
  IpAddr spa = V4At(a + 14), tpa = V4At(a + 24);
  uint8_t sha[6];
  std::memcpy(sha, a + 8, 6);
  if (vips_.Contains(spa)) {
    wc.drops[uint32_t(Drop::kNotForUs)]++;  // someone else claims our VIP
    Defend(sha);
  } else if (op == kArpRequest && vips_.Contains(tpa) && spa != tpa) {
    Heard(spa, sha, false);  // a request names its sender: a claim, never an answer
    if (dp_.Active()) SendArp(kArpReply, sha, tpa, sha, spa);
  } else if (op == kArpRequest || op == kArpReply) {
    Heard(spa, sha, op == kArpReply);
  } else {
    wc.drops[uint32_t(Drop::kMalformed)]++;
  }
  rte_pktmbuf_free(m);
}

void SlowPath::HandleIcmp4(rte_mbuf* m, const Parsed& p) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* ip = f + p.l3;
  uint8_t* icmp = f + p.l4;
  uint16_t icmp_len = p.frame_len - p.l4;
  IpAddr dst = V4At(ip + 16);
  if (!vips_.Contains(dst) || !dp_.Active() || icmp_len < 8 ||
      icmp[0] != kIcmpEchoRequest || CsumFold(CsumAdd(0, icmp, icmp_len)) != 0xffff) {
    rte_pktmbuf_free(m);
    return;
  }
  uint8_t mac[6];
  std::memcpy(mac, f + 6, 6);
  std::memcpy(f, mac, 6);
  std::memcpy(f + 6, dp_.ports[0].mac, 6);
  uint8_t tmp[4];
  std::memcpy(tmp, ip + 12, 4);
  std::memcpy(ip + 12, ip + 16, 4);
  std::memcpy(ip + 16, tmp, 4);
  ip[8] = kTtl;
  PutBe16(ip + 10, Ipv4HeaderChecksum(ip));
  icmp[0] = kIcmpEchoReply;
  PutBe16(icmp + 2, 0);
  PutBe16(icmp + 2, static_cast<uint16_t>(~CsumFold(CsumAdd(0, icmp, icmp_len))));
  rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
  Transmit(m);
}

void SlowPath::HandleIcmp6(rte_mbuf* m, const Parsed& p) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* ip = f + p.l3;
  uint8_t* icmp = f + p.l4;
  uint16_t len = p.frame_len - p.l4;
  tables::WorkerCounters& wc = Counters();
  if (len < 8 || L4Checksum(false, ip, icmp, len, kProtoIcmp6) != 0) {
    // Summed with its checksum field, a valid message complements to zero.
    wc.drops[uint32_t(len < 8 ? Drop::kMalformed : Drop::kBadChecksum)]++;
    rte_pktmbuf_free(m);
    return;
  }
  IpAddr src = V6At(ip + 8), dst = V6At(ip + 24);
  bool active = dp_.Active();
  uint8_t type = icmp[0];
  if ((type == kNdNs || type == kNdNa) && (ip[7] != 255 || len < 24 || icmp[1] != 0)) {
    wc.drops[uint32_t(Drop::kMalformed)]++;  // RFC 4861: hop limit 255 or not ND at all
    rte_pktmbuf_free(m);
    return;
  }
  if (type == kNdNs) {
    IpAddr target = V6At(icmp + 8);
    const uint8_t* slla = FindLlOption(icmp + 24, len - 24, kOptSlla);
    if (slla && !UnicastMac(slla)) {
      // No host's address: our answer to it would reach every host.
      wc.drops[uint32_t(Drop::kMalformed)]++;
      rte_pktmbuf_free(m);
      return;
    }
    bool unspecified = src.is_zero();
    if (!unspecified && slla) Heard(src, slla, false);
    if (vips_.Contains(target) && active) {
      if (unspecified) {
        SendNa(target, V6At(kAllNodes), kAllNodesMac, false);
      } else {
        SendNa(target, src, slla ? slla : f + 6, true);
      }
    }
  } else if (type == kNdNa) {
    IpAddr target = V6At(icmp + 8);
    const uint8_t* tlla = FindLlOption(icmp + 24, len - 24, kOptTlla);
    if (vips_.Contains(target)) {
      wc.drops[uint32_t(Drop::kNotForUs)]++;  // someone else claims our VIP
      Defend(tlla ? tlla : f + 6);
    } else {
      // An answer is a solicited NA; a standby's probes go out from ::, and
      // hosts answer those to all nodes without the S flag (NeighPolicy
      // takes either as an answer only while a probe of ours is waiting).
      bool answer = (icmp[4] & 0x40) != 0 || !dp_.Active();
      Heard(target, tlla ? tlla : f + 6, answer);
    }
  } else if (type == kIcmp6EchoRequest && vips_.Contains(dst) && active) {
    uint8_t mac[6];
    std::memcpy(mac, f + 6, 6);
    std::memcpy(f, mac, 6);
    std::memcpy(f + 6, dp_.ports[0].mac, 6);
    std::memcpy(ip + 24, src.b, 16);
    std::memcpy(ip + 8, dst.b, 16);
    ip[7] = kTtl;
    icmp[0] = kIcmp6EchoReply;
    PutBe16(icmp + 2, 0);
    PutBe16(icmp + 2, L4Checksum(false, ip, icmp, len, kProtoIcmp6));
    rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
    Transmit(m);
    return;
  }
  rte_pktmbuf_free(m);
}

// A probe of ours for `ip`. A request from a VIP teaches the asked host that
// the VIP lives at our MAC: only the active node may say so. A standby (whose
// neighbour cache is kept warm for a takeover) asks from the unspecified
// address, as duplicate address detection does (RFC 5227 ARP probe, RFC 4862
// NS from ::).
void SlowPath::SendProbe(const IpAddr& ip) {
  bool speak_for_vip = dp_.Active();
  if (ip.is_v4()) {
    const IpAddr* src = nullptr;
    for (const auto& v : vips_.all()) {
      if (v.is_v4()) {
        src = &v;
        break;
      }
    }
    static const IpAddr kUnspecified4 = IpAddr::FromV4(0);
    if (!src && speak_for_vip) return;
    SendArp(kArpRequest, kBroadcast, speak_for_vip ? *src : kUnspecified4, kZeroMac, ip);
  } else {
    SendNs(ip, speak_for_vip);
  }
}

// Another host claimed one of our VIPs (a gratuitous ARP or an unsolicited
// NA): hosts that believed it would send media there. Announce our VIPs again
// at once, as RFC 5227 defends an address, at most every 10 ms; but never
// against the peer, whose announcements the epoch settles (PairLink).
void SlowPath::Defend(const uint8_t mac[6]) {
  if (!dp_.Active() || pair_.IsPeerAccessMac(mac)) return;
  if (now_ns_ - last_defence_ns_ < 10'000'000ull) return;
  last_defence_ns_ = now_ns_;
  Announce();
}

void SlowPath::Announce() {
  for (const auto& v : vips_.all()) {
    if (v.is_v4()) {
      SendArp(kArpRequest, kBroadcast, v, kZeroMac, v);  // gratuitous ARP
    } else {
      SendNa(v, V6At(kAllNodes), kAllNodesMac, false);  // unsolicited NA
    }
  }
  announcements_++;
}

// A standby resolves the receivers of every leg in its (mirrored) tables
// ahead of time, a slice of the slots per tick, so that its first copy to
// each receiver after a takeover does not wait for ARP or ND. Its probes come
// from the unspecified address (Resolve), and the entries then age and are
// refreshed as any other.
void SlowPath::WarmNeighbours(uint64_t now_ns) {
  constexpr uint32_t kSlotsPerTick = 1024;
  const uint32_t capacity = dp_.tables.leg_capacity();
  for (uint32_t n = 0; n < kSlotsPerTick && n < capacity; ++n) {
    if (warm_cursor_ >= capacity) warm_cursor_ = 0;
    const tables::LegEntry& e = dp_.tables.leg(warm_cursor_++);
    if (e.state.load(std::memory_order_acquire) != uint8_t(tables::EntryState::kLive)) continue;
    if (!(e.flags.load(std::memory_order_relaxed) & tables::kLegRecv)) continue;
    IpAddr hop = next_hops_.Of(e.key.remote);
    uint8_t mac[6];
    if (!dp_.neigh.Lookup(hop, mac)) neigh_.Resolve(hop, now_ns);
  }
}

void SlowPath::Tick(uint64_t now_ns) {
  pair_.Tick(now_ns, &out_);
  // Once a millisecond, not once a loop: a busy main thread loops far more often.
  if (!dp_.Active() && now_ns >= next_warm_ns_) {
    next_warm_ns_ = now_ns + 1000000ull;
    WarmNeighbours(now_ns);
  }
  bool vips_changed = vips_.Refresh(dp_.tables);
  bool active = dp_.Active();
  uint64_t epoch = dp_.tables.epoch();
  if (active && (!was_active_ || epoch != epoch_ || vips_changed)) {
    // Repeated a few times: a single frame can be lost, and bridges and
    // hosts must all move the VIPs to us at once.
    announce_left_ = 3;
    next_announce_ns_ = now_ns;
  }
  was_active_ = active;
  epoch_ = epoch;
  if (active && announce_left_ > 0 && now_ns >= next_announce_ns_) {
    Announce();
    announce_left_--;
    next_announce_ns_ = now_ns + 50 * 1000000ull;
  }
  neigh_.Tick(now_ns);
  for (const IpAddr& ip : neigh_.TakeProbes()) SendProbe(ip);
}

}  // namespace tandem::sw
