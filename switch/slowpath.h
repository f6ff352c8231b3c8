// The main thread's share of the packet path: ARP and IPv6 neighbour
// discovery for the VIPs (answered only while the node is active), ICMP and
// ICMPv6 echo for the VIPs, resolution and ageing of receivers' and gateways'
// MAC addresses (by the rules of switch/neigh_policy.h), the announcements
// (gratuitous ARP, unsolicited NA) when the node becomes active or its VIPs
// change, and the pair's heartbeats (switch/pair_link.h).
//
// What the workers hand over arrives on the queues of switch/handoff.h and is
// served in their order: heartbeats first, then ARP/ND from known
// neighbours, then the rest.
//
// A VIP claimed by another host (a gratuitous ARP, an unsolicited NA) is
// defended by announcing it again (at most every 10 ms), unless the claim
// comes from the peer's MAC: the peer's announcements are never fought; the
// epoch decides (PairLink goes quiet when the peer is active over us).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "switch/dataplane.h"
#include "switch/neigh_policy.h"
#include "switch/pair_link.h"
#include "switch/vips.h"

namespace tandem::sw {

class SlowPath {
 public:
  // Adopts the neighbour table as a (re)started switch finds it
  // (NeighPolicy::Adopt): construct it before the workers start.
  explicit SlowPath(Dataplane& dp);

  // One round of the main thread's share of the packet path: the frames the
  // workers handed over, their resolve requests, then Tick and Flush.
  // Returns how many frames and requests it took.
  unsigned Poll(uint64_t now_ns);

  uint64_t announcements() const { return announcements_; }

 private:
  enum class Source { kBackboneHeartbeat, kAccessHeartbeat, kAccess };
  // Consumes `m` (a frame a worker handed over).
  void Handle(rte_mbuf* m, Source from);
  // Ageing, probes, role and VIP changes; called every round.
  void Tick(uint64_t now_ns);
  void Flush();
  void WarmNeighbours(uint64_t now_ns);
  void HandleArp(rte_mbuf* m, const Parsed& p);
  void HandleIcmp4(rte_mbuf* m, const Parsed& p);
  void HandleIcmp6(rte_mbuf* m, const Parsed& p);
  // What a frame said about `ip` (an answer to a probe, or a claim), for
  // NeighPolicy; a refused claim is counted (neighbour_conflict).
  void Heard(const IpAddr& ip, const uint8_t mac[6], bool answer);
  void SendArp(uint16_t op, const uint8_t dst_mac[6], const IpAddr& sender,
               const uint8_t target_mac[6], const IpAddr& target);
  void SendNs(const IpAddr& target, bool from_vip);
  void SendNa(const IpAddr& target, const IpAddr& dst_ip, const uint8_t dst_mac[6],
              bool solicited);
  void SendProbe(const IpAddr& ip);
  void Announce();
  // Another host claimed a VIP from `mac`.
  void Defend(const uint8_t mac[6]);
  void Transmit(rte_mbuf* m);
  tables::WorkerCounters& Counters();

  Dataplane& dp_;
  NeighPolicy neigh_;
  PairLink pair_;
  NextHops next_hops_;
  uint64_t now_ns_ = 0;  // of this round
  VipSet vips_;
  bool was_active_ = false;
  uint64_t epoch_ = 0;
  int announce_left_ = 0;
  uint64_t next_announce_ns_ = 0;
  uint64_t announcements_ = 0;
  std::vector<rte_mbuf*> out_;
  uint32_t warm_cursor_ = 0;  // next leg slot WarmNeighbours looks at
  uint64_t next_warm_ns_ = 0;
  uint64_t last_defence_ns_ = 0;
};

}  // namespace tandem::sw
