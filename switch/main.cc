// tandem-switch: the DPDK data plane of a Tandem node.
//
// Threads: one worker per configured worker lcore (RX queue i and TX queue i
// of every port), and the main lcore, which runs the slow path (ARP, ND,
// ICMP), neighbour resolution and ageing, port statistics and telemetry.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>
#include <rte_ring.h>
#include <rte_version.h>
#include <rte_telemetry.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/sd_notify.h"
#include "common/secure_file.h"
#include "common/tables/layout.h"
#include "common/version.h"
#include "mirror/wire.h"
#include "switch/config.h"
#include "switch/dataplane.h"
#include "switch/handoff.h"
#include "switch/slowpath.h"
#include "switch/xdp/steering.h"

namespace tandem::sw {
namespace {

Dataplane* g_dp = nullptr;  // for the signal handler and telemetry callbacks

void OnSignal(int) {
  if (g_dp) g_dp->stop.store(true);
}

// The switch's own messages go through DPDK's log, under the log type
// "tandem.switch" (EAL's --log-level=tandem.switch:debug selects them), and
// DPDK's stream is common/log's format: journald priorities under systemd,
// time stamps elsewhere (docs/operations.md, "Logs").
int g_logtype = RTE_LOGTYPE_USER1;

ssize_t LogStreamWrite(void*, const char* buf, size_t size) {
  // rte_log's levels are syslog's + 1 (RTE_LOG_EMERG is 1).
  int level = std::clamp(rte_log_cur_msg_loglevel() - 1, 0, 7);
  absl::string_view text(buf, size);
  while (!text.empty()) {
    size_t nl = text.find('\n');
    absl::string_view line = text.substr(0, nl);
    if (!line.empty()) log::Write(static_cast<log::Level>(level), line);
    if (nl == absl::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return static_cast<ssize_t>(size);
}

void InitLog(log::Level level) {
  log::Init("tandem-switch", level);
  g_logtype = rte_log_register_type_and_pick_level("tandem.switch", RTE_LOG_INFO);
  if (g_logtype < 0) g_logtype = RTE_LOGTYPE_USER1;
  rte_log_set_level(g_logtype, static_cast<uint32_t>(level) + 1);
  cookie_io_functions_t io{nullptr, LogStreamWrite, nullptr, nullptr};
  if (FILE* f = fopencookie(nullptr, "w", io)) {
    setvbuf(f, nullptr, _IOFBF, 4096);  // rte_log flushes each message: one write
    rte_openlog_stream(f);
  }
}

template <typename... Args>
void Log(log::Level level, const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  rte_log(static_cast<uint32_t>(level) + 1, static_cast<uint32_t>(g_logtype), "%s\n",
          absl::StrFormat(fmt, args...).c_str());
}

void Die(const std::string& msg) {
  Log(log::Level::kErr, "%s", msg);
  std::exit(1);
}

bool IsVdev(const std::string& devargs) { return devargs.rfind("net_", 0) == 0; }

std::string DevName(const std::string& devargs) { return devargs.substr(0, devargs.find(',')); }

struct WorkerArg {
  Dataplane* dp;
  uint32_t index;
};

int WorkerMain(void* arg) {
  auto* w = static_cast<WorkerArg*>(arg);
  return RunWorker(*w->dp, w->index, static_cast<uint16_t>(w->index));
}

// A port's NUMA node; a virtual device (SOCKET_ID_ANY) is the main lcore's.
int PortSocket(uint16_t port_id) {
  int socket = rte_eth_dev_socket_id(port_id);
  return socket < 0 ? static_cast<int>(rte_socket_id()) : socket;
}

// Packet pools by NUMA node: a port receives into buffers on its own node, so
// its NIC writes and its worker reads local memory (docs/bare-metal.md).
std::map<int, rte_mempool*> g_rx_pools;
uint32_t g_pool_mbufs = 0;

rte_mempool* RxPool(int socket) {
  if (auto it = g_rx_pools.find(socket); it != g_rx_pools.end()) return it->second;
  // The pool of the copies is the first (main.cc, before the ports).
  rte_mempool* pool = rte_pktmbuf_pool_create(absl::StrCat("pkt-n", socket).c_str(), g_pool_mbufs,
                                              256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (pool) g_rx_pools[socket] = pool;
  return pool;
}

// Records a started port for the workers (dp.ports) and in the state.
void AddPort(Dataplane& dp, const PortConfig& pc, uint16_t id, uint32_t index, uint16_t queues) {
  Port port;
  port.id = id;
  port.role = pc.role;
  port.state_index = index;
  rte_ether_addr mac;
  rte_eth_macaddr_get(id, &mac);
  std::memcpy(port.mac, mac.addr_bytes, 6);
  dp.ports.push_back(port);

  tables::PortState& ps = dp.state.port(index);
  std::memset(&ps, 0, sizeof ps);
  std::snprintf(ps.name, sizeof ps.name, "%s", pc.name.c_str());
  std::snprintf(ps.devargs, sizeof ps.devargs, "%s", pc.devargs.c_str());
  std::memcpy(ps.mac, port.mac, 6);
  ps.rx_queues = queues;
  ps.tx_queues = queues;
  ps.present = 1;
}

absl::Status SetUpPort(Dataplane& dp, const PortConfig& pc, uint32_t index) {
  uint16_t id;
  if (rte_eth_dev_get_port_by_name(DevName(pc.devargs).c_str(), &id) != 0) {
    return absl::NotFoundError(absl::StrCat("port '", pc.name, "': no device ", pc.devargs));
  }
  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(id, &info); rc != 0) {
    return absl::InternalError(absl::StrCat("port '", pc.name, "': info: ", rte_strerror(-rc)));
  }
  uint16_t queues = static_cast<uint16_t>(dp.cfg.worker_lcores.size());
  if (info.max_rx_queues < queues || info.max_tx_queues < queues) {
    return absl::InvalidArgumentError(absl::StrCat(
        "port '", pc.name, "' has ", info.max_rx_queues, " RX / ", info.max_tx_queues,
        " TX queues, ", queues, " workers need one each (net_af_packet: qpairs=", queues, ")"));
  }
  rte_eth_conf conf{};
  if (queues > 1 && info.flow_type_rss_offloads) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
  }
  if (int rc = rte_eth_dev_configure(id, queues, queues, &conf); rc != 0) {
    return absl::InternalError(
        absl::StrCat("port '", pc.name, "': configure: ", rte_strerror(-rc)));
  }
  uint16_t rxd = dp.cfg.rx_ring, txd = dp.cfg.tx_ring;
  rte_eth_dev_adjust_nb_rx_tx_desc(id, &rxd, &txd);
  int socket = PortSocket(id);
  rte_mempool* pool = RxPool(socket);
  if (!pool) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "port '", pc.name, "': cannot create its packet pool on NUMA node ", socket, ": ",
        rte_strerror(rte_errno), " (give the EAL memory on that node, e.g. --socket-mem, or "
        "lower switch.mbufs)"));
  }
  Log(log::Level::kInfo, "port %s: NUMA node %d, packet pool %s", pc.name, socket, pool->name);
  for (uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(id, q, rxd, socket, nullptr, pool); rc != 0) {
      return absl::InternalError(absl::StrCat("port '", pc.name, "': RX queue: ", rte_strerror(-rc)));
    }
    if (int rc = rte_eth_tx_queue_setup(id, q, txd, socket, nullptr); rc != 0) {
      return absl::InternalError(absl::StrCat("port '", pc.name, "': TX queue: ", rte_strerror(-rc)));
    }
  }
  if (int rc = rte_eth_dev_start(id); rc != 0) {
    return absl::InternalError(absl::StrCat("port '", pc.name, "': start: ", rte_strerror(-rc)));
  }
  // ARP broadcasts and ND multicasts must reach us; some PMDs lack allmulticast.
  if (rte_eth_allmulticast_enable(id) != 0) rte_eth_promiscuous_enable(id);
  AddPort(dp, pc, id, index, queues);
  return absl::OkStatus();
}

