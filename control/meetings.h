// The API's changes to meetings, planned (see control/sites.h): validation
// against the model as it is, and the change records that make the change.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "control.pb.h"
#include "control/media_limits.h"
#include "control/model.h"

namespace tandem::control {

// A participant's usage so far (its left legs, its live legs, its minutes).
using ParticipantUsageFn = std::function<v1::Usage(const ParticipantRec&)>;

// MEETING_PUT of a new SCHEDULED meeting.
absl::StatusOr<Plan> PlanScheduleMeeting(const Indexes& ix, const v1::ScheduleMeetingRequest& req,
                                         uint64_t now);
// MEETING_PUT of the meeting LIVE, with its copies cap (site policy over
// the node's `limits`); ResourceExhausted past the site's live meetings.
absl::StatusOr<Plan> PlanStartMeeting(const Indexes& ix, const v1::StartMeetingRequest& req,
                                      const MediaLimits& limits, uint64_t now);
// LEG_REMOVED of every leg, PARTICIPANT_LEFT of every participant with its
// final usage, MEETING_PUT of the meeting ENDED with their total.
absl::StatusOr<Plan> PlanEndMeeting(const Indexes& ix, const v1::EndMeetingRequest& req,
                                    uint64_t now, const ParticipantUsageFn& usage);
// MEETING_PUT as updated; LEG_PUT of each leg when presenter_only changes
// on a live meeting (the legs' flags follow).
absl::StatusOr<Plan> PlanUpdateMeeting(const Indexes& ix, const v1::UpdateMeetingRequest& req);

}  // namespace tandem::control
