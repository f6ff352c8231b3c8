// The main thread's share of the packet path: ARP and IPv6 neighbour
// discovery for the VIPs (answered only while the node is active), ICMP and
// ICMPv6 echo for the VIPs, resolution and ageing of receivers' and gateways'
// MAC addresses, and the announcements (gratuitous ARP, unsolicited NA) when
// the node becomes active or its VIPs change.
//
// Anti-poisoning: a neighbour entry is created only from an ARP request or
// neighbour solicitation addressed to one of our VIPs by a host on an on-link
// prefix, or when we asked for it; replies we did not ask for only refresh
// entries that exist.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "switch/dataplane.h"
#include "switch/heartbeat.h"

namespace tandem::sw {

class SlowPath {
 public:
  explicit SlowPath(Dataplane& dp);

  // One round of the main thread's share of the packet path: the frames the
  // workers handed over (Handle), their resolve requests (Resolve), Tick and
  // Flush. Returns how many frames and requests it took.
  unsigned Poll(uint64_t now_ns);

  // Consumes `m` (a frame a worker handed over).
  void Handle(rte_mbuf* m);
  // Sends a request for `ip` unless one went out within neigh_probe_ms.
  void Resolve(const IpAddr& ip, uint64_t now_ns);
  // Ageing, re-confirmation, role and VIP changes; call every few ms.
  void Tick(uint64_t now_ns);
  void Flush();

  uint64_t announcements() const { return announcements_; }

 private:
  void HandleHeartbeat(rte_mbuf* m, uint32_t path, uint16_t l3);
  void SendHeartbeats(uint64_t now_ns);
  // True when the flags changed since the last look.
  bool UpdateLocalHealth(uint64_t now_ns);
  void WarmNeighbours(uint64_t now_ns);
  void HandleArp(rte_mbuf* m, const Parsed& p);
  void HandleIcmp4(rte_mbuf* m, const Parsed& p);
  void HandleIcmp6(rte_mbuf* m, const Parsed& p);
  bool IsVip(const IpAddr& a) const;
  bool OnLink(const IpAddr& a) const;
  // `answer`: an ARP reply or a solicited NA (only those may move a reachable
  // entry to another MAC, and only while our request is pending).
  void Learn(const IpAddr& ip, const uint8_t mac[6], bool create, bool answer, uint64_t now_ns);
  // Builds a frame with our MAC as source and the given L2 destination.
  rte_mbuf* NewFrame(const uint8_t dst_mac[6], uint16_t ethertype, uint16_t l3_len,
                     uint8_t** l3);
  void SendArp(uint16_t op, const uint8_t dst_mac[6], const IpAddr& sender,
               const uint8_t target_mac[6], const IpAddr& target);
  void SendNs(const IpAddr& target, bool from_vip);
  void SendNa(const IpAddr& target, const IpAddr& dst_ip, const uint8_t dst_mac[6],
              bool solicited);
  void Announce();
  void Defend(uint64_t now_ns);
  void Transmit(rte_mbuf* m);

  Dataplane& dp_;
  std::vector<IpAddr> vips_;
  uint32_t vip_seq_ = ~0u;
  bool was_active_ = false;
  uint64_t epoch_ = 0;
  uint64_t last_age_ns_ = 0;
  int announce_left_ = 0;
  uint64_t next_announce_ns_ = 0;
  uint64_t announcements_ = 0;
  std::vector<rte_mbuf*> out_;
  uint64_t boot_id_ = 0;
  uint64_t hb_counter_ = 0;
  uint64_t next_hb_ns_ = 0;
  uint64_t next_health_ns_ = 0;
  uint32_t warm_cursor_ = 0;  // next leg slot WarmNeighbours looks at
  uint64_t next_warm_ns_ = 0;
  uint64_t hold_until_ns_ = 0;
  uint64_t last_defence_ns_ = 0;
  bool peer_took_over_ = false;  // heard the peer active in our epoch or a higher one
  ReplayGuard replay_[2];
  std::string access_iface_;  // kernel interface behind the access port, if any
};

}  // namespace tandem::sw
