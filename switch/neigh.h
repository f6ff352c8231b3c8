// The neighbour cache (IP -> MAC) in the state region. The switch's main
// thread is its only writer; workers read it lock-free (a sequence lock per
// entry). Open addressing with linear probing. An entry that is freed inside
// a probe chain becomes kEvicted (a tombstone): readers go on past it and
// the writer reuses it, so chains never break under a reader; a tombstone
// at the end of a chain (the next slot free) becomes free again. What goes
// into the table and when it leaves is switch/neigh_policy.h's business.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

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
    uint32_t seq;
    bool usable = false;
    return Read(ip, mac, &seq, &usable) != nullptr && usable;
  }

  // Reader side: the entry of `ip` (nullptr when there is none), a consistent
  // copy of its MAC, the even sequence number that copy belongs to, and
  // whether the MAC may be used. Every write of an entry (a new MAC, a new
  // state, its reuse for another address) moves its sequence number, so
  // (entry, seq) identifies what was read: NeighCache relies on it. An entry
  // that stays odd (a writer killed mid-write) reads as absent.
  const tables::NeighEntry* Read(const IpAddr& ip, uint8_t mac[6], uint32_t* seq,
                                 bool* usable) const {
    uint32_t mask = tables::kNeighCapacity - 1;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      const tables::NeighEntry& e = e_[i];
      for (int attempt = 0;; ++attempt) {
        if (attempt == 64) return nullptr;
        uint32_t s1 = e.seq.load(std::memory_order_acquire);
        if (s1 & 1) continue;
        auto st = static_cast<tables::NeighState>(e.state.load(std::memory_order_relaxed));
        bool match = e.ip == ip;
        std::memcpy(mac, e.mac, 6);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (e.seq.load(std::memory_order_relaxed) != s1) continue;
        if (st == tables::NeighState::kFree) return nullptr;
        if (st == tables::NeighState::kEvicted || !match) break;  // the next slot
        *seq = s1;
        *usable = st == tables::NeighState::kReachable || st == tables::NeighState::kStale;
        return &e;
      }
    }
    return nullptr;
  }

  // Writer side (main thread only).
  tables::NeighEntry* Find(const IpAddr& ip) const {
    uint32_t mask = tables::kNeighCapacity - 1;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      tables::NeighEntry& e = e_[i];
      auto st = tables::NeighState(e.state.load(std::memory_order_relaxed));
      if (st == tables::NeighState::kFree) return nullptr;
      if (st != tables::NeighState::kEvicted && e.ip == ip) return &e;
    }
    return nullptr;
  }
  // Finds or claims the entry of `ip` (a new one is incomplete, in the first
  // tombstone or free slot of its chain); nullptr when the table is full.
  // `*added` says whether it is new.
  tables::NeighEntry* FindOrAdd(const IpAddr& ip, bool* added = nullptr) {
    if (added) *added = false;
    uint32_t mask = tables::kNeighCapacity - 1;
    tables::NeighEntry* reuse = nullptr;
    for (uint32_t i = NeighHash(ip) & mask, n = 0; n < tables::kNeighCapacity;
         i = (i + 1) & mask, ++n) {
      tables::NeighEntry& e = e_[i];
      auto st = tables::NeighState(e.state.load(std::memory_order_relaxed));
      if (st == tables::NeighState::kEvicted) {
        if (!reuse) reuse = &e;
        continue;
      }
      if (st == tables::NeighState::kFree) {
        if (!reuse) reuse = &e;
        break;
      }
      if (e.ip == ip) return &e;
    }
    if (!reuse) return nullptr;
    Write(*reuse, [&] {
      reuse->ip = ip;
      std::memset(reuse->mac, 0, 6);
      reuse->probes = 0;
      reuse->updated_ns = 0;
      reuse->requested_ns = 0;
      reuse->state.store(uint8_t(tables::NeighState::kIncomplete), std::memory_order_relaxed);
    });
    if (added) *added = true;
    return reuse;
  }
  // Frees `e`: a tombstone, or free when it ends its chain (and so do the
  // tombstones before it).
  void Remove(tables::NeighEntry& e) {
    uint32_t mask = tables::kNeighCapacity - 1;
    uint32_t i = static_cast<uint32_t>(&e - e_);
    auto state_of = [&](uint32_t k) {
      return tables::NeighState(e_[k].state.load(std::memory_order_relaxed));
    };
    bool ends_chain = state_of((i + 1) & mask) == tables::NeighState::kFree;
    Write(e, [&] {
      std::memset(e.mac, 0, 6);
      e.probes = 0;
      e.requested_ns = 0;
      e.state.store(uint8_t(ends_chain ? tables::NeighState::kFree : tables::NeighState::kEvicted),
                    std::memory_order_relaxed);
    });
    // No chain runs through a tombstone whose next slot is free.
    for (uint32_t k = (i - 1) & mask, n = 0; ends_chain && n < tables::kNeighCapacity;
         k = (k - 1) & mask, ++n) {
      if (state_of(k) != tables::NeighState::kEvicted) break;
      Write(e_[k], [&] { e_[k].state.store(uint8_t(tables::NeighState::kFree)); });
    }
  }
  // A sequence-locked write of any entry with an atomic `seq`.
  template <typename Entry, typename F>
  static void Write(Entry& e, F&& change) {
    // Even if a switch killed mid-write left it odd.
    uint32_t s = e.seq.load(std::memory_order_relaxed) & ~1u;
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

// The IP whose MAC a copy to `remote` needs: itself when on-link, else the
// gateway of its family (or itself when there is no gateway): what
// IpPrefix::Contains over the on-link prefixes says, with each prefix kept as
// two 64-bit words and masks (the switch's one next-hop rule, NextHopsOf in
// switch/dataplane.h): IPv4 addresses are IPv4-mapped, so an IPv4 /len is
// a /96+len over the mapped form, and a match is two masked compares of 64-bit words.
class NextHops {
 public:
  NextHops() = default;
  NextHops(const std::vector<IpPrefix>& on_link, const IpAddr& gateway4, const IpAddr& gateway6)
      : gateway4_(gateway4.is_zero() ? std::nullopt : std::optional<IpAddr>(gateway4)),
        gateway6_(gateway6.is_zero() ? std::nullopt : std::optional<IpAddr>(gateway6)) {
    for (const IpPrefix& p : on_link) {
      Prefix q;
      q.v4 = p.addr.is_v4();
      int bits = q.v4 ? p.len + 96 : p.len;
      uint8_t mask[16] = {};
      for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
        mask[i] = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
      }
      std::memcpy(q.mask, mask, 16);
      std::memcpy(q.addr, p.addr.b, 16);
      q.addr[0] &= q.mask[0];
      q.addr[1] &= q.mask[1];
      prefixes_.push_back(q);
    }
  }

  IpAddr Of(const IpAddr& remote) const {
    if (prefixes_.empty()) return remote;
    uint64_t a[2];
    std::memcpy(a, remote.b, 16);
    // The ::ffff:0:0/96 test of IpAddr::is_v4, inline: this runs per receiver.
    uint32_t w2;
    std::memcpy(&w2, remote.b + 8, 4);
    static constexpr uint8_t kMapped[4] = {0, 0, 0xff, 0xff};
    uint32_t mapped;
    std::memcpy(&mapped, kMapped, 4);
    bool v4 = a[0] == 0 && w2 == mapped;
    for (const Prefix& p : prefixes_) {
      if (p.v4 == v4 && ((a[0] & p.mask[0]) == p.addr[0]) && ((a[1] & p.mask[1]) == p.addr[1])) {
        return remote;
      }
    }
    const std::optional<IpAddr>& gw = v4 ? gateway4_ : gateway6_;
    return gw ? *gw : remote;
  }

 private:
  struct Prefix {
    uint64_t addr[2];
    uint64_t mask[2];
    bool v4;
  };
  std::vector<Prefix> prefixes_;
  std::optional<IpAddr> gateway4_, gateway6_;
};

