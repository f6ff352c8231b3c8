#include "mirror/replication_log.h"

namespace tandem::mirror {

void ReplicationLog::Push(absl::string_view record) {
  ring_.Push(record, MonoNanos());
  if (reader_waiting_ && reader_ != nullptr) {
    reader_waiting_ = false;
    reader_->Wake();  // an eventfd write: never blocks
  }
}

void ReplicationLog::SetReader(Waker* waker) {
  absl::MutexLock l(&mu_);
  reader_ = waker;
  reader_waiting_ = false;
}

bool ReplicationLog::WakeWhenPast(uint64_t next) {
  if (next <= ring_.last_seq()) return true;
  reader_waiting_ = true;
  return false;
}

}  // namespace tandem::mirror
