// The permission map and the roles of callers (control/api_roles.h).
#include "control/api_roles.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>

#include "control.grpc.pb.h"

namespace tandem::control {
namespace {

using ::testing::HasSubstr;

// The role each call needs, written out once more: a change to the map must
// change this table too, on purpose.
struct Want {
  const char* method;
  bool force;
  ApiRole role;
};
const Want kWant[] = {
    {"GetStatus", false, ApiRole::kReadOnly},
    {"GetSite", false, ApiRole::kReadOnly},
    {"ListSites", false, ApiRole::kReadOnly},
    {"GetMeeting", false, ApiRole::kReadOnly},
    {"ListMeetings", false, ApiRole::kReadOnly},
    {"ListParticipants", false, ApiRole::kReadOnly},
    {"ListLegs", false, ApiRole::kReadOnly},
    {"GetUsage", false, ApiRole::kReadOnly},
    {"Watch", false, ApiRole::kReadOnly},
    {"LostWrites", false, ApiRole::kReadOnly},
    {"CreateSite", false, ApiRole::kOperator},
    {"UpdateSite", false, ApiRole::kOperator},
    {"ScheduleMeeting", false, ApiRole::kOperator},
    {"StartMeeting", false, ApiRole::kOperator},
    {"EndMeeting", false, ApiRole::kOperator},
    {"UpdateMeeting", false, ApiRole::kOperator},
    {"Join", false, ApiRole::kOperator},
    {"Leave", false, ApiRole::kOperator},
    {"SetRole", false, ApiRole::kOperator},
    {"SetMute", false, ApiRole::kOperator},
    {"ComparePair", false, ApiRole::kOperator},
    {"Switchover", false, ApiRole::kOperator},
    {"AcknowledgeLostWrites", false, ApiRole::kOperator},
    {"Switchover", true, ApiRole::kAdmin},
    {"DeleteSite", false, ApiRole::kAdmin},
};

TEST(ApiRoles, EveryCallOfTheServiceHasTheRoleItShould) {
  const auto* service = v1::GetStatusRequest::descriptor()->file()->FindServiceByName("Control");
  ASSERT_NE(service, nullptr);
  std::set<std::string> checked;
  for (const Want& w : kWant) {
    EXPECT_EQ(RequiredRole(w.method, w.force), w.role) << w.method << (w.force ? " force" : "");
    checked.insert(w.method);
  }
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(checked.contains(service->method(i)->name()))
        << service->method(i)->name() << " has no entry in the permission map";
  }
  EXPECT_EQ(checked.size(), size_t(service->method_count()));
  for (const CallRule& r : CallRules()) {
    std::string m = r.method;
    bool force = m.ends_with("(force)");
    if (force) m.resize(m.size() - 7);
    EXPECT_NE(service->FindMethodByName(m), nullptr) << r.method << " is no call of the service";
  }
  EXPECT_EQ(RequiredRole("NoSuchCall"), ApiRole::kAdmin) << "an unlisted call must need admin";
}

Caller Unix(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Caller c;
  c.unix_socket = true;
  c.uid = uid;
  c.gid = gid;
  c.groups = std::move(groups);
  return c;
}

Caller Cert(std::string subject, std::vector<std::string> names) {
  Caller c;
  c.certificate = true;
  c.subject = std::move(subject);
  c.names = std::move(names);
  return c;
}

TEST(ApiRoles, CallersGetTheHighestRoleTheirIdentityMatches) {
  RolesConfig cfg;
  cfg.read_only = {"uid:4001", "group:65534", "cert:viewer"};
  cfg.operator_ = {"uid:4002", "gid:4100", "cert:app.example.test", "uid:4003"};
  cfg.admin = {"subject:CN=ops,O=Example", "uid:4003"};
  auto m = RoleMap::Create(cfg);
  ASSERT_TRUE(m.ok()) << m.status();
  const struct {
    Caller caller;
    ApiRole role;
  } cases[] = {
      {Unix(4001, 4001), ApiRole::kReadOnly},
      {Unix(4002, 4002), ApiRole::kOperator},
      {Unix(4003, 4003), ApiRole::kAdmin},                // the highest of its entries
      {Unix(4004, 65534), ApiRole::kReadOnly},            // by primary group
      {Unix(4004, 4004, {1, 4100}), ApiRole::kOperator},  // by a supplementary group
      {Unix(4004, 4004), ApiRole::kNone},
      {Unix(0, 0), ApiRole::kAdmin},             // root
      {Unix(geteuid(), 4004), ApiRole::kAdmin},  // the daemon's own user
      {Cert("CN=viewer", {"viewer"}), ApiRole::kReadOnly},
      {Cert("CN=x", {"x", "app.example.test"}), ApiRole::kOperator},  // by a SAN
      {Cert("CN=ops,O=Example", {"ops"}), ApiRole::kAdmin},
      {Cert("CN=ops,O=Other", {"ops"}), ApiRole::kNone},  // same CN, other subject
      {Cert("CN=4001", {"4001"}), ApiRole::kNone},        // a uid entry never matches a cert
      {Caller{}, ApiRole::kNone},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(m->RoleOf(c.caller), c.role) << c.caller.Describe();
  }
}

TEST(ApiRoles, WithoutConfigurationOnlyRootAndTheDaemonsUserMayCall) {
  auto m = RoleMap::Create(RolesConfig{});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->RoleOf(Unix(0, 0)), ApiRole::kAdmin);
  EXPECT_EQ(m->RoleOf(Unix(4001, 4001)), ApiRole::kNone);
  EXPECT_EQ(m->RoleOf(Cert("CN=client", {"client"})), ApiRole::kNone);
}

TEST(ApiRoles, BadEntriesAreRefusedByName) {
  for (const char* bad :
       {"4001", "uid:", "uid:alice-no-such-user-tandem", "user:no-such-user-tandem",
        "group:no-such-group-tandem", "gid:abc", "host:x"}) {
    RolesConfig cfg;
    cfg.operator_ = {bad};
    auto m = RoleMap::Create(cfg);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("[api.roles] operator"));
    EXPECT_THAT(m.status().message(), HasSubstr(bad));
  }
}

}  // namespace
}  // namespace tandem::control
