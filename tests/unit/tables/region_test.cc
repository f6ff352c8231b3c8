// Creating, attaching and validating the region files: a process must refuse
// a region it does not understand before it follows a single offset in it.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tables/tables_testing.h"

namespace tandem::tables {
namespace {

using ::tandem::tables::testing::TempDir;
using ::testing::HasSubstr;

constexpr Capacity kSmall{.legs = 100, .meetings = 10};

// HashLegKey is CRC-32C whichever way this build computes it (the crc32
// instruction inline, through a function, or the bitwise loop): the writer
// (control, built without SSE4.2) and the readers (the switch, built with it)
// must put every key in the same bucket.
TEST(HashLegKey, IsCrc32cEverywhere) {
  // The check value of CRC-32C (RFC 3720): "123456789" -> 0xe3069283.
  uint64_t w;
  std::memcpy(&w, "12345678", 8);
  uint32_t hw = Crc32c64(0xffffffffu, w);
  uint32_t soft = crc32c_detail::Soft(0xffffffffu, w, 8);
  EXPECT_EQ(hw, soft);
  EXPECT_EQ(~crc32c_detail::Soft(hw, '9', 1), 0xe3069283u);
  EXPECT_EQ(Crc32c32(0x1234u, 0xdeadbeefu), crc32c_detail::Soft(0x1234u, 0xdeadbeefu, 4));
  LegKey v4{};
  v4.remote = *IpAddr::Parse("198.19.1.2");
  v4.local = *IpAddr::Parse("198.18.0.100");
  v4.remote_port = 5004;
  v4.local_port = 40000;
  LegKey v6 = v4;
  v6.remote = *IpAddr::Parse("2001:db8:2::7");
  v6.local = *IpAddr::Parse("2001:db8:1::100");
  // The values the bitwise loop gives (computed once, the same on every machine).
  auto soft_hash = [](const LegKey& k, bool mapped) {
    uint64_t x[4];
    std::memcpy(x, k.remote.b, 16);
    std::memcpy(x + 2, k.local.b, 16);
    uint32_t h = 0x27a3cbd9u;
    if (mapped) {
      h = crc32c_detail::Soft(h, x[1], 8);
      h = crc32c_detail::Soft(h, x[3] >> 32, 4);
    } else {
      for (uint64_t v : x) h = crc32c_detail::Soft(h, v, 8);
    }
    return uint64_t{crc32c_detail::Soft(h, uint32_t{k.remote_port} << 16 | k.local_port, 4)};
  };
  EXPECT_EQ(HashLegKey(v4), soft_hash(v4, true));
  EXPECT_EQ(HashLegKey(v6), soft_hash(v6, false));
  LegKey other = v4;
  other.remote_port++;
  EXPECT_NE(HashLegKey(other), HashLegKey(v4));
}

// Overwrites `size` bytes at `offset` of a region file, as a stray write would.
template <typename T>
void Poke(const std::string& path, size_t offset, T value) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, &value, sizeof value, offset), ssize_t(sizeof value));
  close(fd);
}

TEST(TablesRegion, CreatesThenAttaches) {
  TempDir dir;
  auto created = OpenOrCreateTables(dir.tables(), kSmall);
  ASSERT_TRUE(created.ok()) << created.status();
  const TablesView& v = created->second;
  EXPECT_EQ(v.header().magic, kTablesMagic);
  EXPECT_EQ(v.header().version, kTablesVersion);
  EXPECT_EQ(v.leg_capacity(), 100u);
  EXPECT_EQ(v.meeting_capacity(), 10u);
  EXPECT_EQ(v.role(), Role::kStandby) << "a new region must not forward";
  EXPECT_EQ(v.epoch(), 0u);
  EXPECT_TRUE(v.Vips().empty());
  EXPECT_EQ(v.Find(testing::KeyOfLeg(1)), kNil);

  auto attached = AttachTables(dir.tables());
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(attached->second.leg_capacity(), 100u);

  // An existing region keeps its own capacity.
  auto again = OpenOrCreateTables(dir.tables(), Capacity{.legs = 5000, .meetings = 50});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->second.leg_capacity(), 100u);
}

TEST(TablesRegion, AttachingNothingIsNotFound) {
  TempDir dir;
  auto attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsNotFound(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr(dir.tables()));
}

TEST(TablesRegion, RejectsZeroCapacity) {
  TempDir dir;
  auto created = OpenOrCreateTables(dir.tables(), Capacity{.legs = 0, .meetings = 1});
  EXPECT_TRUE(absl::IsInvalidArgument(created.status())) << created.status();
}

