// The neighbour cache (IP -> MAC) in the state region. The switch's main
// thread is its only writer; workers read it lock-free (a sequence lock per
// entry). Open addressing with linear probing; entries are never removed, only
// marked incomplete or stale and reused for the same address, so probe chains
// never break under a reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "common/tables/layout.h"

namespace tandem::sw {

inline uint32_t NeighHash(const IpAddr& ip) {
  uint64_t a, b;
  std::memcpy(&a, ip.b, 8);
  std::memcpy(&b, ip.b + 8, 8);
  uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL);
  return static_cast<uint32_t>(h ^ (h >> 29));
}

class NeighTable {
 public:
  NeighTable() = default;
  explicit NeighTable(tables::NeighEntry* entries) : e_(entries) {}

  // Reader side: the MAC of a reachable (or stale: still usable while being
  // re-confirmed) neighbour.
  bool Lookup(const IpAddr& ip, uint8_t mac[6]) const {
    uint32_t mask = tables::kNeighCapacity - 1;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      const tables::NeighEntry& e = e_[i];
      uint32_t s1 = e.seq.load(std::memory_order_acquire);
      auto st = static_cast<tables::NeighState>(e.state.load(std::memory_order_relaxed));
      if (st == tables::NeighState::kFree && !(s1 & 1)) return false;
      if (e.ip != ip) continue;
      for (;;) {
        st = static_cast<tables::NeighState>(e.state.load(std::memory_order_relaxed));
        std::memcpy(mac, e.mac, 6);
        std::atomic_thread_fence(std::memory_order_acquire);
        uint32_t s2 = e.seq.load(std::memory_order_relaxed);
        if (s1 == s2 && !(s1 & 1)) break;
        s1 = e.seq.load(std::memory_order_acquire);
      }
      return st == tables::NeighState::kReachable || st == tables::NeighState::kStale;
    }
    return false;
  }

  // Writer side (main thread only).
  tables::NeighEntry* Find(const IpAddr& ip) const {
    uint32_t mask = tables::kNeighCapacity - 1;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      tables::NeighEntry& e = e_[i];
      if (e.state.load(std::memory_order_relaxed) == uint8_t(tables::NeighState::kFree)) {
        return nullptr;
      }
      if (e.ip == ip) return &e;
    }
    return nullptr;
  }
  // Finds or claims the entry of `ip`; nullptr when the table is full.
  tables::NeighEntry* FindOrAdd(const IpAddr& ip) {
    uint32_t mask = tables::kNeighCapacity - 1;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      tables::NeighEntry& e = e_[i];
      if (e.state.load(std::memory_order_relaxed) == uint8_t(tables::NeighState::kFree)) {
        Write(e, [&] {
          e.ip = ip;
          std::memset(e.mac, 0, 6);
          e.probes = 0;
          e.updated_ns = 0;
          e.requested_ns = 0;
          e.state.store(uint8_t(tables::NeighState::kIncomplete), std::memory_order_relaxed);
        });
        return &e;
      }
      if (e.ip == ip) return &e;
    }
    return nullptr;
  }
  // A sequence-locked write of any entry with an atomic `seq`.
  template <typename Entry, typename F>
  static void Write(Entry& e, F&& change) {
    uint32_t s = e.seq.load(std::memory_order_relaxed);
    e.seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    change();
    e.seq.store(s + 2, std::memory_order_release);
  }
  static void Confirm(tables::NeighEntry& e, const uint8_t mac[6], uint64_t now_ns) {
    Write(e, [&] {
      std::memcpy(e.mac, mac, 6);
      e.updated_ns = now_ns;
      e.probes = 0;
      e.state.store(uint8_t(tables::NeighState::kReachable), std::memory_order_relaxed);
    });
  }
  tables::NeighEntry* entries() const { return e_; }

 private:
  tables::NeighEntry* e_ = nullptr;
};

}  // namespace tandem::sw