void UpdatePortStats(Dataplane& dp) {
  for (const Port& p : dp.ports) {
    tables::PortState& ps = dp.state.port(p.state_index);
    rte_eth_stats st;
    if (rte_eth_stats_get(p.id, &st) == 0) {
      ps.ipackets = st.ipackets;
      ps.opackets = st.opackets;
      ps.ibytes = st.ibytes;
      ps.obytes = st.obytes;
      ps.imissed = st.imissed;
      ps.ierrors = st.ierrors;
      ps.oerrors = st.oerrors;
      ps.rx_nombuf = st.rx_nombuf;
    }
    rte_eth_link link;
    if (rte_eth_link_get_nowait(p.id, &link) == 0) {
      ps.link_up = link.link_status;
      ps.speed_mbps = link.link_speed;
    }
  }
}

// ---- DPDK telemetry: /tandem/stats, /tandem/workers, /tandem/tables ----

int TelemetryStats(const char*, const char*, rte_tel_data* d) {
  tables::WorkerCounters t = tables::SumWorkerCounters(g_dp->state);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "rx_packets", t.rx_packets);
  rte_tel_data_add_dict_u64(d, "rx_bytes", t.rx_bytes);
  rte_tel_data_add_dict_u64(d, "tx_packets", t.tx_packets);
  rte_tel_data_add_dict_u64(d, "tx_bytes", t.tx_bytes);
  rte_tel_data_add_dict_u64(d, "forwarded_in", t.forwarded_in);
  rte_tel_data_add_dict_u64(d, "slow_path", t.slow_path);
  rte_tel_data_add_dict_u64(d, "csum_completed", t.csum_completed);
  for (uint32_t i = 0; i < tables::kDropCount; ++i) {
    rte_tel_data_add_dict_u64(d, absl::StrCat("drop_", tables::DropName(tables::Drop(i))).c_str(),
                              t.drops[i]);
  }
  tables::NeighStatsSnapshot n = tables::ReadNeighStats(g_dp->state);
  rte_tel_data_add_dict_u64(d, "neighbour_entries", n.entries);
  rte_tel_data_add_dict_u64(d, "neighbour_conflicts", n.conflicts);
  rte_tel_data_add_dict_u64(d, "neighbour_moves", n.moves);
  rte_tel_data_add_dict_u64(d, "neighbour_evictions", n.evictions);
  rte_tel_data_add_dict_u64(d, "neighbour_refused", n.refused);
  return 0;
}

