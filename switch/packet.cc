#include "switch/packet.h"

#include <algorithm>

namespace tandem::sw {
namespace {

using tables::Drop;

inline uint16_t Be16(const uint8_t* p) { return uint16_t(p[0]) << 8 | p[1]; }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

Parsed DropWith(Parsed p, Drop d) {
  p.verdict = Verdict::kDrop;
  p.drop = d;
  return p;
}

// Where a rewrite writes the addresses: offsets within the IP header.
inline uint16_t SrcOff(bool v4) { return v4 ? 12 : 8; }
inline uint16_t AddrLen(bool v4) { return v4 ? 4 : 16; }

}  // namespace

Parsed Parse(const uint8_t* p, uint32_t len, const ParseConfig& cfg) {
  Parsed r;
  if (len < 14) return DropWith(r, Drop::kMalformed);
  bool to_us = std::memcmp(p, cfg.mac, 6) == 0;
  bool group = p[0] & 1;  // broadcast or multicast
  if (!to_us && !group) return DropWith(r, Drop::kNotForUs);

  uint32_t off = 12;
  uint16_t type = Be16(p + off);
  off += 2;
  if (type == kEthVlan) {
    if (len < off + 4) return DropWith(r, Drop::kMalformed);
    r.vlan = Be16(p + off) & 0x0fff;
    type = Be16(p + off + 2);
    off += 4;
    if (type == kEthVlan || type == 0x88a8) return DropWith(r, Drop::kUnsupported);
  }
  if (r.vlan != cfg.vlan) return DropWith(r, Drop::kNotForUs);
  r.ethertype = type;
  r.l3 = static_cast<uint16_t>(off);

  if (type == kEthHeartbeat) {
    r.frame_len = static_cast<uint16_t>(std::min<uint32_t>(len, 0xffff));
    r.verdict = Verdict::kSlowPath;
    return r;
  }
  if (type == kEthArp) {
    if (len < off + 28) return DropWith(r, Drop::kMalformed);
    r.frame_len = static_cast<uint16_t>(off + 28);
    r.verdict = Verdict::kSlowPath;
    return r;
  }

  const uint8_t* ip = p + off;
  uint8_t proto;
  uint32_t ip_end;
  if (type == kEthIPv4) {
    r.v4 = true;
    if (len < off + 20) return DropWith(r, Drop::kMalformed);
    if ((ip[0] >> 4) != 4) return DropWith(r, Drop::kMalformed);
    uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20) return DropWith(r, Drop::kMalformed);
    uint16_t total = Be16(ip + 2);
    if (total < ihl || off + total > len) return DropWith(r, Drop::kMalformed);
    if (ihl != 20) return DropWith(r, Drop::kUnsupported);  // IP options
    if (CsumFold(CsumAdd(0, ip, 20)) != 0xffff) return DropWith(r, Drop::kBadChecksum);
    if (Be16(ip + 6) & 0x3fff) return DropWith(r, Drop::kUnsupported);  // MF or offset
    if (total > cfg.mtu) return DropWith(r, Drop::kUnsupported);
    proto = ip[9];
    ip_end = off + total;
    r.l4 = static_cast<uint16_t>(off + 20);
  } else if (type == kEthIPv6) {
    r.v4 = false;
    if (len < off + 40) return DropWith(r, Drop::kMalformed);
    if ((ip[0] >> 4) != 6) return DropWith(r, Drop::kMalformed);
    uint32_t payload = Be16(ip + 4);
    if (off + 40 + payload > len) return DropWith(r, Drop::kMalformed);
    if (40 + payload > cfg.mtu) return DropWith(r, Drop::kUnsupported);
    proto = ip[6];
    ip_end = off + 40 + payload;
    r.l4 = static_cast<uint16_t>(off + 40);
  } else {
    return DropWith(r, Drop::kUnsupported);
  }
  r.frame_len = static_cast<uint16_t>(ip_end);

  if (proto == kProtoIcmp && r.v4) {
    r.verdict = Verdict::kSlowPath;
    return r;
  }
  if (proto == kProtoIcmp6 && !r.v4) {
    r.verdict = Verdict::kSlowPath;
    return r;
  }
  if (proto != kProtoUdp) return DropWith(r, Drop::kUnsupported);
  if (!to_us) return DropWith(r, Drop::kNotForUs);  // media is unicast to our MAC

  const uint8_t* udp = p + r.l4;
  if (ip_end < r.l4 + 8u) return DropWith(r, Drop::kMalformed);
  uint16_t udp_len = Be16(udp + 4);
  if (udp_len != ip_end - r.l4) return DropWith(r, Drop::kMalformed);
  if (!r.v4 && Be16(udp + 6) == 0) return DropWith(r, Drop::kMalformed);  // required in IPv6

