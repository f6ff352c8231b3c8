// Parsing, header rewrite and checksums against frames built by scapy.
#include "switch/packet.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <random>
#include <vector>

#include "switch/neigh.h"
#include "tests/unit/switch/fixtures/packet_fixtures.h"

namespace tandem::sw {
namespace {

using tables::Drop;

ParseConfig Cfg(uint16_t vlan = 0) {
  ParseConfig c;
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(c.mac, mac, 6);
  c.vlan = vlan;
  return c;
}

tables::LegKey Receiver(bool v4) {
  tables::LegKey k;
  k.remote = *IpAddr::Parse(v4 ? "198.18.0.12" : "2001:db8:1::12");
  k.local = *IpAddr::Parse(v4 ? "198.18.0.100" : "2001:db8:1::100");
  k.remote_port = 5002;
  k.local_port = 40002;
  return k;
}

struct Case {
  const char* name;
  const std::vector<uint8_t>* in;
  const std::vector<uint8_t>* out;
  bool v4;
  uint16_t vlan;
};

class RewriteTest : public ::testing::TestWithParam<Case> {};

TEST_P(RewriteTest, MatchesScapy) {
  const Case& c = GetParam();
  std::vector<uint8_t> frame = *c.in;
  Parsed p = Parse(frame.data(), frame.size(), Cfg(c.vlan));
  ASSERT_EQ(p.verdict, Verdict::kForward) << tables::DropName(p.drop);
  EXPECT_EQ(p.v4, c.v4);
  EXPECT_EQ(p.vlan, c.vlan);
  EXPECT_EQ(p.key.remote, *IpAddr::Parse(c.v4 ? "198.18.0.11" : "2001:db8:1::11"));
  EXPECT_EQ(p.key.local, *IpAddr::Parse(c.v4 ? "198.18.0.100" : "2001:db8:1::100"));
  EXPECT_EQ(p.key.remote_port, 5000);
  EXPECT_EQ(p.key.local_port, 40001);
  EXPECT_EQ(p.frame_len, frame.size());

  tables::LegKey to = Receiver(c.v4);
  Rewrite rw;
  const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x12};
  std::memcpy(rw.dst_mac, dst, 6);
  std::memcpy(rw.src_mac, Cfg().mac, 6);
  rw.to = &to;
  rw.to_sums = tables::SumEndpoints(to);
  UdpCsumBase base = UdpCsumWithoutEndpoints(frame.data(), p, tables::SumEndpoints(p.key));
  RewriteHeaders(frame.data(), p, base, rw);
  EXPECT_EQ(frame, *c.out);
}

INSTANTIATE_TEST_SUITE_P(
    Scapy, RewriteTest,
    ::testing::Values(Case{"v4", &fixtures::kv4_in, &fixtures::kv4_out, true, 0},
                      Case{"v4_vlan", &fixtures::kv4_vlan_in, &fixtures::kv4_vlan_out, true, 42},
                      Case{"v6", &fixtures::kv6_in, &fixtures::kv6_out, false, 0},
                      Case{"v6_vlan", &fixtures::kv6_vlan_in, &fixtures::kv6_vlan_out, false, 42}),
    [](const auto& info) { return std::string(info.param.name); });

// The incremental update must equal a checksum computed from scratch, for
// any payload and any pair of endpoints (RFC 1624 corner cases included).
TEST(Checksum, IncrementalEqualsFullOverRandomPackets) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    bool v4 = round & 1;
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(f.data(), f.size(), Cfg());
    ASSERT_EQ(p.verdict, Verdict::kForward);
    for (size_t i = p.l4 + 8; i < f.size(); ++i) f[i] = rng();
    uint8_t* ip = f.data() + p.l3;
    uint8_t* udp = f.data() + p.l4;
    uint16_t len = f.size() - p.l4;
    udp[6] = udp[7] = 0;
    uint16_t c = L4Checksum(v4, ip, udp, len, kProtoUdp);
    udp[6] = c >> 8;
    udp[7] = c & 0xff;
    tables::LegKey to;
    uint8_t addr[16];
    for (auto& b : addr) b = rng();
    to.remote = v4 ? IpAddr::FromV4(rng()) : IpAddr::FromV6(addr);
    for (auto& b : addr) b = rng();
    to.local = v4 ? IpAddr::FromV4(rng()) : IpAddr::FromV6(addr);
    to.remote_port = rng() | 1;
    to.local_port = rng() | 1;
    Rewrite rw{};
    rw.to = &to;
    rw.to_sums = tables::SumEndpoints(to);
    RewriteHeaders(f.data(), p, UdpCsumWithoutEndpoints(f.data(), p, tables::SumEndpoints(p.key)), rw);
    uint16_t got = uint16_t(udp[6]) << 8 | udp[7];
    udp[6] = udp[7] = 0;
    EXPECT_EQ(got, L4Checksum(v4, ip, udp, len, kProtoUdp)) << "round " << round;
    if (v4) {
      EXPECT_EQ(CsumFold(CsumAdd(0, ip, 20)), 0xffff) << "IPv4 header checksum";
    }
  }
}

