// The ordered log of changes a node's control plane made: for Watch streams
// (meeting applications) and, on a node of a pair, the replication stream to
// the standby, which reads this very log (mirror/replication_log.h): a change
// is stored once, tagged once ('C') and numbered once (log id, seq). Records
// of the stream that are no changes (usage 'U', a digest mark 'D', see
// control/pair.h) take numbers too; a Watch skips them, so the seqs a Watch
// sees are increasing, not dense. A reader resumes from any number the log
// still holds (a bounded ring of the latest records), and gets OutOfRange
// (resync needed) for older ones. The ring holds at most `capacity` records
// in at most `max_bytes` (common/record_ring.h). `log_id` is chosen at random
// at each daemon start: sequence numbers only compare within one log.
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control.pb.h"
#include "mirror/replication_log.h"

namespace tandem::control {

// The tags of the records of the log (the first byte of each).
inline constexpr char kChangeTag = 'C';
inline constexpr char kUsageTag = 'U';
inline constexpr char kDigestTag = 'D';

class ChangeLog {
 public:
  ChangeLog(size_t capacity, size_t max_bytes, uint64_t log_id);

  // Assigns seq, log_id and time; returns the seq.
  uint64_t Append(v1::Change change);
  // Appends several changes under one lock, moving them out of `changes`
  // (left with moved-from entries). Returns the last seq (0 if none).
  uint64_t AppendAll(std::vector<v1::Change>& changes);
  // Appends a record of the replication stream that is no change (its tag
  // first, e.g. kUsageTag); returns its seq.
  uint64_t AppendRecord(absl::string_view record);

  // Copies up to `max` changes starting at `from` into `out`, waiting up to
  // `wait` for the first record; `*next` (if given) is the seq to read from
  // next time (past the records read, changes or not). OutOfRange when `from` is older than the ring;
  // Unavailable when it is older because this node resynced from the active
  // node meanwhile (a demoted node: the reader resumes on the active one).
  // Returns Cancelled once Close() was called.
  absl::Status Read(uint64_t from, size_t max, absl::Duration wait, std::vector<v1::Change>* out,
                    uint64_t* next = nullptr);

  void Close();
  uint64_t last_seq() const;
  uint64_t log_id() const;

  // The records, for the replication source of the active node.
  const std::shared_ptr<mirror::ReplicationLog>& records() const { return log_; }
  // On a standby: appends a change replicated from the active node (its
  // record without the tag), keeping its log id and sequence number, so that
  // a Watch can be resumed on either node. A gap of up to kMaxSkipped seqs
  // (the active's records that are no changes) is held as empty records; a
  // change of log id, or a longer gap, starts the ring anew. A change the
  // ring already holds (applied again) is left out.
  void AppendReplicated(std::string record, const v1::Change& change);
  static constexpr uint64_t kMaxSkipped = 1u << 16;
  // On a standby: a record of the stream that is no change (tagged), at the
  // active's `seq`: kept if it follows on (the stream is this log's, so the
  // standby's position stays the active's), else left out.
  void AppendReplicatedRecord(uint64_t seq, absl::string_view record);
  // After a full resync: the log continues at (log_id, next_seq), empty.
  void Reset(uint64_t log_id, uint64_t next_seq);

 private:
  // Tagged records numbered from 1, under log_->mu(), which also guards
  // the two below (its history is the log id).
  const std::shared_ptr<mirror::ReplicationLog> log_;
  // The first seq as a resync left it (Reset, or a replicated change that did
  // not follow on): readers behind it missed changes by no fault of theirs.
  uint64_t resync_first_ = 0;
  bool closed_ = false;
};

}  // namespace tandem::control
