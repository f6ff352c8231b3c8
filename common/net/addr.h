// IP addresses as the tables store them: 16 bytes, IPv4 as an IPv4-mapped IPv6
// address (::ffff:a.b.c.d), so one key layout serves both families.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace tandem {

struct IpAddr {
  // ::ffff:0:0/96, the first 12 bytes of every IPv4 address.
  static constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

  uint8_t b[16] = {};

  static IpAddr FromV4(uint32_t be_addr);  // network byte order
  static IpAddr FromV6(const uint8_t bytes[16]);
  // Accepts dotted IPv4 or IPv6 text; returns InvalidArgument otherwise.
  static absl::StatusOr<IpAddr> Parse(absl::string_view text);

  // Inline: the switch asks it per receiver of every packet.
  bool is_v4() const { return std::memcmp(b, kV4MappedPrefix, 12) == 0; }
  uint32_t v4() const;  // network byte order; only meaningful when is_v4()
  bool is_zero() const;  // all 16 bytes zero: "not set" in configurations
  // No host's address: 0.0.0.0 (stored ::ffff:0.0.0.0) or ::. is_zero() is
  // false for the first, so a check for a usable address needs this one.
  bool is_unspecified() const;
  std::string ToString() const;

  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return std::memcmp(a.b, b.b, 16) == 0;
  }
  friend bool operator!=(const IpAddr& a, const IpAddr& b) { return !(a == b); }
};
static_assert(sizeof(IpAddr) == 16);

// An address with a prefix length, for on-link subnets.
struct IpPrefix {
  IpAddr addr;
  int len = 0;  // in IPv6 bits for v6, IPv4 bits for v4
  static absl::StatusOr<IpPrefix> Parse(absl::string_view text);
  bool Contains(const IpAddr& a) const;
  std::string ToString() const;
};

// "198.18.0.10:5000" or "[2001:db8::10]:5000".
absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseEndpoint(absl::string_view text);
std::string FormatEndpoint(const IpAddr& a, uint16_t port);

}  // namespace tandem
