// The role state machine against every row of the failure table in
// docs (DESIGN.md, "Failures and what must happen"), on a simulated pair:
// two RoleMachines, a simulated clock, and heartbeats delivered on the
// backbone and access paths according to which links and processes are up.
#include "mirror/role.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::mirror {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kInterval = absl::Milliseconds(10);
constexpr absl::Duration kDetect = absl::Milliseconds(30);

struct Node {
  uint32_t id;
  std::unique_ptr<RoleMachine> m;
  bool host_up = true;  // the host and its heartbeat sender run
  bool access_link_up = true;
  bool data_plane_ok = true;
  uint64_t position = 0;
  std::vector<Decision> decisions;
};

// Two nodes, A (id 1, starts active) and B (id 2, starts standby), epoch 1.
class SimPair {
 public:
  explicit SimPair(RoleConfig a_cfg = {}, RoleConfig b_cfg = {}) {
    a_cfg.node_id = 1;
    b_cfg.node_id = 2;
    a.id = 1;
    b.id = 2;
    a.m = std::make_unique<RoleMachine>(a_cfg, Role::kActive, 1, now);
    b.m = std::make_unique<RoleMachine>(b_cfg, Role::kStandby, 1, now);
    cfg_[0] = a_cfg;
    cfg_[1] = b_cfg;
    Run(absl::Milliseconds(200));
    a.decisions.clear();
    b.decisions.clear();
  }

  // Replaces a node's state machine, as a restarted daemon or host would.
  void Restart(Node& n, Role role, uint64_t epoch) {
    n.m = std::make_unique<RoleMachine>(cfg_[n.id - 1], role, epoch, now);
  }

  void Run(absl::Duration d) {
    absl::Time end = now + d;
    while (now < end) {
      now += absl::Milliseconds(1);
      if ((now - absl::UnixEpoch()) % kInterval == absl::ZeroDuration()) {
        Beat(a, b);
        Beat(b, a);
      }
      for (Node* n : {&a, &b}) {
        if (!n->host_up) continue;
        n->m->SetLocal({n->data_plane_ok, n->access_link_up, n->position}, now);
        n->m->Tick(now);
        Collect(*n);
      }
      if (a.host_up && b.host_up && a.m->role() == Role::kActive && b.m->role() == Role::kActive &&
          a.m->epoch() == b.m->epoch()) {
        ++same_epoch_active_ms;
      }
    }
  }

  // Runs until `pred` holds; returns how long it took (or InfiniteDuration).
  absl::Duration RunUntil(const std::function<bool()>& pred, absl::Duration limit) {
    absl::Time start = now;
    while (now - start < limit) {
      if (pred()) return now - start;
      Run(absl::Milliseconds(1));
    }
    return pred() ? now - start : absl::InfiniteDuration();
  }

  Node a, b;
  bool backbone_up = true;
  absl::Time now = absl::UnixEpoch();
  int same_epoch_active_ms = 0;

 private:
  void Collect(Node& n) {
    for (Decision& d : n.m->TakeDecisions()) n.decisions.push_back(std::move(d));
  }
  void Beat(Node& from, Node& to) {
    if (!from.host_up || !to.host_up) return;
    PeerReport r;
    r.node_id = from.id;
    r.role = from.m->role();
    r.epoch = from.m->epoch();
    r.position = from.position;
    r.data_plane_ok = from.data_plane_ok;
    r.access_link_up = from.access_link_up;
    r.handover = from.m->handover_requested();
    if (backbone_up) to.m->OnHeartbeat(Path::kBackbone, r, now);
    if (from.access_link_up && to.access_link_up) to.m->OnHeartbeat(Path::kAccess, r, now);
    Collect(to);
  }
  RoleConfig cfg_[2];
};

struct FailureRow {
  std::string failure;  // the row of the design table
  std::function<void(SimPair&)> fail;
  // Expected once settled (after 1 s):
  Role a_role, b_role;
  uint64_t a_epoch, b_epoch;            // a_epoch 0: A is down, not checked
  std::string b_cause;                  // "" = B makes no decision
  bool b_must_detect_fast;              // B's takeover within detect time + one interval
  std::function<void(SimPair&)> check;  // extra checks (alarms, recovery)
};

