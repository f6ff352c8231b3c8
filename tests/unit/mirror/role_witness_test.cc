// Rule 7 of the role machine: etcd as the pair's witness in a full partition
// (both paths silent, both nodes alive), one node at a time, time injected.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mirror/role.h"

namespace tandem::mirror {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kInterval = absl::Milliseconds(10);

class WitnessRule : public ::testing::Test {
 protected:
  // One node, its peer (id 2 for node 1, 1 for node 2) heard on both paths
  // until Partition().
  void Start(Role role, uint32_t id = 1) {
    RoleConfig c;
    c.node_id = id;
    peer_id_ = id == 1 ? 2 : 1;
    c.peer_node_id = peer_id_;
    peer_role_ = role == Role::kActive ? Role::kStandby : Role::kActive;
    m_ = std::make_unique<RoleMachine>(c, role, 1, now_);
    partitioned_ = false;
    Run(absl::Milliseconds(100));
    decisions_.clear();
  }
  // Ticks every millisecond; the peer beats on both paths unless partitioned.
  void Run(absl::Duration d) {
    for (absl::Time end = now_ + d; now_ < end;) {
      now_ += absl::Milliseconds(1);
      if (!partitioned_ && (now_ - absl::UnixEpoch()) % kInterval == absl::ZeroDuration()) {
        PeerReport r;
        r.node_id = peer_id_;
        r.role = peer_role_;
        r.epoch = 1;
        r.data_plane_ok = peer_data_plane_ok_;
        m_->OnHeartbeat(Path::kBackbone, r, now_);
        m_->OnHeartbeat(Path::kAccess, r, now_);
      }
      if (control_reports_ && (now_ - absl::UnixEpoch()) % kInterval == absl::ZeroDuration()) {
        m_->OnPeerControl(control_, now_);
      }
      m_->SetWitness(witness_);
      m_->Tick(now_);
      for (Decision& d : m_->TakeDecisions()) decisions_.push_back(d);
    }
  }

