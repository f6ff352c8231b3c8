// The fleet's directory in etcd: its keys, the records under them, the view
// of every pair built from them, and Registration, which keeps one node's
// record in etcd under a lease. docs/fleet.md, "The directory".
//
// Keys (PREFIX defaults to "/tandem/fleet/"):
//   PREFIX/pairs/PAIR/NODE   NodeRecord, under the node's lease
//   PREFIX/drain/PAIR        DrainRecord, set by the operator (no lease)
//   PREFIX/meetings/MEETING  PlacementRecord, written once (placer.h)
//   PREFIX/leaders/PAIR      LeaderRecord, the witness's key, under the holder's lease
//   PREFIX/epochs/PAIR       the highest epoch taken with that key (decimal, no lease)
// Values are protobuf JSON (fleet.proto).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "control/fleet/etcd.h"
#include "control/fleet/placement.h"
#include "fleet.pb.h"

namespace tandem::fleet {

inline constexpr const char* kDefaultPrefix = "/tandem/fleet/";

// A pair, node or meeting id: 1 to 128 of [A-Za-z0-9._:@-]. INVALID_ARGUMENT
// naming `what` otherwise.
absl::Status CheckId(absl::string_view what, absl::string_view id);

class Keys {
 public:
  // `prefix` gets a trailing '/' when it has none.
  explicit Keys(absl::string_view prefix = kDefaultPrefix);
  const std::string& prefix() const { return prefix_; }
  std::string Pairs() const { return prefix_ + "pairs/"; }
  std::string Node(absl::string_view pair, absl::string_view node) const;
  std::string Drains() const { return prefix_ + "drain/"; }
  std::string Drain(absl::string_view pair) const;
  std::string Meetings() const { return prefix_ + "meetings/"; }
  std::string Meeting(absl::string_view meeting) const;
  std::string Leader(absl::string_view pair) const { return prefix_ + "leaders/" + std::string(pair); }
  std::string Epoch(absl::string_view pair) const { return prefix_ + "epochs/" + std::string(pair); }

 private:
  std::string prefix_;
};

// Compact protobuf JSON, and its parse (unknown fields ignored: a newer
// writer may add some).
std::string ToJson(const google::protobuf::Message& msg);
absl::Status FromJson(absl::string_view json, google::protobuf::Message* msg);

// One pair as the directory shows it.
struct PairView {
  std::string pair_id;
  std::vector<v1::NodeRecord> nodes;  // in node id order
  // The node calls go to: role "active", the highest epoch, ties to the lower
  // node id (the higher one demotes, as in the role machine). -1: none.
  int active = -1;
  bool drained = false;
  v1::DrainRecord drain;

  const v1::NodeRecord* active_node() const { return active < 0 ? nullptr : &nodes[active]; }
  PairState State() const;
};

struct FleetView {
  std::vector<PairView> pairs;  // in pair id order
  int64_t revision = 0;
  // Keys whose value could not be read (reported, never fatal).
  std::vector<std::string> bad_keys;

  const PairView* Find(absl::string_view pair_id) const;
  std::vector<PairState> States() const;
};

// The view from the ranges PREFIX/pairs/ and PREFIX/drain/.
FleetView BuildFleet(const Keys& keys, const RangeResult& nodes, const RangeResult& drains);
// Reads both ranges (one round trip) and builds the view.
absl::StatusOr<FleetView> ReadFleet(EtcdClient& etcd, const Keys& keys);

struct RegistrationOptions {
  // How often the record is compared with the last one written and written
  // when it changed (a record at rest costs no write: docs/fleet.md).
  std::chrono::milliseconds refresh{1000};
  // The lease: the record disappears this long after the node stopped
  // renewing it; renewed every keepalive.
  int64_t lease_ttl_s = 6;
  std::chrono::milliseconds keepalive{2000};
};

// Keeps one node's NodeRecord at PREFIX/pairs/PAIR/NODE under a lease of its
// own, from a thread of its own: grants the lease, writes the record, renews
// the lease, writes the record again when the owner published a change (at
// most once per refresh), and starts over with a new lease when etcd says the
// lease expired (etcd was unreachable for longer than its TTL). Nothing the
// owner does waits on etcd: Publish only stores the record.
//
// Threads: Publish and status from any thread; Start and Stop from the owner.
class Registration {
 public:
  // `etcd` outlives the registration. Its retry_timeout bounds how long one
  // step may wait; keep it under lease_ttl_s.
  Registration(EtcdClient* etcd, Keys keys, RegistrationOptions options = {});
  ~Registration();  // Stop(true)
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // Checks the record's ids and starts the thread (it does not wait for etcd).
  absl::Status Start(const v1::NodeRecord& record);
  // The node's state now; the pair and node ids must not change.
  absl::Status Publish(const v1::NodeRecord& record);
  // Stops the thread; `leave`: revoke the lease, so that the record goes at
  // once (else it lingers until the lease expires, as after a crash).
  void Stop(bool leave = true);

  struct Status {
    bool registered = false;  // the current record is in etcd under a live lease
    int64_t lease = 0;
    uint64_t grants = 0, writes = 0, keepalives = 0, errors = 0;
    std::string last_error;  // "" when the last step succeeded
  };
  Status status() const;

 private:
  void Loop();
  // One pass: lease, write, renew. Returns false after an error.
  bool Step(std::chrono::steady_clock::time_point now);
  void Fail(const absl::Status& st);

  EtcdClient* etcd_;
  Keys keys_;
  RegistrationOptions options_;
  std::string key_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;        // guarded by mu_
  std::string record_json_;  // guarded by mu_: the latest published
  Status status_;            // guarded by mu_

  // Owned by the thread.
  std::string written_json_;
  std::chrono::steady_clock::time_point next_write_{}, next_keepalive_{};
  std::thread thread_;
};

}  // namespace tandem::fleet
