// Replication of opaque change records from the primary (ReplicationSource)
// to one standby (ReplicationSink) over an authenticated TCP backbone
// connection (wire.h).
//
// Sequence numbers start at 1 and are dense within one source *history* (a
// random 64-bit id chosen when a source starts serving a history; a node that
// takes over starts a new one). The sink tells the source where it stands
// (history, last applied sequence, whether its state is complete); the source
// resumes from there if its backlog still holds the next record, otherwise it
// streams a full snapshot (records read in chunks from a callback) and then the
// changes from the snapshot's start. The sink applies in order, commits, and
// acknowledges cumulatively what it committed, once per batch of frames read;
// after a break it reconnects and resumes.
//
// Threads: each source and sink runs one I/O thread (poll(), no busy loop).
// Every public method is thread-safe. Callbacks run on that I/O thread, with no
// lock of the object held; they must not call Stop()/destroy the object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mirror/net.h"
#include "mirror/replication_log.h"
#include "mirror/wire.h"

namespace tandem::mirror {

// A full resync's records, read in chunks as the connection takes them, so
// that the state is never built whole and its owner is never held up for
// long. The standby applies the records, then every change after the first
// chunk's seq; its state is consistent once it has applied the last chunk's.
// So the records must be whole objects written idempotently (applying a change
// again, or over a record read after it, changes nothing), and each chunk
// must be read with Append() held off (e.g. under the lock the appends come
// from), so that its seq is exact.
class SnapshotReader {
 public:
  struct Chunk {
    std::vector<std::string> records;
    uint64_t seq = 0;   // last appended sequence when the chunk was read
    bool last = false;  // no record follows
  };
  virtual ~SnapshotReader() = default;
  // Records of about `max_bytes` (at least one unless none is left).
  virtual absl::StatusOr<Chunk> Next(size_t max_bytes) = 0;
};

// A reader over records taken whole, all at `seq` (for tests and benchmarks).
std::unique_ptr<SnapshotReader> WholeSnapshot(std::vector<std::string> records, uint64_t seq);

struct SourceOptions {
  uint32_t node_id = 0;
  uint64_t epoch = 0;               // sent in every frame; a sink from a higher epoch is refused
  std::string key;                  // backbone key, >= kMinKeySize bytes
  bool tls = true;                  // the stream in TLS 1.3 (mirror/tls.h); the sink must agree
  Endpoint listen{"127.0.0.1", 0};  // port 0: ephemeral (see port())
  // The records to stream (replication_log.h), shared with whoever appends
  // them: a standby resumes after a break from what the log still holds, and
  // one behind it gets a full resync. On a node of a pair it is the change
  // log's. Null: the source keeps a log of its own, made from the four
  // options below, and only Append()/AppendBatch() fill it.
  std::shared_ptr<ReplicationLog> log;
  uint64_t history = 0;             // 0: random
  uint64_t first_seq = 1;           // sequence of the first Append()
  // That log keeps at most this many records in this many bytes (a record
  // costs its bytes + 16, rounded up to 8; common/record_ring.h); the oldest
  // go first. Memory: the bytes touched, plus 8 per record slot.
  size_t backlog_records = 1u << 20;
  size_t backlog_bytes = size_t{128} << 20;
  // Called on the I/O thread when a sink needs a full resync. Each chunk's
  // seq must be >= first_seq - 1 and <= the last appended sequence. The
  // backlog must hold every change after the first chunk's seq until the
  // standby has it: when it drops one first, the snapshot starts again.
  std::function<absl::StatusOr<std::unique_ptr<SnapshotReader>>()> snapshot;
  // Anyone who reaches the port may connect; only a key holder can finish
  // the handshake. A connection must send a valid Hello within hello_timeout
  // and subscribe within handshake_timeout. Those still without a valid Hello
  // are bounded per source address and in all (the oldest gives way); they
  // never push out one that sent a valid Hello.
  absl::Duration hello_timeout = absl::Milliseconds(500);
  absl::Duration handshake_timeout = absl::Seconds(2);
  // An idle connection carries a frame every keepalive; one silent for three
  // keepalives is dropped (a cut backbone is found even without a TCP reset).
  absl::Duration keepalive = absl::Seconds(1);
  // Optional, on the I/O thread: when a standby subscribes, a message
  // (kPairMessage) to send it before anything else ("" for none); and the
  // messages the standby sends (ReplicationSink::Send).
  std::function<std::string()> greeting;
  std::function<void(absl::string_view message)> on_message;
};

struct SourceStatus {
  uint64_t history = 0;
  uint64_t last_seq = 0;           // last appended
  uint64_t acked_seq = 0;          // last applied by the connected standby (this history)
  bool standby_connected = false;  // authenticated and subscribed
  bool standby_synced = false;     // its snapshot (if any) is applied
  uint64_t lag_records = 0;        // last_seq - acked_seq
  absl::Duration lag_time;         // age of the oldest unacknowledged record
  uint64_t snapshots_sent = 0;
  uint64_t snapshot_restarts = 0;  // abandoned: the backlog dropped a change they needed
  uint64_t resumes = 0;      // subscriptions served from the backlog
  // Records refused (Append) or sent empty (a shared log's) for being longer
  // than kMaxRecord.
  uint64_t oversized = 0;
  uint64_t backlog_records = 0;
  uint64_t backlog_bytes = 0;  // of SourceOptions::backlog_bytes in use
  uint64_t backlog_resident = 0;  // memory the backlog keeps resident
  uint64_t connections = 0;  // authenticated subscriptions
};

class ReplicationSource {
 public:
  // Binds, listens and starts the I/O thread. InvalidArgument on bad options,
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ReplicationSource>> Start(SourceOptions options);
  ~ReplicationSource();  // stops the thread and closes every socket

