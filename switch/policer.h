// The token buckets of the per-packet path: a leg's packet and bit rate
// limits, and a meeting's cap on the copies its switch sends. Plain data and
// the worker's clock (TSC), no DPDK, so they are unit-tested and measured
// apart (tests/unit/switch/policer_test.cc, tests/bench/packet_bench.cc).
//
// Called by the worker that owns the state, per packet; no locks, no atomics.
// A bucket holds kBucketSeconds of traffic at its rate (at least a few
// packets), while the average holds: a video key frame or a slide change sent
// unpaced fits in it, and so do packets that arrive bunched after a jitter
// spike or a stall of the worker (a second of 50 pps audio is a quarter of
// the audio default's bucket). A flood gets the bucket once, then the rate.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/tables/layout.h"

namespace tandem::sw {

inline constexpr double kBucketSeconds = 1.0;

// The leg's policer lives in its usage block (LegCounters::policer_*), which
// the worker writes for every packet anyway; policer_tsc == 0 means a fresh
// leg, whose buckets start full. Limits of 0 mean unlimited. True when the
// packet of `bytes` may pass (and is then taken from the buckets).
inline bool PoliceLeg(tables::LegCounters& u, uint32_t pps, uint32_t kbps, uint32_t bytes,
                      uint64_t now_tsc, double sec_per_tsc) {
  if (pps == 0 && kbps == 0) return true;
  double burst_p = std::max(8.0, pps * kBucketSeconds);
  double burst_b = std::max(8.0 * 1500, kbps * 125.0 * kBucketSeconds);
  if (u.policer_tsc == 0) {
    u.policer_packets = burst_p;
    u.policer_bytes = burst_b;
  } else {
    double dt = double(now_tsc - u.policer_tsc) * sec_per_tsc;
    if (pps) u.policer_packets = std::min(burst_p, u.policer_packets + dt * pps);
    if (kbps) u.policer_bytes = std::min(burst_b, u.policer_bytes + dt * kbps * 125.0);
  }
  u.policer_tsc = now_tsc;
  if ((pps && u.policer_packets < 1) || (kbps && u.policer_bytes < bytes)) return false;
  if (pps) u.policer_packets -= 1;
  if (kbps) u.policer_bytes -= bytes;
  return true;
}

// A meeting's output budget on one worker: the copies it may still send.
struct MeetingBudget {
  uint32_t gen = 0;  // the meeting's MeetingEntry::gen this budget belongs to
  uint64_t last_tsc = 0;
  double copies = 0;
};

// Takes `copies` from the budget of a meeting capped at `copies_per_s` (0 =
// unlimited) when it is still positive. The budget may go below zero: a
// packet for more receivers than the bucket holds still gets through now and
// then, and the average holds. A budget of another meeting generation (a
// meeting slot reused) starts full.
inline bool SpendMeetingBudget(MeetingBudget& b, uint32_t gen, double copies_per_s, uint32_t copies,
                               uint64_t now_tsc, double sec_per_tsc) {
  if (copies_per_s <= 0 || copies == 0) return true;
  double depth = std::max(1.0, copies_per_s * kBucketSeconds);
  if (b.gen != gen || b.last_tsc == 0) {
    b = MeetingBudget{gen, now_tsc, depth};
  } else {
    double dt = double(now_tsc - b.last_tsc) * sec_per_tsc;
    b.copies = std::min(depth, b.copies + dt * copies_per_s);
    b.last_tsc = now_tsc;
  }
  if (b.copies <= 0) return false;
  b.copies -= copies;
  return true;
}

}  // namespace tandem::sw
