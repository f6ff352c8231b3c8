// The API's changes to sites, planned: each function validates a request
// against the model as it is and returns the change records that make it
// (control/model.h), or the error the API returns. Pure: nothing changes
// until Model::Apply; any thread that holds the model's lock.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "control.pb.h"
#include "control/model.h"

namespace tandem::control {

// SITE_PUT of a new site (a fresh id unless the request names a free one).
absl::StatusOr<Plan> PlanCreateSite(const Indexes& ix, const v1::CreateSiteRequest& req,
                                    uint64_t now);
// SITE_PUT of the site as updated.
absl::StatusOr<Plan> PlanUpdateSite(const Indexes& ix, const v1::UpdateSiteRequest& req,
                                    uint64_t now);
// MEETING_DELETED for each of its meetings (none may be live), SITE_DELETED.
absl::StatusOr<Plan> PlanDeleteSite(const Indexes& ix, const v1::DeleteSiteRequest& req);

}  // namespace tandem::control
