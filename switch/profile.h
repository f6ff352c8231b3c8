// Where a worker's cycles go, stage by stage (tandem-switch --profile, issue
// 15). A worker counts only while profiling is on: it picks the profiled or
// the plain instance of its burst code once per burst, so the plain one has
// no clock reads at all. Plain data, no DPDK: formatted and unit-tested apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::sw {

// The stages of the packet path (switch/worker.h), in the order a packet meets them.
enum class Stage : uint32_t {
  kRx,         // rte_eth_rx_burst of a burst that brought packets
  kParse,      // Parse, the backbone's sorting, the hand-off to the main thread
  kLookup,     // key hash, bucket and chain walk, the flood's drop
  kAdmit,      // the sender's MAC, flags, usage and policer (Worker::AdmitStage)
  kReceivers,  // GatherReceivers and the meeting's cap
  kReplicate,  // checksum base, copies (bulk, full or zero-copy), usage out
  kRewrite,    // RewriteHeaders of each copy
  kTx,         // rte_eth_tx_burst and what the queue refused
  kOther,      // the rest of a burst: freeing the drops, counters
  kCount
};
inline constexpr uint32_t kStageCount = static_cast<uint32_t>(Stage::kCount);
const char* StageName(Stage s);

struct StageProfile {
  uint64_t cycles[kStageCount] = {};
  uint64_t packets = 0;  // received in bursts that were profiled
  uint64_t copies = 0;   // sent, the copies of the fan-out included
  uint64_t bursts = 0;
  // The worker thread's CPU time and the TSC cycles that passed, from its
  // first profiled burst to its end: the cycles above are wall-clock laps,
  // and on a shared machine the worker runs only part of that time.
  uint64_t cpu_ns = 0;
  uint64_t wall_cycles = 0;

  StageProfile& operator+=(const StageProfile& o);
  uint64_t Total() const {
    uint64_t t = 0;
    for (uint64_t c : cycles) t += c;
    return t;
  }
};

// The table tandem-switch prints at exit: cycles per received packet per
// stage (they add up to the whole per-packet cost), their share, the same
// per copy sent, and the cycles per packet scaled by the share of the wall
// time the workers ran (what the CPU spent, comparable to the benchmark's
// cyc/pkt when other processes share the cores).
std::string FormatProfile(const std::vector<StageProfile>& workers, uint64_t tsc_hz);

}  // namespace tandem::sw
