// Feeds a RoleMachine from the pair heartbeats that tandem-switch sends and
// receives itself (switch/heartbeat.h), as published in the state region
// (tables::StateHeader::peer[], local_flags). Heartbeats then reflect the data
// plane: a dead switch goes silent, a restarting tandem-control does not.
//
// The control daemon, every heartbeat interval:
//   LocalHealth local = SwitchHeartbeatFeed::Local(state, switch_alive, position);
//   feed.Poll(state, local, &machine, MonoNow());
//   for (Decision& d : machine.TakeDecisions()) { write role/epoch to the tables ... }
//   tables.header().handover = machine.handover_requested();
//   tables.header().mirror_position = position;
//
// Threads: a feed belongs to the thread that owns the RoleMachine.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "common/tables/layout.h"
#include "mirror/role.h"

namespace tandem::mirror {

// One consistent copy of a PeerPath (tables::ReadPeerPath) as the role
// machine sees it, or false if the switch kept writing it.
bool ReadPeerPath(const tables::PeerPath& p, PeerReport* report, uint64_t* last_heard_ns,
                  uint64_t* frames_ok, int64_t* clock_skew_ns = nullptr);

class SwitchHeartbeatFeed {
 public:
  // For each path with a new heartbeat since the last call, reports it to
  // `machine` at the (CLOCK_MONOTONIC) time the switch heard it; then sets the
  // local health and ticks at `now` (MonoNow()).
  void Poll(const tables::StateHeader& state, const LocalHealth& local, RoleMachine* machine,
            absl::Time now);

  // This node's health as the switch measured it. `switch_alive` is the
  // caller's own check that tandem-switch runs (its pid and worker heartbeats):
  // local_flags stay as they were when the switch died.
  static LocalHealth Local(const tables::StateHeader& state, bool switch_alive, uint64_t position);

 private:
  uint64_t frames_ok_[2] = {0, 0};
  uint64_t heard_ns_[2] = {0, 0};
};

}  // namespace tandem::mirror