  uint8_t alen = AddrLen(r.v4);
  if (r.v4) {
    uint32_t s, d;
    std::memcpy(&s, ip + 12, 4);
    std::memcpy(&d, ip + 16, 4);
    r.key.remote = IpAddr::FromV4(s);
    r.key.local = IpAddr::FromV4(d);
  } else {
    std::memcpy(r.key.remote.b, ip + 8, alen);
    std::memcpy(r.key.local.b, ip + 24, alen);
  }
  r.key.remote_port = Be16(udp);
  r.key.local_port = Be16(udp + 2);
  if (r.key.remote_port == 0 || r.key.local_port == 0) return DropWith(r, Drop::kMalformed);
  r.verdict = Verdict::kForward;
  return r;
}

uint32_t CsumAdd(uint32_t acc, const void* data, size_t len) {
  const auto* b = static_cast<const uint8_t*>(data);
  uint64_t sum = acc;
  while (len >= 2) {
    sum += uint32_t(b[0]) << 8 | b[1];
    b += 2;
    len -= 2;
  }
  if (len) sum += uint32_t(b[0]) << 8;
  while (sum >> 32) sum = (sum & 0xffffffff) + (sum >> 32);
  return static_cast<uint32_t>((sum & 0xffff) + (sum >> 16));
}

uint16_t Ipv4HeaderChecksum(const uint8_t* ip) {
  uint32_t acc = CsumAdd(0, ip, 10);
  acc = CsumAdd(acc, ip + 12, 8);
  return static_cast<uint16_t>(~CsumFold(acc));
}

uint16_t L4Checksum(bool v4, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len,
                    uint8_t proto) {
  uint32_t acc = CsumAdd(0, ip + SrcOff(v4), 2 * AddrLen(v4));
  uint8_t pseudo[4] = {0, proto, uint8_t(l4_len >> 8), uint8_t(l4_len & 0xff)};
  acc = CsumAdd(acc, pseudo, 4);
  acc = CsumAdd(acc, l4, l4_len);
  uint16_t c = static_cast<uint16_t>(~CsumFold(acc));
  return (c == 0 && proto == kProtoUdp) ? 0xffff : c;
}

namespace {
// Adds the complement of each 16-bit word: subtraction in one's complement.
uint32_t CsumSub(uint32_t acc, const uint8_t* b, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) acc += uint16_t(~(uint32_t(b[i]) << 8 | b[i + 1]));
  return acc;
}
}  // namespace

UdpCsumBase UdpCsumWithoutEndpoints(const uint8_t* frame, const Parsed& p) {
  UdpCsumBase base;
  const uint8_t* ip = frame + p.l3;
  const uint8_t* udp = frame + p.l4;
  uint16_t old = Be16(udp + 6);
  if (p.v4 && old == 0) return base;
  base.present = true;
  uint32_t acc = uint16_t(~old);
  acc = CsumSub(acc, ip + SrcOff(p.v4), 2 * AddrLen(p.v4));
  acc = CsumSub(acc, udp, 4);
  base.partial = CsumFold(acc);
  return base;
}

void RewriteHeaders(uint8_t* frame, const Parsed& p, const UdpCsumBase& base, const Rewrite& rw) {
  std::memcpy(frame, rw.dst_mac, 6);
  std::memcpy(frame + 6, rw.src_mac, 6);
  uint8_t* ip = frame + p.l3;
  uint8_t* udp = frame + p.l4;
  const tables::LegKey& to = *rw.to;
  if (p.v4) {
    std::memcpy(ip + 12, to.local.b + 12, 4);
    std::memcpy(ip + 16, to.remote.b + 12, 4);
    ip[8] = kTtl;
    PutBe16(ip + 10, Ipv4HeaderChecksum(ip));
  } else {
    std::memcpy(ip + 8, to.local.b, 16);
    std::memcpy(ip + 24, to.remote.b, 16);
    ip[7] = kTtl;
  }
  PutBe16(udp, to.local_port);
  PutBe16(udp + 2, to.remote_port);
  if (!base.present) return;
  uint32_t acc = base.partial;
  acc = CsumAdd(acc, ip + SrcOff(p.v4), 2 * AddrLen(p.v4));
  acc = CsumAdd(acc, udp, 4);
  uint16_t c = static_cast<uint16_t>(~CsumFold(acc));
  PutBe16(udp + 6, c == 0 ? 0xffff : c);
}

}  // namespace tandem::sw
