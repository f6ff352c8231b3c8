#include "mirror/replication.h"

#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
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
constexpr size_t kMaxPending = 4;

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

}  // namespace

// ===================================================================== source

struct ReplicationSource::State {
  // One connection, before (pending) or after (active) its subscription.
  struct Peer {
    Peer(Fd fd, const Hmac& key, uint32_t node, RejectCounters* rc)
        : conn(std::move(fd)), session(key, Session::Side::kServer, node, rc) {}
    FramedConn conn;
    Session session;
    int64_t deadline_ns = 0;  // handshake deadline while pending
    uint64_t next_send = 0;   // next sequence to stream once active
    int64_t last_rx_ns = 0;   // last frame from the standby
    int64_t last_tx_ns = 0;   // last bytes queued to the standby
    bool need_snapshot = false;
  };

  SourceOptions opt;
  std::optional<Hmac> key;
  Fd listen_fd;
  uint16_t port = 0;
  Waker waker;
  RejectCounters rejects;
  std::thread io;
  std::atomic<bool> stop{false};

  mutable absl::Mutex mu;
  absl::CondVar acked_cv;
  // Created by Start() before the I/O thread runs; its last_seq is the last
  // appended record.
  std::optional<RecordRing> backlog ABSL_GUARDED_BY(mu);
  uint64_t acked ABSL_GUARDED_BY(mu) = 0;
  uint64_t snapshot_seq ABSL_GUARDED_BY(mu) = 0;  // of the active peer's snapshot
  bool connected ABSL_GUARDED_BY(mu) = false;
  bool synced ABSL_GUARDED_BY(mu) = false;
  bool io_waiting ABSL_GUARDED_BY(mu) = false;
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  uint64_t snapshots_sent ABSL_GUARDED_BY(mu) = 0;
  uint64_t resumes ABSL_GUARDED_BY(mu) = 0;
  uint64_t connections ABSL_GUARDED_BY(mu) = 0;
  std::optional<HeartbeatBody> notice ABSL_GUARDED_BY(mu);

  std::unique_ptr<Peer> active;  // I/O thread only
  std::vector<std::unique_ptr<Peer>> pending;

  uint64_t Epoch() {
    absl::MutexLock l(&mu);
    return epoch;
  }
  void Run();
  void Accept();
  // Each returns false if the peer must be closed.
  bool ServePending(Peer& p);
  bool Subscribe(std::unique_ptr<Peer>& p, const Message& m);
  bool ServeActive();
  bool FillOutput();
  bool QueueSnapshot();
  void DropActive();
};

void ReplicationSource::State::Accept() {
  for (;;) {
    int fd = accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    TuneTcp(fd);
    auto p = std::make_unique<Peer>(Fd(fd), *key, opt.node_id, &rejects);
    p->deadline_ns = MonoNanos() + absl::ToInt64Nanoseconds(opt.handshake_timeout);
    // Unauthenticated connections cannot crowd out the next real standby:
    // the oldest pending one gives way.
    if (pending.size() >= kMaxPending) pending.erase(pending.begin());
    pending.push_back(std::move(p));
  }
}