class FailureTable : public ::testing::TestWithParam<FailureRow> {};

TEST_P(FailureTable, Outcome) {
  const FailureRow& row = GetParam();
  SimPair p;
  ASSERT_EQ(p.a.m->role(), Role::kActive);
  ASSERT_EQ(p.b.m->role(), Role::kStandby);
  ASSERT_FALSE(p.a.m->alarms().any()) << p.a.m->alarms().ToString();
  row.fail(p);
  absl::Time failed_at = p.now;
  p.Run(absl::Seconds(1));

  EXPECT_EQ(p.b.m->role(), row.b_role);
  EXPECT_EQ(p.b.m->epoch(), row.b_epoch);
  if (row.a_epoch != 0) {
    EXPECT_EQ(p.a.m->role(), row.a_role);
    EXPECT_EQ(p.a.m->epoch(), row.a_epoch);
  }
  if (row.b_cause.empty()) {
    EXPECT_TRUE(p.b.decisions.empty()) << p.b.decisions[0].cause;
  } else {
    ASSERT_EQ(p.b.decisions.size(), 1u);
    EXPECT_THAT(p.b.decisions[0].cause, HasSubstr(row.b_cause));
    if (row.b_must_detect_fast) {
      EXPECT_LE(p.b.decisions[0].at - failed_at, kDetect + kInterval);
    }
  }
  for (const Decision& d : p.a.decisions) EXPECT_FALSE(d.cause.empty());
  EXPECT_EQ(p.same_epoch_active_ms, 0) << "two actives in one epoch";
  if (row.check) row.check(p);
}