int TelemetryWorkers(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  uint64_t now = MonotonicNs();
  for (uint32_t w = 0; w < g_dp->cfg.worker_lcores.size(); ++w) {
    const tables::WorkerCounters& c = g_dp->state.worker_counters(w);
    const tables::WorkerHealth& h = g_dp->state.health(w);
    rte_tel_data* wd = rte_tel_data_alloc();
    rte_tel_data_start_dict(wd);
    rte_tel_data_add_dict_u64(wd, "lcore", h.lcore.load());
    rte_tel_data_add_dict_u64(wd, "rx_packets", c.rx_packets);
    rte_tel_data_add_dict_u64(wd, "tx_packets", c.tx_packets);
    rte_tel_data_add_dict_u64(wd, "idle_sleeps", c.idle_sleeps);
    uint64_t hb = h.heartbeat_ns.load();
    rte_tel_data_add_dict_u64(wd, "heartbeat_age_us", hb && now > hb ? (now - hb) / 1000 : 0);
    rte_tel_data_add_dict_container(d, absl::StrCat("worker", w).c_str(), wd, 0);
  }
  return 0;
}

int TelemetryTables(const char*, const char*, rte_tel_data* d) {
  const tables::TablesHeader& h = g_dp->tables.header();
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "role",
                               g_dp->tables.role() == tables::Role::kActive ? "active" : "standby");
  rte_tel_data_add_dict_u64(d, "epoch", g_dp->tables.epoch());
  rte_tel_data_add_dict_u64(d, "legs", h.leg_count.load());
  rte_tel_data_add_dict_u64(d, "leg_capacity", h.leg_capacity);
  rte_tel_data_add_dict_u64(d, "meetings", h.meeting_count.load());
  rte_tel_data_add_dict_u64(d, "changes", h.change_count.load());
  return 0;
}