bool ReplicationSource::State::ServePending(Peer& p) {
  absl::Status rs = p.conn.ReadSome();
  for (;;) {
    absl::StatusOr<std::optional<absl::string_view>> f = p.conn.NextFrame();
    if (!f.ok()) {
      rejects.Count(ReasonOf(f.status()));
      return false;
    }
    if (!f->has_value()) break;
    if (!p.session.established()) {
      absl::StatusOr<std::string> reply = p.session.AcceptHello(**f, Epoch());
      if (!reply.ok()) return false;
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
    if (p.conn.partial()) rejects.Count(RejectReason::kTruncated);
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
  {
    absl::MutexLock l(&mu);
    // A sink that has seen a newer epoch must never follow this (stale) source.
    if (m.epoch > epoch) {
      rejects.Count(RejectReason::kUnexpected);
      return false;
    }
    bool resume = sub->consistent && sub->history == opt.history &&
                  sub->last_applied <= backlog->last_seq() &&
                  sub->last_applied + 1 >= backlog->first_seq();
    p->need_snapshot = !resume;
    p->next_send = resume ? sub->last_applied + 1 : 0;
    acked = resume ? sub->last_applied : 0;
    synced = resume;
    connected = true;
    ++connections;
    if (resume) ++resumes;
  }
  DropActive();  // an authenticated newcomer replaces a possibly dead connection
  active = std::move(p);
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

bool ReplicationSource::State::QueueSnapshot() {
  absl::StatusOr<Snapshot> snap = opt.snapshot();
  if (!snap.ok()) return false;
  uint64_t ep;
  {
    absl::MutexLock l(&mu);
    if (snap->seq > backlog->last_seq() || snap->seq + 1 < opt.first_seq) return false;
    acked = 0;
    synced = false;
    snapshot_seq = snap->seq;
    ++snapshots_sent;
    ep = epoch;
  }
  Session& s = active->session;
  active->conn.Queue(s.Seal(MsgType::kSnapshotBegin, ep,
                            EncodeSnapshotBegin({opt.history, snap->seq, snap->records.size()})));
  size_t i = 0;
  while (i < snap->records.size()) {
    std::string body(4, '\0');
    uint32_t n = 0;
    while (i < snap->records.size() && (n == 0 || body.size() < kBatchBytes)) {
      AppendRecord(&body, snap->records[i++]);
      ++n;
    }
    for (int b = 0; b < 4; ++b) body[b] = static_cast<char>(n >> (8 * b));
    active->conn.Queue(s.Seal(MsgType::kSnapshotRecords, ep, body));
  }
  active->conn.Queue(s.Seal(MsgType::kSnapshotEnd, ep, EncodeU64(snap->seq)));
  active->need_snapshot = false;
  active->next_send = snap->seq + 1;
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
  for (int attempts = 0; active->need_snapshot; ++attempts) {
    if (attempts > 3 || !QueueSnapshot()) return false;
    absl::MutexLock l(&mu);
    // The backlog moved past the snapshot while it was taken: take another.
    if (active->next_send < backlog->first_seq()) active->need_snapshot = true;
  }
  while (active->conn.queued() < kOutputHighWater) {
    std::string body;
    uint64_t ep;
    {
      absl::MutexLock l(&mu);
      if (active->next_send > backlog->last_seq()) break;
      if (!backlog->holds(active->next_send)) {
        active->need_snapshot = true;  // the standby fell behind the backlog
        break;
      }
      ep = epoch;
      body = EncodeU64(active->next_send);
      body.append(4, '\0');
      uint64_t seq = active->next_send;
      uint32_t n = 0;
      while (backlog->holds(seq) && n < kBatchRecords && body.size() < kBatchBytes) {
        AppendRecord(&body, backlog->record(seq++));
        ++n;
      }
      for (int b = 0; b < 4; ++b) body[8 + b] = static_cast<char>(n >> (8 * b));
      active->next_send += n;
    }
    active->conn.Queue(active->session.Seal(MsgType::kChanges, ep, body));
  }
  if (active->need_snapshot) return FillOutput();
  return true;
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
    absl::MutexLock l(&mu);
    if (*ack > backlog->last_seq()) {
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
          !active->need_snapshot) {
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
    if (active != nullptr) {
      fds.push_back({active->conn.fd(),
                     static_cast<short>(POLLIN | (active->conn.queued() ? POLLOUT : 0)), 0});
      deadline = active->last_tx_ns + keepalive_ns;
    }
    for (auto& p : pending) {
      fds.push_back(
          {p->conn.fd(), static_cast<short>(POLLIN | (p->conn.queued() ? POLLOUT : 0)), 0});
      if (deadline < 0 || p->deadline_ns < deadline) deadline = p->deadline_ns;
    }
    bool more = false;
    {
      absl::MutexLock l(&mu);
      // Sleep only if there is nothing left to send: Append() wakes us then.
      more = active != nullptr && active->conn.queued() == 0 &&
             (active->next_send <= backlog->last_seq() || active->need_snapshot);
      io_waiting = !more;
    }
    poll(fds.data(), fds.size(), more ? 0 : PollTimeoutMs(deadline));
    {
      absl::MutexLock l(&mu);
      io_waiting = false;
    }
    if (fds[0].revents) waker.Drain();
    if (fds[1].revents) Accept();
    size_t at = 2;
    if (active != nullptr) {
      if (fds[at].revents) {
        if (ServeActive()) {
          active->last_rx_ns = MonoNanos();
        } else {
          DropActive();
        }
      }
      ++at;
    }
    now = MonoNanos();
    std::vector<std::unique_ptr<Peer>> keep;
    for (size_t i = 0; i < pending.size(); ++i, ++at) {
      auto& p = pending[i];
      bool alive = true;
      if (at < fds.size() && fds[at].revents) alive = ServePending(*p);
      if (p == nullptr) continue;  // promoted to active
      if (alive && now < p->deadline_ns) keep.push_back(std::move(p));
    }
    pending = std::move(keep);
  }
}

absl::StatusOr<std::unique_ptr<ReplicationSource>> ReplicationSource::Start(SourceOptions options) {
  if (!options.snapshot) return absl::InvalidArgumentError("a snapshot callback is required");
  if (options.first_seq == 0) return absl::InvalidArgumentError("first_seq must be >= 1");
  if (options.backlog_records == 0 || options.backlog_bytes == 0) {
    return absl::InvalidArgumentError("empty backlog");
  }
  absl::StatusOr<Hmac> key = Hmac::Create(options.key);
  if (!key.ok()) return key.status();
  auto s = std::make_unique<State>();
  absl::StatusOr<Fd> fd = TcpListen(options.listen);
  if (!fd.ok()) return fd.status();
  s->listen_fd = std::move(*fd);
  s->port = LocalPort(s->listen_fd.get());
  if (options.history == 0) options.history = RandomHistory();
  {
    absl::MutexLock l(&s->mu);
    s->backlog.emplace(options.backlog_records, options.backlog_bytes, options.first_seq);
    s->epoch = options.epoch;
  }
  s->key = std::move(*key);
  s->opt = std::move(options);
  State* raw = s.get();
  s->io = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ReplicationSource>(new ReplicationSource(std::move(s)));
}

ReplicationSource::ReplicationSource(std::unique_ptr<State> s) : s_(std::move(s)) {}

ReplicationSource::~ReplicationSource() {
  s_->stop.store(true);
  s_->waker.Wake();
  s_->io.join();
}

uint16_t ReplicationSource::port() const { return s_->port; }

uint64_t ReplicationSource::Append(absl::string_view record) {
  int64_t now = MonoNanos();
  bool wake = false;
  uint64_t seq;
  {
    absl::MutexLock l(&s_->mu);
    s_->backlog->Push(record, now);
    seq = s_->backlog->last_seq();
    std::swap(wake, s_->io_waiting);
  }
  if (wake) s_->waker.Wake();
  return seq;
}

uint64_t ReplicationSource::AppendBatch(const std::vector<std::string>& records) {
  int64_t now = MonoNanos();
  bool wake = false;
  uint64_t seq;
  {
    absl::MutexLock l(&s_->mu);
    for (const std::string& r : records) s_->backlog->Push(r, now);
    seq = s_->backlog->last_seq();
    if (!records.empty()) std::swap(wake, s_->io_waiting);
  }
  if (wake) s_->waker.Wake();
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
  absl::MutexLock l(&s_->mu);
  st.history = s_->opt.history;
  const RecordRing& backlog = *s_->backlog;
  st.last_seq = backlog.last_seq();
  st.acked_seq = s_->acked;
  st.standby_connected = s_->connected;
  st.standby_synced = s_->synced;
  st.lag_records = st.last_seq - std::min(s_->acked, st.last_seq);
  if (st.lag_records > 0) {
    // The oldest record the standby lacks, or the oldest still held.
    uint64_t seq = std::max(s_->acked + 1, backlog.first_seq());
    if (backlog.holds(seq)) st.lag_time = absl::Nanoseconds(now - backlog.appended_ns(seq));
  }
  st.snapshots_sent = s_->snapshots_sent;
  st.resumes = s_->resumes;
  st.backlog_records = backlog.size();
  st.backlog_bytes = backlog.bytes();
  st.backlog_resident = backlog.resident();
  st.connections = s_->connections;
  return st;
}

const RejectCounters& ReplicationSource::rejects() const { return s_->rejects; }

// ======================================================================= sink

struct ReplicationSink::State {
  SinkOptions opt;
  SinkCallbacks cb;
  std::optional<Hmac> key;
  Waker waker;
  RejectCounters rejects;
  std::thread io;
  std::atomic<bool> stop{false};

  // Written by the I/O thread only; copied under mu for status().
  mutable absl::Mutex mu;
  SinkStatus st ABSL_GUARDED_BY(mu);
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> outbox ABSL_GUARDED_BY(mu);  // Send()
  uint64_t sent_msgs ABSL_GUARDED_BY(mu) = 0;     // given to Send()
  uint64_t written_msgs ABSL_GUARDED_BY(mu) = 0;  // of those, written to the socket or dropped
  absl::CondVar written_cv;

  // I/O thread state.
  uint64_t history = 0, applied = 0;
  bool consistent = false;
  bool in_snapshot = false;
  uint64_t snapshot_seq = 0;

  void Run();
  void Serve(Fd fd);
  // False if the connection must be closed.
  bool Dispatch(const Message& m);
  void Publish(bool connected, const std::string& error = "");
  uint64_t Epoch() {
    absl::MutexLock l(&mu);
    return epoch;
  }
};

void ReplicationSink::State::Publish(bool connected, const std::string& error) {
  absl::MutexLock l(&mu);
  st.connected = connected;
  st.consistent = consistent && !in_snapshot;
  st.history = history;
  st.applied_seq = applied;
  if (!error.empty()) st.last_error = error;
}

bool ReplicationSink::State::Dispatch(const Message& m) {
  auto refuse = [&](RejectReason r) {
    rejects.Count(r);
    return false;
  };
  switch (m.type) {
    case MsgType::kSnapshotBegin: {
      absl::StatusOr<SnapshotBeginBody> b = ParseSnapshotBegin(m.body);
      if (!b.ok()) return refuse(RejectReason::kMalformed);
      in_snapshot = true;
      consistent = false;
      history = b->history;
      snapshot_seq = b->seq;
      applied = 0;
      if (cb.begin_snapshot) cb.begin_snapshot(b->history, b->seq);
      return true;
    }
    case MsgType::kSnapshotRecords: {
      if (!in_snapshot) return refuse(RejectReason::kUnexpected);
      absl::StatusOr<std::vector<absl::string_view>> recs = ParseRecords(m.body);
      if (!recs.ok()) return refuse(RejectReason::kMalformed);
      for (absl::string_view r : *recs) cb.apply(RecordKind::kSnapshot, snapshot_seq, r);
      return true;
    }
    case MsgType::kSnapshotEnd: {
      absl::StatusOr<uint64_t> seq = ParseU64(m.body);
      if (!seq.ok()) return refuse(RejectReason::kMalformed);
      if (!in_snapshot || *seq != snapshot_seq) return refuse(RejectReason::kUnexpected);
      in_snapshot = false;
      consistent = true;
      applied = snapshot_seq;
      {
        absl::MutexLock l(&mu);
        ++st.snapshots;
      }
      if (cb.end_snapshot) cb.end_snapshot(snapshot_seq);
      return true;
    }
    case MsgType::kChanges: {
      auto ch = ParseChanges(m.body);
      if (!ch.ok()) return refuse(RejectReason::kMalformed);
      // Exactly the next record: no loss, no duplicate.
      if (!consistent || in_snapshot || ch->first != applied + 1) {
        return refuse(RejectReason::kUnexpected);
      }
      for (absl::string_view r : ch->second) cb.apply(RecordKind::kChange, ++applied, r);
      return true;
    }
    case MsgType::kPairMessage:
      if (cb.message) cb.message(m.body);
      return true;
    case MsgType::kHeartbeat: {
      absl::StatusOr<HeartbeatBody> b = ParseHeartbeat(m.body);
      if (!b.ok()) return refuse(RejectReason::kMalformed);
      if (cb.peer_report) cb.peer_report(m.sender, m.epoch, *b);
      return true;
    }
    default:
      return refuse(RejectReason::kUnexpected);
  }
}

void ReplicationSink::State::Serve(Fd fd) {
  FramedConn conn(std::move(fd));
  mirror::Session session(*key, mirror::Session::Side::kClient, opt.node_id, &rejects);
  conn.Queue(session.StartHandshake(Epoch()));
  int64_t handshake_deadline = MonoNanos() + 2 * absl::ToInt64Nanoseconds(opt.connect_timeout);
  uint64_t acked_sent = applied;
  const int64_t keepalive_ns = absl::ToInt64Nanoseconds(opt.keepalive);
  int64_t last_rx = MonoNanos(), last_tx = last_rx;
  std::string error;
  bool closed_by_source = false;
  uint64_t queued_msgs = 0;  // Send() messages queued on this connection, counted as sent_msgs
  {
    absl::MutexLock l(&mu);
    queued_msgs = written_msgs;
  }
  while (!stop.load()) {
    int64_t now = MonoNanos();
    if (session.established()) {
      std::vector<std::string> out;
      uint64_t ep;
      {
        absl::MutexLock l(&mu);
        out.swap(outbox);
        ep = epoch;
      }
      for (const std::string& msg : out) conn.Queue(session.Seal(MsgType::kPairMessage, ep, msg));
      queued_msgs += out.size();
    }
    if (session.established() && conn.queued() == 0 && now - last_tx >= keepalive_ns) {
      // Idle: repeat the ack so that the source can tell we are alive.
      conn.Queue(session.Seal(MsgType::kAck, Epoch(), EncodeU64(in_snapshot ? 0 : acked_sent)));
    }
    if (conn.queued() > 0) last_tx = now;
    if (!conn.Flush().ok()) {
      error = "send failed";
      break;
    }
    if (conn.queued() == 0) {
      absl::MutexLock l(&mu);
      if (written_msgs != queued_msgs) {
        written_msgs = queued_msgs;
        written_cv.SignalAll();
      }
    }
    if (session.established() && now - last_rx > 3 * keepalive_ns) {
      error = "source silent";
      break;
    }
    int64_t deadline = session.established()
                           ? std::min(last_tx + keepalive_ns, last_rx + 3 * keepalive_ns + 1)
                           : handshake_deadline;
    pollfd fds[2] = {{waker.fd(), POLLIN, 0},
                     {conn.fd(), static_cast<short>(POLLIN | (conn.queued() ? POLLOUT : 0)), 0}};
    poll(fds, 2, PollTimeoutMs(deadline));
    if (fds[0].revents) waker.Drain();
    if (!session.established() && MonoNanos() >= handshake_deadline) {
      error = "handshake timeout";
      break;
    }
    if (!fds[1].revents) continue;
    last_rx = MonoNanos();
    absl::Status rs = conn.ReadSome();
    bool ok = true;
    while (ok) {
      absl::StatusOr<std::optional<absl::string_view>> f = conn.NextFrame();
      if (!f.ok()) {
        rejects.Count(ReasonOf(f.status()));
        ok = false;
        break;
      }
      if (!f->has_value()) break;
      if (!session.established()) {
        if (!session.FinishHandshake(**f).ok()) {
          ok = false;
          break;
        }
        {
          absl::MutexLock l(&mu);
          ++st.connects;
        }
        // A snapshot cut short leaves no usable state: ask for a new one.
        conn.Queue(session.Seal(MsgType::kSubscribe, Epoch(),
                                EncodeSubscribe({history, applied, consistent && !in_snapshot})));
        in_snapshot = false;
        Publish(true);
        continue;
      }
      absl::StatusOr<Message> m = session.Open(**f);
      if (!m.ok() || !Dispatch(*m)) ok = false;
    }
    // One cumulative ack per batch read.
    if (session.established() && applied != acked_sent && !in_snapshot) {
      conn.Queue(session.Seal(MsgType::kAck, Epoch(), EncodeU64(applied)));
      acked_sent = applied;
    }
    Publish(session.established());
    if (!ok) {
      error = "refused a frame";
      break;
    }
    if (!rs.ok()) {
      if (conn.partial()) rejects.Count(RejectReason::kTruncated);
      error = std::string(rs.message());
      closed_by_source = session.established() && (error == "connection closed" ||
                                                   error.find("reset") != std::string::npos);
      break;
    }
  }
  // Best effort: tell the source how far we got before closing.
  if (session.established() && applied != acked_sent && !in_snapshot) {
    conn.Queue(session.Seal(MsgType::kAck, Epoch(), EncodeU64(applied)));
    (void)conn.Flush();
  }
  {
    absl::MutexLock l(&mu);
    written_msgs = sent_msgs;  // what was not written is dropped: nobody waits for it
    outbox.clear();
    written_cv.SignalAll();
  }
  Publish(false, error);
  if (closed_by_source && cb.source_closed) cb.source_closed();
}

void ReplicationSink::State::Run() {
  while (!stop.load()) {
    absl::StatusOr<Fd> fd = TcpConnect(opt.source, opt.connect_timeout);
    if (fd.ok()) {
      Serve(std::move(*fd));
    } else {
      Publish(false, std::string(fd.status().message()));
    }
    if (stop.load()) break;
    pollfd p{waker.fd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(opt.reconnect_interval)));
    if (p.revents) waker.Drain();
  }
}

absl::StatusOr<std::unique_ptr<ReplicationSink>> ReplicationSink::Start(SinkOptions options,
                                                                        SinkCallbacks callbacks) {
  if (!callbacks.apply) return absl::InvalidArgumentError("an apply callback is required");
  absl::StatusOr<Hmac> key = Hmac::Create(options.key);
  if (!key.ok()) return key.status();
  socklen_t len;
  if (absl::StatusOr<sockaddr_storage> sa = ToSockaddr(options.source, &len); !sa.ok()) {
    return sa.status();
  }
  auto s = std::make_unique<State>();
  s->key = std::move(*key);
  s->history = options.history;
  s->applied = options.applied_seq;
  s->consistent = options.consistent;
  {
    absl::MutexLock l(&s->mu);
    s->epoch = options.epoch;
    s->st.history = options.history;
    s->st.applied_seq = options.applied_seq;
    s->st.consistent = options.consistent;
  }
  s->opt = std::move(options);
  s->cb = std::move(callbacks);
  State* raw = s.get();
  s->io = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ReplicationSink>(new ReplicationSink(std::move(s)));
}

ReplicationSink::ReplicationSink(std::unique_ptr<State> s) : s_(std::move(s)) {}

ReplicationSink::~ReplicationSink() {
  s_->stop.store(true);
  s_->waker.Wake();
  s_->io.join();
}

void ReplicationSink::SetEpoch(uint64_t epoch) {
  absl::MutexLock l(&s_->mu);
  s_->epoch = epoch;
}

void ReplicationSink::Send(std::string message) {
  {
    absl::MutexLock l(&s_->mu);
    s_->outbox.push_back(std::move(message));
    ++s_->sent_msgs;
  }
  s_->waker.Wake();
}

bool ReplicationSink::Drain(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock l(&s_->mu);
  const uint64_t want = s_->sent_msgs;
  while (s_->st.connected && s_->written_msgs < want) {
    if (s_->written_cv.WaitWithDeadline(&s_->mu, deadline)) break;
  }
  return s_->st.connected && s_->written_msgs >= want;
}

SinkStatus ReplicationSink::status() const {
  absl::MutexLock l(&s_->mu);
  return s_->st;
}

const RejectCounters& ReplicationSink::rejects() const { return s_->rejects; }

}  // namespace tandem::mirror
