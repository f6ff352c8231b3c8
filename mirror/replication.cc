// The replication source (the sink is in replication_sink.cc).
#include "mirror/replication.h"

#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/record_ring.h"

namespace tandem::mirror {
namespace {

// Output is refilled while less than this is queued: enough to keep the
// socket busy, small enough that acks and lag stay timely.
constexpr size_t kOutputHighWater = 256 * 1024;
constexpr size_t kBatchBytes = 64 * 1024;
constexpr uint32_t kBatchRecords = 4096;

// Connections that have not sent a valid Hello yet: what anyone who reaches
// the port can hold, per source address and in all.
constexpr size_t kMaxUnverifiedPerSource = 16;
constexpr size_t kMaxUnverified = 64;
// Connections that sent a valid Hello and have not subscribed yet.
constexpr size_t kMaxVerified = 4;
// New connections accepted per turn of the loop: the pending ones are read
// between turns, so a standby's Hello is seen before a flood can push it out.
constexpr int kAcceptBatch = 16;
// Hello nonces remembered: a recorded Hello sent again is refused.
constexpr size_t kRecentNonces = 1024;
// Before the handshake a peer sends one Hello (or, after it, a Subscribe):
// nothing longer is buffered for it.
constexpr size_t kPendingMaxFrame = 4096;

uint64_t RandomHistory() {
  uint64_t h = 0;
  while (h == 0) RAND_bytes(reinterpret_cast<unsigned char*>(&h), sizeof(h));
  return h;
}

int PollTimeoutMs(int64_t deadline_ns) {
  if (deadline_ns < 0) return -1;
  int64_t left = deadline_ns - MonoNanos();
  if (left <= 0) return 0;
  return static_cast<int>(left / 1000000 + 1);
}

// The peer's address (without the port): connections are bounded per source.
std::string PeerAddress(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    return std::string(reinterpret_cast<const char*>(&a->sin6_addr), sizeof(a->sin6_addr));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  return std::string(reinterpret_cast<const char*>(&a->sin_addr), sizeof(a->sin_addr));
}

// A record list (wire.h) of about kBatchBytes: a record that does not fit
// goes alone into the next one.
class RecordList {
 public:
  explicit RecordList(std::string prefix) : body_(std::move(prefix)), count_at_(body_.size()) {
    body_.append(4, '\0');
  }
  bool Add(absl::string_view r) {
    if (n_ == kBatchRecords || (n_ > 0 && body_.size() + 4 + r.size() > kBatchBytes)) return false;
    AppendRecord(&body_, r);
    ++n_;
    return true;
  }
  uint32_t size() const { return n_; }
  std::string Take() {
    for (int b = 0; b < 4; ++b) body_[count_at_ + b] = static_cast<char>(n_ >> (8 * b));
    return std::move(body_);
  }

 private:
  std::string body_;
  size_t count_at_;
  uint32_t n_ = 0;
};

class Whole : public SnapshotReader {
 public:
  Whole(std::vector<std::string> records, uint64_t seq) : records_(std::move(records)), seq_(seq) {}
  absl::StatusOr<Chunk> Next(size_t max_bytes) override {
    Chunk c;
    c.seq = seq_;
    size_t bytes = 0;
    while (next_ < records_.size() && (c.records.empty() || bytes < max_bytes)) {
      bytes += records_[next_].size();
      c.records.push_back(std::move(records_[next_++]));
    }
    c.last = next_ == records_.size();
    return c;
  }

 private:
  std::vector<std::string> records_;
  uint64_t seq_;
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<SnapshotReader> WholeSnapshot(std::vector<std::string> records, uint64_t seq) {
  return std::make_unique<Whole>(std::move(records), seq);
}

// ===================================================================== source

struct ReplicationSource::State {
  // One connection, before (pending) or after (active) its subscription.
  struct Peer {
    Peer(Fd fd, const Hmac& key, uint32_t node, RejectCounters* rc, std::string from)
        : conn(std::move(fd)),
          session(key, Session::Side::kServer, node, rc),
          from(std::move(from)) {}
    FramedConn conn;
    Session session;
    std::string from;         // the peer's address
    bool verified = false;    // sent a valid Hello, not seen before
    bool evicted = false;     // to be closed: it gave way to a newer connection
    int64_t deadline_ns = 0;  // hello, then handshake deadline while pending
    uint64_t next_send = 0;   // next sequence to stream once active
    int64_t last_rx_ns = 0;   // last frame from the standby
    int64_t last_tx_ns = 0;   // last bytes queued to the standby
    bool need_snapshot = false;
    std::unique_ptr<SnapshotReader> snapshot;  // while one is streamed
    bool snapshot_begun = false;               // its kSnapshotBegin is queued
    uint64_t snapshot_from = 0;                // its first chunk's seq
  };

