#include "switch/profile.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace tandem::sw {

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kRx: return "rx";
    case Stage::kParse: return "parse";
    case Stage::kLookup: return "lookup";
    case Stage::kAdmit: return "admit";
    case Stage::kReceivers: return "receivers";
    case Stage::kReplicate: return "replicate";
    case Stage::kRewrite: return "rewrite";
    case Stage::kTx: return "tx";
    case Stage::kOther: return "other";
    case Stage::kCount: break;
  }
  return "?";
}

StageProfile& StageProfile::operator+=(const StageProfile& o) {
  for (uint32_t i = 0; i < kStageCount; ++i) cycles[i] += o.cycles[i];
  packets += o.packets;
  copies += o.copies;
  bursts += o.bursts;
  cpu_ns += o.cpu_ns;
  wall_cycles += o.wall_cycles;
  return *this;
}

namespace {

void Append(std::string& out, const char* fmt, auto... args) {
  char line[160];
  std::snprintf(line, sizeof line, fmt, args...);
  out += line;
}

}  // namespace

std::string FormatProfile(const std::vector<StageProfile>& workers, uint64_t tsc_hz) {
  StageProfile all;
  for (const StageProfile& w : workers) all += w;
  uint64_t total = 0;
  for (uint64_t c : all.cycles) total += c;
  std::string out;
  Append(out,
         "profile: %zu worker(s), %" PRIu64 " packets in, %" PRIu64 " copies out, %" PRIu64
         " bursts, TSC %.3f GHz\n",
         workers.size(), all.packets, all.copies, all.bursts, double(tsc_hz) / 1e9);
  if (all.packets == 0) {
    out += "profile: no packets\n";
    return out;
  }
  // The share of the profiled wall time the workers ran (1 when unknown).
  double ran = 1.0;
  if (all.wall_cycles && tsc_hz) {
    ran = std::min(1.0, double(all.cpu_ns) * 1e-9 * double(tsc_hz) / double(all.wall_cycles));
  }
  Append(out, "profile: the workers ran %.0f%% of the wall time they were profiled\n", 100 * ran);
  Append(out, "profile: %-10s %12s %8s %12s %12s\n", "stage", "cycles/pkt", "share", "cycles/copy",
         "cpu cyc/pkt");
  auto row = [&](const char* name, double c) {
    char per_copy[32] = "-";
    if (all.copies) std::snprintf(per_copy, sizeof per_copy, "%.1f", c / double(all.copies));
    double per_pkt = c / double(all.packets);
    Append(out, "profile: %-10s %12.1f %7.1f%% %12s %12.1f\n", name, per_pkt,
           total ? 100.0 * c / double(total) : 0.0, per_copy, per_pkt * ran);
  };
  for (uint32_t i = 0; i < kStageCount; ++i) row(StageName(Stage(i)), double(all.cycles[i]));
  row("total", double(total));
  return out;
}

}  // namespace tandem::sw
