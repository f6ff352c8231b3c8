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
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secure_file.h"
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

void Die(const std::string& msg) {
  std::fprintf(stderr, "tandem-switch: %s\n", msg.c_str());
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
  int socket = rte_eth_dev_socket_id(id);
  for (uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(id, q, rxd, socket, nullptr, dp.pool); rc != 0) {
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
    std::fprintf(stderr,
                 "tandem-switch: stalled %llu ms without listening (%llu stalls so far): "
                 "the peer's silence meanwhile is not counted\n",
                 static_cast<unsigned long long>(stall_ns / 1000000),
                 static_cast<unsigned long long>(stalls));
  }
}

int MainLoop(Dataplane& dp, SlowPath& slow, xdp::SharedNic& shared_nic) {
  uint32_t main_index = static_cast<uint32_t>(dp.cfg.worker_lcores.size());
  tables::WorkerHealth& health = dp.state.health(main_index);
  tables::WorkerCounters& wc = dp.state.worker_counters(main_index);
  health.lcore.store(rte_lcore_id());
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint64_t last_stats = 0;
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

int Main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: tandem-switch --config FILE.toml\n"
          "The DPDK data plane of a Tandem node; see docs/config.md for the file.\n");
      return 0;
    } else {
      Die(absl::StrCat("unknown argument '", a, "' (try --help)"));
    }
  }
  if (config_path.empty()) Die("--config FILE is required (try --help)");
  auto cfg = LoadSwitchConfig(config_path);
  if (!cfg.ok()) Die(std::string(cfg.status().message()));
  std::optional<gid_t> shm_group;
  if (!cfg->shm_group.empty()) {
    auto g = LookupGroup(cfg->shm_group);
    if (!g.ok()) Die(absl::StrCat(config_path, ": shm_group ", g.status().message()));
    shm_group = *g;
  }

  static Dataplane dp;
  dp.cfg = *cfg;
  g_dp = &dp;
  // Shared-NIC ports: xdp_prog= in their devargs, stale programs removed.
  static xdp::SharedNic shared_nic;
  if (auto st = shared_nic.Prepare(dp.cfg); !st.ok()) Die(std::string(st.message()));

  // EAL arguments: lcores and devices from the configuration, then extras.
  std::vector<std::string> args = {"tandem-switch"};
  std::vector<unsigned> lcores = {dp.cfg.main_lcore};
  lcores.insert(lcores.end(), dp.cfg.worker_lcores.begin(), dp.cfg.worker_lcores.end());
  args.push_back("-l");
  args.push_back(absl::StrJoin(lcores, ","));
  args.push_back("--main-lcore");
  args.push_back(absl::StrCat(dp.cfg.main_lcore));
  bool any_pci = false;
  for (const auto& p : dp.cfg.ports) {
    if (IsVdev(p.devargs)) {
      args.push_back("--vdev");
    } else {
      args.push_back("-a");
      any_pci = true;
    }
    args.push_back(p.devargs);
  }
  if (!any_pci) args.push_back("--no-pci");
  args.insert(args.end(), dp.cfg.eal_args.begin(), dp.cfg.eal_args.end());
  std::vector<char*> eal_argv;
  for (auto& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    Die(absl::StrCat("EAL init failed: ", rte_strerror(rte_errno), " (arguments: ",
                     absl::StrJoin(args, " "), ")"));
  }
  dp.tsc_hz = rte_get_tsc_hz();

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
    std::fprintf(stderr,
                 "tandem-switch: the tables say active: holding until the peer is heard\n");
  }
  dp.neigh = NeighTable(&dp.state.neigh(0));

  unsigned nb_ports = static_cast<unsigned>(dp.cfg.ports.size());
  uint32_t mbufs = std::max<uint32_t>(dp.cfg.mbufs,
                                      nb_ports * workers * (dp.cfg.rx_ring + dp.cfg.tx_ring) + 4096);
  dp.pool = rte_pktmbuf_pool_create("pkt", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    rte_socket_id());
  dp.hdr_pool = rte_pktmbuf_pool_create("hdr", mbufs, 256, 0, RTE_PKTMBUF_HEADROOM + 128,
                                        rte_socket_id());
  dp.clone_pool = rte_pktmbuf_pool_create("clone", mbufs, 256, 0, 0, rte_socket_id());
  if (!dp.pool || !dp.hdr_pool || !dp.clone_pool) {
    Die(absl::StrCat("cannot create mbuf pools of ", mbufs, " mbufs: ", rte_strerror(rte_errno),
                     " (give the EAL more memory, e.g. -m 1024, or lower switch.mbufs)"));
  }
  if (auto st = CreateSlowRings(dp); !st.ok()) Die(std::string(st.message()));
  for (uint32_t i = 0; i < nb_ports; ++i) {
    if (auto st = SetUpPort(dp, dp.cfg.ports[i], i); !st.ok()) Die(std::string(st.message()));
  }
  sh.n_ports.store(nb_ports);
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

  if (dp.cfg.telemetry) {
    rte_telemetry_register_cmd("/tandem/stats", TelemetryStats,
                               "Switch totals and drops by reason. No parameters");
    rte_telemetry_register_cmd("/tandem/workers", TelemetryWorkers,
                               "Per-worker counters and heartbeat age. No parameters");
    rte_telemetry_register_cmd("/tandem/tables", TelemetryTables,
                               "Role, epoch and table occupancy. No parameters");
    shared_nic.RegisterTelemetry();
  }

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  // Before the workers: it adopts the neighbour table a previous switch left.
  static SlowPath slow(dp);
  static std::vector<WorkerArg> wargs(workers);
  for (uint32_t w = 0; w < workers; ++w) {
    wargs[w] = {&dp, w};
    if (rte_eal_remote_launch(WorkerMain, &wargs[w], dp.cfg.worker_lcores[w]) != 0) {
      Die(absl::StrCat("cannot launch worker on lcore ", dp.cfg.worker_lcores[w]));
    }
  }
  std::fprintf(stderr,
               "tandem-switch: node %s, %u worker(s), tables %s (%u legs in use of %u), role %s "
               "epoch %llu\n",
               dp.cfg.node.c_str(), workers,
               tables::TablesPath(dp.cfg.shm_dir, dp.cfg.node).c_str(),
               dp.tables.header().leg_count.load(), dp.tables.leg_capacity(),
               dp.tables.role() == tables::Role::kActive ? "active" : "standby",
               static_cast<unsigned long long>(dp.tables.epoch()));
  std::fprintf(stderr, "tandem-switch: forwarding\n");
  std::fflush(stderr);
  MainLoop(dp, slow, shared_nic);

  rte_eal_mp_wait_lcore();
  shared_nic.LogCounters();
  for (const Port& p : dp.ports) {
    rte_eth_dev_stop(p.id);
    rte_eth_dev_close(p.id);
  }
  shared_nic.CheckDetached();  // net_af_xdp detaches on close; verify
  sh.switch_pid.store(0);
  rte_eal_cleanup();
  std::fprintf(stderr, "tandem-switch: stopped\n");
  return 0;
}

}  // namespace
}  // namespace tandem::sw

int main(int argc, char** argv) { return tandem::sw::Main(argc, argv); }
