// etcd as the pair's witness, run against etcd (docs/fleet.md, "The
// witness"): with [fleet] witness = true, a thread of tandem-control keeps
// fleet::Witness (the rules, control/fleet/witness.h) fed with etcd's answers
// and hands the pair's role machine a mirror::WitnessInput (rule 7 of
// mirror/role.h) before each of its ticks.
//
// The pair thread calls See() with what it knows (role, epoch, peer heard,
// a takeover waiting for the witness) and Input() for the verdict; neither
// waits on etcd. This thread, every `step` (20 ms), asks Witness::Decide what
// to do and does it:
//   acquire  keep-alive of its lease (a new one if gone), read both keys, and
//            one transaction: PREFIX/leaders/PAIR absent (version 0) and
//            PREFIX/epochs/PAIR at the revision read; put the leader record
//            {node, epoch} under the lease and the epoch. An active node
//            acquires at its own epoch (never below the stored one: someone
//            took over), a standby at max(stored, its own, Witness's) + 1;
//   renew    keep-alive of the lease; NOT_FOUND ends the hold at once;
//   release  revoke of the lease (the key goes with it).
// Every answer is reported with the time its request was sent (hold = sent +
// ttl - margin): etcd counts the lease from its own receipt, later. Each etcd
// call is bounded by renew_interval (all endpoints tried), so a dead etcd
// costs no renewal slot beyond one.
//
// A node whose acquisition found the key held watches it (etcd's Watch,
// deletions only, from the revision read) until its next attempt is due; a
// deletion makes that attempt go at once. A failed watch leaves the attempts
// every renew_interval.
//
// Not done (docs/fleet.md): W4 (the key's epoch in heartbeats).
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"
#include "control/fleet/witness.h"
#include "control/fleet_config.h"
#include "mirror/role.h"

namespace tandem::control {

class FleetWitness {
 public:
  // `now`: the pair's clock (monotonic); hold deadlines are on it.
  static absl::StatusOr<std::unique_ptr<FleetWitness>> Start(const FleetConfig& fleet,
                                                             std::function<absl::Time()> now);
  ~FleetWitness();  // stops; revokes its lease, so a held key goes at once

  void See(const fleet::PairSight& sight);
  mirror::WitnessInput Input() const;

  struct Status {
    bool holds = false;
    uint64_t key_epoch = 0;
    uint64_t acquisitions = 0, renewals = 0, renew_failures = 0, losses = 0;
    uint64_t watched_deletions = 0;  // the key's deletions a watch saw (tried at once)
    std::string last_error;
  };
  Status status() const;

 private:
  FleetWitness(const FleetConfig& fleet, std::function<absl::Time()> now);
  void Loop();
  void Act(const fleet::PairSight& sight, const fleet::WitnessVerdict& v);
  void Acquire(const fleet::PairSight& sight, uint64_t epoch);
  void Renew();
  void Release();
  // A lease alive now (kept alive or granted); its sent time in *sent.
  absl::StatusOr<int64_t> FreshLease(absl::Time* sent);
  void Failed(const absl::Status& st);
  // Watches the held key until `until`; under mu_ (released meanwhile).
  void Watch(std::unique_lock<std::mutex>& l, absl::Time until);

  const fleet::WitnessConfig timing_;
  const std::string node_, leader_key_, epoch_key_;
  std::function<absl::Time()> now_;
  std::unique_ptr<fleet::EtcdClient> etcd_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool poke_ = false;  // a takeover became due: look now
  fleet::PairSight sight_;
  bool seen_ = false;  // no action before the pair's first sight
  fleet::Witness witness_;  // written by the thread only, read under mu_
  Status status_;
  int64_t lease_ = 0;  // the thread's only
  // The revision at which the last acquisition found the key held (0: none
  // to watch); the thread's only.
  int64_t watch_after_ = 0;
  std::thread thread_;
};

}  // namespace tandem::control
