// tandemctl's readable output: aligned tables, "key: value" lines, times, and
// the lines shared by more than one area (a usage record's counters).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "control.grpc.pb.h"

namespace tandem::control {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// A plain text table with aligned columns.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "key:  value" lines, the values aligned.
void PrintKeyValues(const KeyValues& kv);

std::string Lower(const std::string& s);
// UTC, to the second; "-" for 0.
std::string FormatTime(uint64_t unix_ns);
// A limit of which 0 means none.
std::string Limit(uint32_t v);
// The counters of a site's, meeting's, participant's or leg's usage.
KeyValues UsageLines(const v1::Usage& u);

}  // namespace tandem::control
