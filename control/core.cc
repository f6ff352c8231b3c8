#include "control/core.h"

#include "common/clock.h"
#include "common/secure_file.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "control/meetings.h"
#include "control/participants.h"
#include "control/records.h"
#include "control/sites.h"

namespace tandem::control {
namespace {

const char* RoleName(tables::Role r) { return r == tables::Role::kActive ? "active" : "standby"; }

}  // namespace

Core::Core(Config config, std::unique_ptr<Store> store,
           std::unique_ptr<tables::TablesWriter> writer, uint64_t log_id)
    : config_(std::move(config)),
      model_(std::make_unique<Model>(config_, std::move(store), std::move(writer), log_id)) {}

Core::~Core() = default;

absl::StatusOr<std::unique_ptr<Core>> Core::Start(const Config& config) {
  std::optional<gid_t> shm_group;
  if (!config.shm_group.empty()) {
    auto g = LookupGroup(config.shm_group);
    if (!g.ok()) return absl::InvalidArgumentError(absl::StrCat("shm_group: ", g.status().message()));
    shm_group = *g;
  }
  if (auto st = PreparePrivateDir(config.shm_dir, shm_group); !st.ok()) return st;
  auto store = Store::Open(config.store_path);
  if (!store.ok()) return store.status();
  auto writer =
      tables::TablesWriter::Open(tables::TablesPath(config.shm_dir, config.node), config.capacity);
  if (!writer.ok()) return writer.status();
  std::random_device rd;
  uint64_t log_id = (uint64_t{rd()} << 32 | rd()) & 0x7fffffffffffffffULL;
  if (log_id == 0) log_id = 1;
  std::unique_ptr<Core> core(new Core(config, std::move(*store), std::move(*writer), log_id));
  absl::MutexLock lock(&core->mu_);
  if (auto st = core->Reconcile(); !st.ok()) return st;
  return core;
}

absl::Status Core::Reconcile() {
  if (auto st = model_->Load(); !st.ok()) return st;
  Store& store = model_->store();
  tables::TablesWriter& writer = model_->writer();
  auto epoch = store.GetMeta("epoch", 1);
  if (!epoch.ok()) return epoch.status();
  epoch_ = *epoch;
  role_ = config_.role == "active" ? tables::Role::kActive : tables::Role::kStandby;
  if (config_.pair.enabled) {
    // The pair owns role and epoch: a restarted daemon keeps what its
    // tables say (so forwarding is untouched), a fresh node starts standby
    // and the pair elects.
    const tables::TablesView& v = writer.view();
    epoch_ = std::max(epoch_.load(), v.epoch());
    role_ = v.epoch() > 0 ? v.role() : tables::Role::kStandby;
  }
  if (auto st = store.SetMeta("epoch", epoch_); !st.ok()) return st;
  if (auto st = writer.SetVips(config_.access_vips); !st.ok()) return st;
  writer.SetRole(role_, epoch_);
  v1::Change c = MakeChange(v1::Change::ROLE, 0);
  c.set_role(RoleName(role_));
  c.set_epoch(epoch_);
  model_->changes().Append(std::move(c));
  fprintf(stderr, "tandem-control: adopted %u legs, %zu live meetings; removed %u stale entries\n",
          model_->adopted_legs(), model_->indexes().live.size(), model_->removed_on_start());
  return absl::OkStatus();
}

absl::Status Core::ApplyPlan(absl::StatusOr<Plan> plan) {
  if (!plan.ok()) return plan.status();
  return model_->Apply(std::move(*plan), Model::Source{});
}

void Core::RefreshState() {
  // A region of another leg capacity does not index our slots.
  have_state_ = state_region_.Attach(tables::StatePath(config_.shm_dir, config_.node)) &&
                state_region_.view().header().leg_capacity ==
                    model_->writer().view().leg_capacity();
  if (have_state_) state_ = state_region_.view();
}

v1::Usage Core::LegUsage(uint64_t leg_id) const {
  // Counts mirrored from the peer before a takeover, then our switch's own.
  v1::Usage u;
  if (auto b = model_->usage_base().find(leg_id); b != model_->usage_base().end()) u = b->second;
  if (!have_state_) return u;
  auto info = model_->writer().GetLeg(leg_id);
  if (!info.ok()) return u;
  tables::LegUsage lu = tables::SumLegUsage(state_, info->slot, info->gen);
  u.set_packets_in(u.packets_in() + lu.packets_in);
  u.set_bytes_in(u.bytes_in() + lu.bytes_in);
  u.set_packets_out(u.packets_out() + lu.packets_out);
  u.set_bytes_out(u.bytes_out() + lu.bytes_out);
  u.set_drop_not_allowed(u.drop_not_allowed() + lu.drop_not_allowed);
  u.set_drop_policed(u.drop_policed() + lu.drop_policed);
  u.set_drop_other(u.drop_other() + lu.drop_other);
  if (lu.first_unix_ns && !u.first_packet_unix_ns()) u.set_first_packet_unix_ns(lu.first_unix_ns);
  u.set_last_packet_unix_ns(std::max<uint64_t>(u.last_packet_unix_ns(), lu.last_unix_ns));
  return u;
}

v1::Usage Core::ParticipantUsage(const ParticipantRec& rec) const {
  v1::Usage u = rec.p.usage();  // legs that already left, and minutes when left
  for (uint64_t leg : rec.legs) AddUsage(LegUsage(leg), &u);
  if (rec.p.left_unix_ns() == 0) {
    uint64_t now = UnixNs();
    if (now > rec.p.joined_unix_ns()) {
      u.set_participant_minutes(double(now - rec.p.joined_unix_ns()) / 60e9);
    }
  }
  return u;
}

v1::Usage Core::MeetingUsage(const v1::Meeting& m) const {
  if (m.state() != v1::LIVE) return m.usage();
  v1::Usage u;
  const Indexes& ix = model_->indexes();
  auto it = ix.live.find(m.meeting_id());
  if (it == ix.live.end()) return u;
  for (uint64_t pid : it->second.participants) {
    auto p = ix.participants.find(pid);
    if (p != ix.participants.end()) AddUsage(ParticipantUsage(p->second), &u);
  }
  return u;
}

void Core::FillLeg(uint64_t leg_id, bool with_usage, v1::Leg* out) const {
  if (model_->FillLeg(leg_id, out) && with_usage) *out->mutable_usage() = LegUsage(leg_id);
}

void Core::FillParticipant(const ParticipantRec& rec, bool with_legs, v1::Participant* out) const {
  *out = rec.p;
  *out->mutable_usage() = ParticipantUsage(rec);
  if (with_legs) {
    for (uint64_t leg : rec.legs) FillLeg(leg, false, out->add_legs());
  }
}

void Core::FillMeeting(const v1::Meeting& m, v1::Meeting* out) const {
  *out = m;
  if (m.state() == v1::LIVE) {
    auto it = model_->indexes().live.find(m.meeting_id());
    if (it != model_->indexes().live.end()) {
      out->set_participants(it->second.present);
      out->set_legs(it->second.legs);
    }
    *out->mutable_usage() = MeetingUsage(m);
  }
}

absl::StatusOr<const v1::Meeting*> Core::FindMeeting(uint64_t id) const {
  auto it = model_->indexes().meetings.find(id);
  if (it == model_->indexes().meetings.end()) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", id));
  }
  return &it->second;
}

