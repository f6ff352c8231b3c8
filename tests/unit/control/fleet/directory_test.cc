// The directory's keys and views (control/fleet/directory.h), and the etcd
// client's errors when no endpoint answers (control/fleet/etcd.h). The
// directory against a real etcd cluster is tests/integration/test_fleet.py.
#include "control/fleet/directory.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control/fleet/etcd.h"
#include "tests/unit/control/fleet/loopback_port.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::fleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DirectoryTest, Keys) {
  Keys k("/t/f");
  EXPECT_EQ(k.prefix(), "/t/f/");
  EXPECT_EQ(k.Node("p1", "a"), "/t/f/pairs/p1/a");
  EXPECT_EQ(k.Drain("p1"), "/t/f/drain/p1");
  EXPECT_EQ(k.Meeting("m-9"), "/t/f/meetings/m-9");
  EXPECT_EQ(Keys().prefix(), "/tandem/fleet/");
}

TEST(DirectoryTest, Ids) {
  for (const std::string& ok : {std::string("p"), std::string("pair-1"), std::string("dc1.a_b:c@d"),
                                std::string(128, 'x')}) {
    EXPECT_TRUE(CheckId("pair id", ok).ok()) << ok;
  }
  for (std::string bad :
       {std::string(), std::string("a/b"), std::string("a b"), std::string(129, 'x'),
        std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    absl::Status st = CheckId("meeting id", bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(st.message(), HasSubstr("invalid meeting id"));
  }
}

KeyValue NodeKv(const Keys& k, const std::string& pair, const std::string& node,
                const std::string& role, uint64_t epoch, uint64_t free_legs = 100) {
  v1::NodeRecord r;
  r.set_pair_id(pair);
  r.set_node_id(node);
  r.set_data_center(node == "a" ? "dc1" : "dc2");
  r.set_api(absl::StrCat("198.18.0.1:", node == "a" ? 7001 : 7002));
  r.set_role(role);
  r.set_epoch(epoch);
  r.mutable_capacity()->set_legs(1000);
  r.mutable_capacity()->set_meetings(100);
  r.mutable_load()->set_legs(1000 - free_legs);
  return {k.Node(pair, node), ToJson(r), 1, 1, 0};
}

std::string Active(const PairView& p) { return p.active_node() ? p.active_node()->node_id() : "-"; }

TEST(DirectoryTest, ActiveNodeByRule) {
  Keys k;
  struct Case {
    const char* name;
    std::vector<KeyValue> nodes;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"one active", {NodeKv(k, "p", "a", "active", 1), NodeKv(k, "p", "b", "standby", 1)}, "a"},
      {"after a takeover",
       {NodeKv(k, "p", "a", "standby", 2), NodeKv(k, "p", "b", "active", 2)},
       "b"},
      {"two actives: the higher epoch",
       {NodeKv(k, "p", "a", "active", 1), NodeKv(k, "p", "b", "active", 2)},
       "b"},
      {"two actives in one epoch: the lower node id",
       {NodeKv(k, "p", "b", "active", 3), NodeKv(k, "p", "a", "active", 3)},
       "a"},
      {"no active", {NodeKv(k, "p", "a", "standby", 1), NodeKv(k, "p", "b", "standby", 1)}, "-"},
      {"the standby alone", {NodeKv(k, "p", "b", "standby", 1)}, "-"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    FleetView v = BuildFleet(k, {c.nodes, 5}, {});
    ASSERT_EQ(v.pairs.size(), 1u);
    EXPECT_EQ(Active(v.pairs[0]), c.want);
    EXPECT_EQ(v.pairs[0].State().has_active, c.want != "-");
    EXPECT_TRUE(v.bad_keys.empty());
  }
}

TEST(DirectoryTest, PairsDrainsAndBadRecords) {
  Keys k;
  v1::DrainRecord drain;
  drain.set_reason("maintenance");
  std::vector<KeyValue> nodes = {
      NodeKv(k, "p2", "a", "active", 1, 300),
      NodeKv(k, "p1", "b", "standby", 4),
      NodeKv(k, "p1", "a", "active", 4, 200),
      {k.Node("p3", "a"), "{not json", 1, 1, 0},
      {k.Node("p4", "a"), NodeKv(k, "p9", "a", "active", 1).value, 1, 1, 0},  // ids disagree
      {k.Pairs() + "p5", NodeKv(k, "p5", "a", "active", 1).value, 1, 1, 0},   // no node part
  };
  std::vector<KeyValue> drains = {{k.Drain("p2"), ToJson(drain), 1, 1, 0},
                                  {k.Drain("p7"), ToJson(drain), 1, 1, 0},
                                  {k.Drain("bad id"), ToJson(drain), 1, 1, 0}};
  FleetView v = BuildFleet(k, {nodes, 9}, {drains, 9});
  std::vector<std::string> ids;
  for (const PairView& p : v.pairs) ids.push_back(p.pair_id);
  EXPECT_THAT(ids, ElementsAre("p1", "p2", "p7"));
  EXPECT_THAT(v.bad_keys, ElementsAre(k.Node("p3", "a"), k.Node("p4", "a"), k.Pairs() + "p5",
                                      k.Drain("bad id")));
  const PairView* p1 = v.Find("p1");
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p1->nodes[0].node_id(), "a");  // node id order
  EXPECT_EQ(Active(*p1), "a");
  PairState s1 = p1->State();
  EXPECT_FALSE(s1.drained);
  EXPECT_EQ(s1.capacity_legs - s1.load_legs, 200u);
  EXPECT_TRUE(v.Find("p2")->drained);
  EXPECT_EQ(v.Find("p2")->drain.reason(), "maintenance");
  // Drained before it registered: listed, drained, without nodes.
  EXPECT_TRUE(v.Find("p7")->drained);
  EXPECT_EQ(Active(*v.Find("p7")), "-");
  EXPECT_EQ(v.revision, 9);
}

TEST(DirectoryTest, JsonIgnoresUnknownFieldsAndRejectsGarbage) {
  v1::NodeRecord r;
  EXPECT_TRUE(FromJson(R"({"pair_id":"p","node_id":"a","from_the_future":1})", &r).ok());
  EXPECT_EQ(r.pair_id(), "p");
  EXPECT_EQ(FromJson("[1,2", &r).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EtcdClientTest, UnreachableClusterFailsClearlyWithinTheRetryTimeout) {
  EtcdOptions o;
  o.endpoints = {absl::StrCat("127.0.0.1:", testing::UnusedLoopbackPort()),
                 absl::StrCat("http://127.0.0.1:", testing::UnusedLoopbackPort())};
  o.retry_timeout = std::chrono::milliseconds(600);
  o.call_timeout = std::chrono::milliseconds(200);
  auto etcd = EtcdClient::Create(o);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int64_t> put = (*etcd)->Put("/k", "v");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();
  EXPECT_THAT(put.status().message(),
              HasSubstr("etcd unreachable: put /k failed on every endpoint"));
  EXPECT_THAT(put.status().message(), HasSubstr(o.endpoints[0] + ": "));
  EXPECT_THAT(put.status().message(), HasSubstr(o.endpoints[1] + ": "));
  EXPECT_GE(took, std::chrono::milliseconds(500));  // it did retry
  EXPECT_LT(took, std::chrono::milliseconds(600 + 200 + 500));
}

TEST(EtcdClientTest, BadEndpoints) {
  for (std::vector<std::string> eps : std::vector<std::vector<std::string>>{
           {}, {"host"}, {"host:"}, {":2379"}, {"host:0"}, {"host:70000"}, {"https://h:2379"}}) {
    EtcdOptions o;
    o.endpoints = eps;
    EXPECT_EQ(EtcdClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument)
        << (eps.empty() ? "(none)" : eps[0]);
  }
  EXPECT_THAT(*ParseEndpoints(" a:1 ,b:2"), ElementsAre("a:1", "b:2"));
  EXPECT_EQ(ParseEndpoints("a:1,,b:2").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::fleet