  SourceOptions opt;
  std::optional<Hmac> key;
  std::shared_ptr<const TlsContext> tls;  // null: in the clear
  Fd listen_fd;
  uint16_t port = 0;
  Waker waker;
  RejectCounters rejects;
  std::thread io;
  std::atomic<bool> stop{false};

  // Set by Start() before the I/O thread runs; its last_seq is the last
  // appended record. Its lock is never taken with mu held, nor mu with it.
  std::shared_ptr<ReplicationLog> log;

  mutable absl::Mutex mu;
  absl::CondVar acked_cv;
  uint64_t acked ABSL_GUARDED_BY(mu) = 0;
  // The active peer is synced once it acknowledged this (its snapshot's end).
  uint64_t snapshot_seq ABSL_GUARDED_BY(mu) = 0;
  bool connected ABSL_GUARDED_BY(mu) = false;
  bool synced ABSL_GUARDED_BY(mu) = false;
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  uint64_t snapshots_sent ABSL_GUARDED_BY(mu) = 0;
  uint64_t snapshot_restarts ABSL_GUARDED_BY(mu) = 0;
  uint64_t resumes ABSL_GUARDED_BY(mu) = 0;
  uint64_t connections ABSL_GUARDED_BY(mu) = 0;
  uint64_t oversized ABSL_GUARDED_BY(mu) = 0;
  std::optional<HeartbeatBody> notice ABSL_GUARDED_BY(mu);

  // I/O thread only.
  std::unique_ptr<Peer> active;
  std::vector<std::unique_ptr<Peer>> pending;  // in the order accepted
  std::deque<std::string> nonce_order;
  absl::flat_hash_set<std::string> nonces;

  uint64_t Epoch() {
    absl::MutexLock l(&mu);
    return epoch;
  }
  void Run();
  void Accept();
  void MakeRoom(const std::string& from);
  bool Verify(Peer& p, absl::string_view hello);
  void ServePendings(const std::vector<pollfd>& fds, size_t at);
  // Each returns false if the peer must be closed.
  bool ServePending(Peer& p);
  bool Subscribe(std::unique_ptr<Peer>& p, const Message& m);
  bool ServeActive();
  bool FillOutput();
  bool StreamSnapshot();
  void QueueSnapshotRecords(uint64_t ep, const std::vector<std::string>& records);
  std::optional<std::string> NextBatch();
  void DropActive();
};

// A newcomer from `from` is admitted: over a bound, the oldest connection
// without a valid Hello gives way, of the newcomer's own source if that
// source is at its bound, else of the source that holds the most. One that
// sent a valid Hello never gives way to one that has not.
void ReplicationSource::State::MakeRoom(const std::string& from) {
  absl::flat_hash_map<std::string, size_t> per_source;
  size_t unverified = 0;
  for (const auto& p : pending) {
    if (p->verified || p->evicted) continue;
    ++unverified;
    ++per_source[p->from];
  }
  std::string victim = from;
  if (per_source[from] < kMaxUnverifiedPerSource) {
    if (unverified < kMaxUnverified) return;
    size_t most = 0;
    for (const auto& [source, n] : per_source) {
      if (n > most) {
        most = n;
        victim = source;
      }
    }
  }
  for (auto& p : pending) {
    if (!p->verified && !p->evicted && p->from == victim) {
      p->evicted = true;
      return;
    }
  }
}

void ReplicationSource::State::Accept() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = accept4(listen_fd.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) break;
    TuneTcp(fd);
    std::string from = PeerAddress(ss);
    MakeRoom(from);
    auto p = std::make_unique<Peer>(Fd(fd), *key, opt.node_id, &rejects, std::move(from));
    p->conn.set_max_frame(kPendingMaxFrame);
    if (tls != nullptr) p->conn.AcceptTls(*tls);
    p->deadline_ns = MonoNanos() + absl::ToInt64Nanoseconds(opt.hello_timeout);
    pending.push_back(std::move(p));
    // The Hello of a real standby is usually there already: read it now,
    // before more newcomers are let in.
    if (!ServePending(*pending.back())) pending.back()->evicted = true;
  }
  std::erase_if(pending, [](const std::unique_ptr<Peer>& p) { return p == nullptr || p->evicted; });
}

// A Hello with a valid MAC: the peer holds the key, unless it replays a
// recorded Hello, hence the nonces remembered.
bool ReplicationSource::State::Verify(Peer& p, absl::string_view hello) {
  absl::StatusOr<Message> m = Decode(hello);
  if (!m.ok()) return false;
  if (!nonces.insert(m->body).second) {
    rejects.Count(RejectReason::kReplayed);
    return false;
  }
  nonce_order.push_back(m->body);
  if (nonce_order.size() > kRecentNonces) {
    nonces.erase(nonce_order.front());
    nonce_order.pop_front();
  }
  p.verified = true;
  p.deadline_ns = MonoNanos() + absl::ToInt64Nanoseconds(opt.handshake_timeout);
  size_t verified = 0;
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    Peer* q = it->get();
    if (q == nullptr || !q->verified || q->evicted) continue;
    // The oldest give way: a restarted standby replaces its dead attempt.
    if (++verified > kMaxVerified) q->evicted = true;
  }
  return true;
}

