#include "common/record_ring.h"

#include <deque>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

size_t Cost(size_t size) { return (RecordRing::kRecordOverhead + size + 7) & ~size_t{7}; }

TEST(RecordRing, StartsEmptyAtTheGivenNumber) {
  RecordRing r(10, 1024, 7);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.first_seq(), 7u);
  EXPECT_EQ(r.last_seq(), 6u);
  EXPECT_FALSE(r.holds(6));
  EXPECT_FALSE(r.holds(7));
  EXPECT_EQ(r.bytes(), 0u);
  r.Push("a", 100);
  EXPECT_TRUE(r.holds(7));
  EXPECT_EQ(r.record(7), "a");
  EXPECT_EQ(r.appended_ns(7), 100);
  EXPECT_EQ(r.bytes(), Cost(1));
}

TEST(RecordRing, KeepsTheNewestWithinTheRecordBound) {
  RecordRing r(5, 1 << 20, 1);
  for (int i = 1; i <= 12; ++i) r.Push(absl::StrCat("r", i), i);
  EXPECT_EQ(r.size(), 5u);
  EXPECT_EQ(r.first_seq(), 8u);
  EXPECT_EQ(r.last_seq(), 12u);
  for (uint64_t s = 8; s <= 12; ++s) EXPECT_EQ(r.record(s), absl::StrCat("r", s));
  EXPECT_FALSE(r.holds(7));
  EXPECT_FALSE(r.holds(13));
}

TEST(RecordRing, KeepsTheNewestWithinTheByteBound) {
  RecordRing r(1000, 10 * Cost(100), 1);
  for (int i = 0; i < 25; ++i) r.Push(std::string(100, static_cast<char>('a' + i)), i);
  EXPECT_EQ(r.size(), 10u);
  EXPECT_EQ(r.bytes(), 10 * Cost(100));
  EXPECT_EQ(r.first_seq(), 16u);
  EXPECT_EQ(r.record(25), std::string(100, 'y'));
}

// Random sizes, so records start at every offset and the buffer wraps often:
// every held record reads back whole, the newest are held, the bounds hold.
TEST(RecordRing, WrapsWithoutLosingOrMixingRecords) {
  const size_t max_records = 300, max_bytes = 16 << 10;
  RecordRing r(max_records, max_bytes, 1);
  std::deque<std::string> model;
  std::mt19937 rng(42);
  uint64_t next = 1;
  for (int i = 0; i < 20000; ++i) {
    size_t size = rng() % 3 == 0 ? rng() % 2000 : rng() % 40;
    std::string rec(size, '\0');
    for (char& c : rec) c = static_cast<char>(rng());
    absl::StrAppend(&rec, "#", next);
    r.Push(rec, static_cast<int64_t>(next));
    model.push_back(rec);
    ++next;
    ASSERT_EQ(r.last_seq(), next - 1);
    ASSERT_LE(r.size(), max_records);
    ASSERT_LE(r.bytes(), max_bytes);
    ASSERT_GE(r.size(), 1u);
    while (model.size() > r.size()) model.pop_front();
    if (i % 97 == 0) {
      for (size_t k = 0; k < model.size(); ++k) {
        uint64_t seq = r.first_seq() + k;
        ASSERT_EQ(r.record(seq), model[k]) << seq;
        ASSERT_EQ(r.appended_ns(seq), static_cast<int64_t>(seq));
      }
    }
    // Room is made only as needed: once records were dropped for bytes, the
    // buffer is full but for at most one record and one wrap's padding.
    if (r.size() < max_records && r.first_seq() > 1) {
      ASSERT_GT(r.bytes() + 2 * Cost(2000 + 8), max_bytes) << i;
    }
  }
}

TEST(RecordRing, ARecordLargerThanTheBufferIsNumberedButNotHeld) {
  RecordRing r(100, 4096, 1);
  r.Push("small", 1);
  r.Push(std::string(5000, 'x'), 2);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.last_seq(), 2u);
  EXPECT_EQ(r.first_seq(), 3u);
  EXPECT_EQ(r.bytes(), 0u);
  r.Push("next", 3);
  EXPECT_EQ(r.first_seq(), 3u);
  EXPECT_EQ(r.record(3), "next");
}

TEST(RecordRingDeathTest, ReadingARecordNotHeldAborts) {
  RecordRing r(4, 1024, 1);
  r.Push("a", 1);
  EXPECT_DEATH(r.record(2), "");
}

}  // namespace
}  // namespace tandem
