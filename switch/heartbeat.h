// Pair heartbeats, sent and received by the switch itself so that they
// reflect the data plane: a dead or stuck tandem-switch stops them, a
// restarting tandem-control does not. They go out every `pair.heartbeat_ms` on
// the access and the backbone port as Ethernet frames of the IEEE local
// experimental EtherType 0x88b5 to the broadcast address (no IP addressing or
// neighbour resolution to fail), and carry an HMAC-SHA256 over the whole
// message with the pair's key.
//
// Replay protection: each switch start draws a random boot id; a message is
// accepted only if its (boot id, counter) is new for that path and its time
// stamp is within `kMaxSkewNs` of ours (the pair's clocks are NTP-synchronised).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "switch/packet.h"

namespace tandem::sw {

inline constexpr uint32_t kHeartbeatMagic = 0x54484231;  // "THB1"
inline constexpr size_t kHeartbeatBodyLen = 64;
inline constexpr size_t kHeartbeatLen = kHeartbeatBodyLen + 32;  // + HMAC-SHA256
inline constexpr uint64_t kMaxSkewNs = 2'000'000'000ull;

struct HeartbeatMsg {
  uint32_t node_id = 0;
  uint8_t path = 0;  // 0 access, 1 backbone
  uint32_t flags = 0;  // tables::kHb*
  uint64_t epoch = 0;
  uint64_t position = 0;
  uint64_t boot_id = 0;
  uint64_t counter = 0;
  uint64_t unix_ns = 0;
};

void EncodeHeartbeat(const HeartbeatMsg& m, const std::string& key, uint8_t out[kHeartbeatLen]);
// InvalidArgument (short, wrong magic or version), PermissionDenied (HMAC).
absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(const uint8_t* p, size_t len,
                                             const std::string& key);

// Per path: refuses replayed and stale messages.
class ReplayGuard {
 public:
  bool Accept(const HeartbeatMsg& m, uint64_t now_unix_ns);

 private:
  uint64_t boot_id_ = 0;
  uint64_t counter_ = 0;
  uint64_t boot_ns_ = 0;  // time stamp of the first message of this boot
};

}  // namespace tandem::sw
