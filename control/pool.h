// The local addresses (VIP, UDP port) that legs receive media on. Each live
// leg owns one local endpoint; endpoints are allocated from the configured
// pool (VIPs x port range) or given by the caller and reserved here.
// Not thread-safe: the control core calls it under its mutex.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/addr.h"

namespace tandem::control {

class LocalPool {
 public:
  LocalPool() = default;
  // `vips` to allocate from, ports first..last inclusive (1 <= first <= last).
  LocalPool(std::vector<IpAddr> vips, uint16_t first_port, uint16_t last_port);

  // Allocates a free endpoint on a VIP of the family of `remote`.
  // ResourceExhausted when none is left (or no VIP of that family exists).
  // `owner` is recorded so that a conflict names the leg that holds it.
  absl::StatusOr<std::pair<IpAddr, uint16_t>> Allocate(bool v4, uint64_t owner);
  // Reserves a given endpoint; AlreadyExists (naming the owner) if taken.
  absl::Status Reserve(const IpAddr& vip, uint16_t port, uint64_t owner);
  void Release(const IpAddr& vip, uint16_t port);

  bool InUse(const IpAddr& vip, uint16_t port) const;
  uint64_t pool_size() const { return pool_size_; }
  uint64_t pool_free() const { return pool_size_ - pool_used_; }

 private:
  struct Vip {
    IpAddr addr;
    uint32_t cursor = 0;  // next port offset to try: next fit spreads reuse over time
  };
  struct Endpoint {
    IpAddr vip;
    uint16_t port = 0;
    friend bool operator==(const Endpoint& a, const Endpoint& b) {
      return a.vip == b.vip && a.port == b.port;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Endpoint& e) {
      return H::combine(H::combine_contiguous(std::move(h), e.vip.b, 16), e.port);
    }
  };
  bool InPool(const IpAddr& vip, uint16_t port) const;

  std::vector<Vip> vips_;
  uint16_t first_ = 0, last_ = 0;
  uint64_t pool_size_ = 0, pool_used_ = 0;
  size_t next_vip_ = 0;
  absl::flat_hash_map<Endpoint, uint64_t> used_;  // endpoint -> owner
};

}  // namespace tandem::control
