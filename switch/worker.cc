// The worker's loop and its first stages, parse and lookup (switch/worker.h
// says what each stage reads and decides; switch/stages.cc holds the rest).
#include "switch/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "switch/mbuf_fields.h"

namespace tandem::sw {

namespace {

using tables::Drop;
using tables::kNil;
using tables::LegEntry;

// An epoch for LegHops that no other worker, and no earlier switch process on
// the same state region, used: the switch's restarts, its pid, the TSC and a
// count of workers made in this process, mixed.
uint32_t NewHopEpoch(const tables::StateView& state) {
  static std::atomic<uint32_t> made{0};
  uint64_t x = state.header().restarts.load(std::memory_order_relaxed) * 0x9e3779b97f4a7c15ULL;
  x ^= uint64_t(getpid()) << 32 ^ rte_rdtsc() ^ uint64_t(made.fetch_add(1) + 1) * 0xc2b2ae3d27d4eb4fULL;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  uint32_t e = uint32_t(x >> 32);
  return e ? e : 1;
}

// Adds the cycles since the last lap to a stage; nothing at all when off.
template <bool kOn>
struct StageClock {
  StageProfile& p;
  uint64_t t;
  void Lap(Stage s) {
    if constexpr (kOn) {
      uint64_t now = rte_rdtsc();
      p.cycles[uint32_t(s)] += now - t;
      t = now;
    }
  }
};

}  // namespace

Worker::Worker(Dataplane& dp, uint32_t index, uint16_t queue)
    : dp_(dp), index_(index), queue_(queue), profiling_(dp.profile),
      wc_(dp.state.worker_counters(index)), health_(dp.state.health(index)),
      usage_(&dp.state.leg_counters(index, 0)),
      hops_(dp.neigh, NextHopsOf(dp.cfg), NewHopEpoch(dp.state)) {
  for (size_t p = 0; p < dp.ports.size(); ++p) tx_[p].port = dp.ports[p].id;
  receivers_.resize(1024);
  sec_per_tsc_ = 1.0 / double(std::max<uint64_t>(dp.tsc_hz, 1));
  pcfg_.vlan = dp.cfg.vlan;
  pcfg_.mtu = dp.cfg.mtu;
  std::memcpy(pcfg_.mac, dp.ports[0].mac, 6);
  burst_ = std::min<uint16_t>(dp.cfg.burst, kMaxBurst);
  if (profiling_) {
    rdtsc_cost_ = ~0ull;
    for (int i = 0; i < 64; ++i) {  // as the sampled rewrite reads the clock
      uint64_t t0 = rte_rdtsc_precise();
      rdtsc_cost_ = std::min(rdtsc_cost_, rte_rdtsc_precise() - t0);
    }
  }
}

// The calling thread's CPU time (a system call: twice per profiled run).
static uint64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void Worker::Finish() {
  if (profiling_) {
    FlushAll<true>();
    if (profile_tsc_) {
      profile_.cpu_ns = ThreadCpuNs() - profile_cpu_ns_;
      profile_.wall_cycles = rte_rdtsc() - profile_tsc_;
    }
    if (dp_.profiles.size() > index_) dp_.profiles[index_] = profile_;
  } else {
    FlushAll<false>();
  }
  reader_.Unregister();
}

void Worker::UpdateClock(uint64_t tsc) {
  now_tsc_ = tsc;
  if (clock_tsc_ == 0 || tsc - clock_tsc_ > dp_.tsc_hz) {
    clock_unix_ns_ = UnixNs();
    clock_tsc_ = rte_rdtsc();
    ns_per_tsc_q32_ = ((unsigned __int128)1000000000u << 32) / std::max<uint64_t>(dp_.tsc_hz, 1);
  }
  uint64_t dt = tsc > clock_tsc_ ? tsc - clock_tsc_ : 0;
  now_unix_ns_ = clock_unix_ns_ + uint64_t((dt * ns_per_tsc_q32_) >> 32);
}

// Parse, sort out the slow path and the drops. Keeps the packets for a leg lookup.
uint16_t Worker::ParseStage(uint32_t port_index, rte_mbuf** pkts, uint16_t n) {
  bool active = dp_.Active();
  bool access = dp_.ports[port_index].role == PortRole::kAccess;
  uint16_t nfwd = 0;
  uint64_t rx_bytes = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 3 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 3], void*));
    rte_mbuf* m = pkts[i];
    rx_bytes += rte_pktmbuf_pkt_len(m);
    if (!access) {
      // The backbone carries only the pair's heartbeats (replication runs
      // over the host's IP stack).
      const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
      if (rte_pktmbuf_data_len(m) >= 14 && (f[12] << 8 | f[13]) == kEthHeartbeat) {
        HandOff(m, SlowKind::kBackboneHeartbeat, 14, kEthHeartbeat);
      } else {
        DropLater(m, Drop::kNotForUs);
      }
      continue;
    }
    if (m->nb_segs != 1) {
      DropLater(m, Drop::kUnsupported);
      continue;
    }
    // Built in place (guaranteed copy elision): an assignment went through a
    // temporary, a 64-byte copy per packet.
    Parsed& p = *::new (&b_.parsed[i])
        Parsed(Parse(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), pcfg_));
    if (p.verdict == Verdict::kDrop) {
      DropLater(m, p.drop);
      continue;
    }
    if (p.verdict == Verdict::kSlowPath) {
      HandOff(m, p.ethertype == kEthHeartbeat ? SlowKind::kAccessHeartbeat : SlowKind::kOther,
              p.l3, p.ethertype);
      continue;
    }
    if (!active) {
      DropLater(m, Drop::kNotActive);
      continue;
    }
    b_.fwd[nfwd++] = i;
  }
  wc_.rx_packets += n;
  wc_.rx_bytes += rx_bytes;
  return nfwd;
}

