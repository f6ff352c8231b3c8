// Reclamation of removed entries: a slot a reader may still hold is not reused
// until that reader passes a quiescent point, goes offline or dies.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/status/status.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"
#include "gtest/gtest.h"
#include "tests/unit/tables/tables_testing.h"

namespace tandem::tables {
namespace {

using ::tandem::tables::testing::KeyOfLeg;
using ::tandem::tables::testing::MakeLeg;
using ::tandem::tables::testing::TempDir;

class Reclamation : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = TablesWriter::Open(dir_.tables(), {.legs = 4, .meetings = 2});
    ASSERT_TRUE(w.ok()) << w.status();
    writer_ = std::move(*w);
    ASSERT_TRUE(writer_->AddMeeting(1, 1).ok());
    ASSERT_TRUE(writer_->AddLeg(MakeLeg(1, 1)).ok());
    auto r = AttachTables(dir_.tables());  // the reader's own mapping
    ASSERT_TRUE(r.ok()) << r.status();
    reader_map_ = std::move(r->first);
    reader_view_ = r->second;
  }

  // Removes leg 1 while the reader holds it; returns its slot.
  uint32_t RemoveHeldLeg() {
    uint32_t slot = reader_view_.Find(KeyOfLeg(1));
    EXPECT_NE(slot, kNil);
    EXPECT_TRUE(writer_->RemoveLeg(1).ok());
    EXPECT_EQ(writer_->retired(), 1u);
    return slot;
  }

  EntryState StateOf(uint32_t slot) { return EntryState(reader_view_.leg(slot).state.load()); }

  TempDir dir_;
  std::unique_ptr<TablesWriter> writer_;
  Mapping reader_map_;
  TablesView reader_view_;
};

TEST_F(Reclamation, WaitsForReaderUntilQuiescent) {
  auto reader = ReaderHandle::Register(reader_view_, 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint32_t slot = RemoveHeldLeg();

  EXPECT_EQ(writer_->Reclaim(), 0u);
  EXPECT_EQ(StateOf(slot), EntryState::kRetired);
  // The entry the reader stands on is intact, and its slot is not handed out.
  EXPECT_EQ(reader_view_.leg(slot).leg_id, 1u);
  ASSERT_TRUE(writer_->AddLeg(MakeLeg(2, 1)).ok());
  EXPECT_NE(writer_->GetLeg(2)->slot, slot);
  EXPECT_EQ(reader_view_.leg(slot).leg_id, 1u);

  reader->Quiescent();
  EXPECT_EQ(writer_->Reclaim(), 1u);
  EXPECT_EQ(StateOf(slot), EntryState::kFree);
  EXPECT_EQ(writer_->retired(), 0u);
}

TEST_F(Reclamation, OfflineReaderDoesNotHoldBack) {
  auto reader = ReaderHandle::Register(reader_view_, 3);
  ASSERT_TRUE(reader.ok());
  uint32_t slot = RemoveHeldLeg();
  EXPECT_EQ(writer_->Reclaim(), 0u);
  reader->Offline();
  EXPECT_EQ(writer_->Reclaim(), 1u);
  EXPECT_EQ(StateOf(slot), EntryState::kFree);

  // Back online it holds entries retired from then on.
  reader->Online();
  ASSERT_TRUE(writer_->AddLeg(MakeLeg(1, 1)).ok());
  RemoveHeldLeg();
  EXPECT_EQ(writer_->Reclaim(), 0u);
  reader->Unregister();
  EXPECT_EQ(writer_->Reclaim(), 1u);
}

TEST_F(Reclamation, DeadReaderDoesNotHoldBack) {
  int ready[2], hold[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(hold), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A switch worker in another process: registers, then stops in the middle
    // of its work (never quiescent again).
    auto reader = ReaderHandle::Register(reader_view_, 5);
    char c = reader.ok() ? 'r' : 'e';
    (void)!write(ready[1], &c, 1);
    (void)!read(hold[0], &c, 1);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'r');
  EXPECT_EQ(reader_view_.reader(5).pid.load(), child);

  uint32_t slot = RemoveHeldLeg();
  EXPECT_EQ(writer_->Reclaim(), 0u) << "a live reader in another process holds the entry";
  kill(child, SIGKILL);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_EQ(writer_->Reclaim(), 1u);
  EXPECT_EQ(StateOf(slot), EntryState::kFree);
  for (int fd : {ready[0], ready[1], hold[0], hold[1]}) close(fd);
}

TEST_F(Reclamation, FullTableWaitsBrieflyForAGracePeriod) {
  auto reader = ReaderHandle::Register(reader_view_, 0);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(writer_->AddLegs({MakeLeg(2, 1), MakeLeg(3, 1), MakeLeg(4, 1)}).ok());
  RemoveHeldLeg();
  // The reader passes a quiescent point while the writer waits for space.
  std::thread worker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reader->Quiescent();
  });
  absl::Status st = writer_->AddLeg(MakeLeg(5, 1));
  worker.join();
  EXPECT_TRUE(st.ok()) << st;

  // A reader that never passes one: the writer gives up instead of hanging.
  ASSERT_TRUE(writer_->RemoveLeg(5).ok());
  auto start = std::chrono::steady_clock::now();
  st = writer_->AddLeg(MakeLeg(6, 1));
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(Reclamation, RegisterRejectsBadSlot) {
  EXPECT_TRUE(absl::IsInvalidArgument(ReaderHandle::Register(reader_view_, kMaxReaders).status()));
}

}  // namespace
}  // namespace tandem::tables
