// Regression tests for what the table-region fuzzer (tables_fuzz.cc) showed:
// a region file that AttachTables / AttachState accepted, but that leads a
// reader outside the region or into a wait that never ends. The rule:
// a corrupted region must be refused with a clear error, not followed. Each
// test accepts either fix: Attach refuses the region, or the reader stays
// within bounds and returns.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "common/tables/tables.h"
#include "gtest/gtest.h"

namespace tandem::tables {
namespace {

class RegionRegressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-region-regression-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    tables_path_ = TablesPath(dir_, "r");
    state_path_ = StatePath(dir_, "r");
    auto w = TablesWriter::Open(tables_path_, Capacity{8, 4});
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->SetVips({*IpAddr::Parse("198.18.0.100")}).ok());
    ASSERT_TRUE((*w)->AddMeeting(1, 1).ok());
    LegSpec s;
    s.leg_id = 101;
    s.meeting_id = 1;
    s.key.remote = *IpAddr::Parse("198.18.0.10");
    s.key.local = *IpAddr::Parse("198.18.0.100");
    s.key.remote_port = 5000;
    s.key.local_port = 20000;
    key_ = s.key;
    ASSERT_TRUE((*w)->AddLeg(s).ok());
    ASSERT_TRUE(OpenOrCreateState(state_path_, 8, 1).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `fn` in a child process: true if it returned within `seconds`
  // without a crash. (A reader that loops forever or faults must fail the
  // test, not take the test binary with it.)
  static bool ReturnsInTime(const std::function<void()>& fn, int seconds = 3) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(seconds);
      fn();
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr, "reader died of signal %d (%s)\n", WTERMSIG(status),
                   WTERMSIG(status) == SIGALRM ? "did not return in time" : "crash");
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  std::string dir_, tables_path_, state_path_;
  LegKey key_;
};

// Corrupts the tables file through a fresh mapping (as a stray writer, a bad
// disk image or a bug would).
template <typename Fn>
void Corrupt(const std::string& path, Fn fn) {
  auto r = AttachTables(path);
  ASSERT_TRUE(r.ok()) << r.status();
  fn(r->second);
}

TEST_F(RegionRegressionTest, BucketIndexPastTheLegArrayIsNotFollowed) {
  Corrupt(tables_path_, [&](const TablesView& v) {
    v.bucket(HashLegKey(key_)).store(0x7ffffff0u);
  });
  auto r = AttachTables(tables_path_);
  if (!r.ok()) return;  // refused: fixed by validation on attach
  TablesView v = r->second;
  LegKey k = key_;
  EXPECT_TRUE(ReturnsInTime([&] { (void)v.Find(k); }))
      << "AttachTables accepted a region whose hash bucket points to leg slot 0x7ffffff0 "
         "(capacity 8), and TablesView::Find followed it out of the region";
}

TEST_F(RegionRegressionTest, HashChainLoopDoesNotHangFind) {
  LegKey other = key_;
  other.remote_port = 5001;  // not in the table: Find walks the whole chain
  Corrupt(tables_path_, [&](const TablesView& v) {
    uint32_t slot = v.Find(key_);
    ASSERT_NE(slot, kNil);
    v.leg(slot).hash_next.store(slot);  // the chain loops on itself
    v.bucket(HashLegKey(other)).store(slot);
  });
  auto r = AttachTables(tables_path_);
  if (!r.ok()) return;
  TablesView v = r->second;
  EXPECT_TRUE(ReturnsInTime([&] { (void)v.Find(other); }))
      << "AttachTables accepted a region whose hash chain loops, and TablesView::Find "
         "never returned";
}

TEST_F(RegionRegressionTest, MeetingListIndexPastTheLegArrayIsRefused) {
  Corrupt(tables_path_, [&](const TablesView& v) {
    for (uint32_t m = 0; m < v.meeting_capacity(); ++m) {
      if (v.meeting(m).state.load() == uint8_t(EntryState::kLive)) {
        v.meeting(m).head[0].store(0x7ffffff0u);
      }
    }
  });
  // The fan-out walks meeting lists without bounds checks (switch/worker.cc),
  // so the region must not be accepted.
  auto r = AttachTables(tables_path_);
  EXPECT_FALSE(r.ok()) << "AttachTables accepted a region whose meeting list points to leg "
                          "slot 0x7ffffff0 (capacity 8)";
}

TEST_F(RegionRegressionTest, OddVipSequenceDoesNotHangVips) {
  // A writer killed inside SetVips leaves the sequence odd.
  Corrupt(tables_path_, [&](const TablesView& v) { v.header().vip_seq.store(7); });
  auto r = AttachTables(tables_path_);
  if (!r.ok()) return;
  TablesView v = r->second;
  EXPECT_TRUE(ReturnsInTime([&] { (void)v.Vips(); }))
      << "TablesView::Vips spins forever on an odd vip_seq (a writer that died mid-update)";
}

TEST_F(RegionRegressionTest, OddPeerSequenceDoesNotHangReadPeer) {
  // A switch killed while recording a heartbeat leaves the sequence odd.
  {
    auto s = AttachState(state_path_);
    ASSERT_TRUE(s.ok()) << s.status();
    s->second.header().peer[0].seq.store(3);
  }
  auto s = AttachState(state_path_);
  if (!s.ok()) return;
  StateView v = s->second;
  EXPECT_TRUE(ReturnsInTime([&] { (void)ReadPeer(v, 0); }))
      << "ReadPeer spins forever on an odd sequence (a switch that died mid-update)";
}

TEST_F(RegionRegressionTest, TruncatedRegionsAreRefusedWithTheirName) {
  ASSERT_EQ(truncate(tables_path_.c_str(), 4096 + 64), 0);
  auto r = AttachTables(tables_path_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(r.status().message().find(tables_path_), absl::string_view::npos) << r.status();
  ASSERT_EQ(truncate(state_path_.c_str(), 100), 0);
  auto s = AttachState(state_path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(state_path_), absl::string_view::npos) << s.status();
}

}  // namespace
}  // namespace tandem::tables
