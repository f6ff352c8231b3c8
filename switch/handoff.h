// The workers' hand-off of frames to the switch's main thread
// (switch/slowpath.h), built so that no flood there starves what matters.
//  - Five queues, which the main thread serves in this order: the peer's
//    heartbeats from the backbone; heartbeats from the access network;
//    ARP/ND/echo from known neighbours (the frame's sender address has a
//    usable entry in the neighbour cache with the frame's source MAC);
//    ARP/ND/echo naming an address the cache holds with another MAC or none
//    yet (the answers a resolution waits for, and claims against known
//    entries); the rest (ARP, ND and echo from anyone else). A full queue
//    drops only its own kind (slow_path_full).
//  - On the access port, a token bucket per source MAC and worker, applied
//    before a frame costs the main thread anything (a heartbeat's HMAC):
//    heartbeats at 4 times the peer's rate, ARP/ND/echo at
//    access.slow_path_pps_per_source. Frames over it are dropped
//    (slow_path_limited).
//  - A source MAC the worker holds no bucket for (a new one, or one pushed
//    out of its table) must also take a token of a bucket that all new
//    sources of its queue share (kNewSourcesPerSecond), so that a flood from
//    random MACs reaches the main thread at that rate at most, and only in
//    its own queue: random sources naming random addresses cannot delay the
//    answer a resolution waits for. Known neighbours skip it.
// The backbone is the pair's own link: its heartbeats are queued unlimited.
//
// What remains: a host that sends with the peer's MAC shares its bucket on
// the access network and can starve the access path's heartbeats (the
// backbone's go on, and losing only the access path is no reason to take
// over: mirror/role.h rule 4); a flood from random MACs naming the very
// address being resolved competes with its answer for new-source tokens.
//
// Threads: a SlowHandoff belongs to one worker; the queues are MP/SC rings.
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "common/tables/layout.h"
#include "switch/dataplane.h"

namespace tandem::sw {

inline constexpr double kNewSourcesPerSecond = 1000;

enum class SlowKind : uint8_t {
  kBackboneHeartbeat = 0,
  kAccessHeartbeat = 1,
  kOther = 2,  // ARP, ND, echo: the known-neighbour queue or the general one
};

// Creates the five queues and the others of Dataplane (resolve, inject).
absl::Status CreateSlowRings(Dataplane& dp);

// A token bucket per source MAC, in a 4-way set-associative table; a MAC
// without a way takes the way whose bucket is fullest (idle longest: losing
// it forgets nothing), if the shared new-source bucket allows.
class SourceLimiter {
 public:
  // `new_per_s` 0: new sources are not limited apart.
  SourceLimiter(double per_s, double burst, double new_per_s, uint64_t tsc_hz);
  bool Admit(const uint8_t mac[6], uint64_t tsc, bool known);

 private:
  struct Way {
    uint8_t mac[6] = {};
    bool used = false;
    double tokens = 0;
    uint64_t tsc = 0;
  };
  static constexpr uint32_t kSets = 256, kWays = 4;
  double Refill(double tokens, uint64_t from, uint64_t to, double rate, double burst) const;

  double per_tsc_, burst_, new_per_tsc_, new_burst_;
  double new_tokens_;
  uint64_t new_tsc_ = 0;
  std::array<std::array<Way, kWays>, kSets> sets_{};
};

class SlowHandoff {
 public:
  explicit SlowHandoff(const Dataplane& dp);
  // Queues `m` for the main thread, or returns why it is dropped (the caller
  // frees it); tables::Drop::kCount when queued. `l3` and `ethertype` are
  // Parse's (for the backbone, 14 and the heartbeat type).
  tables::Drop Offer(rte_mbuf* m, SlowKind kind, uint16_t l3, uint16_t ethertype, uint64_t tsc);

 private:
  enum class Lane { kKnown, kWanted, kOther };
  Lane LaneOf(const uint8_t* f, uint32_t len, uint16_t l3, uint16_t ethertype) const;

  const Dataplane& dp_;
  SourceLimiter heartbeats_;
  SourceLimiter neighbours_;  // known and wanted
  SourceLimiter others_;
};

}  // namespace tandem::sw
