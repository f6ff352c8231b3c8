#include "control/meetings.h"

#include "absl/strings/str_cat.h"
#include "control/records.h"

namespace tandem::control {
namespace {

absl::StatusOr<const v1::Meeting*> Find(const Indexes& ix, uint64_t id) {
  auto it = ix.meetings.find(id);
  if (it == ix.meetings.end()) return absl::NotFoundError(absl::StrCat("unknown meeting ", id));
  return &it->second;
}

absl::Status CheckTitle(const std::string& title) {
  if (title.empty()) return absl::InvalidArgumentError("a meeting needs a title");
  if (title.size() > 256) return absl::InvalidArgumentError("meeting title longer than 256 bytes");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Plan> PlanScheduleMeeting(const Indexes& ix, const v1::ScheduleMeetingRequest& req,
                                         uint64_t now) {
  v1::Meeting m = req.meeting();
  if (!ix.sites.contains(m.site_id())) {
    return absl::NotFoundError(absl::StrCat("unknown site ", m.site_id()));
  }
  if (auto st = CheckTitle(m.title()); !st.ok()) return st;
  if (m.meeting_id() != 0 && ix.meetings.contains(m.meeting_id())) {
    return absl::AlreadyExistsError(absl::StrCat("meeting ", m.meeting_id(), " exists"));
  }
  if (m.meeting_id() == 0) m.set_meeting_id(ix.next_meeting_id);
  m.set_state(v1::SCHEDULED);
  m.set_started_unix_ns(0);
  m.set_ended_unix_ns(0);
  m.set_participants(0);
  m.set_legs(0);
  m.clear_usage();
  m.set_created_unix_ns(now);
  return Plan{MeetingChange(m)};
}

absl::StatusOr<Plan> PlanStartMeeting(const Indexes& ix, const v1::StartMeetingRequest& req,
                                      const MediaLimits& limits, uint64_t now) {
  auto found = Find(ix, req.meeting_id());
  if (!found.ok()) return found.status();
  v1::Meeting m = **found;
  if (m.state() == v1::LIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", m.meeting_id(), " is already live"));
  }
  if (m.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", m.meeting_id(), " has ended; schedule a new one"));
  }
  auto site = ix.sites.find(m.site_id());
  const v1::Policy& policy = site != ix.sites.end() ? site->second.policy() : v1::Policy::default_instance();
  uint32_t max = policy.max_live_meetings();
  if (max && ix.SiteLiveMeetings(m.site_id()) >= max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("site ", m.site_id(), " policy: at most ", max, " live meetings"));
  }
  m.set_state(v1::LIVE);
  m.set_started_unix_ns(now);
  m.set_copies_per_s_limit(MeetingCopiesFor(limits, policy));
  return Plan{MeetingChange(m)};
}

absl::StatusOr<Plan> PlanEndMeeting(const Indexes& ix, const v1::EndMeetingRequest& req,
                                    uint64_t now, const ParticipantUsageFn& usage) {
  auto found = Find(ix, req.meeting_id());
  if (!found.ok()) return found.status();
  v1::Meeting m = **found;
  if (m.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", m.meeting_id(), " has already ended"));
  }
  Plan plan, finals;
  if (auto lit = ix.live.find(m.meeting_id()); m.state() == v1::LIVE && lit != ix.live.end()) {
    v1::Usage total;
    for (uint64_t pid : lit->second.participants) {
      auto pit = ix.participants.find(pid);
      if (pit == ix.participants.end()) continue;
      const ParticipantRec& pr = pit->second;
      v1::Participant p = pr.p;
      *p.mutable_usage() = usage(pr);
      if (p.left_unix_ns() == 0) p.set_left_unix_ns(now);
      AddUsage(p.usage(), &total);
      for (uint64_t leg : pr.legs) plan.push_back(MakeChange(v1::Change::LEG_REMOVED, leg));
      finals.push_back(ParticipantChange(v1::Change::PARTICIPANT_LEFT, std::move(p)));
    }
    *m.mutable_usage() = total;
  }
  for (v1::Change& c : finals) plan.push_back(std::move(c));
  m.set_state(v1::ENDED);
  m.set_ended_unix_ns(now);
  m.set_participants(0);
  m.set_legs(0);
  plan.push_back(MeetingChange(m));
  return plan;
}

absl::StatusOr<Plan> PlanUpdateMeeting(const Indexes& ix, const v1::UpdateMeetingRequest& req) {
  auto found = Find(ix, req.meeting_id());
  if (!found.ok()) return found.status();
  const v1::Meeting& cur = **found;
  if (cur.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", cur.meeting_id(), " has ended and cannot change"));
  }
  v1::Meeting m = cur;
  if (req.has_title()) {
    if (auto st = CheckTitle(req.title()); !st.ok()) return st;
    m.set_title(req.title());
  }
  if (req.has_presenter_only()) m.set_presenter_only(req.presenter_only());
  if (req.has_listed()) m.set_listed(req.listed());
  if (req.has_scheduled_start_unix()) m.set_scheduled_start_unix(req.scheduled_start_unix());
  if (req.has_duration_minutes()) m.set_duration_minutes(req.duration_minutes());
  m.clear_usage();
  m.set_participants(0);
  m.set_legs(0);
  Plan plan{MeetingChange(m)};
  auto lit = ix.live.find(m.meeting_id());
  if (cur.presenter_only() != m.presenter_only() && m.state() == v1::LIVE &&
      lit != ix.live.end()) {
    for (uint64_t pid : lit->second.participants) {
      auto pit = ix.participants.find(pid);
      if (pit == ix.participants.end()) continue;
      for (uint64_t leg : pit->second.legs) plan.push_back(LegChange(ix.LegRecord(leg)));
    }
  }
  return plan;
}

}  // namespace tandem::control
