// The latest records of a log, numbered, in one mapped buffer, the oldest
// dropped to make room: the replication backlog and the change log's watch
// history.
//
// Why not a deque of strings: there each record was a small heap block,
// allocated by whichever API thread wrote the change and freed minutes later
// by another, and the active control daemon's memory kept rising (~6.8 MiB/min
// for as long as the soak ran after a 2^20-record backlog was full,
// scripts/soak.sh). Here the memory is the buffer's pages that were touched
// and 8 bytes per record slot. The buffer starts at 1 MiB and doubles (the
// held records copied over, under the owner's lock) while records would
// otherwise be dropped for bytes before max_records is reached, up to
// max_bytes: so it stays within twice what the held records need.
// Unmapping gives it all back.
//
// Not thread-safe: the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tandem {

class RecordRing {
 public:
  // A record costs its size plus this header, rounded up to 8 bytes.
  static constexpr size_t kRecordOverhead = 16;
  static constexpr size_t kInitialBytes = size_t{1} << 20;

  // Holds at most `max_records` records in `max_bytes` (rounded up to 8).
  // Both must be >= 1. The next record pushed is number `first_seq`.
  RecordRing(size_t max_records, size_t max_bytes, uint64_t first_seq);
  ~RecordRing();
  RecordRing(const RecordRing&) = delete;
  RecordRing& operator=(const RecordRing&) = delete;

  // Appends record number last_seq() + 1, dropping the oldest records as
  // needed. A record larger than max_bytes is numbered but not held (the
  // ring is left empty): a reader that needs it must resync.
  void Push(absl::string_view record, int64_t appended_ns);
  // Drops every record; the next one pushed is number `next_seq`.
  void Clear(uint64_t next_seq) {
    count_ = 0;
    next_seq_ = next_seq;
  }

  uint64_t first_seq() const { return next_seq_ - count_; }  // oldest held; last + 1 if none
  uint64_t last_seq() const { return next_seq_ - 1; }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  bool holds(uint64_t seq) const { return seq >= first_seq() && seq < next_seq_; }
  // Bytes the held records take in the buffer (headers and padding included).
  size_t bytes() const;
  // The buffer's size (it grows up to max_bytes as needed).
  size_t capacity() const { return capacity_; }
  // Memory it keeps resident: the pages of the buffer written so far and of
  // the record slots used.
  size_t resident() const;

  // Only for held records.
  absl::string_view record(uint64_t seq) const;
  int64_t appended_ns(uint64_t seq) const;

 private:
  struct Header {
    uint64_t size;
    int64_t appended_ns;
  };
  static_assert(sizeof(Header) == kRecordOverhead);
  // The header and body of a held record.
  const char* At(uint64_t seq, Header* h) const;
  // A bigger buffer (at least twice as big, up to max_capacity_), room for
  // `need` more bytes if it may.
  void Grow(size_t need);

  const size_t max_records_;
  const size_t max_capacity_;
  size_t capacity_;  // bytes of data_
  char* data_ = nullptr;
  uint64_t* pos_ = nullptr;  // [seq % max_records_]: start of the record, as a running byte count
  uint64_t next_seq_;
  size_t count_ = 0;
  uint64_t head_ = 0;  // running byte count where the next record may start
  size_t touched_ = 0;  // highest offset of data_ written
  size_t slots_touched_ = 0;
};

}  // namespace tandem
