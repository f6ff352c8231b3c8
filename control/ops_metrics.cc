#include "control/ops_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/version.h"
#include "mirror/wire.h"

namespace tandem::control {
namespace {

// The histogram's bounds in seconds: a packet's time in the switch, from its
// RX burst to its TX burst.
constexpr double kLatencyBounds[] = {1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                                     2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 1e-1};

struct ProcStat {
  bool ok = false;
  double cpu_seconds = 0;
  double start_seconds = 0;  // since the epoch
  double rss_bytes = 0;
  double vsize_bytes = 0;
};

double BootTime() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

// /proc/PID/stat, fields 14-15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss).
ProcStat ReadProcStat(int pid) {
  ProcStat s;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return s;
  std::vector<std::string> f = absl::StrSplit(text.substr(paren + 2), ' ');
  if (f.size() < 22) return s;  // f[0] is field 3
  double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / hz;
  s.start_seconds = BootTime() + std::stod(f[19]) / hz;
  s.vsize_bytes = std::stod(f[20]);
  s.rss_bytes = std::stod(f[21]) * page;
  s.ok = true;
  return s;
}

int OpenFds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n - 1;  // the directory's own descriptor
}

}  // namespace

double LatencyBucketUpperCycles(uint32_t b) {
  uint32_t lz = b / 4, q = b % 4;
  if (lz < 2) return std::ldexp(1.0, static_cast<int>(lz) + 1);  // no quarters below 4 cycles
  return std::ldexp((4.0 + q + 1) / 4, static_cast<int>(lz));
}

OpsMetrics::OpsMetrics(std::string shm_dir, std::string node)
    : shm_dir_(std::move(shm_dir)), node_(std::move(node)) {}

bool OpsMetrics::AttachState() { return state_region_.Attach(tables::StatePath(shm_dir_, node_)); }

std::string OpsMetrics::Render() {
  MetricsText m;
  m.Gauge("tandem_build_info", "the build of this tandem-control: always 1", 1,
          {{"version", TANDEM_VERSION},
           {"commit", TANDEM_COMMIT},
           {"wire_version", absl::StrCat(mirror::kWireVersion)},
           {"tables_version", absl::StrCat(tables::kTablesVersion)},
           {"state_version", absl::StrCat(tables::kStateVersion)}});
  ProcStat self = ReadProcStat(getpid());
  if (self.ok) {
    m.Counter("process_cpu_seconds_total", "user and system CPU time of tandem-control",
              self.cpu_seconds);
    m.Gauge("process_resident_memory_bytes", "resident memory of tandem-control", self.rss_bytes);
    m.Gauge("process_virtual_memory_bytes", "virtual memory of tandem-control", self.vsize_bytes);
    m.Gauge("process_start_time_seconds", "start of tandem-control, since the epoch",
            self.start_seconds);
  }
  m.Gauge("process_open_fds", "open file descriptors of tandem-control", OpenFds());
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    m.Gauge("process_max_fds", "file descriptor limit of tandem-control",
            static_cast<double>(rl.rlim_cur));
  }
  if (AttachState()) AddSwitch(m);
  return m.Serialize();
}

void OpsMetrics::AddSwitch(MetricsText& m) {
  const tables::StateHeader& h = state_region_.view().header();
  int32_t pid = h.switch_pid.load();
  if (pid > 0) {
    ProcStat sw = ReadProcStat(pid);
    if (sw.ok) {
      m.Counter("tandem_switch_cpu_seconds_total", "user and system CPU time of tandem-switch",
                sw.cpu_seconds);
      m.Gauge("tandem_switch_resident_memory_bytes", "resident memory of tandem-switch",
              sw.rss_bytes);
      m.Gauge("tandem_switch_start_time_seconds", "start of tandem-switch, since the epoch",
              sw.start_seconds);
    }
  }
  uint32_t ports = std::min<uint32_t>(h.n_ports.load(), tables::kMaxPorts);
  m.Declare("tandem_port_bytes_total", "bytes through a port (NIC counters)", true);
  m.Declare("tandem_port_rx_nombuf_total",
            "packets a port could not receive for want of a buffer (mbuf pool empty)", true);
  for (uint32_t i = 0; i < ports; ++i) {
    const tables::PortState& p = state_region_.view().port(i);
    if (!p.present) continue;
    std::string port(p.name, strnlen(p.name, sizeof p.name));
    m.Counter("tandem_port_bytes_total", "", double(p.ibytes), {{"port", port}, {"direction", "rx"}});
    m.Counter("tandem_port_bytes_total", "", double(p.obytes), {{"port", port}, {"direction", "tx"}});
    m.Counter("tandem_port_rx_nombuf_total", "", double(p.rx_nombuf), {{"port", port}});
  }
  double hz = static_cast<double>(h.tsc_hz.load());
  if (hz <= 0) return;
  uint32_t workers = std::min(h.n_workers.load(), state_region_.view().max_workers());
  m.Declare("tandem_worker_busy_seconds_total",
            "time a worker spent on polls that found packets (busy share: its rate)", true);
  std::vector<uint64_t> hist(tables::kLatencyBuckets, 0);
  for (uint32_t w = 0; w < workers; ++w) {
    const tables::WorkerCounters& c = state_region_.view().worker_counters(w);
    m.Counter("tandem_worker_busy_seconds_total", "", double(c.busy_cycles) / hz,
              {{"worker", absl::StrCat(w)}});
    for (uint32_t b = 0; b < tables::kLatencyBuckets; ++b) hist[b] += c.latency_hist[b];
  }
  // Each quarter-octave bucket goes to the first bound at or above its upper
  // edge: the counts are exact for the bucket edges, conservative between.
  std::vector<MetricsText::Bucket> buckets;
  for (double bound : kLatencyBounds) buckets.push_back({bound, 0});
  uint64_t count = 0;
  double sum = 0;
  for (uint32_t b = 0; b < tables::kLatencyBuckets; ++b) {
    if (hist[b] == 0) continue;
    double upper = LatencyBucketUpperCycles(b) / hz;
    double lower = b == 0 ? 0 : LatencyBucketUpperCycles(b - 1) / hz;
    count += hist[b];
    sum += double(hist[b]) * (upper + lower) / 2;  // the bucket's middle
    for (auto& bk : buckets) {
      if (upper <= bk.upper_bound) bk.cumulative_count += hist[b];
    }
  }
  m.Histogram("tandem_switch_latency_seconds",
              "time of a packet in the switch, from its RX burst to its TX burst "
              "(quarter-octave resolution)",
              buckets, count, sum);
}

}  // namespace tandem::control
