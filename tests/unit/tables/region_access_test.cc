// Who may have made or changed the region files (common/secure_file.h): a
// local user who plants a region file, a symlink or a directory of their own
// before the daemons start must be refused, with the file, its owner and its
// mode named, and nothing mapped or replaced.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "common/secure_file.h"
#include "common/tables/tables.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tables/tables_testing.h"

namespace tandem::tables {
namespace {

using ::tandem::tables::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr Capacity kSmall{.legs = 100, .meetings = 10};
constexpr uid_t kStranger = 65534;  // nobody

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Changing a file's owner needs root; the suite runs as root (it drives DPDK).
#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root"

TEST(RegionAccess, NewRegionsAreOwnerOnly) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  ASSERT_TRUE(OpenOrCreateState(dir.state(), 100, 1).ok());
  EXPECT_EQ(ModeOf(dir.tables()), 0600u);
  EXPECT_EQ(ModeOf(dir.state()), 0600u);
}

TEST(RegionAccess, MissingDirectoryIsMadeOwnerOnly) {
  TempDir dir;
  std::string sub = dir.path() + "/tandem";
  ASSERT_TRUE(OpenOrCreateTables(TablesPath(sub, "t"), kSmall).ok());
  EXPECT_EQ(ModeOf(sub), 0700u);
}

TEST(RegionAccess, GroupDirectoryGivesItsGroupReadOnlyFiles) {
  REQUIRE_ROOT();
  TempDir dir;
  std::string sub = dir.path() + "/tandem";
  const gid_t group = 65534;
  ASSERT_TRUE(PreparePrivateDir(sub, group).ok());
  EXPECT_EQ(ModeOf(sub), 0750u);
  ASSERT_TRUE(OpenOrCreateTables(TablesPath(sub, "t"), kSmall).ok());
  struct stat st;
  ASSERT_EQ(stat(TablesPath(sub, "t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, group);
  EXPECT_TRUE(AttachTables(TablesPath(sub, "t")).ok());
}

TEST(RegionAccess, FileOwnedByAnotherUserIsRefused) {
  REQUIRE_ROOT();
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  ASSERT_EQ(chown(dir.tables().c_str(), kStranger, kStranger), 0);
  auto a = AttachTables(dir.tables());
  ASSERT_TRUE(absl::IsPermissionDenied(a.status())) << a.status();
  EXPECT_THAT(a.status().message(), AllOf(HasSubstr(dir.tables()), HasSubstr("owned by uid 65534"),
                                          HasSubstr("mode 0600")));
  EXPECT_TRUE(absl::IsPermissionDenied(OpenOrCreateTables(dir.tables(), kSmall).status()));

  // The switch's state region is never replaced in place of a refused one.
  ASSERT_TRUE(OpenOrCreateState(dir.state(), 100, 1).ok());
  ASSERT_EQ(chown(dir.state().c_str(), kStranger, kStranger), 0);
  auto s = OpenOrCreateState(dir.state(), 100, 1);
  EXPECT_TRUE(absl::IsPermissionDenied(s.status())) << s.status();
  struct stat st;
  ASSERT_EQ(stat(dir.state().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kStranger) << "the refused file was replaced";
}

TEST(RegionAccess, SymlinkIsRefused) {
  TempDir dir;
  std::string real = dir.path() + "/elsewhere.tables";
  ASSERT_TRUE(OpenOrCreateTables(real, kSmall).ok());
  ASSERT_EQ(symlink(real.c_str(), dir.tables().c_str()), 0);
  auto a = AttachTables(dir.tables());
  ASSERT_TRUE(absl::IsPermissionDenied(a.status())) << a.status();
  EXPECT_THAT(a.status().message(), AllOf(HasSubstr(dir.tables()), HasSubstr("symbolic link")));

  // A dangling link is not followed to create the region where it points.
  std::string target = dir.path() + "/planted";
  ASSERT_EQ(symlink(target.c_str(), dir.state().c_str()), 0);
  EXPECT_TRUE(absl::IsPermissionDenied(OpenOrCreateState(dir.state(), 100, 1).status()));
  EXPECT_NE(access(target.c_str(), F_OK), 0) << "a region was created through the link";
}

TEST(RegionAccess, GroupOrWorldWritableFileIsRefused) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  for (mode_t mode : {0660, 0602, 0604, 0666}) {
    ASSERT_EQ(chmod(dir.tables().c_str(), mode), 0);
    auto a = AttachTables(dir.tables());
    ASSERT_TRUE(absl::IsPermissionDenied(a.status())) << std::oct << mode << " " << a.status();
    char want[16];
    snprintf(want, sizeof want, "mode %04o", mode);
    EXPECT_THAT(a.status().message(), AllOf(HasSubstr(dir.tables()), HasSubstr(want)));
  }
  ASSERT_EQ(chmod(dir.tables().c_str(), 0640), 0);
  EXPECT_TRUE(AttachTables(dir.tables()).ok()) << "a group may read the regions";
}

TEST(RegionAccess, DirectoryOthersCanEnterOrWriteIsRefused) {
  TempDir dir;
  ASSERT_TRUE(OpenOrCreateTables(dir.tables(), kSmall).ok());
  for (mode_t mode : {01777, 0777, 0775, 0755, 0701}) {
    ASSERT_EQ(chmod(dir.path().c_str(), mode), 0);
    auto a = AttachTables(dir.tables());
    ASSERT_TRUE(absl::IsPermissionDenied(a.status())) << std::oct << mode << " " << a.status();
    char want[16];
    snprintf(want, sizeof want, "mode %04o", mode);
    EXPECT_THAT(a.status().message(), AllOf(HasSubstr(dir.path()), HasSubstr(want)));
    EXPECT_TRUE(absl::IsPermissionDenied(OpenOrCreateState(dir.state(), 100, 1).status()));
    EXPECT_NE(access(dir.state().c_str(), F_OK), 0) << "created in a refused directory";
  }
  ASSERT_EQ(chmod(dir.path().c_str(), 0750), 0);
  EXPECT_TRUE(AttachTables(dir.tables()).ok());
}

TEST(RegionAccess, DirectoryOwnedByAnotherUserOrASymlinkIsRefused) {
  REQUIRE_ROOT();
  TempDir dir;
  std::string sub = dir.path() + "/theirs";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  ASSERT_EQ(chown(sub.c_str(), kStranger, kStranger), 0);
  auto a = OpenOrCreateTables(TablesPath(sub, "t"), kSmall);
  ASSERT_TRUE(absl::IsPermissionDenied(a.status())) << a.status();
  EXPECT_THAT(a.status().message(), AllOf(HasSubstr(sub), HasSubstr("owned by uid 65534")));

  std::string mine = dir.path() + "/mine";
  std::string link = dir.path() + "/link";
  ASSERT_EQ(mkdir(mine.c_str(), 0700), 0);
  ASSERT_EQ(symlink(mine.c_str(), link.c_str()), 0);
  auto l = OpenOrCreateTables(TablesPath(link, "t"), kSmall);
  ASSERT_TRUE(absl::IsPermissionDenied(l.status())) << l.status();
  EXPECT_THAT(l.status().message(), AllOf(HasSubstr(link), HasSubstr("symbolic link")));
}

}  // namespace
}  // namespace tandem::tables
