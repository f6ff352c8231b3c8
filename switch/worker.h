// The poll-mode worker: RX burst -> parse -> lookup -> admit -> receivers ->
// fan-out (copy, rewrite) -> TX burst. Run to completion, no locks, no system
// calls per packet. Each worker owns RX queue `queue` and TX queue `queue` of
// every port, its own counters, and its own policer state.
//
// The stages work on a whole burst, each over the packets the previous one
// kept (Burst::fwd), so that the cache misses of one packet overlap those of
// the others: each stage starts the loads the next needs. Every packet ends
// either sent (as one or more copies), handed to the main thread, or dropped
// and counted by one reason in WorkerCounters::drops; drops of a known leg
// are counted in its usage block too.
//
//   stage       reads                                   decides (drop reason)
//   parse       the frame (switch/packet.h), the port   kMalformed, kNotForUs,
//               role, the node's role                   kUnsupported, kBadChecksum,
//                                                        kTtlExceeded, kNotActive;
//                                                        slow path (ARP, ND, ICMP,
//                                                        heartbeats)
//   lookup      the leg table (bucket, chain), the VIPs  kUnknownLeg (to a VIP),
//                                                        kNotForUs (to another address)
//   admit       the sender's leg entry (flags, limits),  kNotForUs (source MAC is not
//   (Police)    its usage block (next-hop memo,          the leg's neighbour),
//               policer), the frame's source MAC         kNotAllowed (no send, muted),
//                                                        kPoliced (over pps or kbit/s)
//   receivers   the meeting's channel list, each leg's   per receiver: skipped (no recv,
//   (Gather-    flags, family and usage block, the       other family), kNoNeighbour;
//   Receivers)  neighbour cache; the meeting's cap       kMeetingCapped
//   fan-out     the frame, the sender's and the          kNoBuffer per copy, kTxFull
//   (FanOut)    receivers' checksum sums, keys and MACs  per copy the queue refused
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "switch/dataplane.h"
#include "switch/handoff.h"
#include "switch/policer.h"
#include "switch/profile.h"
#include "switch/vips.h"

namespace tandem::sw {

inline constexpr uint16_t kMaxBurst = 256;
// Sent once this many copies wait. A fan-out burst makes hundreds of copies;
// holding them all until the end of the burst took more mbufs than the
// mempool's per-lcore cache holds (256), so allocations came cold from the
// ring and rte_pktmbuf_reset and the payload copy missed the cache (perf:
// 16 % of the 1:16 fan-out in rte_pktmbuf_reset).
inline constexpr uint16_t kTxBufSize = 64;

// The usage counters are written for every packet: ask for the lines in a
// writable state so the store does not miss a second time.
inline void PrefetchForWrite(const void* p) { __builtin_prefetch(p, 1, 3); }

struct TxBuffer {
  uint16_t port = 0;
  uint16_t n = 0;
  rte_mbuf* pkts[kTxBufSize];
};

// One receiver of one packet, gathered before any copy is made.
struct Receiver {
  tables::LegCounters* usage;  // this worker's block of the leg
  uint32_t slot;
  uint8_t mac[6];
};

// What the stages hand on: the packets still on the path, as indexes into
// the burst, and what each stage learnt about them.
struct Burst {
  // A member, not a local: a local array of Parsed would run its default
  // initialisers for all kMaxBurst entries on every burst.
  Parsed parsed[kMaxBurst];  // by index in the burst
  uint64_t hashes[kMaxBurst];  // by index in the burst
  uint16_t fwd[kMaxBurst];     // the packets kept, in order
  uint32_t slots[kMaxBurst];   // after lookup (and each later stage): fwd[k]'s sender slot
  uint32_t rcv_at[kMaxBurst + 1];  // after receivers: fwd[k]'s in receivers_
};

class Worker {
 public:
  Worker(Dataplane& dp, uint32_t index, uint16_t queue);

  int Run();
  // Run's first step: claims the worker's QSBR reader slot.
  absl::Status Register();
  // One iteration of Run's loop without its idle back-off: an RX burst from
  // every port, processed and sent, and for worker 0 the frames the main
  // thread queued; then a quiescent point. Returns the packets it handled.
  uint32_t Poll();
  // Run's last step: sends what is buffered, leaves QSBR, hands over the profile.
  void Finish();
  const StageProfile& profile() const { return profile_; }

