// The per-packet token buckets (switch/policer.h) on a made-up clock: 1 GHz,
// so a TSC tick is a nanosecond.
#include "switch/policer.h"

#include <gtest/gtest.h>

namespace tandem::sw {
namespace {

constexpr double kSecPerTsc = 1e-9;
constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kStart = 5 * kSecond;

// How many of `n` packets of `bytes` sent at once at `tsc` pass.
int Passed(tables::LegCounters& u, uint32_t pps, uint32_t kbps, int n, uint32_t bytes,
           uint64_t tsc) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += PoliceLeg(u, pps, kbps, bytes, tsc, kSecPerTsc);
  return ok;
}

TEST(PoliceLeg, UnlimitedAlwaysPasses) {
  tables::LegCounters u{};
  EXPECT_EQ(Passed(u, 0, 0, 100000, 1500, kStart), 100000);
}

TEST(PoliceLeg, AFreshLegHasAFullBucketThenTheRate) {
  tables::LegCounters u{};
  // 200 pps: a bucket of 200 packets (a second).
  EXPECT_EQ(Passed(u, 200, 0, 1000, 100, kStart), 200);
  // 100 ms later: 20 more.
  EXPECT_EQ(Passed(u, 200, 0, 1000, 100, kStart + kSecond / 10), 20);
  // A long pause refills to the bucket, never beyond.
  EXPECT_EQ(Passed(u, 200, 0, 1000, 100, kStart + 100 * kSecond), 200);
}

// A flood at 1,000 pps for 10 s gets the bucket and 200 a second through.
TEST(PoliceLeg, AFloodGetsTheRate) {
  tables::LegCounters u{};
  int passed = 0;
  for (int i = 0; i < 10000; ++i) {
    passed += PoliceLeg(u, 200, 640, 214, kStart + i * (kSecond / 1000), kSecPerTsc);
  }
  EXPECT_GE(passed, 200 + 200 * 10 - 2);
  EXPECT_LE(passed, 200 + 200 * 10);
}

TEST(PoliceLeg, AtLeastEightPacketsOfBurst) {
  tables::LegCounters u{};
  EXPECT_EQ(Passed(u, 2, 0, 100, 100, kStart), 8);
}

TEST(PoliceLeg, BitRate) {
  tables::LegCounters u{};
  // 640 kbit/s: 80,000 bytes a second and in the bucket.
  EXPECT_EQ(Passed(u, 0, 640, 1000, 1000, kStart), 80);
  EXPECT_EQ(Passed(u, 0, 640, 100, 1000, kStart + kSecond / 10), 8);
}

// A steady stream at its codec's rate never meets the limit: 50 pps audio
// under the audio default (200 pps, 640 kbit/s), over ten minutes.
TEST(PoliceLeg, SteadyAudioIsNeverPoliced) {
  tables::LegCounters u{};
  int passed = 0;
  for (int i = 0; i < 50 * 600; ++i) {
    passed += PoliceLeg(u, 200, 640, 214, kStart + i * (kSecond / 50), kSecPerTsc);
  }
  EXPECT_EQ(passed, 50 * 600);
}

// A second of audio that arrives at once (a jitter spike, a worker that was
// not scheduled) after a steady stream passes too.
TEST(PoliceLeg, BunchedAudioPasses) {
  tables::LegCounters u{};
  int passed = 0;
  for (int i = 0; i < 500; ++i) {
    passed += PoliceLeg(u, 200, 640, 214, kStart + i * (kSecond / 50), kSecPerTsc);
  }
  EXPECT_EQ(Passed(u, 200, 640, 50, 214, kStart + 11 * kSecond), 50);
  EXPECT_EQ(passed, 500);
}

// Video under the video default (2,000 pps, 10 Mbit/s): 30 frames/s of 10
// packets of 1,200 bytes, and once a second a key frame of 150 packets at once.
TEST(PoliceLeg, VideoFramesAndKeyFramesAreNeverPoliced) {
  tables::LegCounters u{};
  int sent = 0, passed = 0;
  for (int f = 0; f < 30 * 60; ++f) {
    int n = f % 30 == 0 ? 150 : 10;
    uint64_t t = kStart + f * (kSecond / 30);
    for (int i = 0; i < n; ++i, ++sent) passed += PoliceLeg(u, 2000, 10000, 1242, t, kSecPerTsc);
  }
  EXPECT_EQ(passed, sent);
}

// A reused slot: Usage() sets policer_tsc to 0, and the new leg starts full.
TEST(PoliceLeg, ZeroTscStartsFull) {
  tables::LegCounters u{};
  EXPECT_EQ(Passed(u, 200, 0, 1000, 100, kStart), 200);
  u.policer_tsc = 0;
  EXPECT_EQ(Passed(u, 200, 0, 1000, 100, kStart + 1), 200);
}

TEST(MeetingBudget, CapsCopiesPerSecond) {
  MeetingBudget b;
  // 1,000 copies/s: a budget of 1,000; packets of 10 copies.
  int passed = 0;
  for (int i = 0; i < 1000; ++i) passed += SpendMeetingBudget(b, 1, 1000, 10, kStart, kSecPerTsc);
  EXPECT_EQ(passed, 100);
  passed = 0;
  for (int i = 0; i < 1000; ++i) {
    passed += SpendMeetingBudget(b, 1, 1000, 10, kStart + kSecond / 10, kSecPerTsc);
  }
  EXPECT_EQ(passed, 10) << "100 ms later: 100 copies more";
}

TEST(MeetingBudget, APacketForMoreReceiversThanTheBucketStillPassesNowAndThen) {
  MeetingBudget b;
  // 100 copies/s (a bucket of 100) and a packet for 300 receivers.
  EXPECT_TRUE(SpendMeetingBudget(b, 1, 100, 300, kStart, kSecPerTsc));
  EXPECT_FALSE(SpendMeetingBudget(b, 1, 100, 300, kStart + kSecond, kSecPerTsc))
      << "in debt: 200 copies take 2 s to repay";
  EXPECT_TRUE(SpendMeetingBudget(b, 1, 100, 300, kStart + 3 * kSecond, kSecPerTsc));
}

TEST(MeetingBudget, UnlimitedAndNoReceivers) {
  MeetingBudget b;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(SpendMeetingBudget(b, 1, 0, 100, kStart, kSecPerTsc));
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(SpendMeetingBudget(b, 1, 10, 0, kStart, kSecPerTsc));
}

TEST(MeetingBudget, AnotherGenerationStartsFull) {
  MeetingBudget b;
  EXPECT_TRUE(SpendMeetingBudget(b, 1, 100, 100, kStart, kSecPerTsc));
  EXPECT_FALSE(SpendMeetingBudget(b, 1, 100, 1, kStart, kSecPerTsc));
  EXPECT_TRUE(SpendMeetingBudget(b, 2, 100, 100, kStart, kSecPerTsc)) << "the slot's next meeting";
}

}  // namespace
}  // namespace tandem::sw
