#include "switch/profile.h"

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
  Append(out, "profile: %-10s %12s %8s %12s\n", "stage", "cycles/pkt", "share", "cycles/copy");
  double copies = double(all.copies ? all.copies : 1);
  for (uint32_t i = 0; i < kStageCount; ++i) {
    double c = double(all.cycles[i]);
    Append(out, "profile: %-10s %12.1f %7.1f%% %12.1f\n", StageName(Stage(i)),
           c / double(all.packets), total ? 100.0 * c / double(total) : 0.0, c / copies);
  }
  Append(out, "profile: %-10s %12.1f %7.1f%% %12.1f\n", "total", double(total) / double(all.packets),
         100.0, double(total) / copies);
  return out;
}

}  // namespace tandem::sw