INSTANTIATE_TEST_SUITE_P(
    DesignTable, FailureTable,
    ::testing::Values(
        FailureRow{"primary switch process killed (heartbeat reports the dead data plane)",
                   [](SimPair& p) { p.a.data_plane_ok = false; }, Role::kStandby, Role::kActive, 2,
                   2, "peer reports its data plane dead", true,
                   [](SimPair& p) {
                     // A demotes as soon as it hears epoch 2.
                     ASSERT_EQ(p.a.decisions.size(), 1u);
                     EXPECT_THAT(p.a.decisions[0].cause, HasSubstr("higher epoch 2"));
                     EXPECT_LE(p.a.decisions[0].at - p.b.decisions[0].at, kInterval);
                   }},
        FailureRow{"primary switch process killed (heartbeats come from the switch)",
                   [](SimPair& p) { p.a.host_up = false; }, Role::kStandby, Role::kActive, 0, 2,
                   "peer lost on backbone and access network", true, nullptr},
        FailureRow{"primary host or both its links lost", [](SimPair& p) { p.a.host_up = false; },
                   Role::kStandby, Role::kActive, 0, 2, "peer lost on backbone and access network",
                   true, [](SimPair& p) { EXPECT_TRUE(p.b.m->alarms().peer_lost); }},
        FailureRow{"primary access link down", [](SimPair& p) { p.a.access_link_up = false; },
                   Role::kStandby, Role::kActive, 2, 2, "peer reports its access link down", true,
                   [](SimPair& p) {
                     // Handed over through the backbone: A stops being active.
                     ASSERT_EQ(p.a.decisions.size(), 1u);
                     EXPECT_EQ(p.a.decisions[0].role, Role::kStandby);
                     EXPECT_TRUE(p.b.m->alarms().access_path_down);
                   }},
        FailureRow{"backbone down, both alive", [](SimPair& p) { p.backbone_up = false; },
                   Role::kActive, Role::kStandby, 1, 1, "", false,
                   [](SimPair& p) {
                     EXPECT_TRUE(p.a.decisions.empty());
                     EXPECT_TRUE(p.a.m->alarms().backbone_down);
                     EXPECT_TRUE(p.b.m->alarms().backbone_down);
                     p.backbone_up = true;  // the link returns
                     p.Run(absl::Milliseconds(100));
                     EXPECT_FALSE(p.a.m->alarms().any());
                     EXPECT_FALSE(p.b.m->alarms().any());
                     EXPECT_TRUE(p.b.decisions.empty());
                   }},
        FailureRow{"primary control daemon killed and restarted",
                   [](SimPair& p) {
                     // Heartbeats go on (data plane alive); the new daemon adopts
                     // role and epoch from the tables.
                     p.Run(absl::Milliseconds(500));
                     p.Restart(p.a, Role::kActive, 1);
                   },
                   Role::kActive, Role::kStandby, 1, 1, "", false,
                   [](SimPair& p) { EXPECT_TRUE(p.a.decisions.empty()); }},
        FailureRow{"standby lost, then back", [](SimPair& p) { p.b.host_up = false; },
                   Role::kActive, Role::kStandby, 1, 1, "", false,
                   [](SimPair& p) {
                     EXPECT_TRUE(p.a.m->alarms().peer_lost);
                     EXPECT_TRUE(p.a.decisions.empty());
                     // The standby returns (rebooted: no state, epoch 0).
                     p.b.host_up = true;
                     p.Restart(p.b, Role::kStandby, 0);
                     p.Run(absl::Seconds(1));
                     EXPECT_EQ(p.a.m->role(), Role::kActive);
                     EXPECT_EQ(p.b.m->role(), Role::kStandby);
                     EXPECT_EQ(p.b.m->epoch(), 1u);  // adopted
                     EXPECT_FALSE(p.a.m->alarms().any());
                     EXPECT_TRUE(p.b.m->TakeDecisions().empty());
                   }},
        FailureRow{"old primary returns after a takeover", [](SimPair& p) { p.a.host_up = false; },
                   Role::kStandby, Role::kActive, 0, 2, "peer lost", true,
                   [](SimPair& p) {
                     // A returns believing it is still active in epoch 1.
                     p.a.host_up = true;
                     p.Restart(p.a, Role::kActive, 1);
                     absl::Duration t = p.RunUntil([&] { return p.a.m->role() == Role::kStandby; },
                                                   absl::Seconds(1));
                     EXPECT_LE(t, kInterval);  // demotes at once
                     p.Run(absl::Seconds(3));  // no preemption configured
                     EXPECT_EQ(p.a.m->role(), Role::kStandby);
                     EXPECT_EQ(p.a.m->epoch(), 2u);
                     EXPECT_EQ(p.b.m->role(), Role::kActive);
                     EXPECT_EQ(p.b.decisions.size(), 1u);
                   }},
        FailureRow{"split brain healed",
                   [](SimPair& p) {
                     // Both paths cut between otherwise healthy nodes.
                     p.backbone_up = false;
                     p.a.access_link_up = false;
                   },
                   Role::kActive, Role::kActive, 1, 2, "peer lost", true,
                   [](SimPair& p) {
                     // Two actives, but never in one epoch; then the partition heals.
                     p.backbone_up = true;
                     p.a.access_link_up = true;
                     absl::Duration t = p.RunUntil([&] { return p.a.m->role() == Role::kStandby; },
                                                   absl::Seconds(1));
                     EXPECT_LE(t, kInterval);
                     EXPECT_EQ(p.b.m->role(), Role::kActive);
                     EXPECT_EQ(p.a.m->epoch(), 2u);
                   }}),
    [](const ::testing::TestParamInfo<FailureRow>& info) {
      std::string name;
      for (char c : info.param.failure) name += std::isalnum(c) ? c : '_';
      return name;
    });

// Rule checks beyond the table rows.

TEST(RoleMachine, SplitBrainInOneEpochBreaksTieByNodeId) {
  RoleConfig c1{.node_id = 1}, c2{.node_id = 2};
  absl::Time t = absl::UnixEpoch();
  RoleMachine m1(c1, Role::kActive, 5, t), m2(c2, Role::kActive, 5, t);
  PeerReport from1{.node_id = 1, .role = Role::kActive, .epoch = 5};
  PeerReport from2{.node_id = 2, .role = Role::kActive, .epoch = 5};
  m1.OnHeartbeat(Path::kBackbone, from2, t);
  m2.OnHeartbeat(Path::kBackbone, from1, t);
  EXPECT_EQ(m1.role(), Role::kActive);
  EXPECT_EQ(m2.role(), Role::kStandby);
  std::vector<Decision> d = m2.TakeDecisions();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].cause, HasSubstr("two actives in epoch 5"));
}

