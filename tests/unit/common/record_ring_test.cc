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
  EXPECT_EQ(r.resident(), 2 * 4096u);  // a page of data, a page of slots
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

// Random sizes, so records start at every offset and the buffer wraps often
// (and, in the second case, grows): every held record reads back whole, the
// newest are held, the bounds hold.
struct WrapCase {
  size_t max_records, max_bytes, max_size;
  int pushes;
};
class RecordRingWraps : public ::testing::TestWithParam<WrapCase> {};

TEST_P(RecordRingWraps, WithoutLosingOrMixingRecords) {
  const auto [max_records, max_bytes, max_size, pushes] = GetParam();
  RecordRing r(max_records, max_bytes, 1);
  std::deque<std::string> model;
  std::mt19937 rng(42);
  uint64_t next = 1;
  for (int i = 0; i < pushes; ++i) {
    size_t size = rng() % 3 == 0 ? rng() % max_size : rng() % 40;
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
      ASSERT_GT(r.bytes() + 2 * Cost(max_size + 8), max_bytes) << i;
    }
    ASSERT_LE(r.capacity(), (max_bytes + 7) & ~size_t{7});
  }
}

INSTANTIATE_TEST_SUITE_P(Bounds, RecordRingWraps,
                         ::testing::Values(WrapCase{300, 16 << 10, 2000, 20000},
                                           WrapCase{100000, 3 << 20, 20000, 4000}));

// The buffer grows from 1 MiB while the record bound is not reached, and
// stays small when the record bound is what limits.
TEST(RecordRing, GrowsOnlyAsTheHeldRecordsNeed) {
  RecordRing few(100, 64 << 20, 1);
  for (int i = 0; i < 10000; ++i) few.Push(std::string(1000, 'f'), i);
  EXPECT_EQ(few.size(), 100u);
  EXPECT_EQ(few.capacity(), RecordRing::kInitialBytes);
  // The head went round the 1 MiB buffer; 100 slots fit in a page.
  EXPECT_EQ(few.resident(), RecordRing::kInitialBytes + 4096);

  RecordRing big(1000, 8 << 20, 1);
  const std::string rec(10 << 10, 'b');
  for (int i = 1; i <= 1000; ++i) big.Push(absl::StrCat(i, rec), i);
  EXPECT_EQ(big.capacity(), size_t{8} << 20);
  EXPECT_LE(big.bytes(), size_t{8} << 20);
  // 10,264 bytes each; a wrap's padding may cost one.
  EXPECT_GE(big.size(), (size_t{8} << 20) / Cost(4 + rec.size()) - 1);
  EXPECT_LE(big.size(), (size_t{8} << 20) / Cost(4 + rec.size()));
  EXPECT_EQ(big.last_seq(), 1000u);
  EXPECT_LE(big.resident(), (size_t{8} << 20) + 2 * 4096);
  EXPECT_GE(big.resident(), big.bytes());
  for (uint64_t s = big.first_seq(); s <= 1000; ++s) {
    ASSERT_EQ(big.record(s), absl::StrCat(s, rec)) << s;
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
