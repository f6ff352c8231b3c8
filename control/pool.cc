#include "control/pool.h"

#include "absl/strings/str_cat.h"

namespace tandem::control {

LocalPool::LocalPool(std::vector<IpAddr> vips, uint16_t first_port, uint16_t last_port)
    : first_(first_port), last_(last_port) {
  for (const IpAddr& a : vips) vips_.push_back(Vip{a, 0});
  if (first_ != 0 && last_ >= first_) {
    pool_size_ = uint64_t(last_ - first_ + 1) * vips_.size();
  }
}

bool LocalPool::InPool(const IpAddr& vip, uint16_t port) const {
  if (pool_size_ == 0 || port < first_ || port > last_) return false;
  for (const Vip& v : vips_) {
    if (v.addr == vip) return true;
  }
  return false;
}

bool LocalPool::InUse(const IpAddr& vip, uint16_t port) const {
  return used_.contains(Endpoint{vip, port});
}

absl::StatusOr<std::pair<IpAddr, uint16_t>> LocalPool::Allocate(bool v4, uint64_t owner) {
  if (pool_size_ == 0) return absl::ResourceExhaustedError("VIP pool is empty");
  const uint32_t span = last_ - first_ + 1;
  bool family_seen = false;
  for (size_t n = 0; n < vips_.size(); ++n) {
    Vip& v = vips_[(next_vip_ + n) % vips_.size()];
    if (v.addr.is_v4() != v4) continue;
    family_seen = true;
    for (uint32_t tries = 0; tries < span; ++tries) {
      uint16_t port = static_cast<uint16_t>(first_ + v.cursor);
      v.cursor = (v.cursor + 1) % span;
      auto [it, fresh] = used_.try_emplace(Endpoint{v.addr, port}, owner);
      if (!fresh) continue;
      ++pool_used_;
      next_vip_ = (next_vip_ + n + 1) % vips_.size();
      return std::make_pair(v.addr, port);
    }
  }
  if (!family_seen) {
    return absl::ResourceExhaustedError(
        absl::StrCat("VIP pool has no ", v4 ? "IPv4" : "IPv6", " address"));
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("VIP pool exhausted (", pool_size_, " local addresses in use)"));
}

absl::Status LocalPool::Reserve(const IpAddr& vip, uint16_t port, uint64_t owner) {
  auto [it, fresh] = used_.try_emplace(Endpoint{vip, port}, owner);
  if (!fresh) {
    return absl::AlreadyExistsError(absl::StrCat("local address ", FormatEndpoint(vip, port),
                                                 " is already in use by leg ", it->second));
  }
  if (InPool(vip, port)) ++pool_used_;
  return absl::OkStatus();
}

void LocalPool::Release(const IpAddr& vip, uint16_t port) {
  if (used_.erase(Endpoint{vip, port}) > 0 && InPool(vip, port)) --pool_used_;
}

}  // namespace tandem::control