bool ReplicationSource::State::ServePending(Peer& p) {
  absl::Status rs = p.conn.ReadSome();
  for (;;) {
    absl::StatusOr<std::optional<absl::string_view>> f = p.conn.NextFrame();
    if (!f.ok()) {
      RejectReason r = ReasonOf(f.status());
      rejects.Count(r);
      if (r == RejectReason::kVersion) {
        p.conn.Queue(VersionNotice());
        (void)p.conn.Flush();  // best effort: the connection is dropped anyway
      }
      return false;
    }
    if (!f->has_value()) break;
    if (!p.session.established()) {
      absl::StatusOr<std::string> reply = p.session.AcceptHello(**f, Epoch());
      if (!reply.ok() || !Verify(p, **f)) return false;
      p.conn.Queue(*reply);
      continue;
    }
    absl::StatusOr<Message> m = p.session.Open(**f);
    if (!m.ok()) return false;
    // Find this peer's owner slot and promote it.
    for (auto& slot : pending) {
      if (slot.get() == &p) return Subscribe(slot, *m);
    }
    return false;
  }
  if (!rs.ok()) {
    if (absl::IsInvalidArgument(rs) || absl::IsUnauthenticated(rs)) {
      rejects.Count(ReasonOf(rs));  // refused in the TLS handshake
    } else if (p.conn.partial()) {
      rejects.Count(RejectReason::kTruncated);
    }
    return false;
  }
  return p.conn.Flush().ok();
}

bool ReplicationSource::State::Subscribe(std::unique_ptr<Peer>& p, const Message& m) {
  if (m.type != MsgType::kSubscribe) {
    rejects.Count(RejectReason::kUnexpected);
    return false;
  }
  absl::StatusOr<SubscribeBody> sub = ParseSubscribe(m.body);
  if (!sub.ok()) {
    rejects.Count(RejectReason::kMalformed);
    return false;
  }
  uint64_t history, first, last;
  {
    absl::MutexLock g(&log->mu());
    history = log->history();
    first = log->ring().first_seq();
    last = log->ring().last_seq();
  }
  {
    absl::MutexLock l(&mu);
    // A sink that has seen a newer epoch must never follow this (stale) source.
    if (m.epoch > epoch) {
      rejects.Count(RejectReason::kUnexpected);
      return false;
    }
    bool resume = sub->consistent && sub->history == history && sub->last_applied <= last &&
                  sub->last_applied + 1 >= first;
    p->need_snapshot = !resume;
    p->next_send = resume ? sub->last_applied + 1 : 0;
    acked = resume ? sub->last_applied : 0;
    synced = resume;
    if (!resume) snapshot_seq = UINT64_MAX;  // known when its snapshot ends
    connected = true;
    ++connections;
    if (resume) ++resumes;
  }
  DropActive();  // an authenticated newcomer replaces a possibly dead connection
  active = std::move(p);
  active->conn.set_max_frame(kMaxBody + kHeaderSize + kMacSize);
  active->last_rx_ns = active->last_tx_ns = MonoNanos();
  if (opt.greeting) {
    std::string g = opt.greeting();
    if (!g.empty()) active->conn.Queue(active->session.Seal(MsgType::kPairMessage, Epoch(), g));
  }
  acked_cv.SignalAll();
  return true;  // the emptied slot is removed by the caller
}

