#include "switch/packet.h"

#include <algorithm>

namespace tandem::sw {
namespace {

using tables::Drop;

// Returns false, so that a stage can settle the verdict and stop in one line.
bool DropWith(Parsed& p, Drop d) {
  p.verdict = Verdict::kDrop;
  p.drop = d;
  return false;
}

// Where a rewrite writes the addresses: offsets within the IP header.
inline uint16_t SrcOff(bool v4) { return v4 ? 12 : 8; }
inline uint16_t AddrLen(bool v4) { return v4 ? 4 : 16; }

}  // namespace

namespace {
// The stages of ParseInto, in the order they read the frame. Each returns
// false when it has settled the verdict in `r` before the end (a drop, or the
// slow path), true to go on. Inlined: the split is for the reader, the hot
// path stays one function.

// Ethernet and one optional 802.1Q tag: sets vlan, ethertype and l3.
[[gnu::always_inline]] inline bool ParseL2(const uint8_t* p, uint32_t len, const ParseConfig& cfg,
                                           bool& to_us, Parsed& r) {
  if (len < 14) return DropWith(r, Drop::kMalformed);
  to_us = std::memcmp(p, cfg.mac, 6) == 0;
  bool group = p[0] & 1;  // broadcast or multicast
  if (!to_us && !group) return DropWith(r, Drop::kNotForUs);
  // A group or all-zero source address is no host's (IEEE 802); what the
  // slow path answers to it (ARP, NA, echo replies) would reach every host.
  static constexpr uint8_t kZeroMac[6] = {};
  if ((p[6] & 1) || std::memcmp(p + 6, kZeroMac, 6) == 0) return DropWith(r, Drop::kMalformed);

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
  return true;
}

// Heartbeats and ARP go to the slow path whole; any other ethertype but IP
// is dropped.
[[gnu::always_inline]] inline void ParseNonIp(uint32_t len, Parsed& r) {
  if (r.ethertype == kEthHeartbeat) {
    r.frame_len = static_cast<uint16_t>(std::min<uint32_t>(len, 0xffff));
    r.verdict = Verdict::kSlowPath;
  } else if (r.ethertype != kEthArp) {
    DropWith(r, Drop::kUnsupported);
  } else if (len < r.l3 + 28u) {
    DropWith(r, Drop::kMalformed);
  } else {
    r.frame_len = static_cast<uint16_t>(r.l3 + 28);
    r.verdict = Verdict::kSlowPath;
  }
}

// What the IP stage found for the UDP stage.
struct IpPayload {
  uint8_t proto;
  uint32_t end;  // offset of the first byte after the IP packet
};

// IPv4 at r.l3 (no options, no fragments, checksum verified): sets v4, l4 and
// frame_len; ICMP goes to the slow path.
[[gnu::always_inline]] inline bool ParseIpv4(const uint8_t* p, uint32_t len, const ParseConfig& cfg,
                                             Parsed& r, IpPayload& out) {
  uint32_t off = r.l3;
  const uint8_t* ip = p + off;
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
  out.proto = ip[9];
  out.end = off + total;
  r.l4 = static_cast<uint16_t>(off + 20);
  r.frame_len = static_cast<uint16_t>(out.end);
  if (out.proto == kProtoIcmp) {
    r.verdict = Verdict::kSlowPath;
    return false;
  }
  return true;
}

// IPv6 at r.l3 (no extension headers): sets v4, l4 and frame_len; ICMPv6 goes
// to the slow path.
[[gnu::always_inline]] inline bool ParseIpv6(const uint8_t* p, uint32_t len, const ParseConfig& cfg,
                                             Parsed& r, IpPayload& out) {
  uint32_t off = r.l3;
  const uint8_t* ip = p + off;
  r.v4 = false;
  if (len < off + 40) return DropWith(r, Drop::kMalformed);
  if ((ip[0] >> 4) != 6) return DropWith(r, Drop::kMalformed);
  uint32_t payload = Be16(ip + 4);
  if (off + 40 + payload > len) return DropWith(r, Drop::kMalformed);
  if (40 + payload > cfg.mtu) return DropWith(r, Drop::kUnsupported);
  out.proto = ip[6];
  out.end = off + 40 + payload;
  r.l4 = static_cast<uint16_t>(off + 40);
  // IPv4-mapped addresses (::ffff:a.b.c.d) are how the tables key IPv4:
  // on the wire in IPv6 they would alias an IPv4 leg.
  const uint8_t* mapped = IpAddr::kV4MappedPrefix;
  if (std::memcmp(ip + 8, mapped, 12) == 0 || std::memcmp(ip + 24, mapped, 12) == 0) {
    return DropWith(r, Drop::kUnsupported);
  }
  r.frame_len = static_cast<uint16_t>(out.end);
  if (out.proto == kProtoIcmp6) {
    r.verdict = Verdict::kSlowPath;
    return false;
  }
  return true;
}

// UDP unicast to our MAC becomes kForward with its key (then it returns true,
// the end of the parse); anything else is dropped.
[[gnu::always_inline]] inline bool ParseUdp(const uint8_t* p, bool to_us,
                                            const IpPayload& ip_payload, Parsed& r) {
  uint8_t proto = ip_payload.proto;
  uint32_t ip_end = ip_payload.end;
  if (proto != kProtoUdp) return DropWith(r, Drop::kUnsupported);
  if (!to_us) return DropWith(r, Drop::kNotForUs);  // media is unicast to our MAC

  const uint8_t* ip = p + r.l3;
  const uint8_t* udp = p + r.l4;
  if (ip_end < r.l4 + 8u) return DropWith(r, Drop::kMalformed);
  uint16_t udp_len = Be16(udp + 4);
  if (udp_len != ip_end - r.l4) return DropWith(r, Drop::kMalformed);
  // The checksum is required in IPv6.
  if (!r.v4 && Be16(udp + 6) == 0) return DropWith(r, Drop::kMalformed);

  if (r.v4) {
    // IPv4-mapped (::ffff:a.b.c.d) in place; the key starts zeroed.
    r.key.remote.b[10] = r.key.remote.b[11] = 0xff;
    r.key.local.b[10] = r.key.local.b[11] = 0xff;
    std::memcpy(r.key.remote.b + 12, ip + 12, 4);
    std::memcpy(r.key.local.b + 12, ip + 16, 4);
  } else {
    std::memcpy(r.key.remote.b, ip + 8, 16);
    std::memcpy(r.key.local.b, ip + 24, 16);
  }
  r.key.remote_port = Be16(udp);
  r.key.local_port = Be16(udp + 2);
  if (r.key.remote_port == 0 || r.key.local_port == 0) return DropWith(r, Drop::kMalformed);
  r.verdict = Verdict::kForward;
  return true;
}

// Parse into the caller's object: every return leaves the result in `r`, so
// Parse returns it without a copy (named return value), and a worker that
// constructs its Parsed from Parse's result writes the packet's slot directly.
void ParseInto(const uint8_t* p, uint32_t len, const ParseConfig& cfg, Parsed& r) {
  bool to_us = false;
  if (!ParseL2(p, len, cfg, to_us, r)) return;
  IpPayload ip_payload;
  // IP first: it is the common case.
  if (r.ethertype == kEthIPv4) {
    if (!ParseIpv4(p, len, cfg, r, ip_payload)) return;
  } else if (r.ethertype == kEthIPv6) {
    if (!ParseIpv6(p, len, cfg, r, ip_payload)) return;
  } else {
    ParseNonIp(len, r);
    return;
  }
  ParseUdp(p, to_us, ip_payload, r);
}
}  // namespace

Parsed Parse(const uint8_t* p, uint32_t len, const ParseConfig& cfg) {
  Parsed r;
  ParseInto(p, len, cfg, r);
  return r;
}

uint16_t Ipv4HeaderChecksum(const uint8_t* ip) {
  uint32_t acc = CsumAdd(0, ip, 10);
  acc = CsumAdd(acc, ip + 12, 8);
  return static_cast<uint16_t>(~CsumFold(acc));
}

uint16_t L4Checksum(bool v4, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len, uint8_t proto) {
  uint32_t acc = CsumAdd(0, ip + SrcOff(v4), 2 * AddrLen(v4));
  uint8_t pseudo[4] = {0, proto, uint8_t(l4_len >> 8), uint8_t(l4_len & 0xff)};
  acc = CsumAdd(acc, pseudo, 4);
  acc = CsumAdd(acc, l4, l4_len);
  uint16_t c = static_cast<uint16_t>(~CsumFold(acc));
  return (c == 0 && proto == kProtoUdp) ? 0xffff : c;
}

}  // namespace tandem::sw
