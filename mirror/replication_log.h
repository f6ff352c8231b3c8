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
// Thread-safe: every member is used under mu(). One reader (the source's I/O
// thread) may ask to be woken by the next append (WakeWhenPast).
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

  // Appends record last_seq() + 1 (its time on the monotonic clock, for the
  // lag) and wakes the reader if it waits for it.
  void Push(absl::string_view record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Empties the log; it goes on at (history, next_seq).
  void Restart(uint64_t history, uint64_t next_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    history_ = history;
    ring_.Clear(next_seq);
  }

  // The reader: `waker` is woken by the first Push after WakeWhenPast found
  // nothing past `next`; null detaches it. The reader must detach before the
  // waker goes.
  void SetReader(Waker* waker) ABSL_LOCKS_EXCLUDED(mu_);
  // True if record `next` is there; otherwise the reader is woken when it is.
  bool WakeWhenPast(uint64_t next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopWaiting() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { reader_waiting_ = false; }

 private:
  mutable absl::Mutex mu_;
  uint64_t history_ ABSL_GUARDED_BY(mu_);
  RecordRing ring_ ABSL_GUARDED_BY(mu_);
  Waker* reader_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool reader_waiting_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::mirror
