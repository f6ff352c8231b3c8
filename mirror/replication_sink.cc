// The replication sink (the source is in replication.cc).
#include <poll.h>
#include <pthread.h>

#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "mirror/replication.h"

namespace tandem::mirror {
namespace {

int PollTimeoutMs(int64_t deadline_ns) {
  if (deadline_ns < 0) return -1;
  int64_t left = deadline_ns - MonoNanos();
  if (left <= 0) return 0;
  return static_cast<int>(left / 1000000 + 1);
}

}  // namespace

struct ReplicationSink::State {
  // One connection to the source.
  struct Link {
    explicit Link(Fd fd, const Hmac& key, uint32_t node, RejectCounters* rc)
        : conn(std::move(fd)), session(key, Session::Side::kClient, node, rc) {}
    FramedConn conn;
    Session session;
    uint64_t acked_sent = 0;
    int64_t last_rx = 0, last_tx = 0;
    uint64_t queued_msgs = 0;  // Send() messages queued on this connection, counted as sent_msgs
  };
  // A frame's worth of state received since the last commit: applied again
  // when storing it failed.
  struct Held {
    MsgType type;      // kSnapshotRecords, kSnapshotEnd or kChanges
    uint64_t seq = 0;  // kChanges: its first record's; else the snapshot's (end: consistent_from)
    std::string body;  // the records (parsed again when applied again)
  };

  SinkOptions opt;
  SinkCallbacks cb;
  std::optional<Hmac> key;
  std::shared_ptr<const TlsContext> tls;  // null: in the clear
  Waker waker;
  RejectCounters rejects;
  std::thread io;
  std::atomic<bool> stop{false};

  // Written by the I/O thread only; copied under mu for status().
  mutable absl::Mutex mu;
  SinkStatus st ABSL_GUARDED_BY(mu);
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> outbox ABSL_GUARDED_BY(mu);  // Send()
  uint64_t sent_msgs ABSL_GUARDED_BY(mu) = 0;           // given to Send()
  uint64_t written_msgs ABSL_GUARDED_BY(mu) = 0;  // of those, written to the socket or dropped
  absl::CondVar written_cv;

  // I/O thread state. The state is a snapshot (or an adopted state) and the
  // changes after it, received up to `applied`; it is consistent once that
  // reaches the snapshot's end (consistent_from).
  uint64_t history = 0, applied = 0;
  bool based = false;
  uint64_t consistent_from = 0;
  bool in_snapshot = false;
  uint64_t snapshot_seq = 0;
  // What the last commit made durable: acknowledged, and where the sink
  // resumes on a new connection if what it held since could not be stored.
  uint64_t committed = 0, committed_history = 0;
  bool committed_consistent = false;
  std::vector<Held> held;                    // received since the last commit
  std::optional<absl::Status> store_failed;  // storing `held` failed: retry at
  int64_t retry_ns = 0;

