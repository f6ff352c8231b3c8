#include "control/change_log.h"

#include "common/clock.h"

#include <time.h>

#include "absl/strings/str_cat.h"

namespace tandem::control {
namespace {
// Protobuf wire format of a varint field.
void AppendVarintField(uint32_t field, uint64_t value, std::string* out) {
  uint64_t tag = uint64_t{field} << 3;  // wire type 0
  for (uint64_t v : {tag, value}) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  }
}

}  // namespace

ChangeLog::ChangeLog(size_t capacity, size_t max_bytes, uint64_t log_id)
    : log_(std::make_shared<mirror::ReplicationLog>(capacity, max_bytes, log_id, 1)) {}

uint64_t ChangeLog::Append(v1::Change change) {
  std::vector<v1::Change> one;
  one.push_back(std::move(change));
  return AppendAll(one);
}

uint64_t ChangeLog::AppendAll(std::vector<v1::Change>& changes) {
  if (changes.empty()) return 0;
  // Serialise the bodies outside the lock; the tag, then seq, log_id and time
  // go in front under it (protobuf merges fields in any order, so header +
  // body parses as one message).
  std::vector<std::string> bodies(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) changes[i].SerializeToString(&bodies[i]);
  uint64_t now = UnixNs();
  std::string rec;
  mirror::ReplicationLog::Writer lock(*log_);
  const uint64_t log_id = log_->history();
  for (size_t i = 0; i < changes.size(); ++i) {
    uint64_t seq = log_->ring().last_seq() + 1;
    changes[i].set_seq(seq);
    changes[i].set_log_id(log_id);
    changes[i].set_unix_ns(now);
    rec.clear();
    rec.reserve(bodies[i].size() + 33);
    rec.push_back(kChangeTag);
    AppendVarintField(1, seq, &rec);
    AppendVarintField(2, log_id, &rec);
    AppendVarintField(3, now, &rec);
    rec += bodies[i];
    log_->Push(rec);
  }
  return log_->ring().last_seq();
}

uint64_t ChangeLog::AppendRecord(absl::string_view record) {
  mirror::ReplicationLog::Writer lock(*log_);
  log_->Push(record);
  return log_->ring().last_seq();
}

void ChangeLog::AppendReplicated(std::string record, const v1::Change& change) {
  mirror::ReplicationLog::Writer lock(*log_);
  const RecordRing& ring = log_->ring();
  const uint64_t seq = change.seq();
  // Applied again after a store failure (the standby resumes from its last
  // commit): already held.
  if (change.log_id() == log_->history() && seq <= ring.last_seq() && seq >= ring.first_seq()) {
    return;
  }
  if (change.log_id() != log_->history() || seq <= ring.last_seq() ||
      seq - ring.last_seq() > kMaxSkipped) {
    log_->Restart(change.log_id(), seq);
    resync_first_ = seq;
  }
  // The active's records that are no changes keep their numbers here.
  while (ring.last_seq() + 1 < seq) log_->Push({});
  record.insert(record.begin(), kChangeTag);
  log_->Push(record);
}

void ChangeLog::AppendReplicatedRecord(uint64_t seq, absl::string_view record) {
  mirror::ReplicationLog::Writer lock(*log_);
  if (seq == log_->ring().last_seq() + 1) log_->Push(record);
}

void ChangeLog::Reset(uint64_t log_id, uint64_t next_seq) {
  absl::MutexLock lock(&log_->mu());
  log_->Restart(log_id, next_seq);
  resync_first_ = next_seq;
}

uint64_t ChangeLog::log_id() const {
  absl::MutexLock lock(&log_->mu());
  return log_->history();
}

absl::Status ChangeLog::Read(uint64_t from, size_t max, absl::Duration wait,
                             std::vector<v1::Change>* out, uint64_t* next) {
  absl::MutexLock lock(&log_->mu());
  const RecordRing& ring = log_->ring();
  auto ready = [this, &ring, from]() { return closed_ || ring.last_seq() >= from; };
  log_->mu().AwaitWithTimeout(absl::Condition(&ready), wait);
  if (closed_) return absl::CancelledError("the change log is closed");
  const uint64_t first = ring.first_seq();
  if (from < first && first == resync_first_) {
    return absl::UnavailableError(absl::StrCat(
        "this node resynced from the active node at change ", first,
        ": resume the watch on the active node"));
  }
  if (from < first) {
    return absl::OutOfRangeError(
        absl::StrCat("change ", from, " is no longer held (oldest ", first, "): resync"));
  }
  uint64_t s = from;
  for (; ring.holds(s) && out->size() < max; ++s) {
    absl::string_view rec = ring.record(s);
    if (rec.empty() || rec[0] != kChangeTag) continue;  // no change
    rec.remove_prefix(1);
    v1::Change c;
    if (!c.ParseFromArray(rec.data(), static_cast<int>(rec.size()))) {
      return absl::DataLossError(absl::StrCat("change ", s, " does not parse"));
    }
    out->push_back(std::move(c));
  }
  if (next != nullptr) *next = s;
  return absl::OkStatus();
}

void ChangeLog::Close() {
  absl::MutexLock lock(&log_->mu());
  closed_ = true;
}

uint64_t ChangeLog::last_seq() const {
  absl::MutexLock lock(&log_->mu());
  return log_->ring().last_seq();
}

}  // namespace tandem::control
