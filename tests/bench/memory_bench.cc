// What a random cache line costs on this machine, the limit under the switch's
// large tables (docs/performance.md, "1M legs"): one line read at random from
// a region of `mb` MB on 4 KB or 2 MB pages, either
//  - chase: each read gives the next index (latency, no overlap), or
//  - burst: `burst` random lines prefetched, then read, as a stage of the
//    worker does for a burst of packets (the overlap that the core and its
//    page walks allow; at 32, the worker's burst, the wait for the first
//    line is shared by 32 only).
// Not a test: run it by hand, e.g.
//   build-rel/tests/bench/memory_bench --benchmark_counters_tabular=true
// A 2 MB row is skipped (with its reason) when no huge page is free.
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr size_t kLine = 64;

struct Region {
  uint8_t* p = nullptr;
  size_t bytes = 0;
  Region(size_t b, bool huge) : bytes(b) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | (huge ? MAP_HUGETLB : 0);
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (m != MAP_FAILED) p = static_cast<uint8_t*>(m);
    // 4 KB pages only: no transparent huge pages behind the test's back.
    if (p && !huge) madvise(p, bytes, MADV_NOHUGEPAGE);
  }
  ~Region() {
    if (p) munmap(p, bytes);
  }
  size_t lines() const { return bytes / kLine; }
  uint64_t& word(size_t line) const { return *reinterpret_cast<uint64_t*>(p + line * kLine); }
};

// args: region MB, huge pages (0/1) [, burst]
void BM_Chase(benchmark::State& state) {
  Region r(size_t(state.range(0)) << 20, state.range(1) != 0);
  if (!r.p) return state.SkipWithError("no huge pages free (mmap MAP_HUGETLB failed)");
  // One cycle through every line in random order, so that no read is predictable.
  std::vector<uint64_t> order(r.lines());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  for (size_t i = 0; i < order.size(); ++i) r.word(order[i]) = order[(i + 1) % order.size()];
  uint64_t at = order[0];
  for (auto _ : state) {
    for (int i = 0; i < 1024; ++i) at = r.word(at);
    benchmark::DoNotOptimize(at);
  }
  state.counters["ns_per_line"] = benchmark::Counter(
      double(state.iterations()) * 1024, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Burst(benchmark::State& state) {
  Region r(size_t(state.range(0)) << 20, state.range(1) != 0);
  if (!r.p) return state.SkipWithError("no huge pages free (mmap MAP_HUGETLB failed)");
  std::mt19937_64 rng(2);
  const size_t burst = size_t(state.range(2));
  std::vector<uint64_t> idx(1 << 16);
  for (auto& i : idx) i = rng() % r.lines();
  size_t pos = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    const uint64_t* b = &idx[pos];
    pos = (pos + burst) & (idx.size() - 1);
    for (size_t k = 0; k < burst; ++k) __builtin_prefetch(&r.word(b[k]), 0, 3);
    for (size_t k = 0; k < burst; ++k) sum += r.word(b[k]);
  }
  benchmark::DoNotOptimize(sum);
  state.counters["ns_per_line"] =
      benchmark::Counter(double(state.iterations()) * double(burst),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// 1 MB: the caches; 512 MB: the 1M-leg table's entries and usage blocks (2M slots
// of 128 B each, twice).
BENCHMARK(BM_Chase)->ArgNames({"mb", "huge"})->ArgsProduct({{1, 512}, {0, 1}});
BENCHMARK(BM_Burst)->ArgNames({"mb", "huge", "burst"})->ArgsProduct({{1, 512}, {0, 1}, {32, 256}});

}  // namespace

BENCHMARK_MAIN();