TEST(Checksum, Ipv4ZeroChecksumStaysZero) {
  std::vector<uint8_t> f = fixtures::kv4_in;
  Parsed p = Parse(f.data(), f.size(), Cfg());
  f[p.l4 + 6] = f[p.l4 + 7] = 0;
  tables::LegKey to = Receiver(true);
  Rewrite rw{};
  rw.to = &to;
  rw.to_sums = tables::SumEndpoints(to);
  RewriteHeaders(f.data(), p, UdpCsumWithoutEndpoints(f.data(), p, tables::SumEndpoints(p.key)), rw);
  EXPECT_EQ(f[p.l4 + 6], 0);
  EXPECT_EQ(f[p.l4 + 7], 0);
}

// ---- partial checksums (a sender's TX offload left them to the switch) ----

// The folded pseudo-header sum: what Linux leaves in the field of a
// CHECKSUM_PARTIAL packet (udp4_hwcsum, udp6_hwcsum: ~csum_*_magic(...)).
uint16_t PseudoHeaderSum(bool v4, const uint8_t* ip, uint16_t udp_len) {
  uint32_t acc = CsumAdd(0, ip + (v4 ? 12 : 8), v4 ? 8 : 32);
  uint8_t rest[4] = {0, kProtoUdp, uint8_t(udp_len >> 8), uint8_t(udp_len & 0xff)};
  return CsumFold(CsumAdd(acc, rest, 4));
}

// Rewrites `f` for Receiver(v4) and returns whether its UDP checksum is
// then the one computed from scratch.
bool RewriteGivesFullChecksum(std::vector<uint8_t>& f, bool v4, bool port_says_partial,
                              bool* completed) {
  Parsed p = Parse(f.data(), f.size(), Cfg());
  EXPECT_EQ(p.verdict, Verdict::kForward);
  tables::LegKey to = Receiver(v4);
  Rewrite rw{};
  rw.to = &to;
  rw.to_sums = tables::SumEndpoints(to);
  UdpCsumBase base = UdpCsumWithoutEndpoints(f.data(), p, tables::SumEndpoints(p.key), port_says_partial);
  *completed = base.completed;
  RewriteHeaders(f.data(), p, base, rw);
  uint8_t* udp = f.data() + p.l4;
  uint16_t got = uint16_t(udp[6]) << 8 | udp[7];
  udp[6] = udp[7] = 0;
  uint16_t want = L4Checksum(v4, f.data() + p.l3, udp, f.size() - p.l4, kProtoUdp);
  udp[6] = got >> 8;
  udp[7] = got & 0xff;
  return got == want;
}

TEST(PartialChecksum, IsCompletedInEveryCopy) {
  std::mt19937 rng(11);
  for (int round = 0; round < 1000; ++round) {
    bool v4 = round & 1;
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(f.data(), f.size(), Cfg());
    ASSERT_EQ(p.verdict, Verdict::kForward);
    for (size_t i = p.l4 + 8; i < f.size(); ++i) f[i] = rng();
    uint16_t partial = PseudoHeaderSum(v4, f.data() + p.l3, f.size() - p.l4);
    f[p.l4 + 6] = partial >> 8;
    f[p.l4 + 7] = partial & 0xff;
    bool completed = false;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, false, &completed)) << "round " << round;
    EXPECT_TRUE(completed);
  }
}