TEST(TablesRegion, RefusesCorruptedMagic) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  Poke(dir.tables(), offsetof(TablesHeader, magic), uint64_t{0x0123456789abcdef});
  // Also point the offsets far outside the file: they must never be followed.
  Poke(dir.tables(), offsetof(TablesHeader, legs_offset), uint64_t{1} << 40);

  auto attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsFailedPrecondition(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr("not a Tandem tables region"));
  // Neither the writer nor a creator replaces a region it does not understand.
  auto writer = TablesWriter::Open(dir.tables(), kSmall);
  EXPECT_TRUE(absl::IsFailedPrecondition(writer.status())) << writer.status();
  auto created = OpenOrCreateTables(dir.tables(), kSmall);
  EXPECT_FALSE(created.ok());
}

TEST(TablesRegion, RefusesOtherLayoutVersion) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  Poke(dir.tables(), offsetof(TablesHeader, version), uint32_t{kTablesVersion + 1});
  auto attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsFailedPrecondition(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(),
              HasSubstr(absl::StrCat("layout version ", kTablesVersion + 1)));
}

TEST(TablesRegion, RefusesInconsistentOffsets) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  Poke(dir.tables(), offsetof(TablesHeader, legs_offset), uint64_t{1} << 40);
  auto attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsDataLoss(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr("inconsistent"));
}

TEST(TablesRegion, RefusesTruncatedFile) {
  TempDir dir;
  size_t size;
  {
    auto created = OpenOrCreateTables(dir.tables(), kSmall);
    ASSERT_TRUE(created.ok());
    size = created->first.size();
  }
  ASSERT_EQ(truncate(dir.tables().c_str(), size - 4096), 0);
  auto attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsDataLoss(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr("truncated"));

  // Shorter than a header: refused before the header is read.
  ASSERT_EQ(truncate(dir.tables().c_str(), 100), 0);
  attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsDataLoss(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr("truncated"));

  ASSERT_EQ(truncate(dir.tables().c_str(), 0), 0);
  attached = AttachTables(dir.tables());
  EXPECT_TRUE(absl::IsDataLoss(attached.status())) << attached.status();
}

TEST(StateRegion, CreatesAttachesAndRefusesCorruption) {
  TempDir dir;
  {
    auto created = OpenOrCreateState(dir.state(), 100, 2);
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_EQ(created->second.max_workers(), 2u);
    created->second.worker_counters(1).rx_packets = 7;
  }
  {
    // The same shape keeps the counters (a restarted switch).
    auto reopened = OpenOrCreateState(dir.state(), 100, 2);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(reopened->second.worker_counters(1).rx_packets, 7u);
    auto attached = AttachState(dir.state());
    ASSERT_TRUE(attached.ok()) << attached.status();
    EXPECT_EQ(SumWorkerCounters(attached->second).rx_packets, 7u);
  }
  Poke(dir.state(), offsetof(StateHeader, magic), uint64_t{42});
  auto attached = AttachState(dir.state());
  EXPECT_TRUE(absl::IsFailedPrecondition(attached.status())) << attached.status();
  EXPECT_THAT(attached.status().message(), HasSubstr("not a Tandem state region"));

  // The switch starts a fresh state region in place of one it cannot use.
  auto fresh = OpenOrCreateState(dir.state(), 100, 2);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->second.worker_counters(1).rx_packets, 0u);
}

TEST(StateRegion, RefusesTruncatedFile) {
  TempDir dir;
  size_t size;
  {
    auto created = OpenOrCreateState(dir.state(), 100, 1);
    ASSERT_TRUE(created.ok());
    size = created->first.size();
  }
  ASSERT_EQ(truncate(dir.state().c_str(), size / 2), 0);
  auto attached = AttachState(dir.state());
  EXPECT_TRUE(absl::IsDataLoss(attached.status())) << attached.status();
}

// The switch's lock on its state region is how tandem-control learns that the
// switch is gone: it must drop the moment the process dies, before anyone
// reaps it (a zombie still has its pid), and a second switch is refused.
TEST(StateRegion, SwitchLockDropsWhenTheProcessDiesUnreaped) {
  TempDir dir;
  auto reader = [&] {
    auto created = OpenOrCreateState(dir.state(), 100, 1);
    EXPECT_TRUE(created.ok()) << created.status();
    return std::move(created->first);
  }();
  EXPECT_FALSE(StateLocked(reader));
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = OpenOrCreateState(dir.state(), 100, 1);
    if (!s.ok() || !LockState(s->first, dir.state()).ok()) _exit(1);
    char c = 1;
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  close(ready[1]);
  EXPECT_TRUE(StateLocked(reader));
  absl::Status second = LockState(reader, dir.state());
  EXPECT_TRUE(absl::IsFailedPrecondition(second)) << second;
  EXPECT_THAT(second.message(), HasSubstr("another tandem-switch"));

  ASSERT_EQ(kill(child, SIGKILL), 0);
  siginfo_t info;
  // Wait for the death without reaping: the child stays a zombie.
  ASSERT_EQ(waitid(P_PID, child, &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(StateLocked(reader)) << "a killed, unreaped switch still counted as running";
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  EXPECT_TRUE(LockState(reader, dir.state()).ok()) << "a new switch takes the lock";
}

}  // namespace
}  // namespace tandem::tables
