// Registration by the daemon (docs/fleet.md): with [fleet] configured,
// tandem-control keeps its node's record in the fleet's directory on etcd
// (fleet::Registration, under a lease of its own) and refreshes role, epoch
// and load from the core every refresh_ms. Nothing else in the node waits on
// etcd: the refresh reads the core and hands the record over; Registration's
// own thread talks to etcd.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "control/core.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"

namespace tandem::control {

// `v` to two significant digits, rounded down (the published packets/s).
uint64_t TwoDigits(uint64_t v);

class FleetNode {
 public:
  // Starts registering (it does not wait for etcd). `core` outlives this.
  static absl::StatusOr<std::unique_ptr<FleetNode>> Start(Core& core);
  ~FleetNode();  // Stop(true)

  // `leave`: revoke the lease so that the record goes at once (a clean stop).
  void Stop(bool leave);

 private:
  explicit FleetNode(Core& core) : core_(core) {}
  fleet::v1::NodeRecord Record();
  void Loop();

  Core& core_;
  std::unique_ptr<fleet::EtcdClient> etcd_;
  std::unique_ptr<fleet::Registration> registration_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::string last_error_;  // the registration's, as last logged
  uint64_t last_packets_ = 0;
  std::chrono::steady_clock::time_point last_at_{};
  std::thread thread_;
};

}  // namespace tandem::control
