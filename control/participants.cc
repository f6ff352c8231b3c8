#include "control/participants.h"

#include <algorithm>
#include <map>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "control/media_limits.h"
#include "control/records.h"

namespace tandem::control {
namespace {

using tables::kLegRecv;
using tables::kLegSend;

bool IsMulticastOrBroadcast(const IpAddr& a) {
  if (a.is_v4()) {
    uint8_t first = a.b[12];
    return first >= 224 || (a.b[12] == 255 && a.b[13] == 255 && a.b[14] == 255 && a.b[15] == 255);
  }
  return a.b[0] == 0xff;
}

bool IsVip(const Config& config, const IpAddr& a) {
  for (const IpAddr& vip : config.access_vips) {
    if (vip == a) return true;
  }
  return false;
}

absl::Status NotPresent(uint64_t pid) {
  return absl::NotFoundError(
      absl::StrCat("unknown participant ", pid, " (not present in a live meeting)"));
}

// What one call of Join has planned so far.
struct Joining {
  const Indexes& ix;
  const Config& config;
  LocalPool& pool;
  JoinPlan out;
  uint64_t next_pid, next_leg;
  absl::flat_hash_map<uint64_t, uint32_t> new_present;  // meeting -> joiners in this call
  absl::flat_hash_map<uint64_t, uint32_t> new_legs;     // site -> legs in this call
  absl::flat_hash_map<uint64_t, uint32_t> site_legs;    // site -> live legs (cached)
};

// The local endpoint of a new leg: the one asked (a free endpoint of a VIP)
// or one from the pool, reserved for `leg_id`.
absl::StatusOr<std::pair<IpAddr, uint16_t>> PickLocal(Joining& j, const v1::LegRequest& lr,
                                                      const IpAddr& remote, uint64_t leg_id,
                                                      const std::string& where) {
  if (lr.local().empty()) {
    auto local = j.pool.Allocate(remote.is_v4(), leg_id);
    if (!local.ok()) {
      return absl::ResourceExhaustedError(where + std::string(local.status().message()));
    }
    return *local;
  }
  auto local = ParseEndpoint(lr.local());
  if (!local.ok() || local->second == 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, "invalid local address '", lr.local(), "'"));
  }
  if (!IsVip(j.config, local->first)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "local address ", local->first.ToString(), " is not a VIP of this node"));
  }
  if (local->first.is_v4() != remote.is_v4()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "remote ", lr.remote(), " and local ",
                                                   lr.local(),
                                                   " are of different address families"));
  }
  if (auto st = j.pool.Reserve(local->first, local->second, leg_id); !st.ok()) {
    return absl::AlreadyExistsError(where + std::string(st.message()));
  }
  return *local;
}

// The LEG_PUT of one leg asked for participant `p` of meeting `m`.
absl::StatusOr<v1::Leg> PlanLeg(Joining& j, const v1::LegRequest& lr, const v1::Participant& p,
                                const v1::Policy& policy, const std::string& where) {
  auto channel = ChannelFromProto(lr.channel());
  if (!channel.ok()) return absl::InvalidArgumentError(where + std::string(channel.status().message()));
  if (lr.recv_only() && lr.send_only()) {
    return absl::InvalidArgumentError(where + "recv_only and send_only exclude each other");
  }
  auto remote = ParseEndpoint(lr.remote());
  if (!remote.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "invalid remote address '", lr.remote(),
                     "' (want 198.18.0.10:5000 or [2001:db8::10]:5000)"));
  }
  if (remote->first.is_unspecified() || remote->second == 0 || IsMulticastOrBroadcast(remote->first)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "remote address ", lr.remote(), " must be a unicast address with a non-zero port"));
  }
  if (IsVip(j.config, remote->first)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "remote address ", lr.remote(), " is a VIP of this node"));
  }
  const uint64_t leg_id = j.next_leg;
  auto local = PickLocal(j, lr, remote->first, leg_id, where);
  if (!local.ok()) return local.status();
  j.next_leg++;
  ChannelLimits limits = LegLimitsFor(j.config.limits, policy, *channel);
  v1::Leg leg;
  leg.set_leg_id(leg_id);
  leg.set_participant_id(p.participant_id());
  leg.set_meeting_id(p.meeting_id());
  leg.set_channel(lr.channel());
  leg.set_remote(FormatEndpoint(remote->first, remote->second));
  leg.set_local(FormatEndpoint(local->first, local->second));
  leg.set_requested((lr.recv_only() ? 0 : kLegSend) | (lr.send_only() ? 0 : kLegRecv));
  leg.set_muted(p.muted());
  leg.set_pps_limit(limits.pps);
  leg.set_kbps_limit(limits.kbps);
  return leg;
}

