// Prometheus text exposition of values read at scrape time (docs/control.md,
// "Metrics"). Each part of the daemon adds its families to a MetricsText and
// prometheus-cpp's TextSerializer writes them: integers print as integers,
// label values are escaped, each family has one HELP and TYPE line.
// Not thread-safe: one per scrape.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tandem::control {

class MetricsText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Adds one sample to the family `name` (created with `help` on first use).
  // Counters must be named ..._total; each name keeps the type it was made with.
  void Gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {});
  void Counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {});
  // A histogram: cumulative counts per upper bound (ascending, +Inf implied:
  // `count`), and the sum of the observations.
  struct Bucket {
    double upper_bound;
    uint64_t cumulative_count;
  };
  void Histogram(const std::string& name, const std::string& help,
                 const std::vector<Bucket>& buckets, uint64_t count, double sum,
                 const Labels& labels = {});
  // An empty family still prints its HELP and TYPE lines.
  void Declare(const std::string& name, const std::string& help, bool counter);

  std::string Serialize() const;

 private:
  prometheus::MetricFamily& Family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> families_;  // in the order first added
};

}  // namespace tandem::control
