// Micro-benchmarks of the per-packet work outside the tables: Parse, the
// checksum base (UdpCsumWithoutEndpoints) and one RewriteHeaders per copy,
// for IPv4 and IPv6 media of 200 and 1200 payload bytes, with a full UDP
// checksum (the common case) and with a partial one (a sender's TX offload:
// the switch completes it from the packet's bytes); and the leg's policer
// and the meeting's budget (switch/policer.h), limited or not. Not a test:
// run it by hand, e.g.
//   build/tests/bench/packet_bench --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "switch/packet.h"
#include "switch/policer.h"

namespace tandem::sw {
namespace {

constexpr uint8_t kOurMac[6] = {0x02, 0, 0, 0, 0, 0x01};

void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

// An RTP-sized UDP packet from 198.18.0.10:5000 (2001:db8:1::10) to the VIP.
std::vector<uint8_t> Media(bool v4, uint16_t payload, bool partial) {
  uint16_t l3 = 14, ihl = v4 ? 20 : 40, udp_len = 8 + payload;
  std::vector<uint8_t> f(l3 + ihl + udp_len);
  std::memcpy(f.data(), kOurMac, 6);
  const uint8_t src_mac[6] = {0x02, 0, 0, 0, 1, 0x10};
  std::memcpy(f.data() + 6, src_mac, 6);
  Put16(f.data() + 12, v4 ? kEthIPv4 : kEthIPv6);
  uint8_t* ip = f.data() + l3;
  if (v4) {
    ip[0] = 0x45;
    Put16(ip + 2, ihl + udp_len);
    ip[8] = kTtl;
    ip[9] = kProtoUdp;
    const uint8_t a[8] = {198, 18, 0, 10, 198, 18, 0, 100};
    std::memcpy(ip + 12, a, 8);
    Put16(ip + 10, Ipv4HeaderChecksum(ip));
  } else {
    ip[0] = 0x60;
    Put16(ip + 4, udp_len);
    ip[6] = kProtoUdp;
    ip[7] = kTtl;
    const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
    std::memcpy(ip + 8, a, 16);
    std::memcpy(ip + 24, a, 16);
    ip[23] = 0x10;
    ip[39] = 0x00;
    ip[38] = 0x01;
  }
  uint8_t* udp = ip + ihl;
  Put16(udp, 5000);
  Put16(udp + 2, 20000);
  Put16(udp + 4, udp_len);
  for (uint16_t i = 0; i < payload; ++i) udp[8 + i] = uint8_t(i * 7 + 3);
  if (partial) {
    uint32_t acc = CsumAdd(0, ip + (v4 ? 12 : 8), v4 ? 8 : 32);
    acc += kProtoUdp + udp_len;
    Put16(udp + 6, CsumFold(acc));
  } else {
    Put16(udp + 6, L4Checksum(v4, ip, udp, udp_len, kProtoUdp));
  }
  return f;
}

// One received packet's header work for `copies` receivers (as FanOut does:
// the base once, a rewrite per copy). The copy goes back to the sender's own
// addresses and ports, so the frame stays as received but for its UDP
// checksum field, which each round puts back (in both variants alike).
void BM_FanOutHeaders(benchmark::State& state) {
  bool v4 = state.range(0) == 4;
  uint16_t payload = static_cast<uint16_t>(state.range(1));
  bool partial = state.range(2) != 0;
  uint32_t copies = static_cast<uint32_t>(state.range(3));
  std::vector<uint8_t> f = Media(v4, payload, partial);
  ParseConfig cfg;
  std::memcpy(cfg.mac, kOurMac, 6);
  tables::LegKey to;
  to.local = *IpAddr::Parse(v4 ? "198.18.0.10" : "2001:db8:1::10");
  to.remote = *IpAddr::Parse(v4 ? "198.18.0.100" : "2001:db8:1::100");
  to.local_port = 5000;
  to.remote_port = 20000;
  Rewrite rw{};
  std::memcpy(rw.src_mac, f.data() + 6, 6);
  std::memcpy(rw.dst_mac, kOurMac, 6);
  rw.to = &to;
  rw.to_sums = tables::SumEndpoints(to);
  const size_t field = 14 + (v4 ? 20 : 40) + 6;
  const uint16_t received = uint16_t(f[field] << 8 | f[field + 1]);
  // The sender leg's sums, which the tables' writer stores (LegEntry::sums).
  const tables::EndpointSums from =
      tables::SumEndpoints(Parse(f.data(), static_cast<uint32_t>(f.size()), cfg).key);
  uint64_t completed = 0;
  for (auto _ : state) {
    Put16(f.data() + field, received);
    Parsed p = Parse(f.data(), static_cast<uint32_t>(f.size()), cfg);
    UdpCsumBase base = UdpCsumWithoutEndpoints(f.data(), p, from);
    completed += base.completed;
    for (uint32_t k = 0; k < copies; ++k) RewriteHeaders(f.data(), p, base, rw);
    benchmark::DoNotOptimize(f.data());
    benchmark::ClobberMemory();
  }
  if (partial && completed != uint64_t(state.iterations()))
    state.SkipWithError("partial not completed");
  if (!partial && completed != 0) state.SkipWithError("full checksum recomputed");
  state.SetItemsProcessed(state.iterations());
}
// family, payload bytes, partial, copies
BENCHMARK(BM_FanOutHeaders)
    ->ArgNames({"ipv", "payload", "partial", "copies"})
    ->ArgsProduct({{4, 6}, {200, 1200}, {0, 1}, {1}});

// One packet through the leg's policer, 50 us after the previous one (a
// leg at 20,000 pps: under the audio default it is dropped, which costs the
// same), with the node's audio default or no limit (range 0: 1 or 0).
void BM_PoliceLeg(benchmark::State& state) {
  bool limited = state.range(0) != 0;
  tables::LegCounters u{};
  uint64_t tsc = 1'000'000'000;
  uint64_t passed = 0;
  for (auto _ : state) {
    tsc += 50'000;
    passed += PoliceLeg(u, limited ? 200 : 0, limited ? 640 : 0, 214, tsc, 1e-9);
    benchmark::DoNotOptimize(u);
  }
  benchmark::DoNotOptimize(passed);
}
BENCHMARK(BM_PoliceLeg)->ArgName("limited")->Arg(0)->Arg(1);

// One packet's copies (4) from the meeting's budget, as above.
void BM_SpendMeetingBudget(benchmark::State& state) {
  double cap = state.range(0) ? 500000.0 : 0.0;
  MeetingBudget b;
  uint64_t tsc = 1'000'000'000;
  uint64_t passed = 0;
  for (auto _ : state) {
    tsc += 50'000;
    passed += SpendMeetingBudget(b, 1, cap, 4, tsc, 1e-9);
    benchmark::DoNotOptimize(b);
  }
  benchmark::DoNotOptimize(passed);
}
BENCHMARK(BM_SpendMeetingBudget)->ArgName("capped")->Arg(0)->Arg(1);

}  // namespace
}  // namespace tandem::sw

BENCHMARK_MAIN();
