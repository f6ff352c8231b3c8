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
  // Without the key it does not take the role back while the silence lasts.
  Run(absl::Seconds(3));
  EXPECT_EQ(m_->role(), Role::kStandby);
  EXPECT_EQ(decisions_.size(), 1u);
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

}  // namespace
}  // namespace tandem::mirror