  bool consistent() const { return based && !in_snapshot && applied >= consistent_from; }
  void Run();
  void Serve(Fd fd);
  // The connection ended: what was not stored is asked for again next time.
  void Close(Link& l, const std::string& error, bool closed_by_source);
  void QueueOutput(Link& l, int64_t now);
  bool SendDue(Link& l, int64_t now);
  // False if the connection must be closed (a refused frame).
  bool ReadFrames(Link& l);
  bool Dispatch(Message& m);  // takes the body of a frame it keeps
  // Applies the frame just kept (held.back(), its `records` parsed from it).
  void ApplyLast(std::vector<absl::string_view> records);
  absl::Status Apply(const Held& h, std::vector<absl::string_view> records);
  absl::Status ApplyAgain(const Held& h);
  bool Store();
  void Failed(const absl::Status& s);
  void Publish(bool connected, const std::string& error = "");
  uint64_t Epoch() {
    absl::MutexLock l(&mu);
    return epoch;
  }
};

void ReplicationSink::State::Publish(bool connected, const std::string& error) {
  absl::MutexLock l(&mu);
  st.connected = connected;
  st.consistent = consistent();
  st.history = history;
  st.applied_seq = applied;
  if (!error.empty()) st.last_error = error;
}

void ReplicationSink::State::Failed(const absl::Status& s) {
  store_failed = s;
  retry_ns = MonoNanos() + absl::ToInt64Nanoseconds(opt.store_retry_interval);
  absl::MutexLock l(&mu);
  st.store_error = std::string(s.message());
  ++st.store_failures;
}

absl::Status ReplicationSink::State::Apply(const Held& h,
                                           std::vector<absl::string_view> records) {
  if (h.type == MsgType::kSnapshotEnd) {
    return cb.end_snapshot ? cb.end_snapshot(h.seq) : absl::OkStatus();
  }
  uint64_t seq = h.seq;
  for (absl::string_view r : records) {
    RecordKind kind = h.type == MsgType::kSnapshotRecords ? RecordKind::kSnapshot
                      : seq > consistent_from             ? RecordKind::kChange
                                                          : RecordKind::kCatchUp;
    if (absl::Status s = cb.apply(kind, seq, r); !s.ok()) return s;
    if (h.type == MsgType::kChanges) ++seq;
  }
  return absl::OkStatus();
}

absl::Status ReplicationSink::State::ApplyAgain(const Held& h) {
  absl::StatusOr<std::vector<absl::string_view>> records = std::vector<absl::string_view>{};
  if (h.type == MsgType::kChanges) {
    auto ch = ParseChanges(h.body);  // parsed once already: cannot fail
    records = ch.ok() ? absl::StatusOr<std::vector<absl::string_view>>(std::move(ch->second))
                      : ch.status();
  } else if (h.type == MsgType::kSnapshotRecords) {
    records = ParseRecords(h.body);
  }
  if (!records.ok()) return records.status();
  return Apply(h, std::move(*records));
}

// Applies the frame kept last, unless storing already failed (then it waits
// in `held` for the next attempt).
void ReplicationSink::State::ApplyLast(std::vector<absl::string_view> records) {
  if (store_failed) return;
  if (absl::Status s = Apply(held.back(), std::move(records)); !s.ok()) return Failed(s);
  if (held.back().type == MsgType::kSnapshotEnd) {
    // It committed everything before it (applied again, its sweep would
    // remove what the snapshot held): a commit point.
    held.clear();
    Store();
  }
}

// Commits what was received since the last commit (applying it again first
// after a failure). False while it cannot be stored.
bool ReplicationSink::State::Store() {
  if (store_failed) {
    store_failed.reset();
    for (size_t i = 0; i < held.size(); ++i) {
      if (absl::Status s = ApplyAgain(held[i]); !s.ok()) {
        Failed(s);
        return false;
      }
      if (held[i].type == MsgType::kSnapshotEnd) {
        held.erase(held.begin(), held.begin() + static_cast<ptrdiff_t>(i) + 1);
        i = static_cast<size_t>(-1);
      }
    }
  }
  if (absl::Status s = cb.commit ? cb.commit() : absl::OkStatus(); !s.ok()) {
    Failed(s);
    return false;
  }
  held.clear();
  if (!in_snapshot) {
    committed = applied;
    committed_history = history;
    committed_consistent = consistent();
  }
  absl::MutexLock l(&mu);
  st.store_error.clear();
  return true;
}

bool ReplicationSink::State::Dispatch(Message& m) {
  auto refuse = [&](RejectReason r) {
    rejects.Count(r);
    return false;
  };
  switch (m.type) {
    case MsgType::kSnapshotBegin: {
      absl::StatusOr<SnapshotBeginBody> b = ParseSnapshotBegin(m.body);
      if (!b.ok()) return refuse(RejectReason::kMalformed);
      in_snapshot = true;
      based = false;
      history = b->history;
      snapshot_seq = b->seq;
      applied = 0;
      // What was committed before is overwritten from here on: no longer a
      // state to resume from.
      committed_consistent = false;
      if (cb.begin_snapshot) cb.begin_snapshot(b->history, b->seq);
      return true;
    }
    case MsgType::kSnapshotRecords: {
      if (!in_snapshot) return refuse(RejectReason::kUnexpected);
      held.push_back({m.type, snapshot_seq, std::move(m.body)});
      absl::StatusOr<std::vector<absl::string_view>> records = ParseRecords(held.back().body);
      if (!records.ok()) {
        held.pop_back();
        return refuse(RejectReason::kMalformed);
      }
      ApplyLast(std::move(*records));
      return true;
    }
    case MsgType::kSnapshotEnd: {
      absl::StatusOr<uint64_t> seq = ParseU64(m.body);
      if (!seq.ok()) return refuse(RejectReason::kMalformed);
      if (!in_snapshot || *seq < snapshot_seq) return refuse(RejectReason::kUnexpected);
      in_snapshot = false;
      based = true;
      applied = snapshot_seq;
      consistent_from = *seq;
      held.push_back({m.type, *seq, ""});
      ApplyLast({});
      absl::MutexLock l(&mu);
      ++st.snapshots;
      return true;
    }
    case MsgType::kChanges: {
      held.push_back({m.type, 0, std::move(m.body)});
      auto ch = ParseChanges(held.back().body);
      // Exactly the next record: no loss, no duplicate.
      bool next = ch.ok() && based && !in_snapshot && ch->first == applied + 1;
      if (!next || ch->second.empty()) {  // refused, or a keepalive
        held.pop_back();
        return next || refuse(ch.ok() ? RejectReason::kUnexpected : RejectReason::kMalformed);
      }
      held.back().seq = ch->first;
      applied += ch->second.size();
      ApplyLast(std::move(ch->second));
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

// Queues the messages Send() left and, on an idle connection, a keepalive.
void ReplicationSink::State::QueueOutput(Link& l, int64_t now) {
  if (!l.session.established()) return;
  std::vector<std::string> out;
  uint64_t ep;
  {
    absl::MutexLock lock(&mu);
    out.swap(outbox);
    ep = epoch;
  }
  for (const std::string& msg : out) l.conn.Queue(l.session.Seal(MsgType::kPairMessage, ep, msg));
  l.queued_msgs += out.size();
  if (l.conn.queued() == 0 && now - l.last_tx >= absl::ToInt64Nanoseconds(opt.keepalive)) {
    // Idle: repeat the ack so that the source can tell we are alive.
    l.conn.Queue(l.session.Seal(MsgType::kAck, ep, EncodeU64(in_snapshot ? 0 : l.acked_sent)));
  }
}

bool ReplicationSink::State::ReadFrames(Link& l) {
  for (;;) {
    absl::StatusOr<std::optional<absl::string_view>> f = l.conn.NextFrame();
    if (!f.ok()) {
      rejects.Count(ReasonOf(f.status()));
      return false;
    }
    if (!f->has_value()) return true;
    if (!l.session.established()) {
      if (!l.session.FinishHandshake(**f).ok()) return false;
      {
        absl::MutexLock lock(&mu);
        ++st.connects;
      }
      // A snapshot cut short leaves no usable state: ask for a new one.
      l.conn.Queue(l.session.Seal(MsgType::kSubscribe, Epoch(),
                                  EncodeSubscribe({history, applied, consistent()})));
      Publish(true);
      continue;
    }
    absl::StatusOr<Message> m = l.session.Open(**f);
    if (!m.ok() || !Dispatch(*m)) return false;
    if (store_failed) return true;  // the frames after it wait in the buffer
  }
}

// Acks what was stored, queues what is due and sends; false when sending failed.
bool ReplicationSink::State::SendDue(Link& l, int64_t now) {
  if (l.session.established() && !in_snapshot && committed != l.acked_sent &&
      committed_history == history) {
    // One cumulative ack per batch read: the source learns only of what is stored.
    l.conn.Queue(l.session.Seal(MsgType::kAck, Epoch(), EncodeU64(committed)));
    l.acked_sent = committed;
  }
  Publish(l.session.established());
  QueueOutput(l, now);
  if (l.conn.queued() > 0) l.last_tx = now;
  if (!l.conn.Flush().ok()) return false;
  if (l.conn.queued() == 0) {
    absl::MutexLock lock(&mu);
    if (written_msgs != l.queued_msgs) {
      written_msgs = l.queued_msgs;
      written_cv.SignalAll();
    }
  }
  return true;
}

void ReplicationSink::State::Serve(Fd fd) {
  Link l(std::move(fd), *key, opt.node_id, &rejects);
  if (tls != nullptr) {
    if (absl::Status st = l.conn.ConnectTls(*tls, opt.connect_timeout); !st.ok()) {
      Publish(false, std::string(st.message()));
      return;
    }
  }
  in_snapshot = false;  // one cut short left no usable state: the subscription asks for another
  l.conn.Queue(l.session.StartHandshake(Epoch()));
  int64_t handshake_deadline = MonoNanos() + 2 * absl::ToInt64Nanoseconds(opt.connect_timeout);
  l.acked_sent = applied;
  const int64_t keepalive_ns = absl::ToInt64Nanoseconds(opt.keepalive);
  l.last_rx = l.last_tx = MonoNanos();
  std::string error;
  bool closed_by_source = false;
  {
    absl::MutexLock lock(&mu);
    l.queued_msgs = written_msgs;
  }
  while (!stop.load()) {
    int64_t now = MonoNanos();
    // Storing failed: nothing is read until what was received is stored (the
    // source waits meanwhile, kept informed by the keepalives); then the
    // frames left in the buffer.
    if (store_failed && now >= retry_ns && Store()) {
      l.last_rx = now;  // not read meanwhile, on purpose: the source is not silent
      if (!ReadFrames(l)) {
        error = "refused a frame";
        break;
      }
      if (!store_failed && !held.empty()) Store();
    }
    if (!SendDue(l, now)) {
      error = "send failed";
      break;
    }
    if (l.session.established() && !store_failed && now - l.last_rx > 3 * keepalive_ns) {
      error = "source silent";
      break;
    }
    int64_t deadline = !l.session.established() ? handshake_deadline
                       : store_failed
                           ? std::min(l.last_tx + keepalive_ns, retry_ns)
                           : std::min(l.last_tx + keepalive_ns, l.last_rx + 3 * keepalive_ns + 1);
    short events =
        static_cast<short>((store_failed ? 0 : POLLIN) | (l.conn.queued() ? POLLOUT : 0));
    pollfd fds[2] = {{waker.fd(), POLLIN, 0}, {l.conn.fd(), events, 0}};
    poll(fds, 2, PollTimeoutMs(deadline));
    if (fds[0].revents) waker.Drain();
    if (!l.session.established() && MonoNanos() >= handshake_deadline) {
      error = "handshake timeout";
      break;
    }
    if (!(fds[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    l.last_rx = MonoNanos();
    absl::Status rs = l.conn.ReadSome();
    if (!ReadFrames(l)) {
      error = "refused a frame";
      break;
    }
    // One commit per batch read.
    if (!store_failed && !held.empty()) Store();
    if (!rs.ok()) {
      if (l.conn.partial() && !store_failed) rejects.Count(RejectReason::kTruncated);
      error = std::string(rs.message());
      closed_by_source = l.session.established() &&
                         (error == "connection closed" || error.find("reset") != std::string::npos);
      break;
    }
  }
  Close(l, error, closed_by_source);
}

void ReplicationSink::State::Close(Link& l, const std::string& error, bool closed_by_source) {
  if (store_failed || !held.empty()) {
    // Never stored: the next connection asks again from the last commit.
    store_failed.reset();
    held.clear();
    applied = committed;
    history = committed_history;
    based = committed_consistent;
    consistent_from = 0;
  } else if (l.session.established() && !in_snapshot && committed != l.acked_sent &&
             committed_history == history) {
    // Tell the source how far we got before closing.
    l.conn.Queue(l.session.Seal(MsgType::kAck, Epoch(), EncodeU64(committed)));
    (void)l.conn.Flush();
  }
  {
    absl::MutexLock lock(&mu);
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
  socklen_t len = 0;
  if (absl::StatusOr<sockaddr_storage> sa = ToSockaddr(options.source, &len); !sa.ok()) {
    return sa.status();
  }
  auto s = std::make_unique<State>();
  s->key = std::move(*key);
  if (options.tls) {
    absl::StatusOr<std::shared_ptr<const TlsContext>> tls =
        TlsContext::Create(TlsContext::Side::kClient, options.key);
    if (!tls.ok()) return tls.status();
    s->tls = std::move(*tls);
  }
  s->history = s->committed_history = options.history;
  s->applied = s->committed = options.applied_seq;
  s->based = s->committed_consistent = options.consistent;
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
  s->io = std::thread([raw] {
    BlockSigpipeInThisThread();
    // Named for top -H and for scripts/bench/pair_backbone.py, which reads
    // how long this thread waited for a CPU (/proc/PID/task/TID/schedstat).
    pthread_setname_np(pthread_self(), "repl-sink");
    raw->Run();
  });
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
