// Time stamps in nanoseconds, as every part records them: CLOCK_REALTIME for
// what people and the peer node read (usage, logs, heartbeats' skew check),
// CLOCK_MONOTONIC for intervals and ages (heartbeats, neighbour ageing).
#pragma once

#include <time.h>

#include <cstdint>

namespace tandem {

inline uint64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
inline uint64_t UnixNs() { return ClockNs(CLOCK_REALTIME); }
inline uint64_t MonotonicNs() { return ClockNs(CLOCK_MONOTONIC); }

}  // namespace tandem
