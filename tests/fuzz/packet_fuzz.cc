// Fuzz target: the switch's packet parser and header rewrite (switch/packet.h).
//
// Input: 2 bytes of configuration (expected VLAN id, whether the MTU is 1500
// or 9000), then the frame. Properties checked on every input:
//  - Parse never reads past the frame (ASan) and returns consistent offsets;
//  - a forwarded packet's UDP header lies within the frame, ports are not 0;
//  - after RewriteHeaders to a receiver of the same family, the IPv4 header
//    checksum is valid and the UDP checksum is valid whenever it was before
//    (the incremental update of RFC 1624 must equal a full recomputation).
#include <cstdint>
#include <cstring>
#include <vector>

#include "switch/packet.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using tandem::IpAddr;
using tandem::sw::CsumAdd;
using tandem::sw::CsumFold;
using tandem::sw::Parse;
using tandem::sw::ParseConfig;
using tandem::sw::Parsed;
using tandem::sw::Verdict;

constexpr uint8_t kOurMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

uint16_t Be16(const uint8_t* p) { return uint16_t(p[0]) << 8 | p[1]; }

// Sum of the pseudo-header and the UDP bytes, folded: 0xffff when valid.
uint16_t UdpSum(const uint8_t* frame, const Parsed& p) {
  const uint8_t* ip = frame + p.l3;
  const uint8_t* udp = frame + p.l4;
  uint16_t udp_len = Be16(udp + 4);
  uint32_t acc = CsumAdd(0, ip + (p.v4 ? 12 : 8), p.v4 ? 8 : 32);
  uint8_t pseudo[4] = {0, tandem::sw::kProtoUdp, uint8_t(udp_len >> 8), uint8_t(udp_len)};
  acc = CsumAdd(acc, pseudo, 4);
  acc = CsumAdd(acc, udp, udp_len);
  return CsumFold(acc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  ParseConfig cfg;
  std::memcpy(cfg.mac, kOurMac, 6);
  cfg.vlan = data[0] & 0x0f;  // 0 (untagged) or a small VLAN id: tags are found
  cfg.mtu = (data[1] & 1) ? 9000 : 1500;
  const uint8_t* frame = data + 2;
  uint32_t len = static_cast<uint32_t>(size - 2);
  // A heap copy of exactly `len` bytes: any read past the end is an ASan report.
  std::vector<uint8_t> buf(frame, frame + len);
  Parsed p = Parse(buf.data(), len, cfg);
  if (p.verdict == Verdict::kDrop) {
    FUZZ_CHECK(static_cast<uint32_t>(p.drop) < tandem::tables::kDropCount, "drop %u",
               static_cast<unsigned>(p.drop));
    return 0;
  }
  FUZZ_CHECK(p.frame_len <= len, "frame_len %u > len %u", p.frame_len, len);
  FUZZ_CHECK(p.l3 >= 14 && p.l3 <= len, "l3 %u", p.l3);
  if (p.verdict == Verdict::kSlowPath) return 0;

  // Forward: a UDP packet to our MAC with both ports set.
  FUZZ_CHECK(p.l4 > p.l3 && p.l4 + 8u <= p.frame_len, "l4 %u frame_len %u", p.l4, p.frame_len);
  FUZZ_CHECK(Be16(buf.data() + p.l4 + 4) == p.frame_len - p.l4, "udp length");
  FUZZ_CHECK(p.key.remote_port != 0 && p.key.local_port != 0, "zero port");

  const bool had_csum = Be16(buf.data() + p.l4 + 6) != 0;
  const bool was_valid = had_csum && UdpSum(buf.data(), p) == 0xffff;
  auto base = tandem::sw::UdpCsumWithoutEndpoints(buf.data(), p, tandem::tables::SumEndpoints(p.key));

  // One receiver of the same family, its endpoints taken from the input's
  // own bytes so that the fuzzer varies them too.
  tandem::tables::LegKey to;
  if (p.v4) {
    to.remote = IpAddr::FromV4(0x0100000au ^ (uint32_t(p.key.remote.b[15]) << 24));
    to.local = IpAddr::FromV4(0x640012c6u ^ (uint32_t(p.key.local_port) << 24));
  } else {
    to.remote = p.key.local;
    to.local = p.key.remote;
    to.remote.b[15] ^= 0x5a;
  }
  to.remote_port = static_cast<uint16_t>(p.key.remote_port ^ 0x1234);
  to.local_port = static_cast<uint16_t>(p.key.local_port + 1);
  if (to.remote_port == 0) to.remote_port = 1;
  if (to.local_port == 0) to.local_port = 1;
  tandem::sw::Rewrite rw{};
  std::memset(rw.dst_mac, 0x22, 6);
  std::memcpy(rw.src_mac, kOurMac, 6);
  rw.to = &to;
  rw.to_sums = tandem::tables::SumEndpoints(to);
  tandem::sw::RewriteHeaders(buf.data(), p, base, rw);

  const uint8_t* ip = buf.data() + p.l3;
  if (p.v4) {
    FUZZ_CHECK(CsumFold(CsumAdd(0, ip, 20)) == 0xffff, "IPv4 header checksum after rewrite");
  }
  if (had_csum) {
    FUZZ_CHECK(Be16(buf.data() + p.l4 + 6) != 0, "a present UDP checksum became 0");
  }
  if (was_valid) {
    FUZZ_CHECK(UdpSum(buf.data(), p) == 0xffff, "UDP checksum invalid after rewrite");
  }
  // The rewritten packet parses again to the receiver's key, as the switch's
  // peer would see it.
  Parsed again = Parse(buf.data(), len, ParseConfig{{0x22, 0x22, 0x22, 0x22, 0x22, 0x22},
                                                    cfg.vlan, cfg.mtu});
  if (again.verdict == Verdict::kForward) {
    FUZZ_CHECK(again.key.remote == to.local && again.key.local == to.remote &&
                   again.key.remote_port == to.local_port && again.key.local_port == to.remote_port,
               "rewritten packet parses to another key");
  }
  return 0;
}