// The participant joining as asked by `pj` (present already, or new).
absl::StatusOr<v1::Participant> PlanJoiner(Joining& j, const v1::ParticipantJoin& pj,
                                           const v1::Meeting& m, const v1::Policy& policy,
                                           uint64_t now, const std::string& who) {
  if (pj.participant_id() != 0) {
    const ParticipantRec* pr = j.ix.Present(pj.participant_id());
    if (pr == nullptr || pr->p.meeting_id() != m.meeting_id()) {
      return absl::NotFoundError(absl::StrCat(who, "unknown participant ", pj.participant_id(),
                                              " in meeting ", m.meeting_id()));
    }
    return pr->p;
  }
  auto lit = j.ix.live.find(m.meeting_id());
  uint32_t present = (lit != j.ix.live.end() ? lit->second.present : 0) +
                     ++j.new_present[m.meeting_id()];
  if (policy.max_participants_per_meeting() && present > policy.max_participants_per_meeting()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(who, "site ", m.site_id(), " policy: at most ",
                     policy.max_participants_per_meeting(), " participants per meeting"));
  }
  if (pj.name().size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat(who, "name longer than 256 bytes"));
  }
  if (pj.role() < 0 || pj.role() > v1::ATTENDEE) {
    return absl::InvalidArgumentError(absl::StrCat(who, "invalid role"));
  }
  v1::Participant p;
  p.set_participant_id(j.next_pid++);
  p.set_meeting_id(m.meeting_id());
  p.set_name(pj.name());
  p.set_role(pj.role() == v1::ROLE_UNSPECIFIED ? v1::ATTENDEE : pj.role());
  p.set_joined_unix_ns(now);
  j.out.plan.push_back(ParticipantChange(v1::Change::PARTICIPANT_PUT, p));
  return p;
}

// One entry of a Join request: its participant and its legs.
absl::Status PlanEntry(Joining& j, const v1::JoinRequest& req, int i, uint64_t now,
                       Plan& legs) {
  const v1::ParticipantJoin& pj = req.participants(i);
  std::string who =
      req.participants_size() > 1 ? absl::StrCat("participant #", i + 1, ": ") : std::string();
  auto mit = j.ix.meetings.find(pj.meeting_id());
  if (mit == j.ix.meetings.end()) {
    return absl::NotFoundError(absl::StrCat(who, "unknown meeting ", pj.meeting_id()));
  }
  const v1::Meeting& m = mit->second;
  if (m.state() != v1::LIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, "meeting ", m.meeting_id(), " is ",
        m.state() == v1::SCHEDULED ? "scheduled, not live: start it first" : "ended"));
  }
  auto sit = j.ix.sites.find(m.site_id());
  const v1::Policy& policy =
      sit != j.ix.sites.end() ? sit->second.policy() : v1::Policy::default_instance();
  auto p = PlanJoiner(j, pj, m, policy, now, who);
  if (!p.ok()) return p.status();
  if (pj.legs_size() > 0) {
    auto [cached, fresh] = j.site_legs.try_emplace(m.site_id(), 0);
    if (fresh) cached->second = j.ix.SiteLiveLegs(m.site_id());
    uint32_t total = cached->second + (j.new_legs[m.site_id()] += pj.legs_size());
    if (policy.max_legs() && total > policy.max_legs()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          who, "site ", m.site_id(), " policy: at most ", policy.max_legs(), " live legs"));
    }
  }
  v1::Participant& reply = j.out.replies.emplace_back(*p);
  for (int k = 0; k < pj.legs_size(); ++k) {
    auto leg = PlanLeg(j, pj.legs(k), *p, policy, absl::StrCat(who, "leg #", k + 1, ": "));
    if (!leg.ok()) return leg.status();
    reply.add_legs()->set_leg_id(leg->leg_id());
    legs.push_back(LegChange(std::move(*leg)));
  }
  return absl::OkStatus();
}

}  // namespace

void ReleaseLocals(const Plan& plan, LocalPool& pool) {
  for (const v1::Change& c : plan) {
    if (c.kind() != v1::Change::LEG_PUT) continue;
    if (auto local = ParseEndpoint(c.leg().local()); local.ok()) {
      pool.Release(local->first, local->second);
    }
  }
}

absl::StatusOr<JoinPlan> PlanJoin(const Indexes& ix, const v1::JoinRequest& req,
                                  const Config& config, uint64_t now, LocalPool& pool) {
  if (req.participants_size() == 0) {
    return absl::InvalidArgumentError("join needs at least one participant");
  }
  Joining j{ix, config, pool, {}, ix.next_participant_id, ix.next_leg_id, {}, {}, {}};
  Plan legs;
  // Endpoints reserved for this call are released unless the plan is made.
  absl::Cleanup release = [&] { ReleaseLocals(legs, pool); };
  for (int i = 0; i < req.participants_size(); ++i) {
    if (auto st = PlanEntry(j, req, i, now, legs); !st.ok()) return st;
  }
  std::move(release).Cancel();
  for (v1::Change& c : legs) j.out.plan.push_back(std::move(c));
  return std::move(j.out);
}

