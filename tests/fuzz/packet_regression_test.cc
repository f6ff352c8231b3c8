// Regression tests for parser findings (packet_fuzz.cc and review of its
// inputs).
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "switch/packet.h"

namespace tandem::sw {
namespace {

constexpr uint8_t kMac[6] = {0x02, 0, 0, 0, 0, 1};

std::vector<uint8_t> Udp6(const uint8_t src[16], const uint8_t dst[16]) {
  std::vector<uint8_t> f(14 + 40 + 8 + 4, 0);
  std::memcpy(f.data(), kMac, 6);
  f[6] = 0x02;  // a host's source MAC (a zero one is dropped before the IP header is read)
  f[11] = 0x10;
  f[12] = 0x86;
  f[13] = 0xdd;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x60;
  ip[5] = 12;  // payload length
  ip[6] = kProtoUdp;
  ip[7] = 64;
  std::memcpy(ip + 8, src, 16);
  std::memcpy(ip + 24, dst, 16);
  uint8_t* udp = ip + 40;
  udp[0] = 5000 >> 8, udp[1] = 5000 & 0xff;
  udp[2] = 20000 >> 8, udp[3] = 20000 & 0xff;
  udp[5] = 12;
  uint16_t c = L4Checksum(false, ip, udp, 12, kProtoUdp);
  udp[6] = c >> 8, udp[7] = c & 0xff;
  return f;
}

// An IPv6 packet between IPv4-mapped addresses (::ffff:a.b.c.d, which must
// not appear on the wire, RFC 4291 2.5.5.2) has the same lookup key as the
// IPv4 leg of a.b.c.d: it must not be looked up (or forwarded) as that leg.
TEST(PacketRegressionTest, Ipv6WithIpv4MappedAddressesIsNotForwarded) {
  uint8_t src[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 10};
  uint8_t dst[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 100};
  auto f = Udp6(src, dst);
  ParseConfig cfg;
  std::memcpy(cfg.mac, kMac, 6);
  Parsed p = Parse(f.data(), f.size(), cfg);
  EXPECT_EQ(p.drop, tables::Drop::kUnsupported);
  EXPECT_NE(p.verdict, Verdict::kForward)
      << "parsed to the IPv4 leg key " << p.key.remote.ToString() << ":" << p.key.remote_port
      << " -> " << p.key.local.ToString() << ":" << p.key.local_port;
}

}  // namespace
}  // namespace tandem::sw
