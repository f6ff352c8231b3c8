// One numbering (docs/pair.md, "Replication"): the replication source streams
// the change log itself. A record is stored once (the source's backlog is
// the log's ring), numbered once (the stream's history and sequence are the
// change log's id and sequence) and tagged once. Here a real core's change
// log is streamed by a real ReplicationSource to a real ReplicationSink over
// loopback TCP.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "control/core.h"
#include "mirror/replication.h"
#include "tests/unit/control/node_config.h"
#include "tests/unit/control/test_dir.h"

namespace tandem::control {
namespace {

using testing::NodeConfig;
using testing::TempDir;

constexpr char kKey[] = "one-numbering-test-key-0123456789";

// What the standby received: record by sequence.
class Received {
 public:
  mirror::SinkCallbacks Callbacks() {
    mirror::SinkCallbacks cb;
    cb.begin_snapshot = [this](uint64_t history, uint64_t) {
      absl::MutexLock l(&mu_);
      history_ = history;
    };
    cb.apply = [this](mirror::RecordKind kind, uint64_t seq, absl::string_view r) {
      absl::MutexLock l(&mu_);
      if (kind != mirror::RecordKind::kSnapshot) records_[seq] = std::string(r);
      return absl::OkStatus();
    };
    cb.end_snapshot = [](uint64_t) { return absl::OkStatus(); };
    return cb;
  }
  std::map<uint64_t, std::string> records() const {
    absl::MutexLock l(&mu_);
    return records_;
  }
  uint64_t history() const {
    absl::MutexLock l(&mu_);
    return history_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, std::string> records_;
  uint64_t history_ = 0;
};

uint64_t CreateSite(Core& core, const std::string& name) {
  v1::CreateSiteRequest req;
  req.mutable_site()->set_name(name);
  v1::Site s;
  EXPECT_TRUE(core.CreateSite(req, &s).ok());
  return s.site_id();
}

TEST(OneNumberingTest, TheStandbyAppliesTheActivesChangeLogPositions) {
  TempDir dir;
  auto core = Core::Start(NodeConfig(dir, "a"));
  ASSERT_TRUE(core.ok()) << core.status();
  Core& active = **core;
  // Changes before the stream starts (the ROLE change of a takeover, an
  // earlier site): the stream's numbers are the log's all the same.
  active.SetNodeRole(tables::Role::kActive, 2, "test");
  CreateSite(active, "before");
  ChangeLog& log = active.changes();

  mirror::SourceOptions so;
  so.node_id = 1;
  so.key = kKey;
  so.tls = false;
  so.log = log.records();
  so.snapshot = [&log]() -> absl::StatusOr<std::unique_ptr<mirror::SnapshotReader>> {
    return mirror::WholeSnapshot({}, log.last_seq());
  };
  auto source = mirror::ReplicationSource::Start(so);
  ASSERT_TRUE(source.ok()) << source.status();

  Received got;
  mirror::SinkOptions ko;
  ko.node_id = 2;
  ko.key = kKey;
  ko.tls = false;
  ko.source = {"127.0.0.1", (*source)->port()};
  ko.reconnect_interval = absl::Milliseconds(20);
  auto sink = mirror::ReplicationSink::Start(ko, got.Callbacks());
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!(*sink)->status().consistent && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE((*sink)->status().consistent);

  CreateSite(active, "one");
  const uint64_t usage_seq = log.AppendRecord(std::string(1, kUsageTag));  // no change
  CreateSite(active, "two");
  v1::DigestRecord digest = active.AppendDigest();
  const uint64_t last = log.last_seq();
  EXPECT_EQ(usage_seq + 2, last);

  while ((*sink)->status().applied_seq < last && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // One numbering: the standby's applied position is the active's change-log
  // position, in the same history as the log's id.
  mirror::SinkStatus ss = (*sink)->status();
  EXPECT_EQ(ss.applied_seq, last);
  EXPECT_EQ(ss.history, log.log_id());
  EXPECT_EQ(got.history(), log.log_id());
  mirror::SourceStatus st = (*source)->status();
  EXPECT_EQ(st.last_seq, last);
  EXPECT_EQ(st.history, log.log_id());

  // Each change arrives at its own seq, tagged once; the records that are no
  // changes at the seqs the log gave them.
  std::map<uint64_t, std::string> records = got.records();
  ASSERT_EQ(records.size(), 4u);
  for (uint64_t seq = usage_seq - 1; seq <= last; ++seq) {
    ASSERT_TRUE(records.contains(seq)) << seq;
    const std::string& r = records[seq];
    ASSERT_FALSE(r.empty());
    if (seq == usage_seq) {
      EXPECT_EQ(r, std::string(1, kUsageTag));
    } else if (seq == last) {
      ASSERT_EQ(r[0], kDigestTag);
      v1::DigestRecord d;
      ASSERT_TRUE(d.ParseFromString(r.substr(1)));
      EXPECT_EQ(d.position(), last - 1);  // the digest of the state before it
      EXPECT_EQ(d.sha256(), digest.sha256());
    } else {
      ASSERT_EQ(r[0], kChangeTag) << seq;
      v1::Change c;
      ASSERT_TRUE(c.ParseFromString(r.substr(1)));
      EXPECT_EQ(c.seq(), seq);
      EXPECT_EQ(c.log_id(), log.log_id());
      EXPECT_EQ(c.kind(), v1::Change::SITE_PUT);
    }
  }

  // Stored once: the source's backlog is the change log's ring, every
  // record since the log began.
  EXPECT_EQ(st.backlog_records, last);
  {
    absl::MutexLock l(&log.records()->mu());
    EXPECT_EQ(st.backlog_bytes, log.records()->ring().bytes());
    EXPECT_EQ(st.backlog_resident, log.records()->ring().resident());
  }
  // A Watch reads the changes only, past the other records.
  std::vector<v1::Change> changes;
  uint64_t next = 0;
  ASSERT_TRUE(log.Read(usage_seq - 1, 100, absl::ZeroDuration(), &changes, &next).ok());
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].seq(), usage_seq - 1);
  EXPECT_EQ(changes[1].seq(), usage_seq + 1);
  EXPECT_EQ(next, last + 1);
}

}  // namespace
}  // namespace tandem::control