  std::unique_ptr<RoleMachine> m_;
  absl::Time now_ = absl::UnixEpoch();
  uint32_t peer_id_ = 2;
  Role peer_role_ = Role::kStandby;
  bool partitioned_ = false;
  bool peer_data_plane_ok_ = true;
  WitnessInput witness_{.enabled = true};
  std::vector<Decision> decisions_;
  // Rule 8: the peer's control daemon reports on the replication connection
  // every interval while set (a standby whose switch is dead, by default).
  bool control_reports_ = false;
  PeerControlReport control_{.node_id = 2, .role = Role::kStandby, .epoch = 1,
                             .data_plane_ok = false};
};

TEST_F(WitnessRule, StandbyTakesOverOnlyOnceItHoldsTheKeyAndAfterTheGuard) {
  Start(Role::kStandby, 2);
  partitioned_ = true;
  Run(absl::Seconds(1));  // far past the detection time: no key, no takeover
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_TRUE(m_->waiting_for_witness());
  EXPECT_TRUE(decisions_.empty());

  // The owner acquired the key at epoch 2 (W7: the highest seen + 1); the
  // guard of 100 ms runs from the acquisition.
  absl::Time acquired = now_;
  witness_.hold_until = acquired + absl::Seconds(2);
  witness_.takeover_from = acquired + absl::Milliseconds(100);
  witness_.key_epoch = 2;
  Run(absl::Milliseconds(99));
  EXPECT_EQ(m_->role(), Role::kStandby);
  Run(absl::Milliseconds(2));
  ASSERT_EQ(m_->role(), Role::kActive);
  EXPECT_EQ(m_->epoch(), 2u);
  ASSERT_EQ(decisions_.size(), 1u);
  EXPECT_EQ(decisions_[0].at, acquired + absl::Milliseconds(100));
  EXPECT_THAT(decisions_[0].cause, HasSubstr("key in etcd held at epoch 2"));
  EXPECT_FALSE(m_->waiting_for_witness());
}

TEST_F(WitnessRule, StandbyIgnoresAKeyNotAboveEveryEpochSeen) {
  Start(Role::kStandby, 2);
  partitioned_ = true;
  witness_.hold_until = now_ + absl::Seconds(5);
  witness_.takeover_from = now_;
  witness_.key_epoch = 1;  // the peer's epoch: taking over there would tie it
  Run(absl::Seconds(1));
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_TRUE(m_->waiting_for_witness());
}

TEST_F(WitnessRule, ActiveCutOffStepsDownWhenItsHoldEnds) {
  Start(Role::kActive);
  witness_.hold_until = now_ + absl::Milliseconds(1500);
  absl::Time hold_end = witness_.hold_until;
  partitioned_ = true;
  Run(absl::Milliseconds(1499));
  EXPECT_EQ(m_->role(), Role::kActive);  // still within its hold
  Run(absl::Milliseconds(2));
  ASSERT_EQ(m_->role(), Role::kStandby);
  EXPECT_EQ(m_->epoch(), 1u);
  ASSERT_EQ(decisions_.size(), 1u);
  EXPECT_EQ(decisions_[0].at, hold_end);
  EXPECT_THAT(decisions_[0].cause, HasSubstr("witness: lease not renewed"));
  EXPECT_TRUE(decisions_[0].for_witness);
  // Without the key it does not take the role back while the silence lasts.
  Run(absl::Seconds(3));
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_EQ(decisions_.size(), 1u);
}

// The active's own switch stops listening (its threads starved, or stopped)
// as the partition starts: the peer, hearing nothing from it, may take the
// key once the lease runs out, so the active must not count its deaf switch
// as hearing the peer (W2) past its hold. Rule 3 still judges the silence
// only where the switch listened: peer_lost stays down.
TEST_F(WitnessRule, ActiveWhoseSwitchStoppedListeningStepsDownWhenItsHoldEnds) {
  Start(Role::kActive);
  witness_.hold_until = now_ + absl::Milliseconds(1500);
  absl::Time hold_end = witness_.hold_until;
  m_->SetListeningUntil(now_);
  partitioned_ = true;
  Run(absl::Milliseconds(1499));
  EXPECT_EQ(m_->role(), Role::kActive);
  EXPECT_FALSE(m_->alarms().peer_lost);
  Run(absl::Milliseconds(2));
  ASSERT_EQ(m_->role(), Role::kStandby) << "a deaf switch kept it active past its hold";
  ASSERT_EQ(decisions_.size(), 1u);
  EXPECT_EQ(decisions_[0].at, hold_end);
  EXPECT_THAT(decisions_[0].cause, HasSubstr("did not listen"));
  EXPECT_TRUE(decisions_[0].for_witness);
  // Not known silent, yet not heard: what ends a witness withdrawal
  // (control/pair.cc) is the second; a deaf switch must not end it.
  EXPECT_TRUE(m_->peer_heard(Path::kBackbone, now_));
  EXPECT_FALSE(m_->PeerHeardBy(now_));
}

TEST_F(WitnessRule, ActiveThatHearsItsPeerStaysWhateverEtcdSays) {
  Start(Role::kActive);
  witness_.hold_until = absl::InfinitePast();  // etcd unreachable: no key (W2)
  Run(absl::Seconds(3));
  EXPECT_EQ(m_->role(), Role::kActive);
  EXPECT_TRUE(decisions_.empty());
}

TEST_F(WitnessRule, HandoverWhileThePeerIsHeardDoesNotWaitForEtcd) {
  Start(Role::kStandby, 2);
  peer_data_plane_ok_ = false;  // W6: the active peer reports its data plane dead
  Run(absl::Milliseconds(20));
  ASSERT_EQ(m_->role(), Role::kActive);
  EXPECT_EQ(m_->epoch(), 2u);
  EXPECT_FALSE(m_->waiting_for_witness());
}

TEST_F(WitnessRule, WithoutAWitnessAPartitionLeavesBothActiveAsBefore) {
  witness_.enabled = false;
  Start(Role::kActive);
  partitioned_ = true;
  Run(absl::Seconds(3));
  EXPECT_EQ(m_->role(), Role::kActive);  // rule 5
  Start(Role::kStandby, 2);
  partitioned_ = true;
  Run(absl::Milliseconds(100));
  EXPECT_EQ(m_->role(), Role::kActive);  // rule 3, no key asked for
  EXPECT_EQ(m_->epoch(), 2u);
}

// Rule 8, issue 18: etcd's quorum lost (no key for anyone), the active's
// switch killed, the standby took over (W6); the old active, demoted, has no
// switch to send heartbeats, but its control daemon reports on the backbone.
TEST_F(WitnessRule, ActiveKeepsTheRoleWithoutTheKeyWhileItsPeerSaysItIsAStandbyWithoutSwitch) {
  Start(Role::kActive);
  witness_.hold_until = absl::InfinitePast();  // etcd has lost its quorum
  control_reports_ = true;
  partitioned_ = true;  // the peer's switch is dead: nothing on either path
  Run(absl::Seconds(3));
  EXPECT_EQ(m_->role(), Role::kActive);
  EXPECT_TRUE(decisions_.empty());
  EXPECT_GT(m_->peer_switch_dead_until(), now_);
  // Heard alive, not healthy and not on a path: the alarms say the truth.
  EXPECT_TRUE(m_->alarms().peer_lost);
  EXPECT_FALSE(m_->alarms().peer_unhealthy);
  EXPECT_FALSE(m_->peer_heard(Path::kBackbone, now_));

  // The reports stop (the backbone is cut, or the peer's daemon died): W3
  // again, control_timeout after the last one.
  control_reports_ = false;
  absl::Time last = now_ - (now_ - absl::UnixEpoch()) % kInterval;
  Run(absl::Seconds(1));
  EXPECT_EQ(m_->role(), Role::kStandby);
  ASSERT_EQ(decisions_.size(), 1u);
  EXPECT_EQ(decisions_[0].at, last + absl::Milliseconds(151));
  EXPECT_THAT(decisions_[0].cause, HasSubstr("witness: lease not renewed"));
}

TEST_F(WitnessRule, PeerControlReportIsNoExemptionWhenThePeerSwitchRunsOrItsEpochIsNewer) {
  // A standby whose switch runs but is not heard on either path: a
  // partition of the switches' paths, the witness decides (W3).
  Start(Role::kActive);
  control_reports_ = true;
  control_.data_plane_ok = true;
  partitioned_ = true;
  Run(absl::Milliseconds(100));
  EXPECT_EQ(m_->role(), Role::kStandby);

  // A standby in a newer epoch than ours: not the peer we demoted.
  Start(Role::kActive);
  control_ = {.node_id = 2, .role = Role::kStandby, .epoch = 2, .data_plane_ok = false};
  partitioned_ = true;
  Run(absl::Milliseconds(100));
  EXPECT_EQ(m_->role(), Role::kStandby);

  // Another pair's node: ignored and counted.
  Start(Role::kActive);
  control_ = {.node_id = 3, .role = Role::kStandby, .epoch = 1, .data_plane_ok = false};
  partitioned_ = true;
  Run(absl::Milliseconds(100));
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_GT(m_->reports_ignored(), 0u);
}

TEST_F(WitnessRule, StandbyTakesOverWithoutTheKeyWhenItsPeerSaysItIsAStandbyWithoutSwitch) {
  // Both standby (this one stepped down before, W3), no key to be had; the
  // peer's switch is dead and its control daemon says so.
  Start(Role::kStandby, 2);
  peer_role_ = Role::kStandby;
  control_ = {.node_id = 1, .role = Role::kStandby, .epoch = 3, .data_plane_ok = false};
  partitioned_ = true;
  Run(absl::Milliseconds(100));
  EXPECT_EQ(m_->role(), Role::kStandby);  // waits for the key
  EXPECT_TRUE(m_->waiting_for_witness());
  control_reports_ = true;
  Run(absl::Milliseconds(10));
  ASSERT_EQ(m_->role(), Role::kActive);
  EXPECT_EQ(m_->epoch(), 4u);  // above the epoch the peer reported
  ASSERT_EQ(decisions_.size(), 1u);
  EXPECT_THAT(decisions_[0].cause, HasSubstr("its switch dead"));
  EXPECT_FALSE(m_->waiting_for_witness());
}

TEST_F(WitnessRule, PeerControlReportNeverCountsAsThePeerHealthOrAPath) {
  // The standby's switch restarted and is heard again, healthy: a report of
  // its daemon from while it was dead leaves no alarm (the defect of
  // 1a7de94, which fed it as a heartbeat: a stale peer_unhealthy).
  Start(Role::kActive);
  control_reports_ = true;
  Run(absl::Milliseconds(50));
  control_reports_ = false;
  Run(absl::Milliseconds(50));
  EXPECT_FALSE(m_->alarms().any()) << m_->alarms().ToString();
  ASSERT_TRUE(m_->peer().has_value());
  EXPECT_TRUE(m_->peer()->data_plane_ok);
  // Nor does it keep a standby from taking over an active peer it hears
  // no more, as the peer's heartbeat would have.
  Start(Role::kStandby, 2);
  witness_.enabled = false;
  control_ = {.node_id = 1, .role = Role::kStandby, .epoch = 1, .data_plane_ok = true};
  control_reports_ = true;
  partitioned_ = true;
  Run(absl::Milliseconds(50));
  EXPECT_EQ(m_->role(), Role::kActive);
}

TEST_F(WitnessRule, OldActiveSayingItsSwitchIsDeadBridgesTheTakeoverUntilItReportsAsStandby) {
  // Node 2, standby; the active's control daemon says its switch is dead
  // (its Notify: a heartbeat on the backbone and a control report): W6.
  Start(Role::kStandby, 2);
  witness_.hold_until = absl::InfinitePast();  // no quorum
  partitioned_ = true;
  PeerReport dead{.node_id = 1, .role = Role::kActive, .epoch = 1, .data_plane_ok = false};
  m_->OnHeartbeat(Path::kBackbone, dead, now_);
  m_->OnPeerControl({.node_id = 1, .role = Role::kActive, .epoch = 1, .data_plane_ok = false},
                    now_);
  ASSERT_EQ(m_->role(), Role::kActive);
  EXPECT_EQ(m_->epoch(), 2u);
  // The old active demotes and reconnects as a standby: no word from it for
  // a while; the takeover stands (its word: the active of epoch 1, switch dead).
  absl::Time said = now_;
  Run(absl::Milliseconds(140));
  EXPECT_EQ(m_->role(), Role::kActive);
  control_ = {.node_id = 1, .role = Role::kStandby, .epoch = 2, .data_plane_ok = false};
  control_reports_ = true;
  Run(absl::Seconds(2));
  EXPECT_EQ(m_->role(), Role::kActive);
  EXPECT_EQ(decisions_.size(), 1u);
  EXPECT_EQ(m_->peer_switch_dead_until(), now_ + absl::Milliseconds(150));

  // Without the reports it steps down control_timeout after the old
  // active's word (W3).
  Start(Role::kStandby, 2);
  control_reports_ = false;
  partitioned_ = true;
  m_->OnHeartbeat(Path::kBackbone, dead, now_);
  m_->OnPeerControl({.node_id = 1, .role = Role::kActive, .epoch = 1, .data_plane_ok = false},
                    now_);
  said = now_;
  Run(absl::Milliseconds(300));
  EXPECT_EQ(m_->role(), Role::kStandby);
  ASSERT_EQ(decisions_.size(), 2u);
  EXPECT_EQ(decisions_[1].at, said + absl::Milliseconds(151));
}

TEST_F(WitnessRule, PeerHeardActiveEndsItsControlReport) {
  Start(Role::kActive);
  witness_.hold_until = absl::InfinitePast();
  control_reports_ = true;
  Run(absl::Milliseconds(50));
  control_reports_ = false;
  // The peer's heartbeat as active in a newer epoch (it took over): rule 1,
  // and the standby report it sent before is void.
  PeerReport r{.node_id = 2, .role = Role::kActive, .epoch = 2};
  m_->OnHeartbeat(Path::kBackbone, r, now_);
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_EQ(m_->peer_switch_dead_until(), absl::InfinitePast());
  ASSERT_EQ(m_->TakeDecisions().size(), 1u);
  // Demoted by rule 1, not for the witness: routed mode announces standby.
  Start(Role::kActive);
  m_->OnHeartbeat(Path::kBackbone, r, now_);
  std::vector<Decision> d = m_->TakeDecisions();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_FALSE(d[0].for_witness);
}

}  // namespace
}  // namespace tandem::mirror
