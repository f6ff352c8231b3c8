#include "control/store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/control/test_dir.h"

namespace tandem::control {
namespace {

using testing::TempDir;

v1::Site MakeSite(uint64_t id, const std::string& name) {
  v1::Site s;
  s.set_site_id(id);
  s.set_name(name);
  (*s.mutable_look_and_feel())["color"] = "blue";
  s.mutable_policy()->set_max_legs(10);
  return s;
}

TEST(StoreTest, CommittedRowsSurviveReopen) {
  TempDir dir;
  {
    auto store = Store::Open(dir.File("s.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Begin().ok());
    ASSERT_TRUE((*store)->PutSite(MakeSite(1, "acme")).ok());
    v1::Meeting m;
    m.set_meeting_id(7);
    m.set_site_id(1);
    m.set_title("standup");
    m.set_state(v1::LIVE);
    ASSERT_TRUE((*store)->PutMeeting(m).ok());
    v1::Participant p;
    p.set_participant_id(3);
    p.set_meeting_id(7);
    p.set_name("alice");
    p.add_legs()->set_leg_id(99);  // legs are never stored
    ASSERT_TRUE((*store)->PutParticipant(p).ok());
    ASSERT_TRUE((*store)->SetMeta("epoch", 4).ok());
    ASSERT_TRUE((*store)->Commit().ok());
  }
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  auto sites = (*store)->LoadSites();
  ASSERT_TRUE(sites.ok());
  ASSERT_EQ(sites->size(), 1u);
  EXPECT_EQ((*sites)[0].name(), "acme");
  EXPECT_EQ((*sites)[0].look_and_feel().at("color"), "blue");
  EXPECT_EQ((*sites)[0].policy().max_legs(), 10u);
  auto meetings = (*store)->LoadMeetings();
  ASSERT_EQ(meetings->size(), 1u);
  EXPECT_EQ((*meetings)[0].state(), v1::LIVE);
  auto parts = (*store)->LoadParticipants(7);
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].name(), "alice");
  EXPECT_EQ((*parts)[0].legs_size(), 0);
  EXPECT_EQ(*(*store)->GetMeta("epoch", 1), 4u);
  EXPECT_EQ(*(*store)->GetMeta("missing", 9), 9u);
  EXPECT_EQ(*(*store)->MaxParticipantId(), 3u);
  EXPECT_EQ((*store)->GetParticipant(3)->name(), "alice");
  EXPECT_TRUE(absl::IsNotFound((*store)->GetParticipant(4).status()));
}

TEST(StoreTest, RolledBackRowsAreGone) {
  TempDir dir;
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Begin().ok());
  ASSERT_TRUE((*store)->PutSite(MakeSite(1, "acme")).ok());
  (*store)->Rollback();
  EXPECT_TRUE((*store)->LoadSites()->empty());
  // An uncommitted transaction is lost when the store closes (as on kill -9).
  ASSERT_TRUE((*store)->Begin().ok());
  ASSERT_TRUE((*store)->PutSite(MakeSite(2, "beta")).ok());
  store->reset();
  auto again = Store::Open(dir.File("s.db"));
  EXPECT_TRUE((*again)->LoadSites()->empty());
}

TEST(StoreTest, DeleteSiteTakesItsMeetingsAndParticipants) {
  TempDir dir;
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.Begin().ok());
  ASSERT_TRUE(s.PutSite(MakeSite(1, "acme")).ok());
  ASSERT_TRUE(s.PutSite(MakeSite(2, "beta")).ok());
  for (uint64_t id : {10, 20}) {
    v1::Meeting m;
    m.set_meeting_id(id);
    m.set_site_id(id / 10);
    ASSERT_TRUE(s.PutMeeting(m).ok());
    v1::Participant p;
    p.set_participant_id(id + 1);
    p.set_meeting_id(id);
    ASSERT_TRUE(s.PutParticipant(p).ok());
  }
  ASSERT_TRUE(s.Commit().ok());
  ASSERT_TRUE(s.Begin().ok());
  ASSERT_TRUE(s.DeleteSite(1).ok());
  ASSERT_TRUE(s.Commit().ok());
  ASSERT_EQ(s.LoadSites()->size(), 1u);
  ASSERT_EQ(s.LoadMeetings()->size(), 1u);
  EXPECT_EQ(s.LoadMeetings()->front().meeting_id(), 20u);
  EXPECT_TRUE(s.LoadParticipants(10)->empty());
  EXPECT_EQ(s.LoadParticipants(20)->size(), 1u);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

void WriteOneSite(Store& s) {
  ASSERT_TRUE(s.Begin().ok());
  ASSERT_TRUE(s.PutSite(MakeSite(1, "acme")).ok());
  ASSERT_TRUE(s.Commit().ok());
}

// Every site's data: readable by the daemon's user alone, WAL files included.
TEST(StoreTest, FilesAreOwnerOnly) {
  TempDir dir;
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  WriteOneSite(**store);
  for (const char* f : {"s.db", "s.db-wal", "s.db-shm"}) {
    EXPECT_EQ(ModeOf(dir.File(f)), 0600u) << f;
  }
}

TEST(StoreTest, LooserFilesOfAnOlderVersionAreTightened) {
  TempDir dir;
  {
    auto store = Store::Open(dir.File("s.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    WriteOneSite(**store);
    for (const char* f : {"s.db", "s.db-wal", "s.db-shm"}) {
      ASSERT_EQ(chmod(dir.File(f).c_str(), 0644), 0);
    }
  }
  // An abrupt end leaves -wal and -shm behind; a clean close removes them.
  for (const char* f : {"s.db-wal", "s.db-shm"}) {
    int fd = open(dir.File(f).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    fchmod(fd, 0644);
    close(fd);
  }
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  for (const char* f : {"s.db", "s.db-wal", "s.db-shm"}) {
    EXPECT_EQ(ModeOf(dir.File(f)), 0600u) << f;
  }
}

TEST(StoreTest, RefusesASymlink) {
  TempDir dir;
  std::string target = dir.File("elsewhere.db");
  ASSERT_EQ(symlink(target.c_str(), dir.File("s.db").c_str()), 0);
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(absl::IsPermissionDenied(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), ::testing::HasSubstr("symbolic link"));
  EXPECT_NE(access(target.c_str(), F_OK), 0) << "created through the link";
}

TEST(StoreTest, RefusesAFileOwnedByAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root";
  TempDir dir;
  { ASSERT_TRUE(Store::Open(dir.File("s.db")).ok()); }
  ASSERT_EQ(chown(dir.File("s.db").c_str(), 65534, 65534), 0);
  auto store = Store::Open(dir.File("s.db"));
  ASSERT_TRUE(absl::IsPermissionDenied(store.status())) << store.status();
  EXPECT_THAT(store.status().message(),
              ::testing::AllOf(::testing::HasSubstr(dir.File("s.db")),
                               ::testing::HasSubstr("owned by uid 65534")));
}

TEST(StoreTest, RefusesAnUnwritablePath) {
  auto store = Store::Open("/nonexistent-dir/x/s.db");
  EXPECT_FALSE(store.ok());
}

}  // namespace
}  // namespace tandem::control
