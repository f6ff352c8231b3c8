// Placing meetings on the fleet through etcd, so that every placer agrees.
//
// Place(meeting) reads, in one round trip at one revision, the pairs, the
// drained pairs and the meeting's key. A meeting already placed keeps its pair
// (whatever its pair's state now: a meeting stays on its pair for its life).
// Otherwise the pair is chosen by the rules of placement.h and written to
// PREFIX/meetings/MEETING by a transaction that succeeds only while the key
// does not exist (compare-and-swap on its revision, 0). When another placer
// wrote it first, its choice is returned: two placers that saw different
// directories still give the same answer. A meeting is released (its key
// deleted) when it ends; docs/fleet.md says who does that.
//
// Errors: etcd unreachable: UNAVAILABLE naming each endpoint (etcd.h);
// no pair with room: RESOURCE_EXHAUSTED (placement.h); a bad id:
// INVALID_ARGUMENT.
//
// Threads: thread-safe (EtcdClient is).
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"
#include "control/fleet/placement.h"

namespace tandem::fleet {

struct Placement {
  std::string meeting_id;
  std::string pair_id;
  bool placed_now = false;  // this call wrote the placement
  uint64_t placed_unix_ns = 0;
  // The pair as the directory shows it (nullopt: it has no registration now,
  // e.g. both its nodes are down).
  std::optional<PairView> pair;
};

class Placer {
 public:
  // `etcd` outlives the placer.
  Placer(EtcdClient* etcd, Keys keys, PlacementConfig config = {});

  absl::StatusOr<Placement> Place(absl::string_view meeting_id);
  // Where the meeting is placed, without placing it (nullopt: nowhere).
  absl::StatusOr<std::optional<Placement>> Lookup(absl::string_view meeting_id);
  // The meeting ended: its key is deleted. NOT_FOUND when it was not placed.
  absl::Status Release(absl::string_view meeting_id);

  // The operator takes a pair out of placement (its live meetings stay) or
  // back in. Drain of a pair that is not registered is allowed (a pair about
  // to join may be kept out).
  absl::Status Drain(absl::string_view pair_id, absl::string_view reason);
  absl::Status Undrain(absl::string_view pair_id);

  absl::StatusOr<FleetView> Fleet() { return ReadFleet(*etcd_, keys_); }
  const Keys& keys() const { return keys_; }

 private:
  absl::StatusOr<Placement> FromKey(absl::string_view meeting_id, const KeyValue& kv,
                                    const FleetView& view) const;

  EtcdClient* etcd_;
  Keys keys_;
  PlacementConfig config_;
};

}  // namespace tandem::fleet
