// `tandemctl top`: a live view of a node, refreshed in the terminal like
// top(1) or VPP's `show runtime`: ports, workers and live meetings with
// packets per second in and out, drops by reason, and the role and lag of
// the pair. Rates are the difference of two GetStatus/ListMeetings samples
// over the time between them. `q` or Ctrl-C quits; without a terminal (or
// with --iterations N) it prints N screens one after the other.
#pragma once

#include "control/client/pair_client.h"

namespace tandem::control {

struct TopOptions {
  double interval_s = 1.0;
  int iterations = 0;    // 0: until q or Ctrl-C
  int meetings = 15;     // rows of meetings shown, busiest first
};

// The exit code: 0, or 3 when the node cannot be reached at the first sample.
int RunTop(client::PairClient& client, const TopOptions& options);

}  // namespace tandem::control
