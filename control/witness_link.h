// The two translations between the pair's role machine and the witness's
// rules (docs/fleet.md, "The witness"), pure, so that the daemon's glue is
// tested with time injected (tests/unit/control/witness_link_test.cc):
// what the role machine tells the witness (fleet::PairSight), and what the
// witness tells the role machine (mirror::WitnessInput, rule 7).
#pragma once

#include "absl/time/time.h"
#include "control/fleet/witness.h"
#include "mirror/role.h"

namespace tandem::control {

inline fleet::PairSight SightOf(const mirror::RoleMachine& m, absl::Time now) {
  fleet::PairSight s;
  s.active = m.role() == mirror::Role::kActive;
  s.epoch = m.epoch();
  s.peer_heard = m.peer_heard(mirror::Path::kBackbone, now) ||
                 m.peer_heard(mirror::Path::kAccess, now);
  s.takeover_due = m.waiting_for_witness();
  return s;  // peer_key_epoch: not carried by heartbeats yet (W4)
}

inline mirror::WitnessInput InputOf(const fleet::Witness& w, absl::Duration guard) {
  mirror::WitnessInput in;
  in.enabled = true;
  if (w.key_epoch() != 0) {
    in.hold_until = w.hold_until();
    in.takeover_from = w.acquired_at() + guard;
    in.key_epoch = w.key_epoch();
  }
  return in;
}

}  // namespace tandem::control