  uint16_t port() const;

  // Appends a change to the log; returns its sequence number. Never blocks on the network
  // (the oldest backlog record is dropped when full). InvalidArgument, naming
  // the limit, for a record longer than kMaxRecord: it could never be sent.
  absl::StatusOr<uint64_t> Append(absl::string_view record);
  // Appends several changes under one lock, in order; returns the last
  // sequence (or the current last one if `records` is empty). A record
  // longer than kMaxRecord is left out (the others are appended) and the
  // result is InvalidArgument.
  absl::StatusOr<uint64_t> AppendBatch(const std::vector<std::string>& records);

  // Synchronous mode: waits until the standby has applied `seq`.
  // OK once acked; DeadlineExceeded on timeout; Unavailable if no standby is
  // subscribed (at the call or while waiting), so that a lost standby does not
  // stall every write (the caller raises the alarm).
  absl::Status WaitAcked(uint64_t seq, absl::Duration timeout);

  // Sets the epoch stamped on frames (after a takeover or demotion).
  void SetEpoch(uint64_t epoch);

  // Sends `report` to the subscribed standby ahead of any queued changes
  // (a kHeartbeat frame): how this node's control daemon tells the standby
  // at once what the switch's own heartbeats can no longer say, e.g. that
  // the switch died. Dropped when no standby is subscribed.
  void Notify(const HeartbeatBody& report);

  SourceStatus status() const;
  const RejectCounters& rejects() const;

 private:
  struct State;
  explicit ReplicationSource(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// kSnapshot: a record of a snapshot; kCatchUp: a change replayed over a
// snapshot's records before the state is consistent again; kChange: a change
// applied to a consistent state.
enum class RecordKind { kSnapshot, kCatchUp, kChange };

// The sink acknowledges a record only once it is durable: applied, then
// committed. After an error from apply, end_snapshot or commit (counted,
// SinkStatus::store_error) it acknowledges and reads nothing more, keeps
// the connection (so the source waits for its acknowledgement rather than
// counting it gone), and every store_retry_interval applies again what it
// received since its last commit, until a commit succeeds. So apply must be
// idempotent. If the connection breaks meanwhile, it asks again from its last
// commit.
struct SinkCallbacks {
  // A snapshot starts: drop all replicated state. Records follow.
  std::function<void(uint64_t history, uint64_t seq)> begin_snapshot;
  // One record, in order. Snapshot records carry the snapshot's seq.
  std::function<absl::Status(RecordKind kind, uint64_t seq, absl::string_view record)> apply;
  // The snapshot's records are all applied; the state is consistent once the
  // changes up to `consistent_seq` are applied too.
  std::function<absl::Status(uint64_t consistent_seq)> end_snapshot;
  // Optional: makes what was applied so far durable; called before each
  // acknowledgement. Not set: applied means durable.
  std::function<absl::Status()> commit;
  // Optional: the source's Notify(); `sender` and `epoch` from the frame.
  std::function<void(uint32_t sender, uint64_t epoch, const HeartbeatBody& report)> peer_report;
  // Optional: an established connection ended because the source closed or
  // reset it (its process exited or closed the socket), as opposed to a
  // timeout or a refused frame. A hint that the peer's control daemon is gone.
  std::function<void()> source_closed;
  // Optional: a message of the layer above from the source (its greeting).
  std::function<void(absl::string_view message)> message;
};

struct SinkOptions {
  uint32_t node_id = 0;
  uint64_t epoch = 0;
  std::string key;
  bool tls = true;  // as SourceOptions::tls
  Endpoint source;  // the primary's backbone address
  // Where this node stands at start (e.g. adopted from its tables); the
  // default asks for a snapshot.
  uint64_t history = 0;
  uint64_t applied_seq = 0;
  bool consistent = false;
  absl::Duration reconnect_interval = absl::Milliseconds(100);
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration keepalive = absl::Seconds(1);  // as SourceOptions::keepalive
  absl::Duration store_retry_interval = absl::Seconds(1);  // after a store failure
};

struct SinkStatus {
  bool connected = false;   // authenticated to the source
  bool consistent = false;  // holds a complete state (history, applied_seq)
  uint64_t history = 0;
  uint64_t applied_seq = 0;
  uint64_t snapshots = 0;
  uint64_t connects = 0;  // successful handshakes
  std::string last_error;
  // Set while the records received could not be stored (apply, end_snapshot
  // or commit failed, so nothing more is acknowledged); cleared once they are.
  std::string store_error;
  uint64_t store_failures = 0;
};

class ReplicationSink {
 public:
  // Starts the I/O thread, which connects and reconnects on its own.
  static absl::StatusOr<std::unique_ptr<ReplicationSink>> Start(SinkOptions options,
                                                                SinkCallbacks callbacks);
  ~ReplicationSink();

  void SetEpoch(uint64_t epoch);
  // Queues a message to the source (SourceOptions::on_message); dropped if
  // the connection breaks first. May be called from the callbacks.
  void Send(std::string message);
  // Waits until every message sent so far is written to the connection.
  // False if it breaks (or is down) or `timeout` passes first.
  bool Drain(absl::Duration timeout);
  SinkStatus status() const;
  const RejectCounters& rejects() const;

 private:
  struct State;
  explicit ReplicationSink(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace tandem::mirror
