// The daemon's glue between the role machine and the witness
// (control/witness_link.h), as control/pair.cc and control/fleet_witness.cc
// run it: two real RoleMachines, each with its fleet::Witness, against a
// model of etcd's leases (expiry at receipt + TTL, revoked on a 500 ms tick),
// time injected and stepped by a millisecond. What the etcd calls do is the
// transaction of fleet_witness.cc: an active acquires at its own epoch unless
// a higher one was taken, a standby above every epoch it knows.
#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>

#include "gtest/gtest.h"
#include "control/witness_link.h"

namespace tandem::control {
namespace {

using fleet::WitnessAction;

const absl::Time kT0 = absl::UnixEpoch();
constexpr absl::Duration kBeat = absl::Milliseconds(10);

struct Etcd {
  absl::Duration ttl = absl::Seconds(3), latency = absl::Milliseconds(2);
  int holder = -1;
  uint64_t stored_epoch = 0;
  absl::Time expiry;
  void Tick(absl::Time now) {
    if (holder >= 0 && now >= expiry && (now - kT0) % absl::Milliseconds(500) == absl::ZeroDuration())
      holder = -1;
  }
};

struct Node {
  int id = 0;  // 0: A (node 1), 1: B (node 2)
  std::unique_ptr<mirror::RoleMachine> m;
  fleet::Witness w{fleet::WitnessConfig{}};
  bool reaches_etcd = true;
};

class WitnessLink : public ::testing::Test {
 protected:
  WitnessLink() {
    for (int i = 0; i < 2; ++i) {
      mirror::RoleConfig c;
      c.node_id = i + 1;
      c.peer_node_id = 2 - i;
      c.interval = kBeat;
      n_[i].id = i;
      n_[i].m = std::make_unique<mirror::RoleMachine>(
          c, i == 0 ? mirror::Role::kActive : mirror::Role::kStandby, 1, kT0);
      n_[i].m->SetLocal(mirror::LocalHealth{}, kT0);
    }
  }

  bool Active(int i) const { return n_[i].m->role() == mirror::Role::kActive; }

  void Act(Node& x, const fleet::PairSight& s, const fleet::WitnessVerdict& v, absl::Time now) {
    if (v.action == WitnessAction::kNone) return;
    x.w.Attempted(now);
    if (!x.reaches_etcd) return;  // no answer: nothing changes
    absl::Time receipt = now + etcd_.latency;
    switch (v.action) {
      case WitnessAction::kAcquire: {
        uint64_t e = s.active ? s.epoch
                              : std::max({v.acquire_epoch, etcd_.stored_epoch + 1, s.epoch + 1});
        if (etcd_.holder < 0 && e >= etcd_.stored_epoch) {
          etcd_.holder = x.id;
          etcd_.stored_epoch = e;
          etcd_.expiry = receipt + etcd_.ttl;
          x.w.Acquired(e, now);
        } else {
          x.w.SawStoredEpoch(etcd_.stored_epoch);
        }
        break;
      }
      case WitnessAction::kRenew:
        if (etcd_.holder == x.id) {
          etcd_.expiry = receipt + etcd_.ttl;
          x.w.Renewed(now);
        } else {
          x.w.Lost();
        }
        break;
      case WitnessAction::kRelease:
        if (etcd_.holder == x.id) etcd_.holder = -1;
        x.w.Lost();
        break;
      case WitnessAction::kNone:
        break;
    }
  }

  // Runs until `end`; records the first step-down of A and takeover of B
  // after `since`, and every millisecond both were active.
  void Run(absl::Duration d) {
    for (absl::Time end = now_ + d; now_ < end;) {
      now_ += absl::Milliseconds(1);
      const int holder = etcd_.holder;
      etcd_.Tick(now_);
      if (holder >= 0 && etcd_.holder < 0) gone_at_ = now_;
      for (Node& x : n_) {
        Node& peer = n_[1 - x.id];
        if (!partitioned_ && (now_ - kT0) % kBeat == absl::ZeroDuration()) {
          mirror::PeerReport r;
          r.node_id = peer.id + 1;
          r.role = peer.m->role();
          r.epoch = peer.m->epoch();
          x.m->OnHeartbeat(mirror::Path::kBackbone, r, now_);
          x.m->OnHeartbeat(mirror::Path::kAccess, r, now_);
        }
        // fleet_witness.cc's watch: a node waiting for the key hears of its
        // deletion a latency later and tries at once.
        if (watch_ && gone_at_ && now_ == *gone_at_ + etcd_.latency && x.reaches_etcd &&
            !x.w.holds(now_)) {
          x.w.KeyGone();
        }
        if (witness_) x.m->SetWitness(InputOf(x.w, fleet::WitnessConfig{}.guard));
        x.m->Tick(now_);
        for (const mirror::Decision& dec : x.m->TakeDecisions()) {
          if (x.id == 0 && dec.role == mirror::Role::kStandby && !a_down_) a_down_ = now_;
          if (x.id == 1 && dec.role == mirror::Role::kActive && !b_up_) b_up_ = now_;
          changes_++;
        }
        if (!witness_) continue;
        fleet::PairSight s = SightOf(*x.m, now_);
        Act(x, s, x.w.Decide(s, now_), now_);
      }
      if (Active(0) && Active(1)) overlap_ms_++;
    }
  }