void ReplicationSource::State::DropActive() {
  if (active == nullptr) return;
  active.reset();
  absl::MutexLock l(&mu);
  connected = false;
  synced = false;
  acked_cv.SignalAll();
}

void ReplicationSource::State::QueueSnapshotRecords(uint64_t ep,
                                                    const std::vector<std::string>& records) {
  uint64_t too_long = 0;
  size_t i = 0;
  while (i < records.size()) {
    RecordList list("");
    for (; i < records.size(); ++i) {
      // A record that no frame can carry is left out (counted): the standby
      // would refuse the frame on every attempt.
      if (records[i].size() > kMaxRecord) {
        ++too_long;
      } else if (!list.Add(records[i])) {
        break;
      }
    }
    if (list.size() > 0) {
      active->conn.Queue(active->session.Seal(MsgType::kSnapshotRecords, ep, list.Take()));
    }
  }
  if (too_long > 0) {
    absl::MutexLock l(&mu);
    oversized += too_long;
  }
}

// Queues the active peer's snapshot, chunk by chunk while the output has
// room: a standby that takes it slowly holds up neither the state's owner
// (each chunk is read on its own) nor this node's memory.
bool ReplicationSource::State::StreamSnapshot() {
  Peer& p = *active;
  while (p.snapshot != nullptr && p.conn.queued() < kOutputHighWater) {
    absl::StatusOr<SnapshotReader::Chunk> c = p.snapshot->Next(kBatchBytes);
    if (!c.ok()) return false;
    uint64_t ep, history, first, last;
    {
      absl::MutexLock g(&log->mu());
      history = log->history();
      first = log->ring().first_seq();
      last = log->ring().last_seq();
    }
    {
      absl::MutexLock l(&mu);
      if (c->seq > last || (!p.snapshot_begun && c->seq + 1 < first)) return false;
      if (!p.snapshot_begun) {
        p.snapshot_from = c->seq;
        acked = 0;
        synced = false;
        snapshot_seq = UINT64_MAX;
        ++snapshots_sent;
      } else if (p.snapshot_from + 1 < first) {
        // The backlog dropped a change the standby needs after these
        // records: finishing would be in vain, start again.
        ++snapshot_restarts;
        p.snapshot.reset();
        p.need_snapshot = true;
        return true;
      }
      ep = epoch;
    }
    Session& s = p.session;
    if (!p.snapshot_begun) {
      p.conn.Queue(
          s.Seal(MsgType::kSnapshotBegin, ep, EncodeSnapshotBegin({history, c->seq, 0})));
      p.snapshot_begun = true;
    }
    QueueSnapshotRecords(ep, c->records);
    if (c->last) {
      p.conn.Queue(s.Seal(MsgType::kSnapshotEnd, ep, EncodeU64(c->seq)));
      {
        absl::MutexLock l(&mu);
        snapshot_seq = c->seq;
      }
      p.next_send = p.snapshot_from + 1;
      p.snapshot.reset();
    }
  }
  return true;
}

