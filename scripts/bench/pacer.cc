// A paced traffic source and latency meter for the benchmark (issue 5):
// replays the frames of a capture into a forwarder over net_memif at a set
// rate and times every frame that comes back, from a TSC stamp written into
// the RTP payload (which the switch does not touch) to its return.
//
//   pacer <EAL args> -- --pcap-port 0 --memif-port 1 --rate PPS --seconds S
//   pacer <EAL args> -- ... --rate 0 --seconds S        (as fast as it can)
//   pacer <EAL args> -- ... --every-ms M --count N      (one frame after each idle gap)
//
// Port 0 is net_pcap with the capture (read once at start); port 1 is the
// memif client facing the forwarder. Prints one JSON line: sent, received,
// the rate achieved and the latency percentiles in microseconds. The time
// includes both memif rings and the forwarder's RX ring, so the benchmark
// runs the same meter through testpmd io and reports both.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kMagic = 0x54414e44;  // "TAND": marks a stamped frame
constexpr int kBuckets = 4096;           // 100 ns each, the last one is "longer"

struct Args {
  uint16_t pcap_port = 0, memif_port = 1;
  double rate = 0, seconds = 3;
  double every_ms = 0;
  int count = 0;
};

// Where the stamp goes: 12 bytes into the UDP payload (after the RTP header).
int StampOffset(const uint8_t* f, uint32_t len) {
  if (len < 14) return -1;
  uint32_t off = 12;
  uint16_t type = f[off] << 8 | f[off + 1];
  off += 2;
  if (type == 0x8100 && len >= 18) {
    type = f[off + 2] << 8 | f[off + 3];
    off += 4;
  }
  uint32_t l4;
  if (type == 0x0800 && len >= off + 20 && f[off + 9] == 17) {
    l4 = off + (f[off] & 0x0f) * 4;
  } else if (type == 0x86dd && len >= off + 40 && f[off + 6] == 17) {
    l4 = off + 40;
  } else {
    return -1;
  }
  uint32_t at = l4 + 8 + 12;
  return at + 12 <= len ? int(at) : -1;
}

struct Template {
  std::vector<uint8_t> bytes;
  int stamp_at;
};

double Percentile(const std::vector<uint64_t>& h, uint64_t total, double q) {
  if (total == 0) return 0;
  uint64_t want = uint64_t(std::ceil(q * total)), seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += h[i];
    if (seen >= want) return (i + 0.5) * 0.1;
  }
  return kBuckets * 0.1;
}

}  // namespace

