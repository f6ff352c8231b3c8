// Replication that must not lose an acknowledged change, stall, or be kept
// from its standby (issue 14): a standby whose store fails, a snapshot read in
// chunks while changes go on, records too long to send, and a flood of
// connections from hosts without the key. Real loopback TCP, real threads.
//
// The state here is a key-value map: a change "k=v" puts a key, "k=" deletes
// it. Applying a change twice changes nothing, as the control plane's PUTs.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "mirror/net.h"
#include "mirror/tls.h"
#include "mirror/replication.h"
#include "tests/unit/mirror/relay.h"

namespace tandem::mirror {
namespace {

const char kKey[] = "replication-test-key-0123456789";
using Map = std::map<std::string, std::string>;

void ApplyTo(Map& m, absl::string_view change) {
  size_t eq = change.find('=');
  std::string k(change.substr(0, eq)), v(change.substr(eq + 1));
  if (v.empty()) {
    m.erase(k);
  } else {
    m[k] = v;
  }
}

bool WaitFor(const std::function<bool()>& pred, absl::Duration limit = absl::Seconds(10)) {
  absl::Time end = absl::Now() + limit;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

class KvPrimary {
 public:
  explicit KvPrimary(size_t backlog = 1u << 20) {
    SourceOptions o;
    o.node_id = 1;
    o.key = kKey;
    o.backlog_records = backlog;
    o.snapshot = [this]() -> absl::StatusOr<std::unique_ptr<SnapshotReader>> {
      return std::make_unique<Reader>(this);
    };
    absl::StatusOr<std::unique_ptr<ReplicationSource>> s = ReplicationSource::Start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    source = std::move(*s);
  }
  // Appends under the lock the snapshot's chunks are read under, as the
  // control core does.
  uint64_t Put(const std::string& k, const std::string& v) {
    absl::MutexLock l(&mu_);
    ApplyTo(map_, absl::StrCat(k, "=", v));
    return *source->Append(absl::StrCat(k, "=", v));
  }
  Map map() const {
    absl::MutexLock l(&mu_);
    return map_;
  }
  uint64_t chunks() const { return chunks_.load(); }
  // The source's position at the first and the last chunk of the last snapshot.
  std::pair<uint64_t, uint64_t> snapshot_span() const {
    absl::MutexLock l(&mu_);
    return span_;
  }
  std::unique_ptr<ReplicationSource> source;

 private:
  // Reads the map in key order, 100 keys a chunk, each under the lock.
  class Reader : public SnapshotReader {
   public:
    explicit Reader(KvPrimary* p) : p_(p) {}
    absl::StatusOr<Chunk> Next(size_t) override {
      absl::MutexLock l(&p_->mu_);
      ++p_->chunks_;
      Chunk c;
      auto it = started_ ? p_->map_.upper_bound(after_) : p_->map_.begin();
      started_ = true;
      for (int n = 0; it != p_->map_.end() && n < 100; ++it, ++n) {
        c.records.push_back(absl::StrCat(it->first, "=", it->second));
        after_ = it->first;
      }
      c.last = it == p_->map_.end();
      c.seq = p_->source->status().last_seq;
      if (first_) p_->span_.first = c.seq;
      first_ = false;
      p_->span_.second = c.seq;
      return c;
    }

   private:
    KvPrimary* p_;
    bool started_ = false, first_ = true;
    std::string after_;
  };
  mutable absl::Mutex mu_;
  Map map_;
  std::pair<uint64_t, uint64_t> span_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> chunks_{0};
};

class KvStandby {
 public:
  // `full`: its store refuses everything from the start.
  explicit KvStandby(uint16_t port, bool full = false) : full_(full) {
    SinkOptions o;
    o.node_id = 2;
    o.key = kKey;
    o.source = {"127.0.0.1", port};
    o.reconnect_interval = absl::Milliseconds(20);
    o.store_retry_interval = absl::Milliseconds(100);
    SinkCallbacks cb;
    cb.begin_snapshot = [this](uint64_t, uint64_t) {
      absl::MutexLock l(&mu_);
      pending_.clear();
      pending_snapshot_ = true;
    };
    cb.apply = [this](RecordKind, uint64_t, absl::string_view r) {
      // A slow standby: a pause every 50 records.
      if (slow_.load() && ++applied_ % 50 == 0) absl::SleepFor(absl::Milliseconds(1));
      absl::MutexLock l(&mu_);
      if (full_) return absl::ResourceExhaustedError("disk full");
      pending_.emplace_back(r);
      return absl::OkStatus();
    };
    cb.end_snapshot = [](uint64_t) { return absl::OkStatus(); };
    cb.commit = [this] {
      absl::MutexLock l(&mu_);
      if (full_) {
        pending_.clear();  // rolled back
        pending_snapshot_ = false;
        return absl::ResourceExhaustedError("disk full");
      }
      if (pending_snapshot_) stored_.clear();
      pending_snapshot_ = false;
      for (const std::string& r : pending_) ApplyTo(stored_, r);
      pending_.clear();
      return absl::OkStatus();
    };
    absl::StatusOr<std::unique_ptr<ReplicationSink>> s = ReplicationSink::Start(o, cb);
    EXPECT_TRUE(s.ok()) << s.status();
    sink = std::move(*s);
  }
  // The committed state: what the standby holds durably.
  Map stored() const {
    absl::MutexLock l(&mu_);
    return stored_;
  }
  void SetFull(bool full) {
    absl::MutexLock l(&mu_);
    full_ = full;
  }
  void SetSlow(bool slow) { slow_ = slow; }
  std::unique_ptr<ReplicationSink> sink;

 private:
  mutable absl::Mutex mu_;
  Map stored_;
  std::vector<std::string> pending_;  // applied, not committed
  bool pending_snapshot_ = false;     // a snapshot replaces what is stored
  bool full_ = false;
  std::atomic<bool> slow_{false};
  uint64_t applied_ = 0;  // sink thread
};

bool Synced(const KvPrimary& p, const KvStandby& s) {
  SinkStatus st = s.sink->status();
  return st.consistent && st.applied_seq == p.source->status().last_seq && s.stored() == p.map();
}

TEST(ReplicationDurability, AStandbyThatCannotStoreAcknowledgesNothingAndResumesWithoutLoss) {
  KvPrimary p;
  KvStandby s(p.source->port());
  for (int i = 0; i < 50; ++i) p.Put(absl::StrCat("k", i), "1");
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }));
  const uint64_t snapshots = s.sink->status().snapshots;