absl::StatusOr<Plan> PlanLeave(const Indexes& ix, const v1::LeaveRequest& req, uint64_t now,
                               const LegUsageFn& usage) {
  if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
    return absl::InvalidArgumentError("leave needs participant ids or leg ids");
  }
  absl::flat_hash_set<uint64_t> leaving;
  for (uint64_t pid : req.participant_ids()) {
    if (ix.Present(pid) == nullptr) return NotPresent(pid);
    leaving.insert(pid);
  }
  absl::flat_hash_set<uint64_t> doomed;
  for (uint64_t lid : req.leg_ids()) {
    if (!ix.legs.contains(lid)) return absl::NotFoundError(absl::StrCat("unknown leg ", lid));
    doomed.insert(lid);
  }
  for (uint64_t pid : leaving) {
    for (uint64_t lid : ix.participants.at(pid).legs) doomed.insert(lid);
  }
  // Fold the final usage of each leaving leg into its participant.
  std::map<uint64_t, v1::Participant> updated;
  for (uint64_t lid : doomed) {
    uint64_t pid = ix.legs.at(lid).participant_id;
    auto [it, fresh] = updated.try_emplace(pid);
    if (fresh) it->second = ix.participants.at(pid).p;
    AddUsage(usage(lid), it->second.mutable_usage());
  }
  for (uint64_t pid : leaving) {
    auto [it, fresh] = updated.try_emplace(pid);
    if (fresh) it->second = ix.participants.at(pid).p;
    it->second.set_left_unix_ns(now);
    uint64_t joined = it->second.joined_unix_ns();
    it->second.mutable_usage()->set_participant_minutes(now > joined ? double(now - joined) / 60e9
                                                                     : 0);
  }
  std::vector<uint64_t> ids(doomed.begin(), doomed.end());
  std::sort(ids.begin(), ids.end());
  Plan plan;
  for (uint64_t id : ids) plan.push_back(MakeChange(v1::Change::LEG_REMOVED, id));
  for (auto& [pid, p] : updated) {
    plan.push_back(ParticipantChange(
        leaving.contains(pid) ? v1::Change::PARTICIPANT_LEFT : v1::Change::PARTICIPANT_PUT,
        std::move(p)));
  }
  return plan;
}

absl::StatusOr<Plan> PlanSetRole(const Indexes& ix, const v1::SetRoleRequest& req) {
  const ParticipantRec* pr = ix.Present(req.participant_id());
  if (pr == nullptr) return NotPresent(req.participant_id());
  if (req.role() <= v1::ROLE_UNSPECIFIED || req.role() > v1::ATTENDEE) {
    return absl::InvalidArgumentError("role must be host, presenter or attendee");
  }
  v1::Participant p = pr->p;
  p.set_role(req.role());
  Plan plan{ParticipantChange(v1::Change::PARTICIPANT_PUT, std::move(p))};
  for (uint64_t leg : pr->legs) plan.push_back(LegChange(ix.LegRecord(leg)));
  return plan;
}

absl::StatusOr<Plan> PlanSetMute(const Indexes& ix, const v1::SetMuteRequest& req) {
  if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
    return absl::InvalidArgumentError("mute needs participant ids or leg ids");
  }
  for (uint64_t pid : req.participant_ids()) {
    if (ix.Present(pid) == nullptr) return NotPresent(pid);
  }
  for (uint64_t lid : req.leg_ids()) {
    if (!ix.legs.contains(lid)) return absl::NotFoundError(absl::StrCat("unknown leg ", lid));
  }
  // The participant's mute is durable (new legs join muted); leg mutes live
  // in the tables' flags.
  Plan plan;
  std::vector<uint64_t> legs(req.leg_ids().begin(), req.leg_ids().end());
  for (uint64_t pid : req.participant_ids()) {
    const ParticipantRec& pr = ix.participants.at(pid);
    v1::Participant p = pr.p;
    p.set_muted(req.muted());
    plan.push_back(ParticipantChange(v1::Change::PARTICIPANT_PUT, std::move(p)));
    legs.insert(legs.end(), pr.legs.begin(), pr.legs.end());
  }
  std::sort(legs.begin(), legs.end());
  legs.erase(std::unique(legs.begin(), legs.end()), legs.end());
  for (uint64_t lid : legs) {
    v1::Leg leg = ix.LegRecord(lid);
    leg.set_muted(req.muted());
    plan.push_back(LegChange(std::move(leg)));
  }
  return plan;
}

}  // namespace tandem::control
