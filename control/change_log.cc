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
    : log_id_(log_id), ring_(capacity, max_bytes, 1) {}

uint64_t ChangeLog::Append(v1::Change change) {
  std::vector<v1::Change> one;
  one.push_back(std::move(change));
  return AppendAll(one);
}

uint64_t ChangeLog::AppendAll(std::vector<v1::Change>& changes) {
  if (changes.empty()) return 0;
  // Serialise the bodies outside the lock; seq, log_id and time go in front
  // under it (protobuf merges fields in any order, so header + body parses as
  // one message).
  std::vector<std::string> bodies(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) changes[i].SerializeToString(&bodies[i]);
  uint64_t now = UnixNs();
  absl::MutexLock lock(&mu_);
  std::vector<std::string> records(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) {
    uint64_t seq = ring_.last_seq() + 1;
    changes[i].set_seq(seq);
    changes[i].set_log_id(log_id_);
    changes[i].set_unix_ns(now);
    std::string& rec = records[i];
    rec.reserve(bodies[i].size() + 32);
    AppendVarintField(1, seq, &rec);
    AppendVarintField(2, log_id_, &rec);
    AppendVarintField(3, now, &rec);
    rec += bodies[i];
    ring_.Push(rec, static_cast<int64_t>(now));
  }
  if (observer_) observer_(records, ring_.last_seq());
  return ring_.last_seq();
}

void ChangeLog::SetObserver(Observer observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

void ChangeLog::AppendReplicated(std::string record, const v1::Change& change) {
  absl::MutexLock lock(&mu_);
  // Applied again after a store failure (the standby resumes from its last
  // commit): already held.
  if (change.log_id() == log_id_ && change.seq() <= ring_.last_seq() &&
      change.seq() >= ring_.first_seq()) {
    return;
  }
  if (change.log_id() != log_id_ || change.seq() != ring_.last_seq() + 1) {
    ring_.Clear(change.seq());
    log_id_ = change.log_id();
    resync_first_ = change.seq();
  }
  ring_.Push(record, static_cast<int64_t>(change.unix_ns()));
}

void ChangeLog::Reset(uint64_t log_id, uint64_t next_seq) {
  absl::MutexLock lock(&mu_);
  ring_.Clear(next_seq);
  log_id_ = log_id;
  resync_first_ = next_seq;
}

uint64_t ChangeLog::log_id() const {
  absl::MutexLock lock(&mu_);
  return log_id_;
}

absl::Status ChangeLog::Read(uint64_t from, size_t max, absl::Duration wait,
                             std::vector<v1::Change>* out) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, from]()
                   ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closed_ || ring_.last_seq() >= from; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  if (closed_) return absl::CancelledError("the change log is closed");
  const uint64_t first = ring_.first_seq();
  if (from < first && first == resync_first_) {
    return absl::UnavailableError(absl::StrCat(
        "this node resynced from the active node at change ", first,
        ": resume the watch on the active node"));
  }
  if (from < first) {
    return absl::OutOfRangeError(
        absl::StrCat("change ", from, " is no longer held (oldest ", first, "): resync"));
  }
  for (uint64_t s = from; ring_.holds(s) && out->size() < max; ++s) {
    v1::Change c;
    absl::string_view rec = ring_.record(s);
    if (!c.ParseFromArray(rec.data(), static_cast<int>(rec.size()))) {
      return absl::DataLossError(absl::StrCat("change ", s, " does not parse"));
    }
    out->push_back(std::move(c));
  }
  return absl::OkStatus();
}

void ChangeLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

uint64_t ChangeLog::last_seq() const {
  absl::MutexLock lock(&mu_);
  return ring_.last_seq();
}

}  // namespace tandem::control
