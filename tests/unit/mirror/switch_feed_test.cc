// The role machine fed from the switch's heartbeat view in the state region.
#include "mirror/switch_feed.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::mirror {
namespace {

void Hear(tables::PeerPath& p, uint32_t node, uint64_t epoch, uint32_t flags, absl::Time at) {
  uint32_t s = p.seq.load();
  p.seq.store(s + 1);
  p.node_id = node;
  p.epoch = epoch;
  p.flags = flags;
  p.last_heard_ns = static_cast<uint64_t>(absl::ToUnixNanos(at));
  p.frames_ok++;
  p.seq.store(s + 2);
}

TEST(SwitchHeartbeatFeed, PeerHeardThroughTheSwitchThenSilent) {
  auto state = std::make_unique<tables::StateHeader>();
  absl::Time t = absl::FromUnixNanos(1'000'000'000);
  RoleMachine m(RoleConfig{.node_id = 2}, Role::kStandby, 1, t);
  SwitchHeartbeatFeed feed;
  state->local_flags = tables::kHbDataPlaneOk | tables::kHbAccessLinkUp;
  const uint32_t kPeerOk = tables::kHbDataPlaneOk | tables::kHbAccessLinkUp | tables::kHbActive;
  for (int i = 0; i < 10; ++i) {
    t += absl::Milliseconds(10);
    Hear(state->peer[0], 1, 1, kPeerOk, t);
    Hear(state->peer[1], 1, 1, kPeerOk, t);
    feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, true, 0), &m, t);
  }
  ASSERT_TRUE(m.peer().has_value());
  EXPECT_EQ(m.peer()->role, Role::kActive);
  EXPECT_EQ(m.role(), Role::kStandby);
  EXPECT_FALSE(m.alarms().any()) << m.alarms().ToString();

  // Only the access path still hears the peer: backbone alarm, no takeover.
  for (int i = 0; i < 10; ++i) {
    t += absl::Milliseconds(10);
    Hear(state->peer[0], 1, 1, kPeerOk, t);
    feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, true, 0), &m, t);
  }
  EXPECT_TRUE(m.alarms().backbone_down);
  EXPECT_EQ(m.role(), Role::kStandby);

  // The peer's switch dies: both paths fall silent.
  for (int i = 0; i < 4; ++i) {
    t += absl::Milliseconds(10);
    feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, true, 0), &m, t);
  }
  EXPECT_EQ(m.role(), Role::kActive);
  EXPECT_EQ(m.epoch(), 2u);
}

TEST(SwitchHeartbeatFeed, NoTakeoverWhenOurOwnSwitchIsDead) {
  auto state = std::make_unique<tables::StateHeader>();
  state->local_flags = tables::kHbDataPlaneOk | tables::kHbAccessLinkUp;  // stale
  absl::Time t = absl::FromUnixNanos(1'000'000'000);
  RoleMachine m(RoleConfig{.node_id = 2}, Role::kStandby, 1, t);
  SwitchHeartbeatFeed feed;
  // Our switch is dead, so nothing is heard: that must not look like a dead peer.
  for (int i = 0; i < 10; ++i) {
    t += absl::Milliseconds(10);
    feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, /*switch_alive=*/false, 0), &m, t);
  }
  EXPECT_EQ(m.role(), Role::kStandby);
  EXPECT_TRUE(m.alarms().cannot_take_over);
}

// tandem-switch moves last_heard past a stall of its own without a new frame
// (ExcuseOwnStall): the role machine must see that, or a node whose peer was
// starved along with it takes over once its own switch listens again.
TEST(SwitchHeartbeatFeed, ALastHeardMovedPastOurOwnStallReachesTheMachine) {
  auto state = std::make_unique<tables::StateHeader>();
  absl::Time t = absl::FromUnixNanos(1'000'000'000);
  RoleMachine m(RoleConfig{.node_id = 2}, Role::kStandby, 1, t);
  SwitchHeartbeatFeed feed;
  state->local_flags = tables::kHbDataPlaneOk | tables::kHbAccessLinkUp;
  const uint32_t kPeerOk = tables::kHbDataPlaneOk | tables::kHbAccessLinkUp | tables::kHbActive;
  for (int i = 0; i < 10; ++i) {
    t += absl::Milliseconds(10);
    Hear(state->peer[0], 1, 1, kPeerOk, t);
    Hear(state->peer[1], 1, 1, kPeerOk, t);
    feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, true, 0), &m, t);
  }
  // Both nodes stalled for a second; our switch excuses it, no frame yet.
  t += absl::Seconds(1);
  for (tables::PeerPath& p : state->peer) {
    p.seq.store(p.seq.load() + 1);
    p.last_heard_ns = static_cast<uint64_t>(absl::ToUnixNanos(t));
    p.seq.store(p.seq.load() + 1);
  }
  m.SetListeningUntil(t);
  feed.Poll(*state, SwitchHeartbeatFeed::Local(*state, true, 0), &m, t);
  EXPECT_EQ(m.role(), Role::kStandby) << "took over on a silence its own switch excused";
}

}  // namespace
}  // namespace tandem::mirror
