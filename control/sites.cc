#include "control/sites.h"

#include "absl/strings/str_cat.h"
#include "control/records.h"

namespace tandem::control {
namespace {

// Size limits of a site (docs/control.md, "Limits"). Every object goes to
// the standby as one replication record, which must fit one backbone frame
// (16 MiB): without a bound, one site grown by updates stalled replication
// for good. These keep every object far below it.
constexpr size_t kMaxMapKeyBytes = 256;
constexpr size_t kMaxMapValueBytes = 64 << 10;
constexpr size_t kMaxMapEntries = 1024;
constexpr size_t kMaxSiteBytes = 1 << 20;

absl::Status CheckSiteName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("a site needs a name");
  if (name.size() > 256) return absl::InvalidArgumentError("site name longer than 256 bytes");
  return absl::OkStatus();
}

absl::Status CheckSiteMap(const char* what,
                          const google::protobuf::Map<std::string, std::string>& m) {
  if (m.size() > kMaxMapEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", m.size(), " entries: the limit is ", kMaxMapEntries));
  }
  for (const auto& [k, v] : m) {
    if (k.size() > kMaxMapKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " key of ", k.size(), " bytes: the limit is ", kMaxMapKeyBytes));
    }
    if (v.size() > kMaxMapValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat(what, " value of \"", k, "\" is ", v.size(),
                                                     " bytes: the limit is ", kMaxMapValueBytes));
    }
  }
  return absl::OkStatus();
}

// A site as it would be stored: within every size limit.
absl::Status CheckSiteSize(const v1::Site& site) {
  if (auto st = CheckSiteMap("look_and_feel", site.look_and_feel()); !st.ok()) return st;
  if (auto st = CheckSiteMap("preferences", site.preferences()); !st.ok()) return st;
  if (size_t n = site.ByteSizeLong(); n > kMaxSiteBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the site would take ", n,
                                                   " bytes: the limit is ", kMaxSiteBytes,
                                                   " (name, look_and_feel and preferences)"));
  }
  return absl::OkStatus();
}

// AlreadyExists when another site than `self` has the name.
absl::Status CheckNameFree(const Indexes& ix, const std::string& name, uint64_t self) {
  for (const auto& [id, s] : ix.sites) {
    if (id != self && s.name() == name) {
      return absl::AlreadyExistsError(
          absl::StrCat("a site named \"", name, "\" exists (site ", id, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status UnknownSite(uint64_t id) {
  return absl::NotFoundError(absl::StrCat("unknown site ", id));
}

}  // namespace

absl::StatusOr<Plan> PlanCreateSite(const Indexes& ix, const v1::CreateSiteRequest& req,
                                    uint64_t now) {
  v1::Site site = req.site();
  if (auto st = CheckSiteName(site.name()); !st.ok()) return st;
  if (site.site_id() != 0 && ix.sites.contains(site.site_id())) {
    return absl::AlreadyExistsError(absl::StrCat("site ", site.site_id(), " exists"));
  }
  if (auto st = CheckNameFree(ix, site.name(), 0); !st.ok()) return st;
  if (site.site_id() == 0) site.set_site_id(ix.next_site_id);
  site.set_created_unix_ns(now);
  site.set_updated_unix_ns(now);
  if (auto st = CheckSiteSize(site); !st.ok()) return st;
  return Plan{SiteChange(site)};
}

absl::StatusOr<Plan> PlanUpdateSite(const Indexes& ix, const v1::UpdateSiteRequest& req,
                                    uint64_t now) {
  auto it = ix.sites.find(req.site_id());
  if (it == ix.sites.end()) return UnknownSite(req.site_id());
  v1::Site site = it->second;
  if (req.has_name()) {
    if (auto st = CheckSiteName(req.name()); !st.ok()) return st;
    if (auto st = CheckNameFree(ix, req.name(), site.site_id()); !st.ok()) return st;
    site.set_name(req.name());
  }
  for (const auto& [k, v] : req.set_look_and_feel()) (*site.mutable_look_and_feel())[k] = v;
  for (const std::string& k : req.remove_look_and_feel()) site.mutable_look_and_feel()->erase(k);
  for (const auto& [k, v] : req.set_preferences()) (*site.mutable_preferences())[k] = v;
  for (const std::string& k : req.remove_preferences()) site.mutable_preferences()->erase(k);
  if (req.has_policy()) *site.mutable_policy() = req.policy();
  site.set_updated_unix_ns(now);
  if (auto st = CheckSiteSize(site); !st.ok()) return st;
  return Plan{SiteChange(site)};
}

absl::StatusOr<Plan> PlanDeleteSite(const Indexes& ix, const v1::DeleteSiteRequest& req) {
  if (!ix.sites.contains(req.site_id())) return UnknownSite(req.site_id());
  Plan plan;
  for (const auto& [id, m] : ix.meetings) {
    if (m.site_id() != req.site_id()) continue;
    if (m.state() == v1::LIVE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "site ", req.site_id(), " has live meeting ", id, ": end it before deleting the site"));
    }
    plan.push_back(MakeChange(v1::Change::MEETING_DELETED, id));
  }
  plan.push_back(MakeChange(v1::Change::SITE_DELETED, req.site_id()));
  return plan;
}

}  // namespace tandem::control
