// The ordered log of changes a node's control plane made, for Watch streams
// (meeting applications) and, later, the mirror to the standby. Each change
// gets the next sequence number of the log; a reader resumes from any number
// the log still holds (a bounded ring of the latest changes), and gets
// OutOfRange (resync needed) for older ones. The ring holds at most
// `capacity` changes in at most `max_bytes` (common/record_ring.h). `log_id` is chosen at random at
// each daemon start: sequence numbers only compare within one log.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/record_ring.h"
#include "control.pb.h"

namespace tandem::control {

class ChangeLog {
 public:
  ChangeLog(size_t capacity, size_t max_bytes, uint64_t log_id);

  // Assigns seq, log_id and time; returns the seq.
  uint64_t Append(v1::Change change);
  // Appends several changes under one lock, moving them out of `changes`
  // (left with moved-from entries). Returns the last seq (0 if none).
  uint64_t AppendAll(std::vector<v1::Change>& changes);

  // Copies up to `max` changes starting at `from` into `out`, waiting up to
  // `wait` for the first one. OutOfRange when `from` is older than the ring;
  // Unavailable when it is older because this node resynced from the active
  // node meanwhile (a demoted node: the reader resumes on the active one).
  // Returns Cancelled once Close() was called.
  absl::Status Read(uint64_t from, size_t max, absl::Duration wait, std::vector<v1::Change>* out);

  void Close();
  uint64_t last_seq() const;
  uint64_t log_id() const;

  // The mirror. On the active node, `observer` receives each appended
  // change's serialised record, in order, under the log's lock (so the
  // replication stream has the log's order); it must not block.
  using Observer = std::function<void(std::vector<std::string>& records, uint64_t last_seq)>;
  void SetObserver(Observer observer);
  // On a standby: appends a change replicated from the active node, keeping
  // its log id and sequence number, so that a Watch can be resumed on either
  // node. A change of log id, or a gap, starts the ring anew; a change the
  // ring already holds (applied again) is left out.
  void AppendReplicated(std::string record, const v1::Change& change);
  // After a full resync: the log continues at (log_id, next_seq), empty.
  void Reset(uint64_t log_id, uint64_t next_seq);

 private:
  uint64_t log_id_ ABSL_GUARDED_BY(mu_);
  Observer observer_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex mu_;
  // Serialised changes, numbered from 1 (ring_.last_seq() is the log's last).
  RecordRing ring_ ABSL_GUARDED_BY(mu_);
  // The first seq as a resync left it (Reset, or a replicated change that did
  // not follow on): readers behind it missed changes by no fault of theirs.
  uint64_t resync_first_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::control