// ---------------------------------------------------------------- sites

absl::Status Core::CreateSite(const v1::CreateSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto plan = PlanCreateSite(model_->indexes(), req, UnixNs());
  if (plan.ok()) *out = plan->front().site();
  return ApplyPlan(std::move(plan));
}

absl::Status Core::GetSite(const v1::GetSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  auto it = model_->indexes().sites.find(req.site_id());
  if (it == model_->indexes().sites.end()) {
    return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  }
  *out = it->second;
  return absl::OkStatus();
}

absl::Status Core::ListSites(const v1::ListSitesRequest&, v1::ListSitesResponse* out) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, s] : model_->indexes().sites) *out->add_sites() = s;
  return absl::OkStatus();
}

absl::Status Core::UpdateSite(const v1::UpdateSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto plan = PlanUpdateSite(model_->indexes(), req, UnixNs());
  if (plan.ok()) *out = plan->front().site();
  return ApplyPlan(std::move(plan));
}

absl::Status Core::DeleteSite(const v1::DeleteSiteRequest& req, v1::DeleteSiteResponse*) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  return ApplyPlan(PlanDeleteSite(model_->indexes(), req));
}

// ---------------------------------------------------------------- meetings

absl::Status Core::ScheduleMeeting(const v1::ScheduleMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto plan = PlanScheduleMeeting(model_->indexes(), req, UnixNs());
  if (plan.ok()) *out = plan->front().meeting();
  return ApplyPlan(std::move(plan));
}