// Hash, bucket, chain. A packet of no leg stops here: the flood of unknown
// sources costs a parse, a hash and a bucket. Known legs get their meeting
// and usage lines on the way.
uint16_t Worker::LookupStage(rte_mbuf** pkts, uint16_t n) {
  // Hash and prefetch the bucket, apart from the parse: the key's bytes were
  // just stored by Parse, and reading them back at once as wider words
  // cannot be forwarded from the store buffer (a stall per packet, perf).
  for (uint16_t k = 0; k < n; ++k) {
    uint16_t i = b_.fwd[k];
    b_.hashes[i] = tables::HashLegKey(b_.parsed[i].key);
    rte_prefetch0(&dp_.tables.bucket(b_.hashes[i]));
  }
  // The buckets are on their way; fetch the first entry of each chain. The
  // heads are kept: the walk starts there instead of loading the bucket
  // again, and an empty bucket decides the packet at once.
  uint32_t capacity = dp_.tables.leg_capacity();
  for (uint16_t k = 0; k < n; ++k) {
    uint32_t head = dp_.tables.bucket(b_.hashes[b_.fwd[k]]).load(std::memory_order_acquire);
    b_.slots[k] = head;
    if (head != kNil && head < capacity) rte_prefetch0(&dp_.tables.leg(head));
  }
  uint16_t nhit = 0;
  for (uint16_t k = 0; k < n; ++k) {
    uint16_t i = b_.fwd[k];
    // slots[k] holds the chain's head; nhit <= k, so writing slots[nhit]
    // below never overwrites a head still to be read.
    const Parsed& p = b_.parsed[i];
    uint32_t slot = b_.slots[k] == kNil ? kNil : dp_.tables.FindFrom(p.key, b_.slots[k]);
    if (slot == kNil) {
      vips_.Refresh(dp_.tables);
      DropLater(pkts[i], vips_.Contains(p.key.local) ? Drop::kUnknownLeg : Drop::kNotForUs);
      continue;
    }
    const LegEntry& s = dp_.tables.leg(slot);
    rte_prefetch0(&dp_.tables.meeting(s.meeting));
    // The entry's second line (the rate limits) is read for a limited leg only.
    PrefetchForWrite(&usage_[slot]);  // what a packet writes is in its first line
    b_.slots[nhit] = slot;
    b_.fwd[nhit++] = i;
  }
  return nhit;
}

// A burst goes through the stages in turn, so that the cache misses of one
// packet overlap those of the others: each stage starts the loads that the
// next needs (bucket, leg entry, meeting and usage lines, receivers), so at
// a million legs a packet waits for memory about once per stage instead of
// once per dependent load.
template <bool kProfile>
void Worker::ProcessBurst(uint32_t port_index, rte_mbuf** pkts, uint16_t n) {
  StageClock<kProfile> clock{profile_, kProfile ? rte_rdtsc() : 0};
  [[maybe_unused]] const uint64_t start = clock.t;
  [[maybe_unused]] const uint64_t counted = kProfile ? profile_.Total() : 0;
  ndropped_ = 0;
  uint16_t k = ParseStage(port_index, pkts, n);
  clock.Lap(Stage::kParse);
  k = LookupStage(pkts, k);
  clock.Lap(Stage::kLookup);
  k = AdmitStage(pkts, k);
  clock.Lap(Stage::kAdmit);
  k = ReceiversStage(pkts, k);
  clock.Lap(Stage::kReceivers);
  FanOutStage<kProfile>(pkts, k);  // counts its own parts
  if (ndropped_) rte_pktmbuf_free_bulk(dropped_, ndropped_);
  ndropped_ = 0;
  FlushAll<kProfile>();  // counts itself as TX
  if constexpr (kProfile) {
    // What the laps left out: the drops' free, the counters.
    uint64_t burst = rte_rdtsc() - start;
    uint64_t laps = profile_.Total() - counted;
    if (burst > laps) profile_.cycles[uint32_t(Stage::kOther)] += burst - laps;
    profile_.packets += n;
    profile_.bursts++;
  }
}

void Worker::RecordLatency(uint64_t cycles, uint32_t packets) {
  if (cycles == 0) cycles = 1;
  uint32_t lz = 63 - __builtin_clzll(cycles);
  uint32_t frac = lz >= 2 ? (cycles >> (lz - 2)) & 3 : 0;
  uint32_t b = std::min<uint32_t>(lz * 4 + frac, tables::kLatencyBuckets - 1);
  wc_.latency_hist[b] += packets;
}