// A full checksum equal to the pseudo-header sum by chance (1 in 65536) is
// recomputed, and comes out the same.
TEST(PartialChecksum, FullChecksumThatLooksPartialStaysRight) {
  for (bool v4 : {true, false}) {
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(f.data(), f.size(), Cfg());
    uint8_t* ip = f.data() + p.l3;
    uint8_t* udp = f.data() + p.l4;
    uint16_t len = f.size() - p.l4;
    uint16_t pseudo = PseudoHeaderSum(v4, ip, len);
    // Choose the first two payload bytes so that the full checksum is `pseudo`.
    udp[8] = udp[9] = 0;
    udp[6] = udp[7] = 0;
    uint16_t c = L4Checksum(v4, ip, udp, len, kProtoUdp);
    // Lowering the sum by d raises ~sum by d: d = pseudo - c (one's complement).
    uint16_t d = CsumFold(uint32_t{pseudo} + uint16_t(~c));
    uint16_t fill = uint16_t(~d);  // adding ~d to the data subtracts d from its sum
    udp[8] = fill >> 8;
    udp[9] = fill & 0xff;
    ASSERT_EQ(L4Checksum(v4, ip, udp, len, kProtoUdp), pseudo) << "v4 " << v4;
    udp[6] = pseudo >> 8;
    udp[7] = pseudo & 0xff;
    bool completed = false;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, false, &completed)) << "v4 " << v4;
    EXPECT_TRUE(completed);
  }
}

// A port that says the checksum is not filled in (virtio's
// RTE_MBUF_F_RX_L4_CKSUM_NONE) is believed whatever the field holds.
TEST(PartialChecksum, PortSaysPartial) {
  for (bool v4 : {true, false}) {
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(f.data(), f.size(), Cfg());
    f[p.l4 + 6] = 0x12;
    f[p.l4 + 7] = 0x34;
    bool completed = false;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, true, &completed)) << "v4 " << v4;
    EXPECT_TRUE(completed);
  }
}

// A full checksum (the common case) is updated, never recomputed.
TEST(PartialChecksum, FullChecksumIsNotRecomputed) {
  for (bool v4 : {true, false}) {
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    bool completed = true;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, false, &completed)) << "v4 " << v4;
    EXPECT_FALSE(completed);
  }
}

// ---- the UDP checksum's zero (RFC 768: a computed 0x0000 is sent as 0xFFFF) ----

// Sets the first two payload bytes of `f` so that the one's complement sum of
// its UDP pseudo-header and datagram comes to 0xFFFF (a checksum of zero, sent
// as 0xFFFF), as if the field held 0.
void MakeSumAllOnes(std::vector<uint8_t>& f, const Parsed& p) {
  uint8_t* ip = f.data() + p.l3;
  uint8_t* udp = f.data() + p.l4;
  uint16_t len = f.size() - p.l4;
  udp[6] = udp[7] = 0;
  udp[8] = udp[9] = 0;
  // The sum is ~c (c != 0 here); adding c to a data word brings it to 0xFFFF.
  uint16_t c = L4Checksum(p.v4, ip, udp, len, kProtoUdp);
  udp[8] = c >> 8;
  udp[9] = c & 0xff;
  ASSERT_EQ(L4Checksum(p.v4, ip, udp, len, kProtoUdp), 0xffff) << "computed zero";
}

// The copy's checksum, computed from scratch, is zero: the incremental update
// must write 0xFFFF there, never 0x0000 (which means "no checksum" in IPv4 and
// is refused in IPv6).
TEST(Checksum, ComputedZeroGoesOutAsAllOnes) {
  for (bool v4 : {true, false}) {
    // Build the rewritten copy first, make its sum all ones, then put the
    // original endpoints back with a correct checksum: the payload bytes that
    // make the copy's checksum zero are the same in both.
    std::vector<uint8_t> copy = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(copy.data(), copy.size(), Cfg());
    ASSERT_EQ(p.verdict, Verdict::kForward);
    tables::LegKey to = Receiver(v4);
    Rewrite rw{};
    rw.to = &to;
    rw.to_sums = tables::SumEndpoints(to);
    RewriteHeaders(copy.data(), p, UdpCsumWithoutEndpoints(copy.data(), p, tables::SumEndpoints(p.key)), rw);
    MakeSumAllOnes(copy, p);
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    f[p.l4 + 8] = copy[p.l4 + 8];
    f[p.l4 + 9] = copy[p.l4 + 9];
    uint8_t* udp = f.data() + p.l4;
    udp[6] = udp[7] = 0;
    uint16_t in = L4Checksum(v4, f.data() + p.l3, udp, f.size() - p.l4, kProtoUdp);
    udp[6] = in >> 8;
    udp[7] = in & 0xff;
    ASSERT_NE(in, 0xffff);
    bool completed = true;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, false, &completed)) << "v4 " << v4;
    EXPECT_FALSE(completed);
    EXPECT_EQ(f[p.l4 + 6], 0xff) << "v4 " << v4;
    EXPECT_EQ(f[p.l4 + 7], 0xff) << "v4 " << v4;
  }
}

