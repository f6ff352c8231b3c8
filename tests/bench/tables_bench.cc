// Micro-benchmarks of the session tables: how many changes per second the
// single writer commits (a leg added then removed, alone or in batches of
// 1000) and how many lookups per second a reader does, with 1,000 and
// 1,000,000 legs in the table. The goal is at least 1,000,000 changes per
// second. Not a test: run it by hand, e.g.
//   build/tests/bench/tables_bench --benchmark_counters_tabular=true
#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/net/addr.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"

namespace tandem::tables {
namespace {

constexpr uint32_t kLegsPerMeeting = 8;
constexpr uint64_t kChurnIds = 1'000'000'000;  // ids of the legs added and removed

LegSpec LegOf(uint64_t id) {
  LegSpec s;
  s.leg_id = id;
  s.participant_id = id;
  s.meeting_id = 1 + (id % kChurnIds) / kLegsPerMeeting;
  s.channel = Channel(id % kChannels);
  const uint32_t host = static_cast<uint32_t>(id / 65535) & 0x1ffff;
  s.key.remote = IpAddr::FromV4(htonl((198u << 24 | 18u << 16) + host));
  s.key.remote_port = static_cast<uint16_t>(1 + id % 65535);
  s.key.local = IpAddr::FromV4(htonl(198u << 24 | 19u << 16 | 255u << 8 | 1u));
  s.key.local_port = 40000;
  return s;
}

// A tables region on tmpfs holding `legs` legs, made once per size and kept
// for every benchmark of that size.
struct Table {
  std::string dir;
  std::unique_ptr<TablesWriter> writer;
  uint64_t legs;

  explicit Table(uint64_t n) : legs(n) {
    char tmpl[] = "/dev/shm/tandem-tables-bench.XXXXXX";
    dir = mkdtemp(tmpl);
    const uint32_t meetings = n / kLegsPerMeeting + 2;
    auto w = TablesWriter::Open(TablesPath(dir, "bench"),
                                {.legs = uint32_t(n + 2048), .meetings = meetings});
    if (!w.ok()) abort();
    writer = std::move(*w);
    for (uint64_t m = 1; m <= meetings; ++m) {
      if (!writer->AddMeeting(m, 1).ok()) abort();
    }
    std::vector<LegSpec> batch;
    for (uint64_t id = 1; id <= n; ++id) {
      batch.push_back(LegOf(id));
      if (batch.size() == 1000 || id == n) {
        if (!writer->AddLegs(batch).ok()) abort();
        batch.clear();
      }
    }
  }
  ~Table() {
    writer.reset();
    std::filesystem::remove_all(dir);
  }
};

Table& TableOf(uint64_t legs) {
  static std::map<uint64_t, std::unique_ptr<Table>> tables;
  auto& t = tables[legs];
  if (!t) t = std::make_unique<Table>(legs);
  return *t;
}

// Legs added then removed: each add and each remove is one change.
void BM_AddRemoveLegs(benchmark::State& state) {
  Table& t = TableOf(state.range(0));
  const size_t batch_size = state.range(1);
  std::vector<LegSpec> batch;
  for (size_t i = 0; i < batch_size; ++i) {
    batch.push_back(LegOf(kChurnIds + i));
    batch.back().meeting_id = 1 + i % (t.legs / kLegsPerMeeting);
  }
  for (auto _ : state) {
    absl::Status st = batch_size == 1 ? t.writer->AddLeg(batch[0]) : t.writer->AddLegs(batch);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    for (const LegSpec& s : batch) {
      if (!t.writer->RemoveLeg(s.leg_id).ok()) {
        state.SkipWithError("remove failed");
        break;
      }
    }
  }
  const int64_t changes = int64_t(state.iterations()) * batch_size * 2;
  state.SetItemsProcessed(changes);
  state.counters["changes/s"] = benchmark::Counter(double(changes), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AddRemoveLegs)
    ->ArgNames({"legs", "batch"})
    ->Args({1000, 1})
    ->Args({1000, 1000})
    ->Args({1000000, 1})
    ->Args({1000000, 1000});

// Flag changes of existing legs (an update in place).
void BM_SetLegFlags(benchmark::State& state) {
  Table& t = TableOf(state.range(0));
  std::mt19937_64 rng(1);
  uint32_t flags = kLegSend;
  for (auto _ : state) {
    if (!t.writer->SetLegFlags(1 + rng() % t.legs, flags ^= kLegRecv).ok()) {
      state.SkipWithError("flags failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SetLegFlags)->ArgNames({"legs"})->Arg(1000)->Arg(1000000);

// A worker's lookup of a packet's leg, keys in random order, with a
// quiescent point every burst of 32 as the switch does.
void BM_Lookup(benchmark::State& state) {
  Table& t = TableOf(state.range(0));
  const TablesView& v = t.writer->view();
  auto reader = ReaderHandle::Register(v, kMaxReaders - 1);
  if (!reader.ok()) abort();
  std::vector<LegKey> keys;
  std::mt19937_64 rng(2);
  for (int i = 0; i < 1 << 16; ++i) keys.push_back(LegOf(1 + rng() % t.legs).key);
  size_t i = 0;
  uint64_t found = 0;
  for (auto _ : state) {
    for (int k = 0; k < 32; ++k) found += v.Find(keys[i++ & 0xffff]) != kNil;
    reader->Quiescent();
  }
  reader->Unregister();
  if (found != uint64_t(state.iterations()) * 32) state.SkipWithError("a lookup missed");
  state.SetItemsProcessed(int64_t(state.iterations()) * 32);
}
BENCHMARK(BM_Lookup)->ArgNames({"legs"})->Arg(1000)->Arg(1000000);

// Changes while a reader thread looks legs up and passes quiescent points, so
// that reclamation runs against a live reader.
void BM_AddRemoveLegsWithReader(benchmark::State& state) {
  Table& t = TableOf(state.range(0));
  const size_t batch_size = state.range(1);
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    const TablesView& v = t.writer->view();
    auto reader = ReaderHandle::Register(v, 0);
    if (!reader.ok()) abort();
    uint64_t id = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int k = 0; k < 32; ++k, id = id % t.legs + 1) benchmark::DoNotOptimize(v.Find(LegOf(id).key));
      reader->Quiescent();
    }
    reader->Unregister();
  });
  std::vector<LegSpec> batch;
  for (size_t i = 0; i < batch_size; ++i) {
    batch.push_back(LegOf(kChurnIds + i));
    batch.back().meeting_id = 1 + i % (t.legs / kLegsPerMeeting);
  }
  for (auto _ : state) {
    absl::Status st = batch_size == 1 ? t.writer->AddLeg(batch[0]) : t.writer->AddLegs(batch);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    for (const LegSpec& s : batch) (void)t.writer->RemoveLeg(s.leg_id);
  }
  stop = true;
  worker.join();
  const int64_t changes = int64_t(state.iterations()) * batch_size * 2;
  state.SetItemsProcessed(changes);
  state.counters["changes/s"] = benchmark::Counter(double(changes), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AddRemoveLegsWithReader)
    ->ArgNames({"legs", "batch"})
    ->Args({1000000, 1})
    ->Args({1000000, 1000})
    ->UseRealTime();

}  // namespace
}  // namespace tandem::tables

BENCHMARK_MAIN();