absl::Status Worker::Register() {
  auto reg = tables::ReaderHandle::Register(dp_.tables, index_);
  if (!reg.ok()) return reg.status();
  reader_ = *reg;
  health_.lcore.store(rte_lcore_id());
  return absl::OkStatus();
}

// Frames from the main thread (ARP/ND/ICMP replies and requests), worker 0
// only. Returns how many.
uint32_t Worker::SendInjected() {
  rte_mbuf* pkts[kMaxBurst];
  unsigned k = rte_ring_sc_dequeue_burst(dp_.inject_ring, reinterpret_cast<void**>(pkts),
                                         burst_, nullptr);
  for (unsigned i = 0; i < k; ++i) {
    SetTxLeg(pkts[i], tables::kNil);
    uint32_t out = 0;  // the main thread names the port by its id
    for (uint32_t p = 0; p < dp_.ports.size(); ++p) {
      if (dp_.ports[p].id == InjectPort(pkts[i])) out = p;
    }
    Send<false>(out, pkts[i], rte_pktmbuf_pkt_len(pkts[i]));
  }
  if (k) FlushAll<false>();
  return k;
}

uint32_t Worker::Poll() {
  rte_mbuf* pkts[kMaxBurst];
  uint32_t got = 0;
  for (uint32_t p = 0; p < dp_.ports.size(); ++p) {
    [[maybe_unused]] uint64_t t_rx = profiling_ ? rte_rdtsc() : 0;
    uint16_t n = rte_eth_rx_burst(dp_.ports[p].id, queue_, pkts, burst_);
    if (n == 0) continue;
    uint64_t t0 = rte_rdtsc();
    UpdateClock(t0);
    got += n;
    if (profiling_) {
      if (!profile_tsc_) [[unlikely]] {
        profile_cpu_ns_ = ThreadCpuNs();
        profile_tsc_ = rte_rdtsc();
      }
      profile_.cycles[uint32_t(Stage::kRx)] += t0 - t_rx;
      ProcessBurst<true>(p, pkts, n);
    } else {
      ProcessBurst<false>(p, pkts, n);
    }
    RecordLatency(rte_rdtsc() - t0, n);
  }
  if (index_ == 0) got += SendInjected();
  reader_.Quiescent();
  return got;
}

int Worker::Run() {
  if (auto st = Register(); !st.ok()) {
    std::fprintf(stderr, "tandem-switch: worker %u: %s\n", index_,
                 std::string(st.message()).c_str());
    dp_.stop = true;
    return -1;
  }
  // Sleeps of tens of microseconds must not be stretched by the default 50 us slack.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint32_t idle = 0;
  uint32_t sleep_us = 1;
  uint64_t loops = 0;
  while (!dp_.stop.load(std::memory_order_relaxed)) {
    uint64_t poll_start = rte_rdtsc();  // issue 19: busy share (tandem_worker_busy_seconds_total)
    uint32_t got = Poll();
    if (got) wc_.busy_cycles += rte_rdtsc() - poll_start;  // issue 19
    ++loops;
    if ((loops & 63) == 0) {
      wc_.loops = loops;
      health_.heartbeat_ns.store(MonotonicNs(), std::memory_order_relaxed);
    }
    if (got) {
      idle = 0;
      sleep_us = 1;
      continue;
    }
    if (++idle < dp_.cfg.idle_polls || dp_.cfg.idle_sleep_us == 0) continue;
    // Idle back-off: go offline for QSBR (the writer need not wait for a
    // sleeping worker), sleep, double the sleep up to the configured bound.
    reader_.Offline();
    health_.sleeping.store(1, std::memory_order_relaxed);
    timespec ts{0, long(sleep_us) * 1000};
    nanosleep(&ts, nullptr);
    wc_.idle_sleeps++;
    sleep_us = std::min(sleep_us * 2, dp_.cfg.idle_sleep_us);
    health_.sleeping.store(0, std::memory_order_relaxed);
    health_.heartbeat_ns.store(MonotonicNs(), std::memory_order_relaxed);
    reader_.Online();
  }
  Finish();
  return 0;
}

int RunWorker(Dataplane& dp, uint32_t worker_index, uint16_t queue) {
  Worker w(dp, worker_index, queue);
  return w.Run();
}

struct WorkerPoller::Impl {
  Impl(Dataplane& dp, uint32_t index, uint16_t queue) : w(dp, index, queue) {}
  Worker w;
};

WorkerPoller::WorkerPoller(Dataplane& dp, uint32_t worker_index, uint16_t queue)
    : impl_(std::make_unique<Impl>(dp, worker_index, queue)) {}

WorkerPoller::~WorkerPoller() {
  if (started_) impl_->w.Finish();
}

absl::Status WorkerPoller::Start() {
  auto st = impl_->w.Register();
  started_ = st.ok();
  return st;
}

uint32_t WorkerPoller::Poll() { return impl_->w.Poll(); }

const StageProfile& WorkerPoller::profile() const { return impl_->w.profile(); }

}  // namespace tandem::sw