// The MAC of a leg's next hop, memoised per worker in the leg's usage block
// (LegCounters::hop_*), a line the worker has at hand for every packet from
// or to the leg: the common path costs one load of the neighbour entry's
// sequence number (a line the main thread rarely writes) instead of the
// next-hop prefixes, a hash and a probe of the neighbour table per copy
// (13 % of the unicast worker, perf, issue 15).
//
// The memo counts only while its epoch is this worker's (an epoch is unique
// to one worker of one switch process, so a restarted switch, whose prefixes
// and neighbour table may differ, ignores what its predecessor left) and the
// entry's sequence number is the one read with the MAC: any change of the
// entry (a new MAC, incomplete, stale) bumps it. The caller clears hop_epoch
// when a slot gets a new leg (Worker::Usage).
class LegHops {
 public:
  LegHops() = default;
  LegHops(const NeighTable& table, NextHops hops, uint32_t epoch)
      : table_(table), hops_(std::move(hops)), epoch_(epoch ? epoch : 1) {}

  // The same answer as table.Lookup(next_hops().Of(remote), mac) for the leg
  // whose remote address is `remote` and whose usage block is `c`.
  bool Mac(tables::LegCounters& c, const IpAddr& remote, uint8_t mac[6]) const {
    if (c.hop_epoch == epoch_) [[likely]] {
      const tables::NeighEntry& e = table_.entries()[c.hop_neigh & (tables::kNeighCapacity - 1)];
      if (e.seq.load(std::memory_order_acquire) == c.hop_seq) [[likely]] {
        std::memcpy(mac, c.hop_mac, 6);
        return c.hop_usable;
      }
    }
    return Resolve(c, remote, mac);
  }

  const NextHops& next_hops() const { return hops_; }

 private:
  bool Resolve(tables::LegCounters& c, const IpAddr& remote, uint8_t mac[6]) const {
    uint32_t seq = 0;
    bool usable = false;
    const tables::NeighEntry* e = table_.Read(hops_.Of(remote), mac, &seq, &usable);
    if (!e) {
      // Absent addresses are not remembered: the entry the main thread adds
      // for them would go unnoticed.
      c.hop_epoch = 0;
      return false;
    }
    c.hop_seq = seq;
    c.hop_neigh = static_cast<uint32_t>(e - table_.entries());
    std::memcpy(c.hop_mac, mac, 6);
    c.hop_usable = usable;
    c.hop_epoch = epoch_;
    return usable;
  }

  NeighTable table_;
  NextHops hops_;
  uint32_t epoch_ = 1;
};

}  // namespace tandem::sw