// A received checksum of 0xFFFF (its sum was zero) is a checksum like any
// other: it is updated, not taken for IPv4's "none" nor recomputed.
TEST(Checksum, ReceivedAllOnesIsUpdated) {
  for (bool v4 : {true, false}) {
    std::vector<uint8_t> f = v4 ? fixtures::kv4_in : fixtures::kv6_in;
    Parsed p = Parse(f.data(), f.size(), Cfg());
    ASSERT_EQ(p.verdict, Verdict::kForward);
    MakeSumAllOnes(f, p);
    f[p.l4 + 6] = f[p.l4 + 7] = 0xff;
    bool completed = true;
    EXPECT_TRUE(RewriteGivesFullChecksum(f, v4, false, &completed)) << "v4 " << v4;
    EXPECT_FALSE(completed);
    EXPECT_FALSE(f[p.l4 + 6] == 0 && f[p.l4 + 7] == 0) << "v4 " << v4;
  }
}

// ---- what Parse refuses, and why ----

struct Bad {
  const char* name;
  std::vector<uint8_t> frame;
  Drop reason;
};

std::vector<uint8_t> V4(std::function<void(std::vector<uint8_t>&)> edit) {
  std::vector<uint8_t> f = fixtures::kv4_in;
  edit(f);
  return f;
}
std::vector<uint8_t> V6(std::function<void(std::vector<uint8_t>&)> edit) {
  std::vector<uint8_t> f = fixtures::kv6_in;
  edit(f);
  return f;
}
void FixIpv4Checksum(std::vector<uint8_t>& f) {
  uint16_t c = Ipv4HeaderChecksum(f.data() + 14);
  f[24] = c >> 8;
  f[25] = c & 0xff;
}

std::vector<Bad> BadFrames() {
  return {
      {"empty", {}, Drop::kMalformed},
      {"runt", std::vector<uint8_t>(fixtures::kv4_in.begin(), fixtures::kv4_in.begin() + 13),
       Drop::kMalformed},
      {"truncated_ip",
       std::vector<uint8_t>(fixtures::kv4_in.begin(), fixtures::kv4_in.begin() + 30),
       Drop::kMalformed},
      {"truncated_udp",
       std::vector<uint8_t>(fixtures::kv4_in.begin(), fixtures::kv4_in.begin() + 38),
       Drop::kMalformed},
      {"other_mac", V4([](auto& f) { f[5] = 0x99; }), Drop::kNotForUs},
      {"broadcast_udp", V4([](auto& f) { std::fill(f.begin(), f.begin() + 6, 0xff); }),
       Drop::kNotForUs},
      {"group_source_mac", V4([](auto& f) { f[6] |= 0x01; }), Drop::kMalformed},
      {"zero_source_mac", V4([](auto& f) { std::fill(f.begin() + 6, f.begin() + 12, 0); }),
       Drop::kMalformed},
      {"unknown_ethertype", V4([](auto& f) { f[12] = 0x88; f[13] = 0xcc; }), Drop::kUnsupported},
      {"wrong_vlan", fixtures::kv4_vlan_in, Drop::kNotForUs},
      {"ip_version", V4([](auto& f) { f[14] = 0x55; }), Drop::kMalformed},
      {"ihl_too_small", V4([](auto& f) { f[14] = 0x44; }), Drop::kMalformed},
      {"ip_options", V4([](auto& f) { f[14] = 0x46; FixIpv4Checksum(f); }), Drop::kUnsupported},
      {"total_length_too_big", V4([](auto& f) { f[16] = 0x40; FixIpv4Checksum(f); }),
       Drop::kMalformed},
      {"bad_header_checksum", V4([](auto& f) { f[24] ^= 0xff; }), Drop::kBadChecksum},
      {"fragment", V4([](auto& f) { f[20] = 0x20; FixIpv4Checksum(f); }), Drop::kUnsupported},
      {"later_fragment", V4([](auto& f) { f[21] = 0x10; FixIpv4Checksum(f); }),
       Drop::kUnsupported},
      {"tcp", V4([](auto& f) { f[23] = 6; FixIpv4Checksum(f); }), Drop::kUnsupported},
      {"udp_length_mismatch", V4([](auto& f) { f[38] = 0; f[39] = 9; }), Drop::kMalformed},
      {"udp_port_zero", V4([](auto& f) { f[34] = 0; f[35] = 0; }), Drop::kMalformed},
      {"v6_truncated", std::vector<uint8_t>(fixtures::kv6_in.begin(), fixtures::kv6_in.begin() + 50),
       Drop::kMalformed},
      {"v6_payload_length_too_big", V6([](auto& f) { f[18] = 0x40; }), Drop::kMalformed},
      {"v6_extension_header", V6([](auto& f) { f[20] = 0; }), Drop::kUnsupported},
      {"v6_zero_udp_checksum", V6([](auto& f) { f[60] = 0; f[61] = 0; }), Drop::kMalformed},
      {"v6_version", V6([](auto& f) { f[14] = 0x40; }), Drop::kMalformed},
  };
}

