#include "switch/heartbeat.h"

#include <gtest/gtest.h>

#include <vector>

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

TEST(Heartbeat, EchoRoundTripsAndAnOlderEncodingEchoesNothing) {
  HeartbeatMsg m = Msg(3, 1000);
  m.echo_boot = 0xdeadbeef;
  m.echo_counter = 77;
  uint8_t buf[kHeartbeatLen];
  EncodeHeartbeat(m, kKey, buf);
  auto d = DecodeHeartbeat(buf, sizeof buf, kKey);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->echo_boot, 0xdeadbeefu);
  EXPECT_EQ(d->echo_counter, 77u);
  // Version 1 senders left bytes 56-63 zero: no echo.
  EncodeHeartbeat(Msg(3, 1000), kKey, buf);
  d = DecodeHeartbeat(buf, sizeof buf, kKey);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->echo_boot, 0u);
  EXPECT_EQ(d->echo_counter, 0u);
}

TEST(ReplayGuard, WithoutAnEchoRefusesReplayedAndStaleMessagesByTheWallClock) {
  const uint64_t now = 1'000'000'000'000ull;
  const uint64_t mono = 5'000'000'000ull;
  SentLog sent;
  ReplayGuard g;
  using R = ReplayGuard::Result;
  EXPECT_EQ(g.Accept(Msg(1, now), 1, sent, mono, now), R::kAccepted);
  EXPECT_EQ(g.Accept(Msg(2, now + 10), 1, sent, mono, now + 10), R::kAccepted);
  EXPECT_EQ(g.Accept(Msg(2, now + 10), 1, sent, mono, now + 20), R::kReplayed)
      << "same counter again";
  EXPECT_FALSE(g.IsNew(Msg(1, now)));
  EXPECT_EQ(g.Accept(Msg(1, now), 1, sent, mono, now + 20), R::kReplayed) << "older counter";
  EXPECT_EQ(g.Accept(Msg(9, now - 3 * kMaxSkewNs), 1, sent, mono, now), R::kStale)
      << "stale time stamp";
  HeartbeatMsg reboot = Msg(1, now + 100);
  reboot.boot_id = 5678;
  EXPECT_EQ(g.Accept(reboot, 1, sent, mono, now + 100), R::kAccepted)
      << "a restarted peer starts a new boot";
  HeartbeatMsg old_boot = Msg(50, now + 50);
  EXPECT_EQ(g.Accept(old_boot, 1, sent, mono, now + 120), R::kStale)
      << "the previous boot replayed";
}

// Two guards and two sent logs: nodes A and B exchanging heartbeats on one
// path every 10 ms, each with a wall clock and a monotonic clock of its own.
struct Node {
  uint64_t boot;
  uint64_t counter = 0;
  int64_t clock_offset_ns = 0;  // its CLOCK_REALTIME minus the true time
  SentLog sent;
  ReplayGuard guard;
  uint64_t accepted = 0, refused = 0;

  HeartbeatMsg Send(uint64_t t) {
    HeartbeatMsg m = Msg(++counter, t + clock_offset_ns);
    m.boot_id = boot;
    m.echo_boot = guard.echo_boot();
    m.echo_counter = guard.echo_counter();
    sent.Record(m.counter, t);
    return m;
  }
  ReplayGuard::Result Receive(const HeartbeatMsg& m, uint64_t t) {
    auto r = guard.Accept(m, boot, sent, t, t + clock_offset_ns);
    (r == ReplayGuard::Result::kAccepted ? accepted : refused)++;
    return r;
  }
};

TEST(ReplayGuard, AClockStepOfAnySizeOnOneNodeChangesNothing) {
  const uint64_t t0 = 1'000'000'000'000ull;
  for (int64_t step : {int64_t(0), int64_t(3'000'000'000), int64_t(-3'000'000'000),
                       int64_t(3600) * 1'000'000'000, -int64_t(86400) * 1'000'000'000}) {
    Node a{0x1111111100000001ull}, b{0x2222222200000001ull};
    uint64_t t = t0;
    for (int i = 0; i < 300; ++i, t += 10'000'000) {
      if (i == 100) b.clock_offset_ns = step;  // B's clock is stepped, mid-run
      b.Receive(a.Send(t), t + 50'000);
      a.Receive(b.Send(t + 100'000), t + 150'000);
    }
    // The first message of each echoes nothing and is judged by the clocks;
    // after the step every one is accepted, by its echo.
    EXPECT_GE(a.accepted, 298u) << "step " << step;
    EXPECT_GE(b.accepted, 298u) << "step " << step;
    EXPECT_LE(a.refused + b.refused, 2u) << "step " << step;
  }
}

TEST(ReplayGuard, BothNodesStartingWithClocksAnHourApartAgreeWithinTwoMessages) {
  const uint64_t t0 = 1'000'000'000'000ull;
  Node a{0x1111111100000001ull}, b{0x2222222200000001ull};
  b.clock_offset_ns = int64_t(3600) * 1'000'000'000;
  uint64_t t = t0;
  for (int i = 0; i < 100; ++i, t += 10'000'000) {
    b.Receive(a.Send(t), t + 50'000);
    a.Receive(b.Send(t + 100'000), t + 150'000);
  }
  EXPECT_GE(a.accepted, 98u);
  EXPECT_GE(b.accepted, 98u);
}

TEST(ReplayGuard, ACaptureReplayedLaterIsRefusedWhateverItsTimeStamp) {
  const uint64_t t0 = 1'000'000'000'000ull;
  Node a{0x1111111100000001ull}, b{0x2222222200000001ull};
  uint64_t t = t0;
  std::vector<HeartbeatMsg> captured;
  for (int i = 0; i < 50; ++i, t += 10'000'000) {
    HeartbeatMsg m = a.Send(t);
    captured.push_back(m);
    b.Receive(m, t + 50'000);
    a.Receive(b.Send(t + 100'000), t + 150'000);
  }
  // A dies. 3 s later an attacker replays the capture, with counters B has
  // not seen (as if it had missed them), and B's wall clock has been stepped
  // back 3 s so that their time stamps look current: each echoes a heartbeat
  // of B's that is 3 s old, and is refused.
  t += 3'000'000'000ull;
  for (size_t i = 1; i < captured.size(); ++i) {
    HeartbeatMsg m = captured[i];
    ASSERT_NE(m.echo_counter, 0u);
    m.counter += 1000;
    EXPECT_EQ(b.guard.Accept(m, b.boot, b.sent, t, t - 3'000'000'000ull),
              ReplayGuard::Result::kStale);
  }
  // The first one echoes nothing (A had not heard B yet): judged by the wall
  // clock, 3 s old, refused as before.
  ASSERT_EQ(captured.front().echo_counter, 0u);
  EXPECT_EQ(b.guard.Accept(captured.front(), b.boot, b.sent, t, t), ReplayGuard::Result::kReplayed);
  HeartbeatMsg later = captured.front();
  later.counter += 1000;
  EXPECT_EQ(b.guard.Accept(later, b.boot, b.sent, t, t), ReplayGuard::Result::kStale);
}

}  // namespace
}  // namespace tandem::sw
