#include "mirror/role.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::mirror {

const char* RoleName(Role r) { return r == Role::kActive ? "active" : "standby"; }
const char* PathName(Path p) { return p == Path::kBackbone ? "backbone" : "access"; }

std::vector<std::pair<const char*, bool>> Alarms::List() const {
  return {{"peer_lost", peer_lost},         {"backbone_down", backbone_down},
          {"access_path_down", access_path_down}, {"peer_unhealthy", peer_unhealthy},
          {"cannot_take_over", cannot_take_over}, {"two_actives", two_actives},
          {"clock_skew", clock_skew}};
}

std::string Alarms::ToString() const {
  std::vector<std::string> on;
  for (const auto& [name, raised] : List()) {
    if (raised) on.push_back(name);
  }
  return on.empty() ? "none" : absl::StrJoin(on, ",");
}

RoleMachine::RoleMachine(RoleConfig config, Role role, uint64_t epoch, absl::Time now)
    : config_(config), role_(role), epoch_(epoch), max_epoch_seen_(epoch) {
  // Startup counts as heard: a node alone waits one detection time.
  last_heard_[0] = last_heard_[1] = now;
}

absl::Duration RoleMachine::DetectionTime() const {
  int m = config_.multiplier;
  if (peer_control_closed_) m = std::max(2, (m + 1) / 2);
  return config_.interval * std::min(m, config_.multiplier);
}

bool RoleMachine::peer_heard(Path p, absl::Time now) const {
  return std::min(now, listening_until_) - last_heard_[static_cast<int>(p)] <= DetectionTime();
}

bool RoleMachine::PeerHeardBy(absl::Time now) const {
  auto heard = [&](Path p) { return now - last_heard_[static_cast<int>(p)] <= DetectionTime(); };
  return heard(Path::kBackbone) || (!config_.backbone_only && heard(Path::kAccess));
}

std::vector<Decision> RoleMachine::TakeDecisions() {
  std::vector<Decision> out;
  out.swap(decisions_);
  return out;
}

void RoleMachine::Become(Role role, uint64_t epoch, absl::Time now, std::string cause) {
  if (role_ == Role::kActive && role == Role::kStandby) demoted_at_ = now;
  role_ = role;
  epoch_ = epoch;
  max_epoch_seen_ = std::max(max_epoch_seen_, epoch);
  handover_ = false;
  caught_up_since_.reset();
  Decision d{now, role, epoch, std::move(cause)};
  if (role == Role::kActive) last_takeover_ = d;
  decisions_.push_back(std::move(d));
}

void RoleMachine::OnHeartbeat(Path path, const PeerReport& report, absl::Time now) {
  if (report.node_id == config_.node_id) return;  // our own packet reflected
  if (config_.peer_node_id != 0 && report.node_id != config_.peer_node_id) {
    reports_ignored_++;  // another pair's node holding the key: not our peer
    return;
  }
  last_heard_[static_cast<int>(path)] = now;
  ever_heard_[static_cast<int>(path)] = true;
  // The two paths may deliver out of order: a report from an older epoch than
  // one already seen is stale (it still shows the peer alive on that path).
  if (!peer_ || report.epoch >= peer_->epoch) peer_ = report;
  // Rule 8: the peer heard in a newer epoch than its control daemon's
  // report (it took over since): the report is void.
  if (peer_control_ && report.epoch > peer_control_->epoch) peer_control_.reset();
  Evaluate(now);
}

void RoleMachine::SetLocal(const LocalHealth& health, absl::Time now) {
  local_ = health;
  Evaluate(now);
}

void RoleMachine::Tick(absl::Time now) { Evaluate(now); }

bool RoleMachine::PreferredOverPeer() const {
  if (local_.position != peer_->position) return local_.position > peer_->position;
  return config_.node_id < peer_->node_id;
}

void RoleMachine::OnPeerControl(const PeerControlReport& report, absl::Time now) {
  if (report.node_id == config_.node_id) return;
  if (config_.peer_node_id != 0 && report.node_id != config_.peer_node_id) {
    reports_ignored_++;
    return;
  }
  peer_control_ = report;
  peer_control_at_ = now;
  max_epoch_seen_ = std::max(max_epoch_seen_, report.epoch);  // a takeover goes above it
  Evaluate(now);
}

absl::Time RoleMachine::peer_switch_dead_until() const {
  if (!peer_control_ || peer_control_->data_plane_ok) return absl::InfinitePast();
  // A standby in no newer epoch than ours, or the active we took over from.
  const bool counts = peer_control_->role == Role::kStandby
                          ? role_ == Role::kStandby || peer_control_->epoch <= epoch_
                          : role_ == Role::kActive && peer_control_->epoch < epoch_;
  return counts ? peer_control_at_ + config_.control_timeout : absl::InfinitePast();
}

void RoleMachine::PeerRules(bool heard, absl::Time now) {
  if (!heard || !peer_) return;
  // Rule 1: a higher epoch wins at once.
  if (peer_->epoch > epoch_) {
    if (role_ == Role::kActive) {
      Become(Role::kStandby, peer_->epoch, now,
             absl::StrCat("node ", peer_->node_id, " is ", RoleName(peer_->role),
                          " in higher epoch ", peer_->epoch));
    } else {
      epoch_ = peer_->epoch;
    }
  }
  max_epoch_seen_ = std::max(max_epoch_seen_, peer_->epoch);
  // Rule 2: never two actives in one epoch.
  if (role_ == Role::kActive && peer_->role == Role::kActive && peer_->epoch == epoch_) {
    alarms_.two_actives = true;
    if (config_.node_id > peer_->node_id) {
      Become(Role::kStandby, epoch_, now,
             absl::StrCat("two actives in epoch ", epoch_, ": node ", peer_->node_id,
                          " (lower id) keeps the active role"));
    }
  }
}