TEST(Parse, DropsBadFramesWithTheirReason) {
  for (const Bad& b : BadFrames()) {
    Parsed p = Parse(b.frame.data(), b.frame.size(), Cfg());
    EXPECT_EQ(p.verdict, Verdict::kDrop) << b.name;
    EXPECT_EQ(p.drop, b.reason) << b.name << ": got " << tables::DropName(p.drop);
  }
}

TEST(Parse, OversizedPacketIsUnsupported) {
  ParseConfig c = Cfg();
  c.mtu = 200;  // the fixture's IP packet is 228 bytes
  Parsed p = Parse(fixtures::kv4_in.data(), fixtures::kv4_in.size(), c);
  EXPECT_EQ(p.drop, Drop::kUnsupported);
}

TEST(Parse, TrailingPaddingIsNotPayload) {
  std::vector<uint8_t> f = fixtures::kv4_in;
  size_t real = f.size();
  f.resize(real + 20, 0);
  Parsed p = Parse(f.data(), f.size(), Cfg());
  ASSERT_EQ(p.verdict, Verdict::kForward);
  EXPECT_EQ(p.frame_len, real);
}

TEST(Parse, ArpAndIcmpGoToTheSlowPath) {
  std::vector<uint8_t> arp(42, 0);
  std::fill(arp.begin(), arp.begin() + 6, 0xff);
  arp[6] = 0x02;  // a host's source MAC (a zero one is malformed)
  arp[11] = 0x10;
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(Parse(arp.data(), arp.size(), Cfg()).verdict, Verdict::kSlowPath);
  std::vector<uint8_t> icmp = V4([](auto& f) { f[23] = 1; FixIpv4Checksum(f); });
  EXPECT_EQ(Parse(icmp.data(), icmp.size(), Cfg()).verdict, Verdict::kSlowPath);
  std::vector<uint8_t> icmp6 = V6([](auto& f) { f[20] = 58; });
  EXPECT_EQ(Parse(icmp6.data(), icmp6.size(), Cfg()).verdict, Verdict::kSlowPath);
}

// Every prefix of every fixture, and random corruption, must parse without
// reading out of bounds (run under AddressSanitizer by the sanitizer build).
TEST(Parse, NeverReadsPastTheEnd) {
  std::mt19937 rng(1);
  for (const auto* fx : {&fixtures::kv4_in, &fixtures::kv6_in, &fixtures::kv4_vlan_in}) {
    for (size_t n = 0; n <= fx->size(); ++n) {
      std::vector<uint8_t> f(fx->begin(), fx->begin() + n);
      Parse(f.data(), f.size(), Cfg(42));
      Parse(f.data(), f.size(), Cfg());
    }
    for (int i = 0; i < 5000; ++i) {
      std::vector<uint8_t> f = *fx;
      f[rng() % 70] = rng();
      f.resize(rng() % f.size());
      std::vector<uint8_t> exact(f);  // heap block of exactly the frame's size
      Parse(exact.data(), exact.size(), Cfg());
    }
  }
}