bool ReplicationSource::State::FillOutput() {
  std::optional<HeartbeatBody> n;
  uint64_t notice_epoch;
  {
    absl::MutexLock l(&mu);
    n.swap(notice);
    notice_epoch = epoch;
  }
  if (n) active->conn.Queue(active->session.Seal(MsgType::kHeartbeat, notice_epoch,
                                                 EncodeHeartbeat(*n)));
  for (int round = 0; round < 2; ++round) {
    if (active->need_snapshot) {
      absl::StatusOr<std::unique_ptr<SnapshotReader>> r = opt.snapshot();
      if (!r.ok() || *r == nullptr) return false;
      active->snapshot = std::move(*r);
      active->snapshot_begun = false;
      active->need_snapshot = false;
    }
    if (active->snapshot != nullptr) {
      if (!StreamSnapshot()) return false;
      if (active->snapshot != nullptr || active->need_snapshot) return true;  // more later
    }
    while (active->conn.queued() < kOutputHighWater) {
      std::optional<std::string> body = NextBatch();
      if (!body) break;
      active->conn.Queue(active->session.Seal(MsgType::kChanges, Epoch(), *body));
    }
    if (!active->need_snapshot) break;
  }
  return true;
}

// The records from the active peer's next_send, as one kChanges body; none
// when it has them all, or when the log no longer holds the next one (then
// it needs a snapshot). A record too long to send (kMaxRecord) goes as an
// empty one, counted: the numbering stays dense and the standby skips it.
std::optional<std::string> ReplicationSource::State::NextBatch() {
  uint64_t too_long = 0;
  std::optional<std::string> body;
  {
    absl::MutexLock g(&log->mu());
    const RecordRing& ring = log->ring();
    uint64_t& next = active->next_send;
    if (next > ring.last_seq()) return std::nullopt;
    if (!ring.holds(next)) {
      active->need_snapshot = true;  // the standby fell behind the backlog
      return std::nullopt;
    }
    RecordList list(EncodeU64(next));
    for (; ring.holds(next); ++next) {
      absl::string_view r = ring.record(next);
      if (r.size() > kMaxRecord) {
        r = {};
        ++too_long;
      }
      if (!list.Add(r)) break;
    }
    body = list.Take();
  }
  if (too_long > 0) {
    absl::MutexLock l(&mu);
    oversized += too_long;
  }
  return body;
}

bool ReplicationSource::State::ServeActive() {
  absl::Status rs = active->conn.ReadSome();
  for (;;) {
    absl::StatusOr<std::optional<absl::string_view>> f = active->conn.NextFrame();
    if (!f.ok()) {
      rejects.Count(ReasonOf(f.status()));
      return false;
    }
    if (!f->has_value()) break;
    absl::StatusOr<Message> m = active->session.Open(**f);
    if (!m.ok()) return false;
    if (m->type == MsgType::kPairMessage) {
      if (opt.on_message) opt.on_message(m->body);
      continue;
    }
    absl::StatusOr<uint64_t> ack =
        m->type == MsgType::kAck ? ParseU64(m->body) : absl::FailedPreconditionError("type");
    if (!ack.ok()) {
      rejects.Count(ReasonOf(ack.status()));
      return false;
    }
    uint64_t last;
    {
      absl::MutexLock g(&log->mu());
      last = log->ring().last_seq();
    }
    absl::MutexLock l(&mu);
    if (*ack > last) {
      rejects.Count(RejectReason::kUnexpected);
      return false;
    }
    if (*ack > acked) acked = *ack;
    if (acked >= snapshot_seq) synced = true;
    acked_cv.SignalAll();
  }
  if (!rs.ok()) {
    if (active->conn.partial()) rejects.Count(RejectReason::kTruncated);
    return false;
  }
  return true;
}

// Reads the pending connections polled (fds from `at` on), then drops those
// that failed, gave way or ran out of time.
void ReplicationSource::State::ServePendings(const std::vector<pollfd>& fds, size_t at) {
  const size_t polled = std::min(pending.size(), fds.size() - at);
  for (size_t i = 0; i < polled; ++i) {
    Peer* p = pending[i].get();
    if (p != nullptr && !p->evicted && fds[at + i].revents && !ServePending(*p)) {
      // The slot may have been emptied by a promotion (then p is active).
      if (pending[i] != nullptr) pending[i]->evicted = true;
    }
  }
  const int64_t now = MonoNanos();
  std::erase_if(pending, [now](const std::unique_ptr<Peer>& p) {
    return p == nullptr || p->evicted || now >= p->deadline_ns;
  });
}

