#include "control/change_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include <thread>

namespace tandem::control {
namespace {

v1::Change SitePut(uint64_t id) {
  v1::Change c;
  c.set_kind(v1::Change::SITE_PUT);
  c.set_id(id);
  c.mutable_site()->set_site_id(id);
  // StrCat, not "s" + std::to_string(id): GCC 12 at -O3 warns falsely about
  // that concatenation (-Werror=restrict, GCC bug 105329), which broke the
  // release build.
  c.mutable_site()->set_name(absl::StrCat("s", id));
  return c;
}

TEST(ChangeLogTest, NumbersChangesAndResumesFromAnyHeldOne) {
  ChangeLog log(100, 1 << 20, 77);
  for (uint64_t i = 1; i <= 5; ++i) EXPECT_EQ(log.Append(SitePut(i)), i);
  EXPECT_EQ(log.last_seq(), 5u);
  std::vector<v1::Change> out;
  ASSERT_TRUE(log.Read(3, 10, absl::ZeroDuration(), &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].seq(), 3u);
  EXPECT_EQ(out[0].log_id(), 77u);
  EXPECT_EQ(out[0].site().name(), "s3");
  EXPECT_GT(out[0].unix_ns(), 0u);
  EXPECT_EQ(out[2].seq(), 5u);
}

TEST(ChangeLogTest, TooOldIsOutOfRange) {
  ChangeLog log(3, 1 << 20, 1);
  std::vector<v1::Change> batch;
  for (uint64_t i = 1; i <= 10; ++i) batch.push_back(SitePut(i));
  EXPECT_EQ(log.AppendAll(batch), 10u);
  std::vector<v1::Change> out;
  EXPECT_TRUE(absl::IsOutOfRange(log.Read(7, 10, absl::ZeroDuration(), &out)));
  ASSERT_TRUE(log.Read(8, 10, absl::ZeroDuration(), &out).ok());
  EXPECT_EQ(out.size(), 3u);
}

// A demoted node resyncs from the new active: a reader left behind the
// resync is sent to the active node (Unavailable), not told to resync
// (OutOfRange), unless the ring has since moved past it anyway.
TEST(ChangeLogTest, ReaderBehindAResyncIsSentToTheActiveNode) {
  ChangeLog log(3, 1 << 20, 1);
  std::vector<v1::Change> batch;
  for (uint64_t i = 1; i <= 2; ++i) batch.push_back(SitePut(i));
  log.AppendAll(batch);
  log.Reset(1, 5);
  std::vector<v1::Change> out;
  absl::Status st = log.Read(3, 10, absl::ZeroDuration(), &out);
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("active node"));
  batch.clear();
  for (uint64_t i = 5; i <= 8; ++i) batch.push_back(SitePut(i));
  log.AppendAll(batch);  // the ring (3) moves past the resync point
  EXPECT_TRUE(absl::IsOutOfRange(log.Read(3, 10, absl::ZeroDuration(), &out)));
}

TEST(ChangeLogTest, HistoryIsBoundedInBytesToo) {
  ChangeLog log(1000, 8192, 1);
  for (uint64_t i = 1; i <= 100; ++i) {
    v1::Change c = SitePut(i);
    c.mutable_site()->set_name(std::string(200, 'n'));
    log.Append(std::move(c));
  }
  // ~230 bytes each: 8 KiB holds the newest 30-odd.
  std::vector<v1::Change> out;
  EXPECT_TRUE(absl::IsOutOfRange(log.Read(60, 100, absl::ZeroDuration(), &out)));
  ASSERT_TRUE(log.Read(80, 100, absl::ZeroDuration(), &out).ok());
  ASSERT_EQ(out.size(), 21u);
  EXPECT_EQ(out.back().seq(), 100u);
  EXPECT_EQ(out.back().site().site_id(), 100u);
}

TEST(ChangeLogTest, ReaderWaitsForTheNextChange) {
  ChangeLog log(10, 1 << 20, 1);
  std::vector<v1::Change> out;
  ASSERT_TRUE(log.Read(1, 10, absl::Milliseconds(10), &out).ok());
  EXPECT_TRUE(out.empty());
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    log.Append(SitePut(1));
  });
  ASSERT_TRUE(log.Read(1, 10, absl::Seconds(5), &out).ok());
  writer.join();
  ASSERT_EQ(out.size(), 1u);
  log.Close();
  EXPECT_TRUE(absl::IsCancelled(log.Read(2, 10, absl::Seconds(5), &out)));
}

}  // namespace
}  // namespace tandem::control

namespace tandem::control {
namespace {

// A standby keeps the active's numbers: the stream's records that are no
// changes (usage, digest marks) leave gaps between the changes it applies,
// which its log holds as empty records rather than starting anew (a Watch on
// the standby goes on), and a Watch reads past them.
TEST(ChangeLogTest, AStandbyKeepsTheActivesNumbersAcrossRecordsThatAreNoChanges) {
  ChangeLog active(100, 1 << 20, 9);
  std::vector<v1::Change> one{SitePut(1)};
  active.AppendAll(one);
  active.AppendRecord(std::string(1, kUsageTag));
  active.AppendRecord(std::string(1, kDigestTag));
  one = {SitePut(2)};
  active.AppendAll(one);
  std::vector<v1::Change> changes;
  uint64_t next = 0;
  ASSERT_TRUE(active.Read(1, 10, absl::ZeroDuration(), &changes, &next).ok());
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].seq(), 4u);
  EXPECT_EQ(next, 5u);

  ChangeLog standby(100, 1 << 20, 1);
  standby.Reset(9, 1);
  for (const v1::Change& c : changes) standby.AppendReplicated(c.SerializeAsString(), c);
  EXPECT_EQ(standby.last_seq(), 4u);
  std::vector<v1::Change> mirrored;
  ASSERT_TRUE(standby.Read(1, 10, absl::ZeroDuration(), &mirrored, &next).ok());
  ASSERT_EQ(mirrored.size(), 2u);
  EXPECT_EQ(mirrored[0].SerializeAsString(), changes[0].SerializeAsString());
  EXPECT_EQ(mirrored[1].SerializeAsString(), changes[1].SerializeAsString());
  EXPECT_EQ(next, 5u);

  // Such a record at the tail of the stream keeps the positions equal; one
  // that does not follow on (another numbering) is left out.
  standby.AppendReplicatedRecord(5, std::string(1, kUsageTag));
  EXPECT_EQ(standby.last_seq(), 5u);
  standby.AppendReplicatedRecord(9, std::string(1, kUsageTag));
  EXPECT_EQ(standby.last_seq(), 5u);
}

}  // namespace
}  // namespace tandem::control