TEST(RoleMachine, NoTakeoverWhenThisNodeIsUnhealthy) {
  SimPair p;
  p.b.data_plane_ok = false;
  p.a.host_up = false;
  p.Run(absl::Milliseconds(200));
  EXPECT_EQ(p.b.m->role(), Role::kStandby);
  EXPECT_TRUE(p.b.m->alarms().cannot_take_over);
  p.b.data_plane_ok = true;  // recovers: now it takes over
  p.Run(absl::Milliseconds(20));
  EXPECT_EQ(p.b.m->role(), Role::kActive);
}

TEST(RoleMachine, NodeStartingAloneWaitsOneDetectionTime) {
  absl::Time t = absl::UnixEpoch();
  RoleMachine m(RoleConfig{.node_id = 1}, Role::kStandby, 0, t);
  m.Tick(t + kDetect);
  EXPECT_EQ(m.role(), Role::kStandby);
  m.Tick(t + kDetect + absl::Milliseconds(1));
  EXPECT_EQ(m.role(), Role::kActive);
  EXPECT_EQ(m.epoch(), 1u);
  EXPECT_THAT(m.last_takeover()->cause, HasSubstr("no peer heard since start"));
}

TEST(RoleMachine, PreemptionOnlyWhenConfiguredAndCaughtUp) {
  RoleConfig a_cfg{.preempt = true, .preempt_hold = absl::Milliseconds(500)};
  SimPair p(a_cfg, {});
  p.a.position = p.b.position = 100;
  p.a.host_up = false;
  p.Run(absl::Milliseconds(100));
  ASSERT_EQ(p.b.m->role(), Role::kActive);
  p.b.position = 150;  // B keeps writing
  p.a.host_up = true;
  p.Restart(p.a, Role::kStandby, 1);
  p.Run(absl::Seconds(2));
  EXPECT_EQ(p.a.m->role(), Role::kStandby) << "not caught up";
  p.a.position = 150;  // A's replication catches up
  p.Run(absl::Milliseconds(400));
  EXPECT_EQ(p.a.m->role(), Role::kStandby) << "hold time not over";
  p.Run(absl::Milliseconds(200));
  EXPECT_EQ(p.a.m->role(), Role::kActive);
  EXPECT_EQ(p.a.m->epoch(), 3u);
  EXPECT_THAT(p.a.m->last_takeover()->cause, HasSubstr("preemption"));
  p.Run(absl::Milliseconds(20));
  EXPECT_EQ(p.b.m->role(), Role::kStandby);
  EXPECT_EQ(p.same_epoch_active_ms, 0);
}

TEST(RoleMachine, SwitchoverCommandOnTheActive) {
  SimPair p;
  p.a.position = 10;
  p.b.position = 9;
  p.Run(absl::Milliseconds(20));
  EXPECT_EQ(p.a.m->RequestSwitchover(p.now).code(), absl::StatusCode::kFailedPrecondition);
  p.b.position = 10;
  p.Run(absl::Milliseconds(20));
  ASSERT_TRUE(p.a.m->RequestSwitchover(p.now).ok());
  p.Run(absl::Milliseconds(30));
  EXPECT_EQ(p.b.m->role(), Role::kActive);
  EXPECT_EQ(p.b.m->epoch(), 2u);
  EXPECT_THAT(p.b.decisions.at(0).cause, HasSubstr("switchover requested"));
  EXPECT_EQ(p.a.m->role(), Role::kStandby);
  EXPECT_FALSE(p.a.m->handover_requested());
  EXPECT_EQ(p.same_epoch_active_ms, 0);
}

