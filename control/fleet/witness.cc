#include "control/fleet/witness.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem::fleet {

absl::Status CheckWitnessConfig(const WitnessConfig& c) {
  const bool whole_seconds = absl::Trunc(c.ttl, absl::Seconds(1)) == c.ttl;
  if (!whole_seconds || c.ttl < absl::Seconds(2)) {
    return absl::InvalidArgumentError(absl::StrCat("witness ttl ", absl::FormatDuration(c.ttl),
                                                   ": want whole seconds, at least 2 s"));
  }
  if (c.margin <= absl::ZeroDuration() || c.margin >= c.ttl) {
    return absl::InvalidArgumentError("witness margin: want 0 < margin < ttl");
  }
  if (c.renew_interval <= absl::ZeroDuration() || c.renew_interval > (c.ttl - c.margin) / 2) {
    return absl::InvalidArgumentError(
        "witness renew_interval: want 0 < renew_interval <= (ttl - margin) / 2");
  }
  if (c.guard <= absl::ZeroDuration()) return absl::InvalidArgumentError("witness guard: want > 0");
  return absl::OkStatus();
}

const char* WitnessActionName(WitnessAction a) {
  switch (a) {
    case WitnessAction::kNone:
      return "none";
    case WitnessAction::kAcquire:
      return "acquire";
    case WitnessAction::kRenew:
      return "renew";
    case WitnessAction::kRelease:
      return "release";
  }
  return "?";
}

void Witness::Acquired(uint64_t epoch, absl::Time sent_at) {
  held_ = true;
  key_epoch_ = epoch;
  stored_epoch_ = std::max(stored_epoch_, epoch);
  acquired_at_ = sent_at;
  hold_until_ = sent_at + config_.ttl - config_.margin;
}

void Witness::Renewed(absl::Time sent_at) {
  if (held_) hold_until_ = std::max(hold_until_, sent_at + config_.ttl - config_.margin);
}

void Witness::Lost() {
  held_ = false;
  hold_until_ = absl::InfinitePast();
}

void Witness::SawStoredEpoch(uint64_t stored_epoch) {
  stored_epoch_ = std::max(stored_epoch_, stored_epoch);
}

WitnessAction Witness::Upkeep(const PairSight& s, absl::Time now, uint64_t* epoch) const {
  const bool due = now >= last_attempt_ + config_.renew_interval;
  if (held_) {
    // W8: a demoted holder, or a pending takeover overtaken by a higher epoch.
    if (!s.active && key_epoch_ <= s.epoch) return WitnessAction::kRelease;
    // W7. Also past the hold: etcd may still have the lease (it keeps it
    // longer than this node counts on); it says NOT_FOUND (Lost) if not.
    return due ? WitnessAction::kRenew : WitnessAction::kNone;
  }
  if (!(s.active || s.takeover_due) || !due) return WitnessAction::kNone;
  *epoch = s.active ? s.epoch : std::max(stored_epoch_, s.epoch) + 1;
  return WitnessAction::kAcquire;
}

WitnessVerdict Witness::Decide(const PairSight& s, absl::Time now) const {
  WitnessVerdict v;
  v.action = Upkeep(s, now, &v.acquire_epoch);
  const bool holding = holds(now);
  const uint64_t mine = std::max(s.epoch, holding ? key_epoch_ : 0);
  if (s.peer_key_epoch > mine) {
    v.may_be_active = false;
    v.step_down_at = now;
    v.rule = "W4";
    return v;
  }
  if (s.active) {
    if (s.peer_heard) {
      v.may_be_active = true;
      v.rule = "W2";
    } else {
      v.may_be_active = holding;
      v.step_down_at = held_ ? hold_until_ : now;
      v.rule = "W3";
    }
    return v;
  }
  v.step_down_at = now;
  if (holding && key_epoch_ > s.epoch) {
    v.may_be_active = now >= acquired_at_ + config_.guard;
    v.rule = "W5";
  } else if (s.takeover_due && s.peer_heard) {
    v.may_be_active = true;
    v.rule = "W6";
  } else if (s.takeover_due) {
    v.may_be_active = false;
    v.rule = "W5";
  }
  return v;
}

}  // namespace tandem::fleet