absl::Status Core::StartMeeting(const v1::StartMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto plan = PlanStartMeeting(model_->indexes(), req, config_.limits, UnixNs());
  if (auto st = ApplyPlan(std::move(plan)); !st.ok()) return st;
  FillMeeting(model_->indexes().meetings.at(req.meeting_id()), out);
  return absl::OkStatus();
}

absl::Status Core::EndMeeting(const v1::EndMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  RefreshState();
  auto usage = [this](const ParticipantRec& pr) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return ParticipantUsage(pr);
  };
  auto plan = PlanEndMeeting(model_->indexes(), req, UnixNs(), usage);
  if (plan.ok()) *out = plan->back().meeting();
  return ApplyPlan(std::move(plan));
}

absl::Status Core::GetMeeting(const v1::GetMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  RefreshState();
  FillMeeting(**found, out);
  return absl::OkStatus();
}

absl::Status Core::ListMeetings(const v1::ListMeetingsRequest& req, v1::ListMeetingsResponse* out) {
  absl::MutexLock lock(&mu_);
  if (req.site_id() != 0 && !model_->indexes().sites.contains(req.site_id())) {
    return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  }
  RefreshState();
  for (const auto& [id, m] : model_->indexes().meetings) {
    if (req.site_id() != 0 && m.site_id() != req.site_id()) continue;
    if (req.state() != v1::MEETING_STATE_UNSPECIFIED && m.state() != req.state()) continue;
    if (req.listed_only() && !m.listed()) continue;
    FillMeeting(m, out->add_meetings());
  }
  return absl::OkStatus();
}

