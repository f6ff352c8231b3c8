// The switch's side of the pair (docs/pair.md): it sends this node's
// heartbeats (switch/heartbeat.h) on the access and the backbone port,
// judges the peer's, records what it heard per path in the state region for
// the control plane, and holds the node quiet (Dataplane::hold_active) while
// the peer is active over it.
//
// A heartbeat counts only if it comes from the configured peer
// (pair.peer_node_id), says the path it came in on, is new, authentic and
// fresh. Others holding the key (another pair's node, our own frame coming
// back) are counted apart (frames_other) and change nothing.
//
// Quiet: when the peer is heard active in a higher epoch (or in ours with a
// lower node id: mirror/role.h rules 1 and 2), this node stops answering for
// the VIPs and forwarding at once, before its control plane demotes it, and
// never defends a VIP against the peer (SlowPath). It speaks again when the
// peer says it is not active over it, or is not heard so for the hold time,
// or when its control plane makes it standby.
//
// The witness (docs/fleet.md): when the control plane's hold on the pair's
// key in etcd has ended (TablesHeader::active_until_ns) and the peer is heard
// on neither path, the node is quiet too, until the hold is renewed or the
// peer heard: a control daemon killed in a partition renews nothing, and
// the standby takes over once it holds the key.
//
// Threads: the switch's main thread only.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "switch/dataplane.h"
#include "switch/heartbeat.h"

namespace tandem::sw {

class PairLink {
 public:
  explicit PairLink(Dataplane& dp);

  // A heartbeat frame from the port of `path` (0 access, 1 backbone), the
  // body at `l3`. Consumes `m`.
  void Receive(rte_mbuf* m, uint32_t path, uint16_t l3, uint64_t now_ns);
  // Sends heartbeats when due (into `out`), and ends a hold that is over.
  void Tick(uint64_t now_ns, std::vector<rte_mbuf*>* out);
  // The peer's MAC on the access network (the source of its last accepted
  // heartbeat there, kept in the state region across restarts).
  bool IsPeerAccessMac(const uint8_t mac[6]) const;

 private:
  void SendHeartbeats(uint64_t now_ns, std::vector<rte_mbuf*>* out);
  bool UpdateLocalHealth(uint64_t now_ns);  // true when the flags changed
  void Accepted(const HeartbeatMsg& msg, uint32_t path, const uint8_t* src_mac, uint64_t now_ns);
  uint64_t HoldNs() const;
  void FollowWitness(uint64_t now_ns);
  void PublishQuiet();

  Dataplane& dp_;
  uint64_t boot_id_ = 0;
  uint64_t hb_counter_ = 0;
  uint64_t next_hb_ns_ = 0;
  uint64_t next_health_ns_ = 0;
  uint64_t hold_since_ns_ = 0;        // when the current hold began
  uint64_t peer_over_us_ns_ = 0;      // last heard active over us; 0 = not since the hold began
  SentLog sent_;
  ReplayGuard replay_[2];
  std::string access_iface_;  // kernel interface behind the access port, if any
};

// A frame with the access port's MAC as source, `dst_mac` as destination,
// our VLAN tag if any, padded to the Ethernet minimum; *l3 points after the
// L2 header. nullptr when no mbuf is left.
rte_mbuf* NewFrame(const Dataplane& dp, const uint8_t dst_mac[6], uint16_t ethertype,
                   uint16_t l3_len, uint8_t** l3);

}  // namespace tandem::sw