void RoleMachine::ActiveRules(bool heard, absl::Time now) {
  // Rule 7 (W3): cut off from its peer, an active needs the pair's key;
  // rule 8: not while the peer's control daemon says its switch is dead.
  // The silence counts up to now, not up to when our switch last listened:
  // a switch that stopped listening (and so beating) leaves the peer free to
  // take the key, and an active without the key must not wait for it.
  if (witness_.enabled && !PeerHeardBy(now) && now >= witness_.hold_until &&
      now > peer_switch_dead_until()) {
    Become(Role::kStandby, epoch_, now,
           absl::StrCat(heard ? "peer not heard while this node's switch did not listen"
                              : "peer lost on backbone and access network",
                        " and the pair's key in etcd not held (witness: lease not renewed)"));
    decisions_.back().for_witness = true;
  }
  // Rule 5: otherwise an active node stays active.
}

std::string RoleMachine::TakeoverCause(bool heard, bool heard_bb, absl::Time now) {
  const bool peer_active = heard && peer_ && peer_->role == Role::kActive;
  if (!heard) {
    if (silence_hold_) return "";
    return !(ever_heard_[0] || ever_heard_[1]) ? "no peer heard since start"
           : peer_control_closed_
               ? "peer lost on backbone and access network, its control daemon gone"
               : "peer lost on backbone and access network";
  }
  if (peer_active && !peer_->data_plane_ok) return "peer reports its data plane dead";
  if (peer_active && !peer_->access_link_up) return "peer reports its access link down";
  if (peer_active && peer_->handover) return "switchover requested by the active peer";
  if (peer_ && peer_->role == Role::kStandby && peer_->epoch == epoch_ && PreferredOverPeer()) {
    return "no active node; this node is preferred";
  }
  if (peer_active && config_.preempt && heard_bb && local_.position >= peer_->position) {
    if (!caught_up_since_) caught_up_since_ = now;
    if (now - *caught_up_since_ >= config_.preempt_hold) {
      return absl::StrCat("preemption: caught up at position ", local_.position);
    }
    return "";
  }
  caught_up_since_.reset();
  return "";
}

void RoleMachine::Evaluate(absl::Time now) {
  const bool heard_bb = peer_heard(Path::kBackbone, now);
  const bool heard_acc = config_.backbone_only ? heard_bb : peer_heard(Path::kAccess, now);
  const bool heard = heard_bb || heard_acc;

  alarms_.peer_lost = !heard;
  alarms_.backbone_down = !heard_bb && heard_acc;
  alarms_.access_path_down = heard_bb && !heard_acc;
  alarms_.peer_unhealthy = heard && peer_ && (!peer_->data_plane_ok || !peer_->access_link_up);
  alarms_.two_actives = false;
  alarms_.cannot_take_over = false;
  alarms_.clock_skew = heard && absl::AbsDuration(clock_skew_) > config_.max_clock_skew;
  waiting_for_witness_ = false;

  PeerRules(heard, now);
  if (role_ == Role::kActive) return ActiveRules(heard, now);

  // Rule 3: reasons for the standby to take over.
  std::string cause = TakeoverCause(heard, heard_bb, now);
  if (cause.empty()) return;
  const bool local_ok = local_.data_plane_ok && local_.access_link_up;
  if (!local_ok || (demoted_at_ && now - *demoted_at_ < config_.rejoin_hold)) {
    alarms_.cannot_take_over = true;
    return;
  }
  if (witness_.enabled && !heard) {
    if (now <= peer_switch_dead_until()) {  // rule 8: no partition, no key needed
      cause += "; the peer's control daemon reports its switch dead";
    } else if (now >= witness_.hold_until || now < witness_.takeover_from ||
               witness_.key_epoch <= max_epoch_seen_) {  // rule 7 (W5)
      waiting_for_witness_ = true;
      return;
    } else {
      Become(Role::kActive, witness_.key_epoch, now,
             absl::StrCat(cause, "; the pair's key in etcd held at epoch ", witness_.key_epoch));
      return;
    }
  }
  Become(Role::kActive, max_epoch_seen_ + 1, now, std::move(cause));
}

absl::Status RoleMachine::RequestSwitchover(absl::Time now, bool force) {
  const bool heard_bb = peer_heard(Path::kBackbone, now);
  if (role_ == Role::kActive) {
    if (!force) {
      if (!heard_bb || !peer_) {
        return absl::FailedPreconditionError("peer not heard on the backbone");
      }
      if (!peer_->data_plane_ok || !peer_->access_link_up) {
        return absl::FailedPreconditionError("peer is not healthy");
      }
      if (peer_->position < local_.position) {
        return absl::FailedPreconditionError(
            absl::StrCat("peer not caught up: ", peer_->position, " of ", local_.position));
      }
    }
    handover_ = true;
    return absl::OkStatus();
  }
  if (!force) {
    if (!local_.data_plane_ok || !local_.access_link_up) {
      return absl::FailedPreconditionError("this node is not healthy");
    }
    if (heard_bb && peer_ && peer_->role == Role::kActive && local_.position < peer_->position) {
      return absl::FailedPreconditionError(
          absl::StrCat("not caught up: ", local_.position, " of ", peer_->position));
    }
  }
  Become(Role::kActive, max_epoch_seen_ + 1, now, "switchover by operator command");
  return absl::OkStatus();
}

}  // namespace tandem::mirror
