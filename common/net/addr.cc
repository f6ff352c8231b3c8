#include "common/net/addr.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem {
IpAddr IpAddr::FromV4(uint32_t be_addr) {
  IpAddr a;
  std::memcpy(a.b, kV4MappedPrefix, 12);
  std::memcpy(a.b + 12, &be_addr, 4);
  return a;
}

IpAddr IpAddr::FromV6(const uint8_t bytes[16]) {
  IpAddr a;
  std::memcpy(a.b, bytes, 16);
  return a;
}

absl::StatusOr<IpAddr> IpAddr::Parse(absl::string_view text) {
  std::string s(text);
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return FromV4(v4.s_addr);
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) return FromV6(v6.s6_addr);
  return absl::InvalidArgumentError(absl::StrCat("invalid IP address '", text, "'"));
}

uint32_t IpAddr::v4() const {
  uint32_t v;
  std::memcpy(&v, b + 12, 4);
  return v;
}

bool IpAddr::is_zero() const {
  static const uint8_t zero[16] = {};
  return std::memcmp(b, zero, 16) == 0;
}

bool IpAddr::is_unspecified() const { return is_zero() || (is_v4() && v4() == 0); }

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, b + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, b, buf, sizeof buf);
  }
  return buf;
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(absl::string_view text) {
  size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("prefix '", text, "' has no /length"));
  }
  auto addr = IpAddr::Parse(text.substr(0, slash));
  if (!addr.ok()) return addr.status();
  int len;
  if (!absl::SimpleAtoi(text.substr(slash + 1), &len) || len < 0 ||
      len > (addr->is_v4() ? 32 : 128)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid prefix length in '", text, "'"));
  }
  return IpPrefix{*addr, len};
}

bool IpPrefix::Contains(const IpAddr& a) const {
  if (addr.is_v4() != a.is_v4()) return false;
  int bits = addr.is_v4() ? len + 96 : len;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((addr.b[i] & mask) != (a.b[i] & mask)) return false;
  }
  return true;
}

std::string IpPrefix::ToString() const { return absl::StrCat(addr.ToString(), "/", len); }

absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseEndpoint(absl::string_view text) {
  absl::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("]:");
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("invalid endpoint '", text, "'"));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid endpoint '", text, "' (use a.b.c.d:port or [v6]:port)"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto addr = IpAddr::Parse(host);
  if (!addr.ok()) return addr.status();
  uint32_t p;
  if (!absl::SimpleAtoi(port, &p) || p == 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("invalid port in '", text, "'"));
  }
  return std::make_pair(*addr, static_cast<uint16_t>(p));
}

std::string FormatEndpoint(const IpAddr& a, uint16_t port) {
  if (a.is_v4()) return absl::StrCat(a.ToString(), ":", port);
  return absl::StrCat("[", a.ToString(), "]:", port);
}

}  // namespace tandem
