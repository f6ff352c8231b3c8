#include "switch/heartbeat.h"

#include <gtest/gtest.h>

namespace tandem::sw {
namespace {

const std::string kKey = "0123456789abcdef-pair-key";

HeartbeatMsg Msg(uint64_t counter, uint64_t unix_ns) {
  HeartbeatMsg m;
  m.node_id = 2;
  m.path = 1;
  m.flags = 5;
  m.epoch = 7;
  m.position = 99;
  m.boot_id = 1234;
  m.counter = counter;
  m.unix_ns = unix_ns;
  return m;
}

TEST(Heartbeat, RoundTrip) {
  uint8_t buf[kHeartbeatLen];
  EncodeHeartbeat(Msg(3, 1000), kKey, buf);
  auto m = DecodeHeartbeat(buf, sizeof buf, kKey);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->node_id, 2u);
  EXPECT_EQ(m->path, 1);
  EXPECT_EQ(m->flags, 5u);
  EXPECT_EQ(m->epoch, 7u);
  EXPECT_EQ(m->position, 99u);
  EXPECT_EQ(m->counter, 3u);
}

TEST(Heartbeat, RefusesWrongKeyTamperingAndTruncation) {
  uint8_t buf[kHeartbeatLen];
  EncodeHeartbeat(Msg(3, 1000), kKey, buf);
  EXPECT_EQ(DecodeHeartbeat(buf, sizeof buf, "another key of the pair").status().code(),
            absl::StatusCode::kPermissionDenied);
  for (size_t i = 0; i < kHeartbeatLen; ++i) {
    uint8_t t[kHeartbeatLen];
    std::memcpy(t, buf, sizeof t);
    t[i] ^= 0x01;
    EXPECT_FALSE(DecodeHeartbeat(t, sizeof t, kKey).ok()) << "flipped byte " << i;
  }
  for (size_t n = 0; n < kHeartbeatLen; ++n) EXPECT_FALSE(DecodeHeartbeat(buf, n, kKey).ok());
}

TEST(ReplayGuard, RefusesReplayedAndStaleMessages) {
  const uint64_t now = 1'000'000'000'000ull;
  ReplayGuard g;
  EXPECT_TRUE(g.Accept(Msg(1, now), now));
  EXPECT_TRUE(g.Accept(Msg(2, now + 10), now + 10));
  EXPECT_FALSE(g.Accept(Msg(2, now + 10), now + 20)) << "same counter again";
  EXPECT_FALSE(g.Accept(Msg(1, now), now + 20)) << "older counter";
  EXPECT_FALSE(g.Accept(Msg(9, now - 3 * kMaxSkewNs), now)) << "stale time stamp";
  HeartbeatMsg reboot = Msg(1, now + 100);
  reboot.boot_id = 5678;
  EXPECT_TRUE(g.Accept(reboot, now + 100)) << "a restarted peer starts a new boot";
  HeartbeatMsg old_boot = Msg(50, now + 50);
  EXPECT_FALSE(g.Accept(old_boot, now + 120)) << "the previous boot replayed";
}

}  // namespace
}  // namespace tandem::sw
