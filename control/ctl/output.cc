#include "control/ctl/output.h"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::control {

void Table::Print() const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    printf("%s\n", line.c_str());
  }
}

void PrintKeyValues(const KeyValues& kv) {
  size_t w = 0;
  for (const auto& [k, v] : kv) w = std::max(w, k.size());
  for (const auto& [k, v] : kv)
    printf("%-*s  %s\n", static_cast<int>(w + 1), (k + ":").c_str(), v.c_str());
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

std::string FormatTime(uint64_t unix_ns) {
  if (unix_ns == 0) return "-";
  time_t t = static_cast<time_t>(unix_ns / 1000000000ull);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Limit(uint32_t v) { return v == 0 ? "unlimited" : absl::StrCat(v); }

KeyValues UsageLines(const v1::Usage& u) {
  return {{"packets in", absl::StrCat(u.packets_in())},
          {"bytes in", absl::StrCat(u.bytes_in())},
          {"packets out", absl::StrCat(u.packets_out())},
          {"bytes out", absl::StrCat(u.bytes_out())},
          {"dropped (not allowed)", absl::StrCat(u.drop_not_allowed())},
          {"dropped (policed)", absl::StrCat(u.drop_policed())},
          {"dropped (other)", absl::StrCat(u.drop_other())},
          {"first packet", FormatTime(u.first_packet_unix_ns())},
          {"last packet", FormatTime(u.last_packet_unix_ns())},
          {"participant minutes", absl::StrFormat("%.2f", u.participant_minutes())}};
}

}  // namespace tandem::control
