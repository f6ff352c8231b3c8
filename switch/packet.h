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

// Two end-around carries fold any 32-bit sum (the first leaves at most
// 0x1fffe, the second at most 0xffff); unconditional, so no branch (a loop
// until no carry was left cost 5-10 instructions a call more, callgrind).
inline uint16_t CsumFold(uint32_t acc) {
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

// One's complement sum of 16-bit big-endian words, not folded.
// Inline: its callers pass constant lengths (20-byte header, addresses,
// ports), and the unrolled form is a handful of additions.
// It sums 32-bit words in host order into 64 bits (no carry is lost before 2^32
// words) and swaps the folded result to network order once: one's complement
// addition is byte-order independent up to that final swap (RFC 1071). Four
// times fewer additions than a loop over 16-bit words.
[[gnu::always_inline]] inline uint32_t CsumAdd(uint32_t acc, const void* data, size_t len) {
  const auto* b = static_cast<const uint8_t*>(data);
  uint64_t sum = 0;
  while (len >= 8) {
    uint32_t w[2];
    std::memcpy(w, b, 8);
    sum += uint64_t{w[0]} + w[1];
    b += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, b, 4);
    sum += w;
    b += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, b, 2);
    sum += w;
    b += 2;
    len -= 2;
  }
  if (len) {
    uint8_t last[2] = {b[0], 0};  // an odd byte is the high byte of a zero-padded word
    uint16_t w;
    std::memcpy(&w, last, 2);
    sum += w;
  }
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);  // now below 2^32
  uint16_t folded = CsumFold(static_cast<uint32_t>(sum));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  folded = __builtin_bswap16(folded);
#endif
  uint64_t total = uint64_t{acc} + folded;
  return static_cast<uint32_t>((total & 0xffff) + (total >> 16));
}

uint16_t Ipv4HeaderChecksum(const uint8_t* ip);  // 20-byte header, checksum field ignored

// Full UDP/ICMPv6 checksum over a pseudo-header and the L4 bytes (for tests,
// ICMPv6 replies, and packets whose checksum must be computed from scratch).
uint16_t L4Checksum(bool v4, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len, uint8_t proto);

// What a UDP checksum is without the fields that a rewrite changes (the
// addresses and the ports), so each copy adds only its own. Computed once
// per received packet; no payload byte is read (RFC 1624 arithmetic), except
// for a partial checksum, which is completed from the packet's bytes.
// For IPv4 it also holds the header checksum without the TTL and addresses.
// `from` is tables::SumEndpoints(p.key): the worker passes the sums the
// tables' writer stored with the sender's leg (LegEntry::sums), whose key is
// the packet's, instead of summing the frame's addresses again. Wrong sums
// give wrong checksums (the stage and datapath tests check every copy's).
//
// Partial checksums: a sender that leaves its UDP checksum to offload (a
// veth, a virtio NIC: containers and VMs beside the switch, CHECKSUM_PARTIAL
// in Linux) puts only the folded pseudo-header sum in the field; the frame
// reaches an AF_PACKET or AF_XDP port as it is. A field equal to that sum is
// taken as partial and the checksum computed from scratch, which is right
// either way (a full checksum that happens to equal it, 1 in 65536, comes
// out the same). `port_says_partial`: the port knows it is (a PMD's
// RTE_MBUF_F_RX_L4_CKSUM_NONE: data verified, checksum field not filled).
struct UdpCsumBase {
  bool present = false;    // an IPv4 UDP checksum of 0 means none, and stays 0
  bool completed = false;  // the field was partial and has been completed
  uint32_t partial = 0;
  uint32_t ip_partial = 0;  // IPv4 header checksum without TTL/protocol and addresses
  uint16_t ttl_proto = 0;   // the rewritten TTL/protocol word
};
// Big-endian 16-bit fields of a frame.
inline uint16_t Be16(const uint8_t* p) { return uint16_t(uint16_t(p[0]) << 8 | p[1]); }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v & 0xff);
}

