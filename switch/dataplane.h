// What the switch's threads share: the mapped regions, the ports, the pools
// and the rings between the workers and the main thread. Built once at start,
// read-only afterwards (except through the regions' own contracts).
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/tables/tables.h"
#include "switch/config.h"
#include "switch/neigh.h"
#include "switch/packet.h"
#include "switch/profile.h"

namespace tandem::sw {

struct Port {
  uint16_t id = 0;
  PortRole role = PortRole::kAccess;
  uint8_t mac[6] = {};
  uint32_t state_index = 0;  // index in the state region's port array
};

// A request from a worker to the main thread: resolve this receiver's MAC.
struct ResolveRequest {
  IpAddr ip;
};

struct Dataplane {
  SwitchConfig cfg;
  tables::TablesView tables;
  tables::StateView state;
  NeighTable neigh;
  std::vector<Port> ports;  // ports[0] is the access port
  rte_mempool* pool = nullptr;       // packets and full copies
  rte_mempool* hdr_pool = nullptr;   // small header mbufs for zero-copy replicas
  rte_mempool* clone_pool = nullptr; // indirect mbufs referencing a payload
  // Workers -> main (MP/SC), served in this order (switch/handoff.h): the
  // peer's heartbeats by path (1 backbone, 0 access), ARP/ND/ICMP from known
  // neighbours, naming addresses the neighbour cache holds, from anyone.
  rte_ring* hb_ring[2] = {nullptr, nullptr};
  rte_ring* known_ring = nullptr;
  rte_ring* wanted_ring = nullptr;
  rte_ring* slow_ring = nullptr;
  rte_ring* resolve_ring = nullptr;  // workers -> main: ResolveRequest (MP/SC)
  // main -> worker 0: frames the main thread built (ARP/ND replies, requests,
  // announcements). Worker 0 sends them on its own TX queue of the access
  // port, so the main thread needs no queue of its own (af_packet ports have
  // as many TX queues as RX queues, and every RX queue must be polled).
  rte_ring* inject_ring = nullptr;
  std::atomic<bool> stop{false};
  // Set at start when the tables say active and the node is one of a pair:
  // a switch that restarts (or a node that comes back) must not answer for
  // the VIPs until it knows its peer has not taken over meanwhile. Cleared
  // by the main thread (SlowPath) once the peer is heard as not active in a
  // higher epoch, or not heard at all for a hold time.
  std::atomic<bool> hold_active{false};
  // Set by the main thread (PairLink) while the control plane's hold on the
  // pair's key in etcd has ended and the peer is heard on neither path.
  std::atomic<bool> witness_expired{false};

  // What the workers and the slow path act on: the tables' role, unless held.
  bool Active() const {
    return tables.role() == tables::Role::kActive &&
           !hold_active.load(std::memory_order_relaxed) &&
           !witness_expired.load(std::memory_order_relaxed);
  }
  uint64_t tsc_hz = 0;
  // Set by tandem-switch --profile: the workers count cycles per stage
  // (switch/profile.h) into profiles[worker], read once they have stopped.
  bool profile = false;
  std::vector<StageProfile> profiles;
};

// The next hops of the access network's legs (the one implementation, used
// by the workers and the slow path alike).
inline NextHops NextHopsOf(const SwitchConfig& c) {
  return NextHops(c.prefixes, c.gateway4, c.gateway6);
}

// The per-lcore worker loop; returns when dp.stop is set.
int RunWorker(Dataplane& dp, uint32_t worker_index, uint16_t queue);

// The same worker driven from outside, one poll at a time (the datapath fuzz
// target): RunWorker's loop is a Poll() per iteration plus its idle back-off
// and heartbeat. Not thread-safe, like the worker itself.
class WorkerPoller {
 public:
  WorkerPoller(Dataplane& dp, uint32_t worker_index, uint16_t queue);
  ~WorkerPoller();  // sends what is buffered and leaves QSBR
  // Claims the worker's QSBR reader slot; call once before Poll.
  absl::Status Start();
  // An RX burst from every port, parsed, looked up, fanned out and sent, and
  // for worker 0 the frames the main thread queued. Returns the packets it handled.
  uint32_t Poll();
  // The cycles per stage so far (counted when dp.profile was set at construction).
  const StageProfile& profile() const;

 private:
  struct Impl;  // the worker (switch/worker.cc)
  std::unique_ptr<Impl> impl_;
  bool started_ = false;
};

using tandem::MonotonicNs;
using tandem::UnixNs;

}  // namespace tandem::sw
