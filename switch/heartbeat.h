// Pair heartbeats, sent and received by the switch itself so that they
// reflect the data plane: a dead or stuck tandem-switch stops them, a
// restarting tandem-control does not. They go out every `pair.heartbeat_ms` on
// the access and the backbone port as Ethernet frames of the IEEE local
// experimental EtherType 0x88b5 to the broadcast address (no IP addressing or
// neighbour resolution to fail), and carry an HMAC-SHA256 over the whole
// message with the pair's key.
//
// Freshness without synchronised clocks: each switch start draws a random
// boot id and numbers its heartbeats (one counter for both ports). Each
// heartbeat echoes the last one its sender heard from the peer on that path
// (the low 32 bits of the peer's boot id and counter). A receiver accepts a
// heartbeat when its (boot id, counter) is new for that path and it echoes
// one of the receiver's own heartbeats sent within kMaxAgeNs (by the
// receiver's CLOCK_MONOTONIC): it was written after that one went out. A
// replay of an older capture echoes an older heartbeat and is refused
// whatever the clocks say; a clock step on either node changes nothing (the
// time stamp is only reported, as the skew).
// A heartbeat that echoes nothing (its sender has not heard us yet, or is an
// older version) is judged by the former rule: its time stamp within
// kMaxSkewNs of ours, and an older boot's message refused after a newer one's.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "switch/packet.h"

namespace tandem::sw {

inline constexpr uint32_t kHeartbeatMagic = 0x54484231;  // "THB1"
inline constexpr size_t kHeartbeatBodyLen = 64;
inline constexpr size_t kHeartbeatLen = kHeartbeatBodyLen + 32;  // + HMAC-SHA256
inline constexpr uint64_t kMaxSkewNs = 2'000'000'000ull;   // wall clocks: the fallback
inline constexpr uint64_t kMaxAgeNs = 2'000'000'000ull;    // of the heartbeat echoed

struct HeartbeatMsg {
  uint32_t node_id = 0;
  uint8_t path = 0;  // 0 access, 1 backbone
  uint32_t flags = 0;  // tables::kHb*
  uint64_t epoch = 0;
  uint64_t position = 0;
  uint64_t boot_id = 0;
  uint64_t counter = 0;
  uint64_t unix_ns = 0;
  // The last heartbeat the sender heard from its peer on this path: the low
  // 32 bits of that one's boot id and counter; 0 and 0 when none.
  uint32_t echo_boot = 0;
  uint32_t echo_counter = 0;
};

void EncodeHeartbeat(const HeartbeatMsg& m, const std::string& key, uint8_t out[kHeartbeatLen]);
// The fields, unauthenticated (for checks that cost less than the HMAC):
// InvalidArgument when short or of another magic or version.
absl::StatusOr<HeartbeatMsg> ParseHeartbeat(const uint8_t* p, size_t len);
// ParseHeartbeat, then the HMAC: PermissionDenied when it does not match.
absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(const uint8_t* p, size_t len,
                                             const std::string& key);

// This node's heartbeats as sent: when (CLOCK_MONOTONIC) each of the last
// kSize counters went out.
class SentLog {
 public:
  void Record(uint64_t counter, uint64_t mono_ns);
  // When the heartbeat whose counter has these low 32 bits went out, if it
  // is among the last kSize.
  std::optional<uint64_t> SentAt(uint32_t counter32) const;

 private:
  static constexpr size_t kSize = 4096;  // 2 s of both ports at heartbeat_ms = 1
  struct Slot {
    uint64_t counter = 0;
    uint64_t mono_ns = 0;
  };
  std::array<Slot, kSize> slots_{};
};

// Per path: refuses replayed and stale heartbeats (see above), and keeps
// what this node echoes back on the path.
class ReplayGuard {
 public:
  enum class Result { kAccepted, kReplayed, kStale };

  // Before the HMAC: false when (boot id, counter) is not new for this path.
  bool IsNew(const HeartbeatMsg& m) const;
  // An authenticated heartbeat of the peer on this path. `our_boot` is this
  // node's boot id, `sent` its heartbeats.
  Result Accept(const HeartbeatMsg& m, uint64_t our_boot, const SentLog& sent,
                uint64_t now_mono_ns, uint64_t now_unix_ns);
  // What this node's next heartbeat on the path echoes (0, 0 until heard).
  uint32_t echo_boot() const { return echo_boot_; }
  uint32_t echo_counter() const { return echo_counter_; }

 private:
  uint64_t boot_id_ = 0;
  uint64_t counter_ = 0;
  uint64_t boot_ns_ = 0;          // time stamp of the first message of this boot
  uint64_t accepted_mono_ = 0;    // when the last one was accepted; 0 = never
  uint32_t echo_boot_ = 0, echo_counter_ = 0;
};

}  // namespace tandem::sw