  // Its disk is full: no write is confirmed (as a synchronous write waits on).
  s.SetFull(true);
  std::vector<uint64_t> unconfirmed;
  for (int i = 0; i < 20; ++i) {
    uint64_t seq = p.Put(absl::StrCat("k", i % 7), absl::StrCat("full-", i));
    EXPECT_EQ(p.source->WaitAcked(seq, absl::Milliseconds(50)).code(),
              absl::StatusCode::kDeadlineExceeded);
    EXPECT_LT(p.source->status().acked_seq, seq) << "acknowledged a change it could not store";
  }
  SinkStatus st = s.sink->status();
  EXPECT_EQ(st.store_error, "disk full");
  EXPECT_GE(st.store_failures, 1u);
  EXPECT_NE(s.stored(), p.map());

  // Space again: it resumes from its last commit, with nothing lost and no
  // new snapshot (the backlog still holds what it lacks).
  s.SetFull(false);
  uint64_t seq = p.Put("after", "1");
  EXPECT_TRUE(p.source->WaitAcked(seq, absl::Seconds(10)).ok());
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }, absl::Seconds(2))) << [&] {
    std::string o;
    for (auto& [k, v] : s.stored()) absl::StrAppend(&o, k, "=", v, " ");
    absl::StrAppend(&o, "\nwant ");
    for (auto& [k, v] : p.map()) absl::StrAppend(&o, k, "=", v, " ");
    absl::StrAppend(&o, "\napplied ", s.sink->status().applied_seq, " consistent ",
                    s.sink->status().consistent);
    return o;
  }();
  EXPECT_EQ(s.stored(), p.map());
  EXPECT_EQ(s.sink->status().store_error, "");
  EXPECT_EQ(s.sink->status().snapshots, snapshots);
}

TEST(ReplicationDurability, AStandbyFullDuringItsSnapshotGetsAnotherOnceItCanStore) {
  KvPrimary p;
  for (int i = 0; i < 1000; ++i) p.Put(absl::StrCat("k", i), "1");
  KvStandby s(p.source->port(), /*full=*/true);
  ASSERT_TRUE(WaitFor([&] { return s.sink->status().store_failures >= 2; }));
  EXPECT_FALSE(p.source->status().standby_synced);
  EXPECT_TRUE(s.stored().empty());
  s.SetFull(false);
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }));
}

