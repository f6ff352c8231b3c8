// The numbered records one replication source streams, shared with whoever
// appends them: on a node of a pair, the control plane's change log
// (control/change_log.h) is this log, so a change is stored once, numbered
// once (history, seq) and tagged once, and the standby's applied position is
// the active's change-log position.
//
// Records live in one mapped ring bounded in records and bytes
// (common/record_ring.h); the oldest go first, and a standby that needs one
// that went gets a full resync.
//
// Thread-safe: every member is used under mu(); appends hold it through a
// Writer, which wakes the waiting reader (the source's I/O thread, polling
// wake_fd()) only once the lock is released, so that the reader does not
// wake into a lock still held.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/record_ring.h"
#include "mirror/net.h"

namespace tandem::mirror {

class ReplicationLog {
 public:
  // The next record appended is number `first_seq` of `history`.
  ReplicationLog(size_t max_records, size_t max_bytes, uint64_t history, uint64_t first_seq)
      : history_(history), ring_(max_records, max_bytes, first_seq) {}

  absl::Mutex& mu() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

  const RecordRing& ring() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return ring_; }
  // Sequence numbers compare within one history only.
  uint64_t history() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return history_; }

  // Holds mu() while it lives; then wakes the reader if a Push found it waiting.
  class Writer {
   public:
    explicit Writer(ReplicationLog& log) ABSL_EXCLUSIVE_LOCK_FUNCTION(log.mu_) : log_(log) {
      log_.mu_.Lock();
    }
    ~Writer() ABSL_UNLOCK_FUNCTION();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

   private:
    ReplicationLog& log_;
  };

  // Appends record last_seq() + 1 (its time on the monotonic clock, for the
  // lag); under a Writer.
  void Push(absl::string_view record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Empties the log; it goes on at (history, next_seq).
  void Restart(uint64_t history, uint64_t next_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    history_ = history;
    ring_.Clear(next_seq);
  }

  // The reader polls this; it becomes readable at the first append after
  // WakeWhenPast found nothing past `next`.
  int wake_fd() const { return waker_.fd(); }
  void DrainWake() { waker_.Drain(); }
  // True if record `next` is there; otherwise the reader is woken when it is.
  bool WakeWhenPast(uint64_t next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopWaiting() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { reader_waiting_ = false; }

 private:
  mutable absl::Mutex mu_;
  uint64_t history_ ABSL_GUARDED_BY(mu_);
  RecordRing ring_ ABSL_GUARDED_BY(mu_);
  Waker waker_;
  bool reader_waiting_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // a Push found the reader waiting
};

}  // namespace tandem::mirror