// True while every worker's heartbeat is younger than pair.worker_stall_ms:
// the condition under which the main loop feeds systemd's watchdog, so a
// stalled worker (or a stuck main loop) gets the switch restarted.
bool WorkersHealthy(const Dataplane& dp, uint64_t now) {
  uint64_t stall = uint64_t{dp.cfg.worker_stall_ms} * 1000000;
  for (uint32_t w = 0; w < dp.cfg.worker_lcores.size(); ++w) {
    uint64_t hb = dp.state.health(w).heartbeat_ns.load(std::memory_order_relaxed);
    if (hb == 0 || (now > hb && now - hb > stall)) return false;
  }
  return true;
}

// The last tick of the slowest of this switch's threads: up to then every
// heartbeat that reached the port has been taken in.
uint64_t ListeningUntil(const Dataplane& dp, uint64_t now) {
  uint64_t until = now;
  for (uint32_t w = 0; w < dp.cfg.worker_lcores.size(); ++w) {
    uint64_t tick = dp.state.health(w).heartbeat_ns.load(std::memory_order_relaxed);
    if (tick != 0) until = std::min(until, tick);
  }
  return until;
}

// A stall of this switch (its main thread or a worker starved of CPU on a
// loaded host) is time it did not listen, not time the peer was silent: the
// peer's last-heard times move on by the stall, so that neither this node's
// control plane nor its alarms read it as the peer's death. Stalls shorter
// than two heartbeat intervals are ordinary scheduling and are not excused.
void ExcuseOwnStall(Dataplane& dp, uint64_t stall_ns, uint64_t now) {
  for (tables::PeerPath& peer : dp.state.header().peer) {
    if (peer.last_heard_ns == 0) continue;
    NeighTable::Write(peer, [&] {
      peer.last_heard_ns = std::min(now, peer.last_heard_ns + stall_ns);
    });
  }
  static uint64_t stalls = 0, logged_ns = 0;
  ++stalls;
  if (now - logged_ns >= 10'000'000'000ull) {  // at most one line in 10 s
    logged_ns = now;
    Log(log::Level::kNotice,
        "stalled %d ms without listening (%d stalls so far): the peer's silence meanwhile is "
        "not counted",
        stall_ns / 1000000, stalls);
  }
}