TEST(RoleMachine, SwitchoverCommandOnTheStandby) {
  SimPair p;
  ASSERT_TRUE(p.b.m->RequestSwitchover(p.now).ok());
  EXPECT_EQ(p.b.m->role(), Role::kActive);
  EXPECT_EQ(p.b.m->epoch(), 2u);
  p.Run(absl::Milliseconds(20));
  EXPECT_EQ(p.a.m->role(), Role::kStandby);
  EXPECT_EQ(p.same_epoch_active_ms, 0);
}

TEST(RoleMachine, StaleReportFromTheOtherPathCausesNoFlap) {
  // A demotes on B's epoch-2 report via the backbone; B's older report (still
  // standby in epoch 1) then arrives via the access network.
  absl::Time t = absl::UnixEpoch();
  RoleMachine a(RoleConfig{.node_id = 1}, Role::kActive, 1, t);
  t += absl::Milliseconds(5);
  a.OnHeartbeat(Path::kBackbone, {.node_id = 2, .role = Role::kActive, .epoch = 2}, t);
  ASSERT_EQ(a.role(), Role::kStandby);
  a.OnHeartbeat(Path::kAccess, {.node_id = 2, .role = Role::kStandby, .epoch = 1}, t);
  a.Tick(t + absl::Milliseconds(1));
  EXPECT_EQ(a.role(), Role::kStandby);
  EXPECT_EQ(a.epoch(), 2u);
  EXPECT_EQ(a.peer()->role, Role::kActive);
}

TEST(RoleMachine, BothStandbyElectExactlyOne) {
  SimPair p;
  p.Restart(p.a, Role::kStandby, 1);
  p.Restart(p.b, Role::kStandby, 1);
  p.a.position = 5;
  p.b.position = 7;  // B holds more: B is preferred
  p.Run(absl::Milliseconds(100));
  EXPECT_EQ(p.b.m->role(), Role::kActive);
  EXPECT_EQ(p.a.m->role(), Role::kStandby);
  EXPECT_EQ(p.b.m->epoch(), 2u);
}

// The peer's control daemon closed the backbone connection: when its switch
// falls silent too (the whole node died), detection takes half the time
// (never under two intervals); while the switch still beats (the control
// daemon restarts alone), nothing happens.
TEST(RoleMachine, PeerControlGoneShortensDetection) {
  for (int multiplier : {3, 10}) {
    RoleConfig cfg;
    cfg.multiplier = multiplier;
    SimPair p(cfg, cfg);
    p.b.m->SetPeerControlClosed(true);
    p.Run(absl::Milliseconds(500));
    EXPECT_EQ(p.b.m->role(), Role::kStandby) << "the switch still beats";
    absl::Time failed = p.now;
    p.a.host_up = false;
    p.RunUntil([&] { return p.b.m->role() == Role::kActive; }, absl::Seconds(1));
    ASSERT_EQ(p.b.m->role(), Role::kActive);
    absl::Duration fast = kInterval * std::max(2, (multiplier + 1) / 2);
    EXPECT_LE(p.now - failed, fast + absl::Milliseconds(1)) << multiplier;
    EXPECT_GT(p.now - failed, fast - kInterval) << multiplier;
    ASSERT_FALSE(p.b.decisions.empty());
    EXPECT_THAT(p.b.decisions.back().cause, HasSubstr("control daemon gone"));
  }
  // Without the hint, the full detection time.
  SimPair p;
  absl::Time failed = p.now;
  p.a.host_up = false;
  p.RunUntil([&] { return p.b.m->role() == Role::kActive; }, absl::Seconds(1));
  EXPECT_GT(p.now - failed, kDetect - kInterval);
}

// What the active's control daemon reports over the replication connection
// when its switch died: the standby takes over at once.
TEST(RoleMachine, ControlReportOfADeadDataPlaneTakesOverAtOnce) {
  SimPair p;
  PeerReport r;
  r.node_id = 1;
  r.role = Role::kActive;
  r.epoch = 1;
  r.data_plane_ok = false;
  p.a.host_up = false;  // its switch is silent from now on
  p.b.m->OnHeartbeat(Path::kBackbone, r, p.now);
  EXPECT_EQ(p.b.m->role(), Role::kActive);
  EXPECT_EQ(p.b.m->epoch(), 2u);
  auto d = p.b.m->TakeDecisions();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].cause, "peer reports its data plane dead");
}

