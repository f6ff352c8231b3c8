#include "mirror/replication_log.h"

namespace tandem::mirror {

ReplicationLog::Writer::~Writer() {
  bool wake = log_.wake_;
  log_.wake_ = false;
  log_.mu_.Unlock();
  if (wake) log_.waker_.Wake();  // an eventfd write: never blocks
}

void ReplicationLog::Push(absl::string_view record) {
  ring_.Push(record, MonoNanos());
  if (reader_waiting_) {
    reader_waiting_ = false;
    wake_ = true;
  }
}

bool ReplicationLog::WakeWhenPast(uint64_t next) {
  if (next <= ring_.last_seq()) return true;
  reader_waiting_ = true;
  return false;
}

}  // namespace tandem::mirror