// A snapshot is read in chunks while changes go on; the standby replays the
// changes after its first chunk and ends with exactly the primary's state.
TEST(ReplicationDurability, ASnapshotReadInChunksWhileChangesGoOnConverges) {
  KvPrimary p;
  const std::string value(500, 'v');
  for (int i = 0; i < 20000; ++i) p.Put(absl::StrCat("k", i), value);  // 10 MB
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::mt19937 rng(7);
    for (int n = 0; !done; ++n) {
      int k = static_cast<int>(rng() % 25000);  // some new keys, some deleted
      p.Put(absl::StrCat("k", k), n % 5 == 0 ? "" : absl::StrCat(n));
      if (n % 10 == 0) absl::SleepFor(absl::Milliseconds(1));
    }
  });
  KvStandby s(p.source->port());
  s.SetSlow(true);  // the snapshot takes a while: its chunks are read as it goes
  ASSERT_TRUE(WaitFor([&] { return s.sink->status().consistent; }, absl::Seconds(30)));
  done = true;
  writer.join();
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }, absl::Seconds(30)));
  EXPECT_GE(p.chunks(), 200u) << "read in chunks of 100 keys";
  auto [first, last] = p.snapshot_span();
  EXPECT_GT(last, first) << "changes were made while the snapshot was read";
  EXPECT_EQ(p.source->status().snapshots_sent, 1u);
  EXPECT_TRUE(p.source->status().standby_synced);
}

// A backlog too small for the changes made while a slow standby takes its
// snapshot: the snapshot starts again at once (not after being sent whole in
// vain), and the standby converges once the changes slow down.
TEST(ReplicationDurability, ASnapshotWhoseChangesTheBacklogDroppedStartsAgain) {
  KvPrimary p(/*backlog=*/200);
  const std::string value(1000, 'v');
  for (int i = 0; i < 20000; ++i) p.Put(absl::StrCat("k", i), value);  // 20 MB
  KvStandby s(p.source->port());
  s.SetSlow(true);
  ASSERT_TRUE(WaitFor([&] { return p.source->status().snapshots_sent >= 1; }));
  for (int i = 0; i < 1000; ++i) p.Put(absl::StrCat("k", i), "1");  // 5 backlogs' worth
  ASSERT_TRUE(WaitFor([&] { return p.source->status().snapshot_restarts >= 1; }));
  EXPECT_EQ(s.sink->status().snapshots, 0u) << "the first snapshot was not finished in vain";
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }, absl::Seconds(60)));
}

TEST(ReplicationDurability, ARecordTooLongToSendIsRefusedAndReplicationGoesOn) {
  KvPrimary p;
  KvStandby s(p.source->port());
  p.Put("before", "1");
  ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }));
  std::string huge = "big=" + std::string(kMaxRecord, 'x');
  absl::StatusOr<uint64_t> refused = p.source->Append(huge);
  ASSERT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find(absl::StrCat(kMaxRecord)), std::string::npos)
      << refused.status();
  absl::StatusOr<uint64_t> batch = p.source->AppendBatch({"a=1", huge, "b=2"});
  EXPECT_TRUE(absl::IsInvalidArgument(batch.status()));
  // The largest record that fits, alone in its frame, still goes.
  std::string largest = "largest=" + std::string(kMaxRecord - 8, 'y');
  ASSERT_EQ(largest.size(), kMaxRecord);
  ASSERT_TRUE(p.source->Append(largest).ok());
  p.Put("after", "1");
  Map want = p.map();
  want["a"] = "1";
  want["b"] = "2";
  want["largest"] = largest.substr(8);
  ASSERT_TRUE(WaitFor([&] { return s.stored() == want; }, absl::Seconds(30)));
  EXPECT_EQ(p.source->status().oversized, 2u);
  EXPECT_EQ(s.sink->rejects().Total(), 0u);
}

