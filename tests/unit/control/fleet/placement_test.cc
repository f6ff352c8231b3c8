// Placement rules (control/fleet/placement.h), case by case: room, weights,
// the hash every language must reproduce, the spread of 10,000 meetings over
// weighted pairs, drained pairs, ties and the order of the list.
#include "control/fleet/placement.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::fleet {
namespace {

using ::testing::HasSubstr;

// An active pair with `free_legs` legs free of 10,000 and room for meetings.
PairState Pair(std::string id, uint64_t free_legs) {
  PairState p;
  p.pair_id = std::move(id);
  p.has_active = true;
  p.capacity_legs = 10000;
  p.load_legs = 10000 - free_legs;
  p.capacity_meetings = 1000;
  p.load_meetings = 10;
  return p;
}

std::string MeetingId(int i) { return absl::StrCat("meeting-", i); }

TEST(PlacementTest, RoomAndWeightByRule) {
  struct Case {
    const char* name;
    PairState pair;
    PlacementConfig config;
    NoRoom want;
    double weight;
  };
  PairState base = Pair("p", 400);
  auto with = [&](auto change) {
    PairState p = base;
    change(p);
    return p;
  };
  const std::vector<Case> cases = {
      {"room", base, {}, NoRoom::kNone, 400},
      {"drained by the operator",
       with([](PairState& p) { p.drained = true; }),
       {},
       NoRoom::kDrained,
       0},
      {"drained beats no active",
       with([](PairState& p) { p.drained = true, p.has_active = false; }),
       {},
       NoRoom::kDrained,
       0},
      {"no active node",
       with([](PairState& p) { p.has_active = false; }),
       {},
       NoRoom::kNoActive,
       0},
      {"the active node drains itself",
       with([](PairState& p) { p.node_draining = true; }),
       {},
       NoRoom::kDrained,
       0},
      {"no meeting free", with([](PairState& p) { p.load_meetings = 1000; }), {}, NoRoom::kFull, 0},
      {"meetings over capacity",
       with([](PairState& p) { p.load_meetings = 2000; }),
       {},
       NoRoom::kFull,
       0},
      {"no leg free", with([](PairState& p) { p.load_legs = 10000; }), {}, NoRoom::kFull, 0},
      {"legs over capacity", with([](PairState& p) { p.load_legs = 20000; }), {}, NoRoom::kFull, 0},
      {"fewer legs free than min_free_legs", base, {.min_free_legs = 401}, NoRoom::kFull, 0},
      {"exactly min_free_legs free", base, {.min_free_legs = 400}, NoRoom::kNone, 400},
      {"one leg free", with([](PairState& p) { p.load_legs = 9999; }), {}, NoRoom::kNone, 1},
      {"no capacity reported",
       with([](PairState& p) { p.capacity_legs = 0, p.load_legs = 0; }),
       {},
       NoRoom::kFull,
       0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(WhyNoRoom(c.pair, c.config), c.want) << NoRoomName(WhyNoRoom(c.pair, c.config));
    EXPECT_EQ(Weight(c.pair, c.config), c.weight);
  }
}

// Rule 3 pinned to values computed apart (Python's hashlib), so that any
// other placer can be checked against the same numbers.
TEST(PlacementTest, HashUnitIsSha256OfMeetingNulPair) {
  EXPECT_DOUBLE_EQ(HashUnit("m-1", "pair-a"), 0.816766673667354);
  EXPECT_DOUBLE_EQ(HashUnit("meeting-42", "p2"), 0.8911787513730685);
  EXPECT_NE(HashUnit("ab", "c"), HashUnit("a", "bc"));  // the NUL separates them
  for (int i = 0; i < 1000; ++i) {
    double u = HashUnit(MeetingId(i), "x");
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(PlacementTest, ScoreGrowsWithWeightAndIsMinusInfinityWithout) {
  EXPECT_LT(Score("m", "p", 1), Score("m", "p", 2));
  EXPECT_DOUBLE_EQ(Score("m", "p", 2), 2 * Score("m", "p", 1));
  EXPECT_EQ(Score("m", "p", 0), -INFINITY);
}

// 10,000 meetings over each fleet: every pair's share within 10 % of its
// weight's share.
TEST(PlacementTest, SpreadFollowsWeights) {
  struct Case {
    const char* name;
    std::vector<uint64_t> free_legs;
  };
  const std::vector<Case> cases = {
      {"equal", {500, 500, 500}},
      {"one to four", {100, 200, 300, 400}},
      {"one big, five small", {5000, 1000, 1000, 1000, 1000, 1000}},
      {"two", {300, 700}},
  };
  constexpr int kMeetings = 10000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<PairState> pairs;
    double total = 0;
    for (size_t i = 0; i < c.free_legs.size(); ++i) {
      pairs.push_back(Pair(absl::StrCat("pair-", i), c.free_legs[i]));
      total += static_cast<double>(c.free_legs[i]);
    }
    std::map<std::string, int> got;
    for (int m = 0; m < kMeetings; ++m) {
      absl::StatusOr<std::string> p = ChoosePair(MeetingId(m), pairs);
      ASSERT_TRUE(p.ok()) << p.status();
      ++got[*p];
    }
    for (size_t i = 0; i < pairs.size(); ++i) {
      double want = kMeetings * static_cast<double>(c.free_legs[i]) / total;
      EXPECT_NEAR(got[pairs[i].pair_id], want, 0.10 * want) << pairs[i].pair_id;
    }
  }
}

// A drained pair takes nothing new, and draining it moves only the meetings
// it would have taken (the rendezvous property: the others keep their pair).
TEST(PlacementTest, DrainedPairTakesNothingAndMovesNothingElse) {
  std::vector<PairState> pairs = {Pair("a", 300), Pair("b", 300), Pair("c", 300)};
  std::vector<PairState> drained = pairs;
  drained[1].drained = true;
  int moved = 0;
  for (int m = 0; m < 3000; ++m) {
    std::string before = *ChoosePair(MeetingId(m), pairs);
    std::string after = *ChoosePair(MeetingId(m), drained);
    EXPECT_NE(after, "b");
    if (before != "b") {
      EXPECT_EQ(after, before) << MeetingId(m);
    }
    moved += before != after;
  }
  EXPECT_NEAR(moved, 1000, 100);  // b's third
}

// A pair that joins takes its share from every other pair, and only that.
TEST(PlacementTest, JoiningPairTakesOnlyItsShare) {
  std::vector<PairState> three = {Pair("a", 200), Pair("b", 200), Pair("c", 200)};
  std::vector<PairState> four = three;
  four.push_back(Pair("d", 200));
  int to_d = 0;
  for (int m = 0; m < 4000; ++m) {
    std::string before = *ChoosePair(MeetingId(m), three);
    std::string after = *ChoosePair(MeetingId(m), four);
    if (after == "d") {
      ++to_d;
    } else {
      EXPECT_EQ(after, before);
    }
  }
  EXPECT_NEAR(to_d, 1000, 100);
}

TEST(PlacementTest, ListOrderDoesNotMatter) {
  std::vector<PairState> pairs = {Pair("a", 100), Pair("b", 250), Pair("c", 400), Pair("d", 50)};
  std::mt19937 rng(7);
  for (int m = 0; m < 500; ++m) {
    std::string want = *ChoosePair(MeetingId(m), pairs);
    std::vector<PairState> shuffled = pairs;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    EXPECT_EQ(*ChoosePair(MeetingId(m), shuffled), want);
  }
}

TEST(PlacementTest, TiesGoToTheLowerPairId) {
  struct Case {
    const char* name;
    std::vector<Scored> scored;
    int want;
  };
  const std::vector<Case> cases = {
      {"empty", {}, -1},
      {"one", {{"x", 1.0}}, 0},
      {"highest wins", {{"a", 1.0}, {"b", 3.0}, {"c", 2.0}}, 1},
      {"tie, lower id listed first", {{"a", 2.0}, {"b", 2.0}}, 0},
      {"tie, lower id listed last", {{"b", 2.0}, {"a", 2.0}}, 1},
      {"tie among three behind a lower score", {{"z", 1.0}, {"q", 5.0}, {"p", 5.0}, {"r", 5.0}}, 2},
      {"byte order, not length", {{"pair-10", 4.0}, {"pair-9", 4.0}}, 0},
      {"every score -infinity: lower id", {{"b", -INFINITY}, {"a", -INFINITY}}, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Highest(c.scored), c.want);
  }
}

TEST(PlacementTest, NoRoomSaysWhy) {
  std::vector<PairState> pairs = {Pair("a", 100), Pair("b", 100), Pair("c", 0), Pair("d", 100)};
  pairs[0].drained = true;
  pairs[1].has_active = false;
  pairs[3].load_meetings = pairs[3].capacity_meetings;
  absl::StatusOr<std::string> p = ChoosePair("m-1", pairs);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(p.status().message(),
              HasSubstr("4 pairs in the directory: 1 drained, 1 without an active node, 2 full"));
  EXPECT_EQ(ChoosePair("m-1", {}).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PlacementTest, OnlyPairWithRoomTakesEverything) {
  std::vector<PairState> pairs = {Pair("a", 100), Pair("b", 1), Pair("c", 100)};
  pairs[0].drained = true;
  pairs[2].load_legs = pairs[2].capacity_legs;
  for (int m = 0; m < 200; ++m) EXPECT_EQ(*ChoosePair(MeetingId(m), pairs), "b");
}

}  // namespace
}  // namespace tandem::fleet
