#include "common/record_ring.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace tandem {
namespace {

constexpr size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

// Anonymous and not reserved: only the pages a record touched are resident.
void* Map(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

}  // namespace

RecordRing::RecordRing(size_t max_records, size_t max_bytes, uint64_t first_seq)
    : max_records_(max_records < 1 ? 1 : max_records),
      max_capacity_(Align8(max_bytes < 1 ? 1 : max_bytes)),
      capacity_(std::min(max_capacity_, kInitialBytes)),
      next_seq_(first_seq) {
  data_ = static_cast<char*>(Map(capacity_));
  pos_ = static_cast<uint64_t*>(Map(max_records_ * sizeof(uint64_t)));
}

RecordRing::~RecordRing() {
  munmap(data_, capacity_);
  munmap(pos_, max_records_ * sizeof(uint64_t));
}

size_t RecordRing::resident() const {
  auto pages = [](size_t n) { return (n + 4095) / 4096 * 4096; };
  return pages(touched_) + pages(slots_touched_ * sizeof(uint64_t));
}

size_t RecordRing::bytes() const {
  return count_ == 0 ? 0 : head_ - pos_[first_seq() % max_records_];
}

void RecordRing::Grow(size_t need) {
  size_t cap = std::min(max_capacity_, 2 * capacity_);
  while (cap < max_capacity_ && cap < bytes() + 2 * need) cap = std::min(max_capacity_, 2 * cap);
  char* data = static_cast<char*>(Map(cap));
  // The held records, oldest first, from the start of the new buffer.
  uint64_t off = 0;
  for (uint64_t s = first_seq(); s < next_seq_; ++s) {
    uint64_t& pos = pos_[s % max_records_];
    Header h;
    std::memcpy(&h, data_ + pos % capacity_, sizeof(h));
    const size_t len = Align8(kRecordOverhead + h.size);
    std::memcpy(data + off, data_ + pos % capacity_, len);
    pos = off;
    off += len;
  }
  munmap(data_, capacity_);
  data_ = data;
  capacity_ = cap;
  head_ = off;
  touched_ = off;
}

void RecordRing::Push(absl::string_view record, int64_t appended_ns) {
  const uint64_t seq = next_seq_;
  const size_t need = Align8(kRecordOverhead + record.size());
  if (need > max_capacity_) {
    count_ = 0;
    ++next_seq_;
    return;
  }
  uint64_t pos;
  for (;;) {
    // A record never wraps: one that does not fit before the end of the
    // buffer starts at its beginning.
    pos = head_;
    if (size_t off = pos % capacity_; off + need > capacity_) pos += capacity_ - off;
    const bool fits = count_ == 0
                          ? need <= capacity_
                          : pos + need - pos_[first_seq() % max_records_] <= capacity_;
    if (fits && count_ < max_records_) break;
    if (count_ < max_records_ && capacity_ < max_capacity_) {
      Grow(need);  // room by growing, up to max_bytes, before dropping any record
    } else {
      --count_;  // the oldest goes
    }
  }
  char* at = data_ + pos % capacity_;
  Header h{record.size(), appended_ns};
  std::memcpy(at, &h, sizeof(h));
  // An empty record may have no data pointer at all (memcpy's is never null).
  if (!record.empty()) std::memcpy(at + sizeof(h), record.data(), record.size());
  pos_[seq % max_records_] = pos;
  head_ = pos + need;
  touched_ = std::max(touched_, static_cast<size_t>(pos % capacity_ + need));
  slots_touched_ = std::max(slots_touched_, static_cast<size_t>(seq % max_records_ + 1));
  ++count_;
  ++next_seq_;
}

const char* RecordRing::At(uint64_t seq, Header* h) const {
  if (!holds(seq)) std::abort();  // a caller's bug: reading past the bounds would be worse
  const char* at = data_ + pos_[seq % max_records_] % capacity_;
  std::memcpy(h, at, sizeof(*h));
  return at + sizeof(*h);
}

absl::string_view RecordRing::record(uint64_t seq) const {
  Header h;
  const char* body = At(seq, &h);
  return absl::string_view(body, h.size);
}

int64_t RecordRing::appended_ns(uint64_t seq) const {
  Header h;
  At(seq, &h);
  return h.appended_ns;
}

}  // namespace tandem