absl::Status Core::UpdateMeeting(const v1::UpdateMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  if (auto st = ApplyPlan(PlanUpdateMeeting(model_->indexes(), req)); !st.ok()) return st;
  RefreshState();
  FillMeeting(model_->indexes().meetings.at(req.meeting_id()), out);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- participants

absl::Status Core::Join(const v1::JoinRequest& req, v1::JoinResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto join = PlanJoin(model_->indexes(), req, config_, UnixNs(), model_->pool());
  if (!join.ok()) return join.status();
  if (auto st = model_->Apply(join->plan, Model::Source{}); !st.ok()) {
    ReleaseLocals(join->plan, model_->pool());
    return st;
  }
  out->mutable_participants()->Reserve(join->replies.size());
  for (v1::Participant& p : join->replies) {
    v1::Participant* r = out->add_participants();
    *r = std::move(p);
    for (v1::Leg& leg : *r->mutable_legs()) FillLeg(leg.leg_id(), false, &leg);
  }
  return absl::OkStatus();
}

absl::Status Core::Leave(const v1::LeaveRequest& req, v1::LeaveResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  RefreshState();
  auto usage = [this](uint64_t leg) ABSL_NO_THREAD_SAFETY_ANALYSIS { return LegUsage(leg); };
  auto plan = PlanLeave(model_->indexes(), req, UnixNs(), usage);
  if (!plan.ok()) return plan.status();
  uint32_t left = 0, legs = 0;
  for (const v1::Change& c : *plan) {
    left += c.kind() == v1::Change::PARTICIPANT_LEFT;
    legs += c.kind() == v1::Change::LEG_REMOVED;
  }
  if (auto st = ApplyPlan(std::move(plan)); !st.ok()) return st;
  out->set_participants_left(left);
  out->set_legs_removed(legs);
  return absl::OkStatus();
}

absl::Status Core::SetRole(const v1::SetRoleRequest& req, v1::Participant* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  if (auto st = ApplyPlan(PlanSetRole(model_->indexes(), req)); !st.ok()) return st;
  RefreshState();
  FillParticipant(model_->indexes().participants.at(req.participant_id()), true, out);
  return absl::OkStatus();
}

absl::Status Core::SetMute(const v1::SetMuteRequest& req, v1::SetMuteResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto plan = PlanSetMute(model_->indexes(), req);
  if (!plan.ok()) return plan.status();
  uint32_t legs = 0;
  for (const v1::Change& c : *plan) legs += c.kind() == v1::Change::LEG_PUT;
  if (auto st = ApplyPlan(std::move(plan)); !st.ok()) return st;
  out->set_legs_changed(legs);
  return absl::OkStatus();
}

absl::Status Core::ListParticipants(const v1::ListParticipantsRequest& req,
                                    v1::ListParticipantsResponse* out) {
  absl::MutexLock lock(&mu_);
  const Indexes& ix = model_->indexes();
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  RefreshState();
  auto lit = ix.live.find(req.meeting_id());
  if (lit != ix.live.end()) {
    for (uint64_t pid : lit->second.participants) {
      const ParticipantRec& pr = ix.participants.at(pid);
      if (pr.p.left_unix_ns() != 0 && !req.include_left()) continue;
      FillParticipant(pr, true, out->add_participants());
    }
    return absl::OkStatus();
  }
  if ((*found)->state() != v1::ENDED || !req.include_left()) return absl::OkStatus();
  auto parts = model_->store().LoadParticipants(req.meeting_id());
  if (!parts.ok()) return parts.status();
  for (v1::Participant& p : *parts) *out->add_participants() = std::move(p);
  return absl::OkStatus();
}

absl::Status Core::ListLegs(const v1::ListLegsRequest& req, v1::ListLegsResponse* out) {
  absl::MutexLock lock(&mu_);
  const Indexes& ix = model_->indexes();
  if (req.meeting_id() != 0 && !ix.meetings.contains(req.meeting_id())) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", req.meeting_id()));
  }
  if (req.participant_id() != 0 && !ix.participants.contains(req.participant_id())) {
    return absl::NotFoundError(
        absl::StrCat("unknown participant ", req.participant_id(), " (not in a live meeting)"));
  }
  if (req.with_usage()) RefreshState();
  std::vector<uint64_t> ids;
  if (req.participant_id() != 0) {
    ids = ix.participants.at(req.participant_id()).legs;
  } else {
    ids.reserve(ix.legs.size());
    for (const auto& [id, rec] : ix.legs) {
      if (req.meeting_id() == 0 || rec.meeting_id == req.meeting_id()) ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    if (req.meeting_id() != 0 && ix.legs.at(id).meeting_id != req.meeting_id()) continue;
    FillLeg(id, req.with_usage(), out->add_legs());
  }
  return absl::OkStatus();
}

absl::Status Core::GetUsage(const v1::GetUsageRequest& req, v1::GetUsageResponse* out) {
  absl::MutexLock lock(&mu_);
  const Indexes& ix = model_->indexes();
  RefreshState();
  switch (req.scope_case()) {
    case v1::GetUsageRequest::kLegId:
      if (!ix.legs.contains(req.leg_id())) {
        return absl::NotFoundError(absl::StrCat("unknown leg ", req.leg_id()));
      }
      *out->mutable_usage() = LegUsage(req.leg_id());
      return absl::OkStatus();
    case v1::GetUsageRequest::kParticipantId: {
      auto it = ix.participants.find(req.participant_id());
      if (it != ix.participants.end()) {
        *out->mutable_usage() = ParticipantUsage(it->second);
        return absl::OkStatus();
      }
      auto p = model_->store().GetParticipant(req.participant_id());
      if (!p.ok()) return p.status();
      *out->mutable_usage() = p->usage();
      return absl::OkStatus();
    }
    case v1::GetUsageRequest::kMeetingId: {
      auto found = FindMeeting(req.meeting_id());
      if (!found.ok()) return found.status();
      *out->mutable_usage() = MeetingUsage(**found);
      return absl::OkStatus();
    }
    case v1::GetUsageRequest::kSiteId: {
      if (!ix.sites.contains(req.site_id())) {
        return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
      }
      v1::Usage total;
      for (const auto& [id, m] : ix.meetings) {
        if (m.site_id() == req.site_id()) AddUsage(MeetingUsage(m), &total);
      }
      *out->mutable_usage() = total;
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("usage needs a site, meeting, participant or leg id");
  }
}

// ---------------------------------------------------------------- upkeep

void Core::Housekeeping() {
  absl::MutexLock lock(&mu_);
  model_->writer().Reclaim();
}

}  // namespace tandem::control
