// mirror_bench: replication throughput and lag over loopback TCP, with a real
// ReplicationSource and ReplicationSink (HMAC, framing, acks) in one process.
//
//   mirror_bench [--records=1000000] [--record_bytes=100] [--seconds=5]
//
// Phases: (1) a burst of --records changes as fast as the producer can append
// them: changes/s until the standby has applied the last one; (2) sustained
// 100,000 changes/s for --seconds; (3) 10,000 changes/s for --seconds. In (2)
// and (3) each record carries its append time and the standby measures the
// replication lag (append -> applied) of every record: p50, p99, max.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "mirror/replication.h"

ABSL_FLAG(uint64_t, records, 1000000, "changes in the burst phase");
ABSL_FLAG(uint64_t, record_bytes, 100, "bytes per change record (>= 8)");
ABSL_FLAG(int, seconds, 5, "duration of each paced phase");

namespace tandem::mirror {
namespace {

const char kKey[] = "mirror-bench-key-0123456789abcdef";

struct Receiver {
  std::atomic<uint64_t> applied{0};
  absl::Mutex mu;
  std::vector<int64_t> lag_ns;
  std::atomic<bool> measure{false};
};

void SleepUntil(int64_t mono_ns) {
  timespec ts{static_cast<time_t>(mono_ns / 1000000000), static_cast<long>(mono_ns % 1000000000)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

std::string Record(size_t bytes) {
  std::string r(std::max<size_t>(bytes, 8), 'r');
  int64_t now = MonoNanos();
  std::memcpy(r.data(), &now, 8);
  return r;
}

void WaitApplied(Receiver& rx, uint64_t seq) {
  while (rx.applied.load() < seq) {
    timespec ts{0, 200000};
    nanosleep(&ts, nullptr);
  }
}

void Paced(ReplicationSource& src, Receiver& rx, double rate, int seconds, size_t bytes) {
  {
    absl::MutexLock l(&rx.mu);
    rx.lag_ns.clear();
    rx.lag_ns.reserve(static_cast<size_t>(rate * seconds) + 16);
  }
  rx.measure = true;
  // Append in small groups every 100 us or so, as an API under load would.
  const int64_t period_ns = static_cast<int64_t>(1e9 / rate);
  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  int64_t start = MonoNanos();
  uint64_t seq = 0;
  for (uint64_t i = 0; i < total; ++i) {
    int64_t due = start + static_cast<int64_t>(i) * period_ns;
    if (due > MonoNanos() + 100000) SleepUntil(due);
    seq = *src.Append(Record(bytes));
  }
  int64_t end = MonoNanos();
  WaitApplied(rx, seq);
  rx.measure = false;
  std::vector<int64_t> lag;
  {
    absl::MutexLock l(&rx.mu);
    lag = rx.lag_ns;
  }
  std::sort(lag.begin(), lag.end());
  auto pct = [&](double p) {
    if (lag.empty()) return 0.0;
    return lag[std::min(lag.size() - 1, static_cast<size_t>(p * lag.size()))] / 1e6;
  };
  std::printf(
      "paced %8.0f changes/s target: achieved %9.0f changes/s over %.1f s, %zu samples, "
      "lag p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
      rate, total / ((end - start) / 1e9), (end - start) / 1e9, lag.size(), pct(0.50), pct(0.99),
      lag.empty() ? 0.0 : lag.back() / 1e6);
}

int Main() {
  const size_t bytes = absl::GetFlag(FLAGS_record_bytes);
  SourceOptions so;
  so.node_id = 1;
  so.key = kKey;
  so.backlog_records = 4u << 20;
  so.snapshot = []() -> absl::StatusOr<std::unique_ptr<SnapshotReader>> {
    return WholeSnapshot({}, 0);
  };
  auto src = ReplicationSource::Start(so);
  if (!src.ok()) {
    std::fprintf(stderr, "source: %s\n", std::string(src.status().message()).c_str());
    return 1;
  }
  Receiver rx;
  SinkOptions ko;
  ko.node_id = 2;
  ko.key = kKey;
  ko.source = {"127.0.0.1", (*src)->port()};
  SinkCallbacks cb;
  cb.apply = [&rx](RecordKind, uint64_t seq, absl::string_view r) {
    if (rx.measure.load(std::memory_order_relaxed) && r.size() >= 8) {
      int64_t t;
      std::memcpy(&t, r.data(), 8);
      int64_t lag = MonoNanos() - t;
      absl::MutexLock l(&rx.mu);
      rx.lag_ns.push_back(lag);
    }
    rx.applied.store(seq, std::memory_order_release);
    return absl::OkStatus();
  };
  auto sink = ReplicationSink::Start(ko, cb);
  if (!sink.ok()) return 1;
  while (!(*sink)->status().consistent) {
    timespec ts{0, 1000000};
    nanosleep(&ts, nullptr);
  }

  // (1) Burst.
  const uint64_t n = absl::GetFlag(FLAGS_records);
  std::string payload(bytes, 'b');
  int64_t t0 = MonoNanos();
  uint64_t seq = 0;
  for (uint64_t i = 0; i < n; ++i) seq = *(*src)->Append(payload);
  int64_t appended = MonoNanos();
  WaitApplied(rx, seq);
  int64_t t1 = MonoNanos();
  std::printf(
      "burst  %llu changes of %zu bytes: appended in %.3f s, applied by the standby in %.3f s "
      "= %.0f changes/s\n",
      static_cast<unsigned long long>(n), bytes, (appended - t0) / 1e9, (t1 - t0) / 1e9,
      n / ((t1 - t0) / 1e9));

  const int seconds = absl::GetFlag(FLAGS_seconds);
  Paced(**src, rx, 100000, seconds, bytes);
  Paced(**src, rx, 10000, seconds, bytes);
  SourceStatus st = (*src)->status();
  std::printf("source: last %llu acked %llu snapshots %llu rejects %llu\n",
              static_cast<unsigned long long>(st.last_seq),
              static_cast<unsigned long long>(st.acked_seq),
              static_cast<unsigned long long>(st.snapshots_sent),
              static_cast<unsigned long long>((*src)->rejects().Total()));
  return 0;
}

}  // namespace
}  // namespace tandem::mirror

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tandem::mirror::Main();
}
