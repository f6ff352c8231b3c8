// etcd as the witness of a pair (docs/fleet.md, "The witness"): which node
// may be active when the two cannot hear each other at all. Pure logic, no
// I/O, time injected. The role machine obeys its verdict (mirror/role.h, rule
// 7, through WitnessInput); the pair does not run it against etcd yet.
//
// The pair's leadership key PREFIX/leaders/PAIR holds {node, epoch} under the
// holder's lease; PREFIX/epochs/PAIR (no lease) holds the highest epoch ever
// taken. A node acquires the key with one transaction: the key is absent and
// the epoch key is as read; it writes the key (with its lease) and the new
// epoch. The caller runs etcd and reports each outcome here with the time the
// request was SENT: etcd renews a lease to (its own receipt time + TTL), which
// is never earlier than (send time + TTL), so a node's own bound on its lease
// never outlasts etcd's.
//
// Rules, in order:
//  W1. Holding: a node holds the key from an acknowledged acquisition, sent at
//      s, until s + ttl - margin; each acknowledged renewal sent at s' moves
//      that to s' + ttl - margin. A failed or unanswered renewal moves
//      nothing. etcd saying the lease is gone, or the key is another node's,
//      ends the hold at once (Lost).
//  W2. An active node whose peer is heard (either path, within the detection
//      time) stays active whatever etcd says: an etcd outage takes no pair
//      down, and a peer that hears it does not take over (role rule 3).
//  W3. An active node whose peer is silent on both paths stays active only
//      while it holds the key (W1): it steps down at the end of its hold.
//  W4. A node whose peer says it holds the key at a higher epoch than this
//      node's (carried in heartbeats, once a standby acquired it) does not
//      stay or become active.
//  W5. A standby whose takeover is due (role rule 3) while its peer is silent
//      on both paths takes over only once it holds the key, and only `guard`
//      after the acquisition (it takes over then even if the peer is heard
//      again: the peer sees its key's epoch, W4): an active that held no key (W2, etcd cut off
//      from it) steps down at its own detection of the silence, which can
//      come later than the standby's by the heartbeat interval and path delay,
//      plus the time the switch takes to stop.
//  W6. A standby whose takeover is due while its peer is heard (handover,
//      the peer's data plane or access link down) takes over without waiting
//      for etcd, as without a witness: the peer hears the higher epoch.
//  W7. Acquire: a node whose takeover is due and that does not hold the key,
//      or an active node that does not hold it, tries to acquire it (at most
//      every renew_interval). The epoch it writes: an active node its own; a
//      standby max(stored epoch, highest epoch seen) + 1, which its takeover
//      then uses. Renew: a holder renews every renew_interval. A node that
//      found the key held watches it and tries again as soon as it is deleted.
//  W8. Release: a standby that holds the key at an epoch no higher than its
//      own (it was demoted, or its pending takeover was overtaken) deletes the
//      key (a transaction on its lease), so that the active acquires it at once.
//  W9. (In the role machine: mirror/role.h, rule 8.) A peer silent on both
//      paths whose control daemon says on the backbone that its switch is
//      dead is no partition: the witness is not asked (no W3, no W5).
//
// Threads: not thread-safe; the owner (the pair loop) serialises calls.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tandem::fleet {

struct WitnessConfig {
  // etcd's lease TTL (whole seconds; etcd's minimum is 1.5 x its election
  // timeout, 2 s with etcd's defaults).
  absl::Duration ttl = absl::Seconds(3);
  absl::Duration renew_interval = absl::Milliseconds(500);
  // Covers the switch stopping after the decision and the pair loop's tick.
  absl::Duration margin = absl::Seconds(1);
  absl::Duration guard = absl::Milliseconds(100);  // W5
};
// INVALID_ARGUMENT unless ttl is whole seconds >= 2, 0 < margin < ttl,
// 0 < renew_interval <= (ttl - margin) / 2 (two renewals fit in a hold), and
// guard > 0.
absl::Status CheckWitnessConfig(const WitnessConfig& config);

// What the pair knows at one decision.
struct PairSight {
  bool active = false;  // this node's role now
  uint64_t epoch = 0;   // this node's epoch (the highest it adopted)
  bool peer_heard = false;
  uint64_t peer_key_epoch = 0;  // the peer holds the key at this epoch (0: it says it does not)
  bool takeover_due = false;    // standby: role rule 3 would take over now
};

enum class WitnessAction { kNone, kAcquire, kRenew, kRelease };
const char* WitnessActionName(WitnessAction a);

struct WitnessVerdict {
  // Active: may stay active. Standby: may take over now (when it is due).
  bool may_be_active = false;
  // Active: the time it must have stepped down by unless the hold is renewed
  // (InfiniteFuture while its peer is heard).
  absl::Time step_down_at = absl::InfiniteFuture();
  WitnessAction action = WitnessAction::kNone;
  uint64_t acquire_epoch = 0;  // for kAcquire
  const char* rule = "";       // "W3", ...
};

class Witness {
 public:
  explicit Witness(WitnessConfig config) : config_(config) {}

  // etcd's answers, with the time the request was sent.
  void Acquired(uint64_t epoch, absl::Time sent_at);
  void Renewed(absl::Time sent_at);
  void Lost();  // the lease expired or was revoked, or the key is another's
  // An acquisition failed because the key is held (or the stored epoch moved):
  // what etcd holds now, for the next attempt's epoch.
  void SawStoredEpoch(uint64_t stored_epoch);
  void Attempted(absl::Time at) { last_attempt_ = at; }  // any request sent
  // A watch saw the key deleted (its holder's lease expired or was revoked):
  // the next acquisition goes at once, not a renew_interval after the last.
  void KeyGone() { last_attempt_ = absl::InfinitePast(); }

  bool holds(absl::Time now) const { return held_ && now < hold_until_; }
  absl::Time hold_until() const { return hold_until_; }
  uint64_t key_epoch() const { return held_ ? key_epoch_ : 0; }
  absl::Time acquired_at() const { return acquired_at_; }
  absl::Time last_attempt() const { return last_attempt_; }

  WitnessVerdict Decide(const PairSight& sight, absl::Time now) const;

 private:
  WitnessAction Upkeep(const PairSight& sight, absl::Time now, uint64_t* epoch) const;

  WitnessConfig config_;
  bool held_ = false;
  uint64_t key_epoch_ = 0;
  uint64_t stored_epoch_ = 0;
  absl::Time acquired_at_ = absl::InfinitePast();
  absl::Time hold_until_ = absl::InfinitePast();
  absl::Time last_attempt_ = absl::InfinitePast();
};

}  // namespace tandem::fleet
