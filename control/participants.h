// The API's changes to participants and legs, planned (see control/sites.h):
// validation against the model as it is, and the change records that make
// the change. Join also picks the legs' local endpoints: it reserves them in
// `pool` (the one thing a planner touches), releasing them on any error; the
// caller releases them (ReleaseLocals) if the plan is then not applied.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "control.pb.h"
#include "control/config.h"
#include "control/model.h"
#include "control/pool.h"

namespace tandem::control {

struct JoinPlan {
  // PARTICIPANT_PUT of each new participant, LEG_PUT of each new leg.
  Plan plan;
  // The reply, in request order: each participant (new or present) with
  // its new legs named by id only (the caller fills them from the model).
  std::vector<v1::Participant> replies;
};
absl::StatusOr<JoinPlan> PlanJoin(const Indexes& ix, const v1::JoinRequest& req,
                                  const Config& config, uint64_t now, LocalPool& pool);
// Releases the local endpoints of the plan's LEG_PUT records.
void ReleaseLocals(const Plan& plan, LocalPool& pool);

// A leg's usage so far (the switch's counters, with what the peer mirrored).
using LegUsageFn = std::function<v1::Usage(uint64_t leg_id)>;
// LEG_REMOVED of each leg leaving, then PARTICIPANT_PUT (a participant who
// stays, its left legs' usage folded in) or PARTICIPANT_LEFT.
absl::StatusOr<Plan> PlanLeave(const Indexes& ix, const v1::LeaveRequest& req, uint64_t now,
                               const LegUsageFn& usage);
// PARTICIPANT_PUT with the role, LEG_PUT of its legs (their flags follow).
absl::StatusOr<Plan> PlanSetRole(const Indexes& ix, const v1::SetRoleRequest& req);
// PARTICIPANT_PUT of each participant named (new legs join muted), LEG_PUT
// of each leg of theirs and each leg named.
absl::StatusOr<Plan> PlanSetMute(const Indexes& ix, const v1::SetMuteRequest& req);

}  // namespace tandem::control
