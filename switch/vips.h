// The node's VIPs, as the tables hold them. Each thread keeps its own copy
// (a worker, the slow path), taken again when the tables' vip_seq moves.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "common/tables/tables.h"

namespace tandem::sw {

class VipSet {
 public:
  // Takes the tables' VIPs when they changed since the last call; true then.
  bool Refresh(const tables::TablesView& t) {
    uint32_t s = t.header().vip_seq.load(std::memory_order_acquire);
    if (s == seq_) return false;
    vips_ = t.Vips();
    seq_ = s;
    return true;
  }
  bool Contains(const IpAddr& a) const {
    for (const IpAddr& v : vips_) {
      if (v == a) return true;
    }
    return false;
  }
  const std::vector<IpAddr>& all() const { return vips_; }

 private:
  std::vector<IpAddr> vips_;
  uint32_t seq_ = ~0u;
};

}  // namespace tandem::sw