void ReplicationSource::State::Run() {
  std::vector<pollfd> fds;
  const int64_t keepalive_ns = absl::ToInt64Nanoseconds(opt.keepalive);
  while (!stop.load()) {
    int64_t now = MonoNanos();
    if (active != nullptr && now - active->last_rx_ns > 3 * keepalive_ns) DropActive();
    if (active != nullptr) {
      // An idle stream still carries an empty batch now and then, so that the
      // standby can tell a quiet source from a dead connection.
      if (active->conn.queued() == 0 && now - active->last_tx_ns >= keepalive_ns &&
          !active->need_snapshot && active->snapshot == nullptr) {
        std::string body = EncodeU64(active->next_send);
        body.append(4, '\0');
        active->conn.Queue(active->session.Seal(MsgType::kChanges, Epoch(), body));
      }
      size_t before = active->conn.queued();
      if (!FillOutput() || !active->conn.Flush().ok()) {
        DropActive();
      } else if (active->conn.queued() != before || before > 0) {
        active->last_tx_ns = now;
      }
    }
    int64_t deadline = -1;
    fds.clear();
    fds.push_back({waker.fd(), POLLIN, 0});
    fds.push_back({listen_fd.get(), POLLIN, 0});
    fds.push_back({log->wake_fd(), POLLIN, 0});
    if (active != nullptr) {
      fds.push_back({active->conn.fd(),
                     static_cast<short>(POLLIN | (active->conn.queued() ? POLLOUT : 0)), 0});
      deadline = active->last_tx_ns + keepalive_ns;
    }
    const size_t pending_at = fds.size();
    for (auto& p : pending) {
      fds.push_back(
          {p->conn.fd(), static_cast<short>(POLLIN | (p->conn.queued() ? POLLOUT : 0)), 0});
      if (deadline < 0 || p->deadline_ns < deadline) deadline = p->deadline_ns;
    }
    // Sleep only if there is nothing left to send: an append wakes us then.
    bool more = false;
    if (active != nullptr && active->conn.queued() == 0) {
      more = active->need_snapshot || active->snapshot != nullptr;
      absl::MutexLock g(&log->mu());
      if (!more) more = log->WakeWhenPast(active->next_send);
    }
    poll(fds.data(), fds.size(), more ? 0 : PollTimeoutMs(deadline));
    {
      absl::MutexLock g(&log->mu());
      log->StopWaiting();
    }
    if (fds[0].revents) waker.Drain();
    if (fds[2].revents) log->DrainWake();
    if (active != nullptr && fds[3].revents) {
      if (ServeActive()) {
        active->last_rx_ns = MonoNanos();
      } else {
        DropActive();
      }
    }
    // The connections already waiting are read before newcomers are let in.
    ServePendings(fds, pending_at);
    if (fds[1].revents) Accept();
  }
}

absl::StatusOr<std::unique_ptr<ReplicationSource>> ReplicationSource::Start(SourceOptions options) {
  if (!options.snapshot) return absl::InvalidArgumentError("a snapshot callback is required");
  if (options.log == nullptr) {
    if (options.first_seq == 0) return absl::InvalidArgumentError("first_seq must be >= 1");
    if (options.backlog_records == 0 || options.backlog_bytes == 0) {
      return absl::InvalidArgumentError("empty backlog");
    }
  }
  absl::StatusOr<Hmac> key = Hmac::Create(options.key);
  if (!key.ok()) return key.status();
  auto s = std::make_unique<State>();
  if (options.tls) {
    absl::StatusOr<std::shared_ptr<const TlsContext>> tls =
        TlsContext::Create(TlsContext::Side::kServer, options.key);
    if (!tls.ok()) return tls.status();
    s->tls = std::move(*tls);
  }
  absl::StatusOr<Fd> fd = TcpListen(options.listen);
  if (!fd.ok()) return fd.status();
  s->listen_fd = std::move(*fd);
  s->port = LocalPort(s->listen_fd.get());
  s->log = options.log;
  if (s->log == nullptr) {
    s->log = std::make_shared<ReplicationLog>(
        options.backlog_records, options.backlog_bytes,
        options.history != 0 ? options.history : RandomHistory(), options.first_seq);
  }
  {
    absl::MutexLock l(&s->mu);
    s->epoch = options.epoch;
  }
  s->key = std::move(*key);
  s->opt = std::move(options);
  State* raw = s.get();
  s->io = std::thread([raw] {
    BlockSigpipeInThisThread();
    // Named for top -H and for scripts/bench/pair_backbone.py, which reads
    // how long this thread waited for a CPU (/proc/PID/task/TID/schedstat).
    pthread_setname_np(pthread_self(), "repl-source");
    raw->Run();
  });
  return std::unique_ptr<ReplicationSource>(new ReplicationSource(std::move(s)));
}