int main(int argc, char** argv) {
  int eal = rte_eal_init(argc, argv);
  if (eal < 0) {
    std::fprintf(stderr, "pacer: EAL init failed\n");
    return 1;
  }
  argc -= eal;
  argv += eal;
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    double v = std::atof(argv[i + 1]);
    if (k == "--pcap-port") a.pcap_port = uint16_t(v);
    else if (k == "--memif-port") a.memif_port = uint16_t(v);
    else if (k == "--rate") a.rate = v;
    else if (k == "--seconds") a.seconds = v;
    else if (k == "--every-ms") a.every_ms = v;
    else if (k == "--count") a.count = int(v);
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("pacer", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              rte_socket_id());
  if (!pool) {
    std::fprintf(stderr, "pacer: no mempool\n");
    return 1;
  }
  rte_eth_conf conf{};
  for (uint16_t port : {a.pcap_port, a.memif_port}) {
    if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port, 0, 1024, rte_socket_id(), nullptr, pool) != 0 ||
        rte_eth_tx_queue_setup(port, 0, 1024, rte_socket_id(), nullptr) != 0 ||
        rte_eth_dev_start(port) != 0) {
      std::fprintf(stderr, "pacer: cannot start port %u\n", port);
      return 1;
    }
  }
  // The capture, once: net_pcap replays it in a loop, so stop at the first repeat
  // (or 8192 frames).
  std::vector<Template> frames;
  rte_mbuf* pkts[32];
  uint64_t deadline = rte_rdtsc() + rte_get_tsc_hz() * 2;
  while (frames.size() < 8192 && rte_rdtsc() < deadline) {
    uint16_t n = rte_eth_rx_burst(a.pcap_port, 0, pkts, 32);
    for (uint16_t i = 0; i < n; ++i) {
      const uint8_t* f = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
      uint32_t len = rte_pktmbuf_data_len(pkts[i]);
      if (!frames.empty() && frames[0].bytes.size() == len &&
          std::memcmp(frames[0].bytes.data(), f, len) == 0) {
        deadline = 0;  // back at the start
      } else if (deadline) {
        frames.push_back({std::vector<uint8_t>(f, f + len), StampOffset(f, len)});
      }
      rte_pktmbuf_free(pkts[i]);
    }
  }
  rte_eth_dev_stop(a.pcap_port);
  if (frames.empty()) {
    std::fprintf(stderr, "pacer: no frames in the capture\n");
    return 1;
  }
  // Wait for the memif link (the forwarder is the server).
  for (int i = 0; i < 1000; ++i) {
    rte_eth_link link;
    if (rte_eth_link_get_nowait(a.memif_port, &link) == 0 && link.link_status) break;
    rte_delay_ms(10);
  }

  const uint64_t hz = rte_get_tsc_hz();
  std::vector<uint64_t> hist(kBuckets, 0);
  uint64_t sent = 0, received = 0, stamped = 0, total_ns = 0;
  size_t next = 0;

  auto make = [&](uint64_t now) -> rte_mbuf* {
    const Template& t = frames[next];
    next = (next + 1) % frames.size();
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    uint8_t* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, t.bytes.size()));
    std::memcpy(d, t.bytes.data(), t.bytes.size());
    if (t.stamp_at >= 0) {
      std::memcpy(d + t.stamp_at, &kMagic, 4);
      std::memcpy(d + t.stamp_at + 4, &now, 8);
    }
    return m;
  };
  auto receive = [&]() {
    uint16_t n = rte_eth_rx_burst(a.memif_port, 0, pkts, 32);
    uint64_t now = rte_rdtsc();
    for (uint16_t i = 0; i < n; ++i) {
      const uint8_t* f = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
      int at = StampOffset(f, rte_pktmbuf_data_len(pkts[i]));
      uint32_t magic;
      uint64_t t0;
      if (at >= 0 && (std::memcpy(&magic, f + at, 4), magic == kMagic)) {
        std::memcpy(&t0, f + at + 4, 8);
        uint64_t ns = (now - t0) * 1000000000ull / hz;
        hist[std::min<uint64_t>(ns / 100, kBuckets - 1)]++;
        total_ns += ns;
        ++stamped;
      }
      ++received;
    }
    rte_pktmbuf_free_bulk(pkts, n);
    return n;
  };

  uint64_t start = rte_rdtsc();
  if (a.every_ms > 0) {
    // A frame after each idle gap: the forwarder has gone to sleep by then.
    // Frames without a stamp (ARP, ND) are sent too, so neighbours get learnt,
    // and a gap follows only a stamped frame.
    for (int k = 0; k < a.count;) {
      rte_mbuf* m = make(rte_rdtsc());
      bool stamped_frame = frames[(next + frames.size() - 1) % frames.size()].stamp_at >= 0;
      if (m && rte_eth_tx_burst(a.memif_port, 0, &m, 1) == 1) {
        ++sent;
      } else if (m) {
        rte_pktmbuf_free(m);
      }
      uint64_t until = rte_rdtsc() + uint64_t(a.every_ms * 1e-3 * hz);
      while (rte_rdtsc() < until) receive();
      if (stamped_frame) ++k;
    }
    // A forwarder preempted at the end (a busy machine) sends the last
    // frames late: wait up to a second for them before counting.
    uint64_t until = rte_rdtsc() + hz;
    while (stamped < uint64_t(a.count) && rte_rdtsc() < until) receive();
  } else {
    uint64_t end = start + uint64_t(a.seconds * hz);
    double per_tsc = a.rate / hz;
    for (uint64_t now = rte_rdtsc(); now < end; now = rte_rdtsc()) {
      uint64_t due = a.rate > 0 ? uint64_t((now - start) * per_tsc) : sent + 32;
      uint16_t k = 0;
      while (sent + k < due && k < 32) {
        rte_mbuf* m = make(now);
        if (!m) break;
        pkts[k++] = m;
      }
      uint16_t tx = k ? rte_eth_tx_burst(a.memif_port, 0, pkts, k) : 0;
      if (tx < k) rte_pktmbuf_free_bulk(pkts + tx, k - tx);
      // An unpaced run counts what it offered; a paced one what the ring took.
      sent += a.rate > 0 ? k : tx;
      receive();
    }
    uint64_t drain = rte_rdtsc() + hz / 10;
    while (rte_rdtsc() < drain) receive();
  }
  double secs = double(rte_rdtsc() - start) / hz;
  std::printf(
      "{\"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"stamped\": %" PRIu64
      ", \"seconds\": %.3f, \"rx_pps\": %.0f, \"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, "
      "\"p999\": %.1f, \"max_bucket\": %.1f, \"mean\": %.2f}}\n",
      sent, received, stamped, secs, received / secs, Percentile(hist, stamped, 0.5),
      Percentile(hist, stamped, 0.99), Percentile(hist, stamped, 0.999),
      Percentile(hist, stamped, 1.0), stamped ? total_ns / 1000.0 / stamped : 0.0);
  std::fflush(stdout);
  rte_eth_dev_stop(a.memif_port);
  rte_eal_cleanup();
  return 0;
}