int MainLoop(Dataplane& dp, SlowPath& slow, xdp::SharedNic& shared_nic) {
  uint32_t main_index = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  tables::WorkerHealth& health = dp.state.health(main_index);
  tables::WorkerCounters& wc = dp.state.worker_counters(main_index);
  health.lcore.store(rte_lcore_id());
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint64_t last_stats = 0;
  uint64_t watchdog_ns = sd::WatchdogUsec() * 1000 / 4, last_watchdog = 0;
  bool healthy = true;
  uint64_t listened = MonotonicNs();
  const uint64_t stall_ns = 2ull * std::max<uint32_t>(dp.cfg.heartbeat_ms, 10) * 1000000ull;
  while (!dp.stop.load()) {
    uint64_t now = MonotonicNs();
    if (uint64_t until = ListeningUntil(dp, now); until > listened) {
      if (until - listened > stall_ns) ExcuseOwnStall(dp, until - listened, now);
      listened = until;
    }
    unsigned got = slow.Poll(now);
    shared_nic.Tick(dp.tables, now);  // XDP maps follow the VIPs and role
    if (now - last_stats > 100 * 1000000ull) {
      UpdatePortStats(dp);
      last_stats = now;
      bool h = WorkersHealthy(dp, now);
      if (h != healthy) {
        if (h) {
          Log(log::Level::kNotice, "every worker runs again");
        } else {
          Log(log::Level::kCrit, "a worker stalled (no heartbeat for %d ms)%s",
              dp.cfg.worker_stall_ms, watchdog_ns ? ": the watchdog is no longer fed" : "");
        }
        healthy = h;
      }
      if (watchdog_ns && healthy && now - last_watchdog >= watchdog_ns) {
        sd::WatchdogPing();
        last_watchdog = now;
      }
    }
    // The main thread's tick is the time up to which the switch took in
    // everything (stalls excused first): tandem-control judges the peer's
    // silence up to it, never past it.
    health.heartbeat_ns.store(listened, std::memory_order_relaxed);
    wc.loops++;
    if (got == 0) {
      // ARP and ND tolerate a millisecond; the workers' sleep is what
      // bounds media latency after idle.
      timespec ts{0, 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
  }
  return 0;
}

void PrintVersion() {
  std::printf("tandem-switch %s (commit %s)\nwire format %d, tables layout %d, state layout %d, %s\n",
              TANDEM_VERSION, TANDEM_COMMIT, mirror::kWireVersion, tables::kTablesVersion,
              tables::kStateVersion, rte_version());
}

void PrintHelp() {
  std::printf(
      "usage: tandem-switch --config FILE [--check-config]\n"
      "The DPDK data plane of a Tandem node. docs/config.md describes the file.\n\n"
      "  -c, --config FILE   the configuration (TOML); required\n"
      "      --check-config  check FILE (every key, the pair key file, shm_group)\n"
      "                      and exit: 0 when it is valid, 2 with the reason when not;\n"
      "                      starts nothing and creates nothing\n"
      "      --profile       count each worker's cycles per stage of the packet path\n"
      "                      (parse, lookup, admit, ...) and print them per packet at\n"
      "                      exit (docs/performance.md); costs a few clock reads a burst\n"
      "      --version       print the version, the commit and the format versions\n"
      "  -h, --help          print this help\n\n"
      "Logs go to stderr: with syslog priority prefixes under systemd, with time stamps\n"
      "otherwise; DPDK's log type of the switch is tandem.switch (EAL argument\n"
      "--log-level=tandem.switch:debug in eal.args, or log_level in the file).\n");
}

struct Options {
  std::string config_path;
  bool check_only = false;
  bool profile = false;
};

// The options, or the exit code when the command line says to stop (help,
// version, a usage error).
std::optional<int> ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      o.config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      o.config_path = a.substr(9);
    } else if (a == "--check-config") {
      o.check_only = true;
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--version") {
      PrintVersion();
      return 0;
    } else if (a == "--help" || a == "-h") {
      PrintHelp();
      return 0;
    } else {
      std::fprintf(stderr, "tandem-switch: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  if (o.config_path.empty()) {
    std::fprintf(stderr, "tandem-switch: --config FILE is required (try --help)\n");
    return 2;
  }
  return std::nullopt;
}

// The configuration with its shm_group looked up; the exit code when it is
// wrong or when only a check was asked for.
std::optional<int> LoadConfig(const Options& o, SwitchConfig& cfg,
                              std::optional<gid_t>& shm_group) {
  auto loaded = LoadSwitchConfig(o.config_path);
  absl::Status checked = loaded.status();
  if (loaded.ok() && !loaded->shm_group.empty()) {
    auto g = LookupGroup(loaded->shm_group);
    if (g.ok()) {
      shm_group = *g;
    } else {
      checked = absl::InvalidArgumentError(
          absl::StrCat(o.config_path, ": shm_group ", g.status().message()));
    }
  }
  if (!checked.ok()) {
    std::fprintf(stderr, "tandem-switch: %s\n", std::string(checked.message()).c_str());
    return o.check_only ? 2 : 1;
  }
  if (o.check_only) {
    std::printf("%s: ok\n", o.config_path.c_str());
    return 0;
  }
  cfg = *loaded;
  return std::nullopt;
}

// EAL arguments: lcores and devices from the configuration, then extras.
std::vector<std::string> EalArgs(const SwitchConfig& cfg) {
  std::vector<std::string> args = {"tandem-switch"};
  std::vector<unsigned> lcores = {cfg.main_lcore};
  lcores.insert(lcores.end(), cfg.worker_lcores.begin(), cfg.worker_lcores.end());
  if (cfg.cpus.empty()) {
    args.push_back("-l");
    args.push_back(absl::StrJoin(lcores, ","));
  } else {
    std::vector<std::string> map;
    for (size_t i = 0; i < lcores.size(); ++i) {
      map.push_back(absl::StrCat(lcores[i], "@", cfg.cpus[i]));
    }
    args.push_back("--lcores");
    args.push_back(absl::StrJoin(map, ","));
  }
  args.push_back("--main-lcore");
  args.push_back(absl::StrCat(cfg.main_lcore));
  bool any_pci = false;
  for (const auto& p : cfg.ports) {
    if (IsVdev(p.devargs)) {
      args.push_back("--vdev");
    } else {
      args.push_back("-a");
      any_pci = true;
    }
    args.push_back(p.devargs);
  }
  if (!any_pci) args.push_back("--no-pci");
  args.insert(args.end(), cfg.eal_args.begin(), cfg.eal_args.end());
  return args;
}

void InitEal(Dataplane& dp) {
  std::vector<std::string> args = EalArgs(dp.cfg);
  std::vector<char*> eal_argv;
  for (auto& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    Die(absl::StrCat("EAL init failed: ", rte_strerror(rte_errno), " (arguments: ",
                     absl::StrJoin(args, " "), ")"));
  }
  dp.tsc_hz = rte_get_tsc_hz();
  // dpdk-dumpcap (a secondary process, same --file-prefix) may capture any
  // port while the switch forwards: docs/operations.md, "Packet capture".
  if (rte_pdump_init() != 0) {
    Log(log::Level::kWarning, "packet capture unavailable: rte_pdump_init: %s",
        rte_strerror(rte_errno));
  }
}

// The tables and the state in shared memory, mapped for the life of the
// process; the state's header says which switch runs.
void MapSharedMemory(Dataplane& dp, std::optional<gid_t> shm_group) {
  if (auto st = PreparePrivateDir(dp.cfg.shm_dir, shm_group); !st.ok()) {
    Die(std::string(st.message()));
  }
  auto t = tables::OpenOrCreateTables(tables::TablesPath(dp.cfg.shm_dir, dp.cfg.node),
                                      dp.cfg.capacity);
  if (!t.ok()) Die(std::string(t.status().message()));
  static tables::Mapping tables_map = std::move(t->first);
  dp.tables = t->second;
  uint32_t workers = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  // One more counters/health block for the main thread.
  auto s = tables::OpenOrCreateState(tables::StatePath(dp.cfg.shm_dir, dp.cfg.node),
                                     dp.tables.leg_capacity(), workers + 1);
  if (!s.ok()) Die(std::string(s.status().message()));
  static tables::Mapping state_map = std::move(s->first);
  if (absl::Status l = tables::LockState(state_map, tables::StatePath(dp.cfg.shm_dir, dp.cfg.node));
      !l.ok()) {
    Die(std::string(l.message()));
  }
  dp.state = s->second;
  tables::StateHeader& sh = dp.state.header();
  if (sh.switch_pid.load() != 0) sh.restarts.fetch_add(1);
  sh.switch_pid.store(getpid());
  sh.n_workers.store(workers);
  sh.started_unix_ns.store(UnixNs());
  sh.tsc_hz.store(dp.tsc_hz);
  sh.heartbeat_node_id.store(dp.cfg.pair_node_id);
  if (dp.cfg.pair_node_id != 0 && dp.tables.role() == tables::Role::kActive) {
    dp.hold_active.store(true);
    Log(log::Level::kNotice, "the tables say active: holding until the peer is heard");
  }
  dp.neigh = NeighTable(&dp.state.neigh(0));
}

// The pools for copies (full, header, clone) are on the access port's node,
// where most copies leave; each port's RX pool is on its own node (RxPool).
void CreatePools(Dataplane& dp) {
  uint32_t nb_ports = static_cast<uint32_t>(dp.cfg.ports.size());
  uint32_t workers = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  uint32_t mbufs = std::max<uint32_t>(dp.cfg.mbufs,
                                      nb_ports * workers * (dp.cfg.rx_ring + dp.cfg.tx_ring) + 4096);
  g_pool_mbufs = mbufs;
  int copy_socket = static_cast<int>(rte_socket_id());
  for (const PortConfig& pc : dp.cfg.ports) {
    uint16_t id;
    if (pc.role == PortRole::kAccess &&
        rte_eth_dev_get_port_by_name(DevName(pc.devargs).c_str(), &id) == 0) {
      copy_socket = PortSocket(id);
    }
  }
  dp.pool = rte_pktmbuf_pool_create(absl::StrCat("pkt-n", copy_socket).c_str(), mbufs, 256, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, copy_socket);
  if (dp.pool) g_rx_pools[copy_socket] = dp.pool;
  dp.hdr_pool = rte_pktmbuf_pool_create("hdr", mbufs, 256, 0, RTE_PKTMBUF_HEADROOM + 128,
                                        copy_socket);
  dp.clone_pool = rte_pktmbuf_pool_create("clone", mbufs, 256, 0, 0, copy_socket);
  if (!dp.pool || !dp.hdr_pool || !dp.clone_pool) {
    Die(absl::StrCat("cannot create mbuf pools of ", mbufs, " mbufs: ", rte_strerror(rte_errno),
                     " (give the EAL more memory, e.g. -m 1024, or lower switch.mbufs)"));
  }
}

// Every port started, shared-NIC steering attached, both shown in the state.
void SetUpPorts(Dataplane& dp, xdp::SharedNic& shared_nic) {
  uint32_t nb_ports = static_cast<uint32_t>(dp.cfg.ports.size());
  for (uint32_t i = 0; i < nb_ports; ++i) {
    if (auto st = SetUpPort(dp, dp.cfg.ports[i], i); !st.ok()) Die(std::string(st.message()));
  }
  dp.state.header().n_ports.store(nb_ports);
  UpdatePortStats(dp);
  if (auto st = shared_nic.Attach(dp.cfg); !st.ok()) Die(std::string(st.message()));
  for (const xdp::PortSteering& p : shared_nic.ports()) {
    for (uint32_t i = 0; i < nb_ports; ++i) {
      tables::PortState& ps = dp.state.port(i);
      if (p.port_name() != ps.name) continue;
      std::snprintf(ps.xdp_mode, sizeof ps.xdp_mode, "%s, %s", p.info().attach_mode.c_str(),
                    p.info().socket_mode.c_str());
    }
  }
  shared_nic.Tick(dp.tables, MonotonicNs());
}

void RegisterTelemetry(xdp::SharedNic& shared_nic) {
  rte_telemetry_register_cmd("/tandem/stats", TelemetryStats,
                             "Switch totals and drops by reason. No parameters");
  rte_telemetry_register_cmd("/tandem/workers", TelemetryWorkers,
                             "Per-worker counters and heartbeat age. No parameters");
  rte_telemetry_register_cmd("/tandem/tables", TelemetryTables,
                             "Role, epoch and table occupancy. No parameters");
  shared_nic.RegisterTelemetry();
}

void LaunchWorkers(Dataplane& dp) {
  uint32_t workers = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  static std::vector<WorkerArg> wargs(workers);
  for (uint32_t w = 0; w < workers; ++w) {
    wargs[w] = {&dp, w};
    if (rte_eal_remote_launch(WorkerMain, &wargs[w], dp.cfg.worker_lcores[w]) != 0) {
      Die(absl::StrCat("cannot launch worker on lcore ", dp.cfg.worker_lcores[w]));
    }
  }
}

// After the main loop: the workers stopped, the ports closed, the state says
// no switch runs.
void ShutDown(Dataplane& dp, xdp::SharedNic& shared_nic) {
  rte_eal_mp_wait_lcore();
  if (dp.profile) {
    // On stdout, apart from the log: scripts/bench/ reads it.
    std::fputs(FormatProfile(dp.profiles, dp.tsc_hz).c_str(), stdout);
    std::fflush(stdout);
  }
  shared_nic.LogCounters();
  for (const Port& p : dp.ports) {
    rte_eth_dev_stop(p.id);
    rte_eth_dev_close(p.id);
  }
  shared_nic.CheckDetached();  // net_af_xdp detaches on close; verify
  dp.state.header().switch_pid.store(0);
  rte_pdump_uninit();
  Log(log::Level::kNotice, "stopped");
  rte_eal_cleanup();
}

int Main(int argc, char** argv) {
  log::Init("tandem-switch");
  Options opts;
  if (std::optional<int> exit_code = ParseArgs(argc, argv, opts)) return *exit_code;
  SwitchConfig cfg;
  std::optional<gid_t> shm_group;
  if (std::optional<int> exit_code = LoadConfig(opts, cfg, shm_group)) return *exit_code;
  InitLog(cfg.log_level);

  static Dataplane dp;
  dp.cfg = cfg;
  g_dp = &dp;
  // Shared-NIC ports: xdp_prog= in their devargs, stale programs removed.
  static xdp::SharedNic shared_nic;
  if (auto st = shared_nic.Prepare(dp.cfg); !st.ok()) Die(std::string(st.message()));
  InitEal(dp);
  MapSharedMemory(dp, shm_group);
  uint32_t workers = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  dp.profile = opts.profile;
  if (opts.profile) dp.profiles.resize(workers);
  CreatePools(dp);
  if (auto st = CreateSlowRings(dp); !st.ok()) Die(std::string(st.message()));
  SetUpPorts(dp, shared_nic);
  if (dp.cfg.telemetry) RegisterTelemetry(shared_nic);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  // Before the workers: it adopts the neighbour table a previous switch left.
  static SlowPath slow(dp);
  LaunchWorkers(dp);
  std::string role = dp.tables.role() == tables::Role::kActive ? "active" : "standby";
  Log(log::Level::kNotice,
      "node %s, %d worker(s), tables %s (%d legs in use of %d), role %s epoch %d", dp.cfg.node,
      workers, tables::TablesPath(dp.cfg.shm_dir, dp.cfg.node), dp.tables.header().leg_count.load(),
      dp.tables.leg_capacity(), role, dp.tables.epoch());
  Log(log::Level::kNotice, "forwarding");
  sd::Ready(absl::StrCat("forwarding: node ", dp.cfg.node, ", ", workers, " worker(s), ", role));
  MainLoop(dp, slow, shared_nic);
  sd::Stopping();
  ShutDown(dp, shared_nic);
  return 0;
}

}  // namespace
}  // namespace tandem::sw

int main(int argc, char** argv) { return tandem::sw::Main(argc, argv); }