// The 64-bit CsumAdd against the textbook loop over big-endian 16-bit words
// (RFC 1071), for every length up to 70 (odd and unaligned tails) and any
// carried-in accumulator.
uint16_t ReferenceSum(uint32_t acc, const uint8_t* b, size_t len) {
  uint64_t sum = acc;
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(b[i]) << 8 | b[i + 1];
  if (len & 1) sum += uint32_t(b[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

TEST(Checksum, SumMatchesSixteenBitReference) {
  std::mt19937 rng(3);
  std::vector<uint8_t> buf(80);
  for (int round = 0; round < 3000; ++round) {
    for (auto& b : buf) b = (round % 3 == 0) ? 0xff : rng();  // all-ones: the carry case
    size_t off = rng() % 8;
    size_t len = rng() % 71;
    uint32_t acc = (round & 1) ? rng() % 0x20000 : 0;
    EXPECT_EQ(CsumFold(CsumAdd(acc, buf.data() + off, len)),
              ReferenceSum(acc, buf.data() + off, len))
        << "round " << round << " len " << len << " acc " << acc;
  }
}

// NextHops (the switch's one next-hop rule) must give the plain answer
// (IpPrefix::Contains over the on-link prefixes, else the family's gateway)
// for both families.
IpAddr ReferenceNextHop(const std::vector<IpPrefix>& on_link, const IpAddr& gw4,
                        const IpAddr& gw6, const IpAddr& remote) {
  if (on_link.empty()) return remote;
  for (const auto& p : on_link) {
    if (p.Contains(remote)) return remote;
  }
  const IpAddr& gw = remote.is_v4() ? gw4 : gw6;
  return gw.is_zero() ? remote : gw;
}

TEST(NextHops, AgreesWithPrefixContains) {
  std::vector<IpPrefix> on_link = {*IpPrefix::Parse("198.18.0.0/24"),
                                   *IpPrefix::Parse("198.19.128.0/17"),
                                   *IpPrefix::Parse("2001:db8:1::/64"),
                                   *IpPrefix::Parse("2001:db8:2:8000::/49")};
  IpAddr gw4 = *IpAddr::Parse("198.18.0.1");
  IpAddr gw6 = *IpAddr::Parse("2001:db8:1::1");
  NextHops hops(on_link, gw4, gw6);
  NextHops no_gw6(on_link, gw4, IpAddr{});
  NextHops none({}, gw4, gw6);
  EXPECT_EQ(hops.Of(*IpAddr::Parse("198.18.0.77")), *IpAddr::Parse("198.18.0.77"));
  EXPECT_EQ(hops.Of(*IpAddr::Parse("198.19.200.1")), *IpAddr::Parse("198.19.200.1"));
  EXPECT_EQ(hops.Of(*IpAddr::Parse("198.19.1.1")), gw4);
  EXPECT_EQ(hops.Of(*IpAddr::Parse("2001:db8:2:9000::5")), *IpAddr::Parse("2001:db8:2:9000::5"));
  EXPECT_EQ(hops.Of(*IpAddr::Parse("2001:db8:2::5")), gw6);
  EXPECT_EQ(no_gw6.Of(*IpAddr::Parse("2001:db8:2::5")), *IpAddr::Parse("2001:db8:2::5"));
  EXPECT_EQ(none.Of(*IpAddr::Parse("198.19.1.1")), *IpAddr::Parse("198.19.1.1"));
  std::mt19937 rng(5);
  const char* bases[] = {"198.18.0.0", "198.19.0.0", "2001:db8:1::", "2001:db8:2::"};
  for (int i = 0; i < 20000; ++i) {
    IpAddr a = *IpAddr::Parse(bases[rng() % 4]);
    // Vary the bits around the prefix boundaries.
    if (a.is_v4()) {
      a.b[13] ^= rng() & 0xff;
      a.b[14] = rng();
      a.b[15] = rng();
    } else {
      a.b[6] ^= rng() & 0xff;
      a.b[7] = rng();
      a.b[15] = rng();
    }
    for (const NextHops* h : {&hops, &no_gw6}) {
      const IpAddr& g6 = h == &hops ? gw6 : IpAddr{};
      ASSERT_EQ(h->Of(a), ReferenceNextHop(on_link, gw4, g6, a)) << a.ToString();
    }
  }
}

// A worker's memo of a leg's next hop (LegHops, kept in the leg's usage
// block) must never answer with what the table no longer says: a new MAC, a
// neighbour gone incomplete, an entry added after a miss; nor trust what
// another worker or an earlier switch process left in the block.
TEST(LegHops, FollowsTheTable) {
  std::vector<tables::NeighEntry> entries(tables::kNeighCapacity);
  for (auto& e : entries) {
    e.seq.store(0);
    e.state.store(0);
  }
  NeighTable table(entries.data());
  IpAddr gw = *IpAddr::Parse("198.18.0.1");
  IpAddr remote = *IpAddr::Parse("198.19.7.7");  // behind the gateway
  NextHops next({*IpPrefix::Parse("198.18.0.0/24")}, gw, IpAddr{});
  LegHops hops(table, next, 7);
  tables::LegCounters c{};
  uint8_t mac[6];
  EXPECT_FALSE(hops.Mac(c, remote, mac)) << "no entry yet";

  tables::NeighEntry* e = table.FindOrAdd(gw);
  ASSERT_NE(e, nullptr);
  EXPECT_FALSE(hops.Mac(c, remote, mac)) << "incomplete";
  const uint8_t mac1[6] = {2, 0, 0, 0, 0, 1};
  NeighTable::Confirm(*e, mac1, 1);
  ASSERT_TRUE(hops.Mac(c, remote, mac));
  EXPECT_EQ(std::memcmp(mac, mac1, 6), 0);
  EXPECT_EQ(c.hop_epoch, 7u) << "remembered";
  ASSERT_TRUE(hops.Mac(c, remote, mac)) << "from the memo";
  EXPECT_EQ(std::memcmp(mac, mac1, 6), 0);

  const uint8_t mac2[6] = {2, 0, 0, 0, 0, 2};
  NeighTable::Confirm(*e, mac2, 2);
  ASSERT_TRUE(hops.Mac(c, remote, mac));
  EXPECT_EQ(std::memcmp(mac, mac2, 6), 0) << "the new MAC, not the remembered one";

  NeighTable::Write(*e, [&] { e->state.store(uint8_t(tables::NeighState::kIncomplete)); });
  EXPECT_FALSE(hops.Mac(c, remote, mac));
  NeighTable::Write(*e, [&] { e->state.store(uint8_t(tables::NeighState::kStale)); });
  EXPECT_TRUE(hops.Mac(c, remote, mac)) << "stale is still usable";

  // A block written under another epoch (another worker, or the switch
  // before a restart whose neighbour table said otherwise) is not trusted,
  // even when its entry and sequence number match.
  std::memcpy(e->mac, mac1, 6);  // as a predecessor's table might hold it, same seq
  LegHops after_restart(table, next, 8);
  ASSERT_TRUE(after_restart.Mac(c, remote, mac));
  EXPECT_EQ(std::memcmp(mac, mac1, 6), 0) << "read from the table, not the old memo";
  EXPECT_EQ(c.hop_epoch, 8u);

  // Many legs, on-link and behind the gateway: every answer equals the table's.
  std::mt19937 rng(9);
  std::vector<IpAddr> hosts;
  for (int i = 0; i < 300; ++i) {
    // Half on-link (198.18.0.x), half behind the gateway.
    IpAddr a = IpAddr::FromV4(htonl((i % 2 ? 0xc6120000u : 0xc6130000u) + i));
    hosts.push_back(a);
    if (i % 3) {
      uint8_t m[6] = {2, 1, 0, 0, uint8_t(i >> 8), uint8_t(i)};
      NeighTable::Confirm(*table.FindOrAdd(a), m, 3);
    }
  }
  std::vector<tables::LegCounters> blocks(hosts.size());
  for (auto& b : blocks) std::memset(static_cast<void*>(&b), 0, sizeof(b));
  for (int i = 0; i < 5000; ++i) {
    size_t k = rng() % hosts.size();
    const IpAddr& a = hosts[k];
    uint8_t want[6] = {}, got[6] = {};
    bool want_ok = table.Lookup(next.Of(a), want);
    ASSERT_EQ(hops.Mac(blocks[k], a, got), want_ok) << a.ToString();
    if (want_ok) {
      ASSERT_EQ(std::memcmp(want, got, 6), 0) << a.ToString();
    }
    if (i % 500 == 0) {
      uint8_t m[6] = {2, 2, 0, 0, 0, uint8_t(i)};
      NeighTable::Confirm(*table.FindOrAdd(hosts[rng() % hosts.size()]), m, 4);
      NeighTable::Confirm(*e, m, 4);  // the gateway too
    }
  }
}

}  // namespace
}  // namespace tandem::sw