  std::array<Node, 2> n_;
  Etcd etcd_;
  absl::Time now_ = kT0;
  bool partitioned_ = false;
  bool witness_ = true;
  bool watch_ = true;
  std::optional<absl::Time> gone_at_;
  int overlap_ms_ = 0, changes_ = 0;
  std::optional<absl::Time> a_down_, b_up_;
};

TEST_F(WitnessLink, ActiveHoldsTheKeyAtRest) {
  Run(absl::Seconds(2));
  EXPECT_TRUE(Active(0));
  EXPECT_FALSE(Active(1));
  EXPECT_EQ(etcd_.holder, 0);
  EXPECT_EQ(etcd_.stored_epoch, 1u);
  EXPECT_EQ(changes_, 0);
}

TEST_F(WitnessLink, FullPartitionWithEtcdReachableFromBothKeepsTheActive) {
  Run(absl::Seconds(2));
  partitioned_ = true;
  Run(absl::Seconds(10));
  EXPECT_TRUE(n_[1].m->waiting_for_witness());  // B wants the key, A keeps it
  partitioned_ = false;
  Run(absl::Seconds(3));
  EXPECT_EQ(overlap_ms_, 0);
  EXPECT_TRUE(Active(0));
  EXPECT_FALSE(Active(1));
  EXPECT_EQ(etcd_.holder, 0);
  EXPECT_EQ(changes_, 0);  // no flap at the heal either
}

TEST_F(WitnessLink, ActiveCutFromEtcdStepsDownBeforeItsLeaseEndsAndTheStandbyTakesOver) {
  Run(absl::Milliseconds(2250));  // A renewed at 2.0 s; the cut falls between two renewals
  absl::Time cut = now_;
  partitioned_ = true;
  n_[0].reaches_etcd = false;
  Run(absl::Seconds(6));
  ASSERT_TRUE(a_down_ && b_up_);
  std::printf("after the cut: A stepped down at %s, B took over at %s\n",
              absl::FormatDuration(*a_down_ - cut).c_str(),
              absl::FormatDuration(*b_up_ - cut).c_str());
  fleet::WitnessConfig t;
  // A steps down at its last acknowledged renewal + TTL - margin...
  EXPECT_LE(*a_down_ - cut, t.ttl - t.margin);
  // ...B takes over after etcd revoked A's lease (at the latest renewal's
  // receipt + TTL, on the 500 ms tick), which its watch hears a latency
  // later, and the guard: at least `margin` after A stopped. (Trying every
  // renew interval instead, without the watch, it took over at 3.631 s.)
  EXPECT_GE(*b_up_ - *a_down_, t.margin);
  EXPECT_LE(*b_up_ - cut, t.ttl + absl::Milliseconds(500) + t.guard + 2 * etcd_.latency);
  EXPECT_EQ(overlap_ms_, 0);
  EXPECT_EQ(etcd_.holder, 1);
  EXPECT_EQ(n_[1].m->epoch(), 2u);
  EXPECT_EQ(etcd_.stored_epoch, 2u);
  // Heal: A hears the higher epoch and stays standby; nobody flaps.
  int before = changes_;
  partitioned_ = false;
  n_[0].reaches_etcd = true;
  Run(absl::Seconds(3));
  EXPECT_FALSE(Active(0));
  EXPECT_TRUE(Active(1));
  EXPECT_EQ(changes_, before);
  EXPECT_EQ(overlap_ms_, 0);
}

TEST_F(WitnessLink, WithoutTheWitnessAFullPartitionLeavesTwoActives) {
  witness_ = false;
  Run(absl::Seconds(1));
  partitioned_ = true;
  Run(absl::Seconds(1));
  EXPECT_TRUE(Active(0));
  EXPECT_TRUE(Active(1));
  EXPECT_GT(overlap_ms_, 900);
}

}  // namespace
}  // namespace tandem::control