// Inline, as is RewriteHeaders: both run for every packet (every copy) in
// FanOut, and as calls into another unit they cost a call, saved registers
// and a packed return value of a few dozen instructions a packet (callgrind).
inline UdpCsumBase UdpCsumWithoutEndpoints(const uint8_t* frame, const Parsed& p,
                                           tables::EndpointSums from,
                                           bool port_says_partial = false) {
  UdpCsumBase base;
  const uint8_t* ip = frame + p.l3;
  const uint8_t* udp = frame + p.l4;
  // Both addresses, summed by the tables' writer: taken out of the IPv4
  // header checksum and of the UDP checksum, and part of the pseudo-header.
  if (p.v4) {
    // The header checksum was verified by Parse, so it can be updated too:
    // take out the TTL/protocol word and both addresses (RFC 1624, eqn. 3);
    // taking a word out is adding its complement (~x is -x modulo 0xffff).
    uint32_t acc = uint16_t(~Be16(ip + 10));
    acc += uint16_t(~Be16(ip + 8));
    acc += uint16_t(~from.addrs);
    base.ip_partial = CsumFold(acc);
    base.ttl_proto = uint16_t(kTtl << 8 | ip[9]);
  }
  uint16_t old = Be16(udp + 6);
  if (p.v4 && old == 0) return base;
  base.present = true;
  uint16_t udp_len = static_cast<uint16_t>(p.frame_len - p.l4);
  uint16_t pseudo = CsumFold(uint32_t{from.addrs} + kProtoUdp + udp_len);
  if (old == pseudo || port_says_partial) [[unlikely]] {
    // From scratch: the pseudo-header and every UDP byte, less the field.
    uint32_t acc = CsumAdd(pseudo, udp, udp_len) + uint16_t(~old);
    old = static_cast<uint16_t>(~CsumFold(acc));
    if (old == 0) old = 0xffff;
    base.completed = true;
  }
  // Less the addresses and the ports: one word.
  base.partial = CsumFold(uint32_t{uint16_t(~old)} + uint16_t(~from.all));
  return base;
}

// The fields of one copy.
struct Rewrite {
  uint8_t dst_mac[6];
  uint8_t src_mac[6];
  const tables::LegKey* to;  // the receiving leg: remote = destination, local = source
  tables::EndpointSums to_sums;  // SumEndpoints(*to): the receiving leg's LegEntry::sums
};

// Rewrites the headers of a copy in place: MACs, IP addresses, TTL / hop
// limit, UDP ports, IPv4 header checksum and the UDP checksum.
//
// The checksums add the receiver's sums, not the frame's bytes after the
// stores above: a wide load over freshly stored bytes cannot be forwarded
// from the store buffer and stalls (it showed as 7 % of the worker's time in
// Ipv4HeaderChecksum); and the writer summed the key once for every packet.
inline void RewriteHeaders(uint8_t* frame, const Parsed& p, const UdpCsumBase& base,
                           const Rewrite& rw) {
  std::memcpy(frame, rw.dst_mac, 6);
  std::memcpy(frame + 6, rw.src_mac, 6);
  uint8_t* ip = frame + p.l3;
  uint8_t* udp = frame + p.l4;
  const tables::LegKey& to = *rw.to;
  if (p.v4) {
    std::memcpy(ip + 12, to.local.b + 12, 4);
    std::memcpy(ip + 16, to.remote.b + 12, 4);
    ip[8] = kTtl;
    uint32_t acc = base.ip_partial + base.ttl_proto + rw.to_sums.addrs;
    PutBe16(ip + 10, static_cast<uint16_t>(~CsumFold(acc)));
  } else {
    std::memcpy(ip + 8, to.local.b, 16);
    std::memcpy(ip + 24, to.remote.b, 16);
    ip[7] = kTtl;
  }
  PutBe16(udp, to.local_port);
  PutBe16(udp + 2, to.remote_port);
  if (!base.present) return;
  uint16_t c = static_cast<uint16_t>(~CsumFold(base.partial + rw.to_sums.all));
  PutBe16(udp + 6, c == 0 ? 0xffff : c);
}

}  // namespace tandem::sw
