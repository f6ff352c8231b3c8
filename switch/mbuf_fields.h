// The mbuf fields the switch borrows for its own use. DPDK leaves them to the
// application in the places below; every reader and writer goes through these
// functions, so a new use of a field shows up here first.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

namespace tandem::sw {

// hash.usr of a frame queued for TX: the receiving leg's slot, so that a copy
// the TX queue refuses is counted against the leg that missed it
// (Worker::Flush). tables::kNil for frames that belong to no leg (the main
// thread's). PMDs do not read hash.usr on TX.
inline void SetTxLeg(rte_mbuf* m, uint32_t slot) { m->hash.usr = slot; }
inline uint32_t TxLeg(const rte_mbuf* m) { return m->hash.usr; }

// port of a frame the main thread queues on Dataplane::inject_ring: the DPDK
// port id worker 0 sends it on (port is an RX field; on TX no PMD reads it).
inline void SetInjectPort(rte_mbuf* m, uint16_t port_id) { m->port = port_id; }
inline uint16_t InjectPort(const rte_mbuf* m) { return m->port; }

}  // namespace tandem::sw