 private:
  template <bool kProfile>
  void ProcessBurst(uint32_t port_index, rte_mbuf** pkts, uint16_t n);
  // ---- the stages (worker.cc: parse, lookup; stages.cc: the rest) ----
  // Each returns how many packets it kept in b_.fwd[0...).
  uint16_t ParseStage(uint32_t port_index, rte_mbuf** pkts, uint16_t n);
  uint16_t LookupStage(rte_mbuf** pkts, uint16_t n);
  uint16_t AdmitStage(rte_mbuf** pkts, uint16_t n);
  uint16_t ReceiversStage(rte_mbuf** pkts, uint16_t n);
  template <bool kProfile>
  void FanOutStage(rte_mbuf** pkts, uint16_t n);

  bool Admit(rte_mbuf* m, const Parsed& p, uint32_t slot);
  bool Police(tables::LegCounters& u, const tables::LegEntry& e, uint32_t bytes);
  uint32_t GatherReceivers(const tables::LegEntry& sender, uint32_t sender_slot, uint32_t at);
  // A capped meeting (`limit`: its copies_limit, not 0) has room for `copies`.
  bool MeetingAllows(uint32_t meeting_slot, uint32_t limit, uint32_t copies);
  template <bool kProfile>
  void FanOut(rte_mbuf* m, const Parsed& p, tables::EndpointSums from, const Receiver* rcv,
              uint32_t n);
  rte_mbuf* Replica(rte_mbuf* m, const Parsed& p);
  template <bool kProfile>
  void Send(uint32_t port_index, rte_mbuf* m, uint32_t bytes);
  template <bool kProfile>
  void Flush(uint32_t port_index);
  template <bool kProfile>
  void FlushAll() {
    for (size_t p = 0; p < dp_.ports.size(); ++p) Flush<kProfile>(p);
  }
  tables::LegCounters& Usage(uint32_t slot, uint32_t gen);
  void DropPacket(rte_mbuf* m, tables::Drop d) {
    wc_.drops[uint32_t(d)]++;
    rte_pktmbuf_free(m);
  }
  // Within a burst drops are freed together at its end (rte_pktmbuf_free_bulk
  // returns them to the pool cache in one call).
  void DropLater(rte_mbuf* m, tables::Drop d) {
    wc_.drops[uint32_t(d)]++;
    dropped_[ndropped_++] = m;
  }
  // To the main thread (switch/handoff.h), or dropped by reason.
  void HandOff(rte_mbuf* m, SlowKind kind, uint16_t l3, uint16_t ethertype) {
    tables::Drop d = handoff_.Offer(m, kind, l3, ethertype, now_tsc_);
    if (d == tables::Drop::kCount) {
      wc_.slow_path++;
    } else {
      DropLater(m, d);
    }
  }
  uint32_t SendInjected();
  void RecordLatency(uint64_t cycles, uint32_t packets);
  void UpdateClock(uint64_t tsc);

  Dataplane& dp_;
  uint32_t index_;
  uint16_t queue_;
  uint16_t burst_;
  bool profiling_;
  tables::WorkerCounters& wc_;
  tables::WorkerHealth& health_;
  tables::LegCounters* usage_;  // this worker's usage blocks, by leg slot
  tables::ReaderHandle reader_;
  ParseConfig pcfg_;
  TxBuffer tx_[tables::kMaxPorts];
  LegHops hops_;
  std::vector<Receiver> receivers_;  // of the whole burst, per packet in order
  Burst b_;
  std::vector<MeetingBudget> budgets_;  // by meeting slot, made at first use
  VipSet vips_;
  rte_mbuf* dropped_[kMaxBurst];
  uint16_t ndropped_ = 0;
  uint64_t now_unix_ns_ = 0;
  uint64_t now_tsc_ = 0;
  // Wall-clock time from the TSC: a clock_gettime per burst cost more than
  // the rest of a small burst's bookkeeping. Re-anchored every second.
  uint64_t clock_unix_ns_ = 0, clock_tsc_ = 0;
  uint64_t tx_bytes_pending_[tables::kMaxPorts] = {};  // bytes of packets in tx_
  unsigned __int128 ns_per_tsc_q32_ = 0;  // 2^32 * 1e9 / tsc_hz
  double sec_per_tsc_ = 0;  // 1 / tsc_hz: the policers multiply, never divide
  StageProfile profile_;
  uint64_t nested_cycles_ = 0;  // of rewrite and TX inside the fan-out (profiling)
  uint64_t profile_cpu_ns_ = 0, profile_tsc_ = 0;  // at the first profiled burst
  static constexpr uint32_t kRewriteSample = 8;  // a power of two
  uint32_t rewrites_ = 0;  // copies rewritten while profiling
  // Two back-to-back clock reads (profiling): taken off each sampled rewrite,
  // whose time is multiplied by kRewriteSample.
  uint64_t rdtsc_cost_ = 0;
  // Last: its rate limiters' tables are large and touched only by the slow
  // path's frames.
  SlowHandoff handoff_{dp_};
};

}  // namespace tandem::sw
