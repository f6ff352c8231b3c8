#include "control/api_roles.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secure_file.h"

namespace tandem::control {
namespace {

absl::StatusOr<uid_t> LookupUser(const std::string& name) {
  uint32_t number = 0;
  if (absl::SimpleAtoi(name, &number)) return static_cast<uid_t>(number);
  std::vector<char> buf(16384);
  struct passwd pw, *found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    return absl::NotFoundError(absl::StrCat("no user named \"", name, "\""));
  }
  return pw.pw_uid;
}

}  // namespace

const char* ApiRoleName(ApiRole role) {
  switch (role) {
    case ApiRole::kReadOnly:
      return "read_only";
    case ApiRole::kOperator:
      return "operator";
    case ApiRole::kAdmin:
      return "admin";
    case ApiRole::kNone:
      break;
  }
  return "none";
}

const std::vector<CallRule>& CallRules() {
  // Reads need read_only; changes to meetings, participants and sites need
  // operator; what can lose data or skip the pair's safety checks needs admin.
  static const std::vector<CallRule> rules = {
      {"GetStatus", ApiRole::kReadOnly},
      {"GetSite", ApiRole::kReadOnly},
      {"ListSites", ApiRole::kReadOnly},
      {"GetMeeting", ApiRole::kReadOnly},
      {"ListMeetings", ApiRole::kReadOnly},
      {"ListParticipants", ApiRole::kReadOnly},
      {"ListLegs", ApiRole::kReadOnly},
      {"GetUsage", ApiRole::kReadOnly},
      {"Watch", ApiRole::kReadOnly},
      {"LostWrites", ApiRole::kReadOnly},
      {"CreateSite", ApiRole::kOperator},
      {"UpdateSite", ApiRole::kOperator},
      {"ScheduleMeeting", ApiRole::kOperator},
      {"StartMeeting", ApiRole::kOperator},
      {"EndMeeting", ApiRole::kOperator},
      {"UpdateMeeting", ApiRole::kOperator},
      {"Join", ApiRole::kOperator},
      {"Leave", ApiRole::kOperator},
      {"SetRole", ApiRole::kOperator},
      {"SetMute", ApiRole::kOperator},
      {"ComparePair", ApiRole::kOperator},
      {"Switchover", ApiRole::kOperator},
      {"AcknowledgeLostWrites", ApiRole::kOperator},
      {"DeleteSite", ApiRole::kAdmin},
      {"Switchover(force)", ApiRole::kAdmin},
  };
  return rules;
}

ApiRole RequiredRole(absl::string_view method, bool force) {
  std::string key = force ? absl::StrCat(method, "(force)") : std::string(method);
  for (const CallRule& r : CallRules()) {
    if (key == r.method) return r.role;
  }
  return ApiRole::kAdmin;
}

std::string Caller::Describe() const {
  if (unix_socket) {
    return absl::StrCat("uid ", uid, " gid ", gid,
                        groups.empty() ? "" : absl::StrCat(" groups ", absl::StrJoin(groups, ",")));
  }
  if (certificate) {
    return absl::StrCat("certificate \"", subject, "\" (names ", absl::StrJoin(names, ", "), ")");
  }
  return "an unidentified caller";
}

absl::StatusOr<RoleMap> RoleMap::Create(const RolesConfig& c) {
  RoleMap m;
  auto add = [&](const std::vector<std::string>& list, ApiRole role) -> absl::Status {
    for (const std::string& e : list) {
      size_t colon = e.find(':');
      std::string kind = e.substr(0, colon),
                  value = colon == std::string::npos ? "" : e.substr(colon + 1);
      auto bad = [&](absl::string_view why) {
        return absl::InvalidArgumentError(
            absl::StrCat("[api.roles] ", ApiRoleName(role), ": \"", e, "\": ", why));
      };
      if (colon == std::string::npos || value.empty()) {
        return bad("want uid:N, user:NAME, gid:N, group:NAME, cert:NAME or subject:DN");
      }
      Entry en{Entry::kCert, 0, value, role};
      if (kind == "uid" || kind == "user") {
        auto u = LookupUser(value);
        if (!u.ok() || (kind == "uid" && !absl::SimpleAtoi(value, &en.id))) {
          return bad(u.ok() ? "not a number" : u.status().message());
        }
        en.kind = Entry::kUid;
        en.id = *u;
      } else if (kind == "gid" || kind == "group") {
        auto g = LookupGroup(value);
        if (!g.ok() || (kind == "gid" && !absl::SimpleAtoi(value, &en.id))) {
          return bad(g.ok() ? "not a number" : g.status().message());
        }
        en.kind = Entry::kGid;
        en.id = *g;
      } else if (kind == "cert") {
        en.kind = Entry::kCert;
      } else if (kind == "subject") {
        en.kind = Entry::kSubject;
      } else {
        return bad("want uid:N, user:NAME, gid:N, group:NAME, cert:NAME or subject:DN");
      }
      m.entries_.push_back(en);
    }
    return absl::OkStatus();
  };
  if (auto st = add(c.read_only, ApiRole::kReadOnly); !st.ok()) return st;
  if (auto st = add(c.operator_, ApiRole::kOperator); !st.ok()) return st;
  if (auto st = add(c.admin, ApiRole::kAdmin); !st.ok()) return st;
  return m;
}

ApiRole RoleMap::RoleOf(const Caller& c) const {
  if (c.unix_socket && (c.uid == 0 || c.uid == geteuid())) return ApiRole::kAdmin;
  ApiRole best = ApiRole::kNone;
  for (const Entry& e : entries_) {
    bool match = false;
    switch (e.kind) {
      case Entry::kUid:
        match = c.unix_socket && c.uid == e.id;
        break;
      case Entry::kGid:
        match = c.unix_socket && (c.gid == e.id || std::find(c.groups.begin(), c.groups.end(),
                                                             gid_t(e.id)) != c.groups.end());
        break;
      case Entry::kCert:
        match = c.certificate && std::find(c.names.begin(), c.names.end(), e.name) != c.names.end();
        break;
      case Entry::kSubject:
        match = c.certificate && c.subject == e.name;
        break;
    }
    if (match) best = std::max(best, e.role);
  }
  return best;
}

}  // namespace tandem::control