// Connects to 127.0.0.`host`:port and returns the socket (-1 on failure).
int ConnectFrom(int host, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000000u | host);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  a.sin_addr.s_addr = htonl(0x7f000001u);
  a.sin_port = htons(port);
  // Not waited for: a flood sends its SYNs as fast as it can.
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// Anyone who reaches the port may connect: a flood of connections that never
// authenticate, from the standby's own address and from others, some silent,
// some sending junk, must neither keep the real standby out nor stall it.
TEST(ReplicationDurability, AFloodOfConnectionsWithoutTheKeyDoesNotKeepTheStandbyOut) {
  KvPrimary p;
  for (int i = 0; i < 100; ++i) p.Put(absl::StrCat("k", i), "0");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> connects{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < 3; ++t) {
    flood.emplace_back([&, t] {
      std::deque<int> open;
      for (int n = 0; !stop; ++n) {
        int fd = ConnectFrom(t == 0 ? 1 : 10 + n % 4, p.source->port());
        if (fd < 0) continue;
        ++connects;
        if (n % 3 == 0) {
          const char junk[] = "TM\x02\x01 not a hello";
          (void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        }
        open.push_back(fd);
        if (open.size() > 300) {
          close(open.front());
          open.pop_front();
        }
      }
      for (int fd : open) close(fd);
    });
  }
  ASSERT_TRUE(WaitFor([&] { return connects.load() > 500; }));
  {
    KvStandby s(p.source->port());
    ASSERT_TRUE(WaitFor([&] { return Synced(p, s); }, absl::Seconds(20)))
        << "the standby never got in: " << s.sink->status().last_error;
    for (int round = 0; round < 20; ++round) {
      uint64_t seq = p.Put(absl::StrCat("k", round), absl::StrCat(round));
      absl::Status st = p.source->WaitAcked(seq, absl::Seconds(5));
      ASSERT_TRUE(st.ok()) << "round " << round << ": " << st << "; standby: "
                           << s.sink->status().last_error << ", connects "
                           << s.sink->status().connects;
    }
    EXPECT_TRUE(Synced(p, s));
  }
  // Standbys that restart get in again, one after another, while the flood
  // goes on.
  const uint64_t before = connects.load();
  for (int restart = 0; restart < 3; ++restart) {
    KvStandby again(p.source->port());
    ASSERT_TRUE(WaitFor([&] { return Synced(p, again); }, absl::Seconds(20)))
        << "restarted standby " << restart << " never got in: " << again.sink->status().last_error;
    uint64_t seq = p.Put("restart", absl::StrCat(restart));
    absl::Status st = p.source->WaitAcked(seq, absl::Seconds(5));
    ASSERT_TRUE(st.ok()) << "restart " << restart << ": " << st << "; standby: "
                         << again.sink->status().last_error << ", connects "
                         << again.sink->status().connects;
  }
  stop = true;
  for (std::thread& t : flood) t.join();
  EXPECT_GT(connects.load(), before + 100) << "the flood went on meanwhile";
}

// Connects with the key and answers the handshake, but subscribes only when
// told: a standby on a slow link, between its Hello and its Subscribe.
class SlowStandby {
 public:
  explicit SlowStandby(uint16_t port)
      : conn_(std::move(*TcpConnect({"127.0.0.1", port}, absl::Seconds(1)))),
        session_(*Hmac::Create(kKey), Session::Side::kClient, 2, nullptr) {
    auto tls = TlsContext::Create(TlsContext::Side::kClient, kKey);
    EXPECT_TRUE(tls.ok() && conn_.ConnectTls(**tls, absl::Seconds(5)).ok());
    conn_.Queue(session_.StartHandshake(0));
    EXPECT_TRUE(conn_.Flush().ok());
    std::optional<absl::string_view> reply = NextFrame();
    EXPECT_TRUE(reply.has_value());
    if (reply) {
      ready_ = session_.FinishHandshake(*reply).ok();
      EXPECT_TRUE(ready_);
    }
  }
  // True if the source answers the subscription (with its snapshot).
  bool Subscribe() {
    if (!ready_) return false;
    conn_.Queue(session_.Seal(MsgType::kSubscribe, 0, EncodeSubscribe({0, 0, false})));
    if (!conn_.Flush().ok()) return false;
    std::optional<absl::string_view> f = NextFrame();
    if (!f) return false;
    absl::StatusOr<Message> m = session_.Open(*f);
    return m.ok() && m->type == MsgType::kSnapshotBegin;
  }

 private:
  std::optional<absl::string_view> NextFrame() {
    for (int i = 0; i < 100; ++i) {
      auto f = conn_.NextFrame();
      if (!f.ok()) return std::nullopt;
      if (f->has_value()) return **f;
      pollfd p{conn_.fd(), POLLIN, 0};
      poll(&p, 1, 20);
      if (!conn_.ReadSome().ok()) return std::nullopt;
    }
    return std::nullopt;
  }
  FramedConn conn_;
  Session session_;
  bool ready_ = false;
};

// Rule: a connection that sent a valid Hello never gives way to one that did
// not. Before, every new connection pushed out the oldest of four pending
// ones, whatever they were.
TEST(ReplicationDurability,
     AStandbyBetweenHelloAndSubscribeIsNotPushedOutByConnectionsWithoutTheKey) {
  KvPrimary p;
  p.Put("k", "v");
  SlowStandby standby(p.source->port());
  std::vector<int> silent;
  for (int i = 0; i < 20; ++i) silent.push_back(ConnectFrom(1, p.source->port()));
  absl::SleepFor(absl::Milliseconds(200));  // all accepted meanwhile
  EXPECT_TRUE(standby.Subscribe()) << "the standby's handshake was pushed out";
  EXPECT_TRUE(p.source->status().standby_connected);
  for (int fd : silent) close(fd);
}

}  // namespace
}  // namespace tandem::mirror