ReplicationSource::ReplicationSource(std::unique_ptr<State> s) : s_(std::move(s)) {}

ReplicationSource::~ReplicationSource() {
  s_->stop.store(true);
  s_->waker.Wake();
  s_->io.join();
}

uint16_t ReplicationSource::port() const { return s_->port; }

namespace {
absl::Status TooLong(size_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat("a replication record of ", bytes,
                                                 " bytes is longer than the limit of ", kMaxRecord,
                                                 " bytes (kMaxRecord): not replicated"));
}
}  // namespace

absl::StatusOr<uint64_t> ReplicationSource::Append(absl::string_view record) {
  if (record.size() > kMaxRecord) {
    absl::MutexLock l(&s_->mu);
    ++s_->oversized;
    return TooLong(record.size());
  }
  ReplicationLog::Writer w(*s_->log);
  s_->log->Push(record);
  return s_->log->ring().last_seq();
}

absl::StatusOr<uint64_t> ReplicationSource::AppendBatch(const std::vector<std::string>& records) {
  uint64_t seq;
  size_t longest_refused = 0, refused = 0;
  {
    ReplicationLog::Writer w(*s_->log);
    for (const std::string& r : records) {
      if (r.size() > kMaxRecord) {
        ++refused;
        longest_refused = std::max(longest_refused, r.size());
        continue;
      }
      s_->log->Push(r);
    }
    seq = s_->log->ring().last_seq();
  }
  if (refused > 0) {
    absl::MutexLock l(&s_->mu);
    s_->oversized += refused;
    return TooLong(longest_refused);
  }
  return seq;
}

absl::Status ReplicationSource::WaitAcked(uint64_t seq, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock l(&s_->mu);
  for (;;) {
    if (!s_->connected) return absl::UnavailableError("no standby subscribed");
    if (s_->synced && s_->acked >= seq) return absl::OkStatus();
    if (s_->acked_cv.WaitWithDeadline(&s_->mu, deadline)) {
      if (s_->connected && s_->synced && s_->acked >= seq) return absl::OkStatus();
      return absl::DeadlineExceededError(
          absl::StrCat("standby has applied ", s_->acked, " of ", seq));
    }
  }
}

void ReplicationSource::SetEpoch(uint64_t epoch) {
  absl::MutexLock l(&s_->mu);
  s_->epoch = epoch;
}

void ReplicationSource::Notify(const HeartbeatBody& report) {
  {
    absl::MutexLock l(&s_->mu);
    if (!s_->connected) return;
    s_->notice = report;
  }
  s_->waker.Wake();
}

SourceStatus ReplicationSource::status() const {
  SourceStatus st;
  int64_t now = MonoNanos();
  {
    absl::MutexLock l(&s_->mu);
    st.acked_seq = s_->acked;
    st.standby_connected = s_->connected;
    st.standby_synced = s_->synced;
    st.snapshots_sent = s_->snapshots_sent;
    st.snapshot_restarts = s_->snapshot_restarts;
    st.resumes = s_->resumes;
    st.oversized = s_->oversized;
    st.connections = s_->connections;
  }
  absl::MutexLock g(&s_->log->mu());
  const RecordRing& backlog = s_->log->ring();
  st.history = s_->log->history();
  st.last_seq = backlog.last_seq();
  st.lag_records = st.last_seq - std::min(st.acked_seq, st.last_seq);
  if (st.lag_records > 0) {
    // The oldest record the standby lacks, or the oldest still held.
    uint64_t seq = std::max(st.acked_seq + 1, backlog.first_seq());
    if (backlog.holds(seq)) st.lag_time = absl::Nanoseconds(now - backlog.appended_ns(seq));
  }
  st.backlog_records = backlog.size();
  st.backlog_bytes = backlog.bytes();
  st.backlog_resident = backlog.resident();
  return st;
}

const RejectCounters& ReplicationSource::rejects() const { return s_->rejects; }

}  // namespace tandem::mirror
