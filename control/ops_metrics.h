// The metrics an operator graphs beside the node's own (docs/control.md,
// "Metrics"): the build, this daemon's process and its switch's, port bytes
// and buffer shortages, the workers' busy time, and the switch's RX-to-TX
// latency as a Prometheus histogram. Read at scrape time from /proc and the
// switch's state region; called from the /metrics handler's thread only.
#pragma once

#include <string>

#include "common/tables/tables.h"
#include "control/metrics.h"

namespace tandem::control {

class OpsMetrics {
 public:
  OpsMetrics(std::string shm_dir, std::string node);
  std::string Render();

 private:
  bool AttachState();
  void AddSwitch(MetricsText& m);

  const std::string shm_dir_, node_;
  tables::StateFollower state_region_;
};

// The upper bound, in TSC cycles, of bucket `b` of WorkerCounters::latency_hist
// (quarter octaves: bucket lz*4+q holds [2^lz (4+q)/4, 2^lz (5+q)/4)).
double LatencyBucketUpperCycles(uint32_t b);

}  // namespace tandem::control