// After its switch (re)started, a standby has not heard the peer yet: the
// silence is no reason to take over while the hold lasts; a report that the
// peer's data plane is dead still is.
TEST(RoleMachine, SilenceHoldAfterASwitchRestart) {
  SimPair p;
  p.b.m->SetSilenceHold(true);
  p.a.host_up = false;
  p.Run(absl::Milliseconds(300));
  EXPECT_EQ(p.b.m->role(), Role::kStandby);
  p.b.m->SetSilenceHold(false);
  p.Run(absl::Milliseconds(2));
  EXPECT_EQ(p.b.m->role(), Role::kActive);

  SimPair q;
  q.b.m->SetSilenceHold(true);
  q.a.data_plane_ok = false;
  q.Run(absl::Milliseconds(30));
  EXPECT_EQ(q.b.m->role(), Role::kActive);
}

// B's own switch stops listening (its threads starved of CPU on a loaded
// host) while A is silent as well: B has not heard silence, it has not
// listened, so it must not take over before its switch listened for a whole
// detection time. Once it has, a peer that is really gone is found.
TEST(RoleMachine, SilenceIsJudgedOnlyWhileThisNodesSwitchListened) {
  SimPair p;
  absl::Time deaf_from = p.now;
  p.b.m->SetListeningUntil(deaf_from);
  p.a.host_up = false;
  p.Run(absl::Milliseconds(300));
  EXPECT_EQ(p.b.m->role(), Role::kStandby) << "took over on its own deafness";
  EXPECT_FALSE(p.b.m->alarms().peer_lost);
  p.b.m->SetListeningUntil(p.now);  // listening again; A still gone
  p.Run(absl::Milliseconds(2));
  EXPECT_EQ(p.b.m->role(), Role::kActive);
}

// A starves (its host stops): B takes over; A wakes, hears the higher epoch
// and demotes, still holding its own unreplicated tail.
void DemoteAByAFlap(SimPair& p) {
  p.a.host_up = false;
  p.Run(absl::Milliseconds(60));
  ASSERT_EQ(p.b.m->role(), Role::kActive);
  p.a.host_up = true;
  p.Run(absl::Milliseconds(20));
  ASSERT_EQ(p.a.m->role(), Role::kStandby);
  ASSERT_EQ(p.a.decisions.back().role, Role::kStandby);
}

// Rule 6: A was demoted by B's takeover (A starved) and still holds its own
// unreplicated tail. A flap back (B now starved in turn) must not hand the
// active role to A before A resynced from B, unless B stays gone for the
// rejoin hold.
TEST(RoleMachine, ADemotedNodeTakesOverAgainOnlyOnceResyncedOrAfterTheHold) {
  SimPair p;
  ASSERT_NO_FATAL_FAILURE(DemoteAByAFlap(p));

  p.b.host_up = false;  // now B starves
  p.Run(absl::Milliseconds(500));
  EXPECT_EQ(p.a.m->role(), Role::kStandby) << "took the role back before resyncing";
  EXPECT_TRUE(p.a.m->alarms().cannot_take_over);
  p.Run(absl::Milliseconds(600));  // the rejoin hold (1 s) has passed: B is gone for good
  EXPECT_EQ(p.a.m->role(), Role::kActive);
  EXPECT_EQ(p.a.m->epoch(), 3u);
}

TEST(RoleMachine, AResyncedDemotedNodeTakesOverAtOnce) {
  SimPair p;
  ASSERT_NO_FATAL_FAILURE(DemoteAByAFlap(p));
  p.a.m->SetResynced(false);  // still resyncing: no effect
  p.b.host_up = false;
  p.Run(absl::Milliseconds(100));
  EXPECT_EQ(p.a.m->role(), Role::kStandby);
  p.a.m->SetResynced(true);
  p.Run(absl::Milliseconds(2));
  EXPECT_EQ(p.a.m->role(), Role::kActive);
}

}  // namespace
}  // namespace tandem::mirror
