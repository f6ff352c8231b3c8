#include "switch/handoff.h"

#include <rte_errno.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::sw {
namespace {

using tables::Drop;

uint32_t MacHash(const uint8_t mac[6]) {
  uint64_t v = 0;
  std::memcpy(&v, mac, 6);
  v *= 0x9e3779b97f4a7c15ULL;
  return static_cast<uint32_t>(v >> 40);
}

rte_ring* Ring(const char* name, unsigned size) {
  return rte_ring_create(name, size, SOCKET_ID_ANY, RING_F_SC_DEQ);
}

}  // namespace

absl::Status CreateSlowRings(Dataplane& dp) {
  dp.hb_ring[0] = Ring("slow_hb_access", 256);
  dp.hb_ring[1] = Ring("slow_hb_backbone", 256);
  dp.known_ring = Ring("slow_known", 512);
  dp.wanted_ring = Ring("slow_wanted", 512);
  dp.slow_ring = Ring("slow", 1024);
  dp.resolve_ring = rte_ring_create_elem("resolve", sizeof(ResolveRequest), 1024, SOCKET_ID_ANY,
                                         RING_F_SC_DEQ);
  dp.inject_ring = Ring("inject", 1024);
  if (!dp.hb_ring[0] || !dp.hb_ring[1] || !dp.known_ring || !dp.wanted_ring || !dp.slow_ring ||
      !dp.resolve_ring || !dp.inject_ring) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create the slow path's rings: ", rte_strerror(rte_errno)));
  }
  return absl::OkStatus();
}

SourceLimiter::SourceLimiter(double per_s, double burst, double new_per_s, uint64_t tsc_hz)
    : per_tsc_(per_s / double(std::max<uint64_t>(tsc_hz, 1))),
      burst_(std::max(1.0, burst)),
      new_per_tsc_(new_per_s / double(std::max<uint64_t>(tsc_hz, 1))),
      new_burst_(std::max(1.0, new_per_s)),
      new_tokens_(new_burst_) {}

double SourceLimiter::Refill(double tokens, uint64_t from, uint64_t to, double rate,
                             double burst) const {
  return to > from ? std::min(burst, tokens + double(to - from) * rate) : tokens;
}

bool SourceLimiter::Admit(const uint8_t mac[6], uint64_t tsc, bool known) {
  auto& set = sets_[MacHash(mac) % kSets];
  Way* fullest = nullptr;
  double most = -1;
  for (Way& w : set) {
    if (w.used && std::memcmp(w.mac, mac, 6) == 0) {
      w.tokens = Refill(w.tokens, w.tsc, tsc, per_tsc_, burst_);
      w.tsc = tsc;
      if (w.tokens < 1) return false;
      w.tokens -= 1;
      return true;
    }
    double t = w.used ? Refill(w.tokens, w.tsc, tsc, per_tsc_, burst_) : burst_ + 1;
    if (t > most) {
      most = t;
      fullest = &w;
    }
  }
  if (new_per_tsc_ > 0 && !known) {
    new_tokens_ = Refill(new_tokens_, new_tsc_, tsc, new_per_tsc_, new_burst_);
    new_tsc_ = tsc;
    if (new_tokens_ < 1) return false;
    new_tokens_ -= 1;
  }
  std::memcpy(fullest->mac, mac, 6);
  fullest->used = true;
  fullest->tokens = burst_ - 1;
  fullest->tsc = tsc;
  return true;
}

SlowHandoff::SlowHandoff(const Dataplane& dp)
    : dp_(dp),
      // The peer sends one per heartbeat_ms on each path.
      heartbeats_(4000.0 / std::max<uint32_t>(dp.cfg.heartbeat_ms, 1),
                  std::max(16.0, 400.0 / std::max<uint32_t>(dp.cfg.heartbeat_ms, 1)),
                  kNewSourcesPerSecond, dp.tsc_hz),
      neighbours_(dp.cfg.slow_path_pps_per_source, dp.cfg.slow_path_pps_per_source,
                  kNewSourcesPerSecond, dp.tsc_hz),
      others_(dp.cfg.slow_path_pps_per_source, dp.cfg.slow_path_pps_per_source,
              kNewSourcesPerSecond, dp.tsc_hz) {}

// By the sender's address (ARP sender, IPv4 or IPv6 source) and the
// neighbour cache: known (a usable entry with this frame's source MAC),
// wanted (an entry with another MAC or none yet), or other.
SlowHandoff::Lane SlowHandoff::LaneOf(const uint8_t* f, uint32_t len, uint16_t l3,
                                      uint16_t ethertype) const {
  IpAddr sender;
  if (ethertype == kEthArp && len >= l3 + 28u) {
    uint32_t v;
    std::memcpy(&v, f + l3 + 14, 4);
    sender = IpAddr::FromV4(v);
  } else if (ethertype == kEthIPv4 && len >= l3 + 20u) {
    uint32_t v;
    std::memcpy(&v, f + l3 + 12, 4);
    sender = IpAddr::FromV4(v);
  } else if (ethertype == kEthIPv6 && len >= l3 + 40u) {
    sender = IpAddr::FromV6(f + l3 + 8);
  }
  if (sender.is_unspecified()) return Lane::kOther;
  uint8_t mac[6];
  uint32_t seq;
  bool usable = false;
  if (!dp_.neigh.Read(sender, mac, &seq, &usable)) return Lane::kOther;
  return usable && std::memcmp(mac, f + 6, 6) == 0 ? Lane::kKnown : Lane::kWanted;
}

Drop SlowHandoff::Offer(rte_mbuf* m, SlowKind kind, uint16_t l3, uint16_t ethertype,
                        uint64_t tsc) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  rte_ring* ring = dp_.hb_ring[1];
  if (kind == SlowKind::kAccessHeartbeat) {
    if (!heartbeats_.Admit(f + 6, tsc, false)) return Drop::kSlowPathLimited;
    ring = dp_.hb_ring[0];
  } else if (kind == SlowKind::kOther) {
    Lane lane = LaneOf(f, rte_pktmbuf_data_len(m), l3, ethertype);
    bool admitted = lane == Lane::kOther
                        ? others_.Admit(f + 6, tsc, false)
                        : neighbours_.Admit(f + 6, tsc, lane == Lane::kKnown);
    if (!admitted) return Drop::kSlowPathLimited;
    ring = lane == Lane::kKnown    ? dp_.known_ring
           : lane == Lane::kWanted ? dp_.wanted_ring
                                   : dp_.slow_ring;
  }
  return rte_ring_mp_enqueue(ring, m) == 0 ? Drop::kCount : Drop::kSlowPathFull;
}

}  // namespace tandem::sw
