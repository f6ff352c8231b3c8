#include "control/metrics.h"

#include <prometheus/text_serializer.h>

#include <limits>

namespace tandem::control {

prometheus::MetricFamily& MetricsText::Family(const std::string& name, const std::string& help,
                                              prometheus::MetricType type) {
  for (prometheus::MetricFamily& f : families_) {
    if (f.name == name) return f;
  }
  families_.push_back(prometheus::MetricFamily{name, help, type, {}});
  return families_.back();
}

void MetricsText::Declare(const std::string& name, const std::string& help, bool counter) {
  Family(name, help, counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge);
}

void MetricsText::Gauge(const std::string& name, const std::string& help, double value,
                        const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  m.gauge.value = value;
  Family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void MetricsText::Counter(const std::string& name, const std::string& help, double value,
                          const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  m.counter.value = value;
  Family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

void MetricsText::Histogram(const std::string& name, const std::string& help,
                            const std::vector<Bucket>& buckets, uint64_t count, double sum,
                            const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  for (const Bucket& b : buckets) m.histogram.bucket.push_back({b.cumulative_count, b.upper_bound});
  m.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = count;
  m.histogram.sample_sum = sum;
  Family(name, help, prometheus::MetricType::Histogram).metric.push_back(std::move(m));
}

std::string MetricsText::Serialize() const {
  return prometheus::TextSerializer().Serialize(families_);
}

}  // namespace tandem::control
