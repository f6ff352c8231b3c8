// Packet parsing and header rewrite on plain byte buffers, so that they are
// unit-testable without DPDK and shared by the workers and the slow path.
//
// Parse() reads:   Ethernet, one optional 802.1Q tag, IPv4 (no options, no
//                  fragments) or IPv6 (no extension headers), UDP.
// Parse() decides: kForward (a UDP packet for a leg lookup), kSlowPath (ARP,
//                  ICMP, ICMPv6 for the main thread) or kDrop with a reason.
// It never reads past `len`.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/tables/layout.h"

namespace tandem::sw {

inline constexpr uint16_t kEthIPv4 = 0x0800;
inline constexpr uint16_t kEthIPv6 = 0x86dd;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kEthVlan = 0x8100;
inline constexpr uint16_t kEthHeartbeat = 0x88b5;  // pair heartbeats (switch/heartbeat.h)
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmp6 = 58;
inline constexpr uint8_t kTtl = 64;

enum class Verdict : uint8_t { kForward, kSlowPath, kDrop };

struct Parsed {
  Verdict verdict = Verdict::kDrop;
  tables::Drop drop = tables::Drop::kMalformed;
  bool v4 = true;
  uint16_t vlan = 0;       // VLAN id, 0 when untagged
  uint16_t ethertype = 0;  // after the tag
  uint16_t l3 = 0;         // offset of the IP (or ARP) header
  uint16_t l4 = 0;         // offset of the UDP header
  uint16_t frame_len = 0;  // bytes that belong to the packet (without trailing padding)
  tables::LegKey key;      // remote = source, local = destination (VIP)
};

struct ParseConfig {
  uint8_t mac[6];      // our port MAC
  uint16_t vlan = 0;   // expected VLAN id (0 = untagged)
  uint16_t mtu = 1500; // largest IP packet accepted
};

Parsed Parse(const uint8_t* p, uint32_t len, const ParseConfig& cfg);

// ---- checksums ----

// One's complement sum of 16-bit big-endian words, not folded.
uint32_t CsumAdd(uint32_t acc, const void* data, size_t len);
inline uint16_t CsumFold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}
uint16_t Ipv4HeaderChecksum(const uint8_t* ip);  // 20-byte header, checksum field ignored

// Full UDP/ICMPv6 checksum over a pseudo-header and the L4 bytes (for tests,
// ICMPv6 replies, and packets whose checksum must be computed from scratch).
uint16_t L4Checksum(bool v4, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len, uint8_t proto);

// What a UDP checksum is without the fields that a rewrite changes (the
// addresses and the ports), so each copy adds only its own. Computed once
// per received packet; no payload byte is read (RFC 1624 arithmetic).
struct UdpCsumBase {
  bool present = false;  // an IPv4 UDP checksum of 0 means none, and stays 0
  uint32_t partial = 0;
};
UdpCsumBase UdpCsumWithoutEndpoints(const uint8_t* frame, const Parsed& p);

// The fields of one copy.
struct Rewrite {
  uint8_t dst_mac[6];
  uint8_t src_mac[6];
  const tables::LegKey* to;  // the receiving leg: remote = destination, local = source
};

// Rewrites the headers of a copy in place: MACs, IP addresses, TTL / hop
// limit, UDP ports, IPv4 header checksum and the UDP checksum.
void RewriteHeaders(uint8_t* frame, const Parsed& p, const UdpCsumBase& base, const Rewrite& rw);

}  // namespace tandem::sw
