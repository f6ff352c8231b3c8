// The core's reports of the node: GetStatus and the Prometheus metrics
// (tables, the switch's counters from its state region, the store).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "control/core.h"

namespace tandem::control {
namespace {

// A neighbour conflict keeps its alarm raised this long (CLOCK_MONOTONIC ns).
constexpr uint64_t kAlarmHoldNs = 60'000'000'000ull;

std::string MacText(const uint8_t m[6]) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

const char* RoleName(tables::Role r) { return r == tables::Role::kActive ? "active" : "standby"; }

}  // namespace

// ---------------------------------------------------------------- status

absl::Status Core::GetStatus(const v1::GetStatusRequest& req, v1::NodeStatus* out) {
  absl::MutexLock lock(&mu_);
  RefreshState();
  const tables::TablesView& v = model_->writer().view();
  out->set_node(config_.node);
  out->set_role(RoleName(v.role()));
  out->set_epoch(v.epoch());
  for (const IpAddr& a : v.Vips()) out->add_vips(a.ToString());
  out->set_legs(model_->writer().leg_count());
  out->set_leg_capacity(v.leg_capacity());
  out->set_meetings(model_->writer().meeting_count());
  out->set_meeting_capacity(v.meeting_capacity());
  out->set_sites(model_->indexes().sites.size());
  out->set_change_seq(model_->changes().last_seq());
  out->set_log_id(model_->changes().log_id());
  out->set_pool_free(model_->pool().pool_free());
  out->set_version("0.1.0");
  if (!have_state_) return absl::OkStatus();
  int32_t pid = state_.header().switch_pid.load(std::memory_order_acquire);
  out->set_switch_pid(pid);
  out->set_switch_running(pid > 0 && kill(pid, 0) == 0);
  out->set_switch_restarts(state_.header().restarts.load());
  FillStatusWorkers(out);
  {
    uint64_t now = MonotonicNs();
    tables::NeighStatsSnapshot n = tables::ReadNeighStats(state_);
    out->set_neighbour_conflicts(n.conflicts);
    out->set_neighbour_entries(n.entries);
    bool recent = n.last_conflict_ns && now - std::min(now, n.last_conflict_ns) < kAlarmHoldNs;
    out->set_alarms(recent ? "neighbour_conflict" : "none");
    if (n.last_conflict_ns) {
      out->set_last_neighbour_conflict(absl::StrFormat(
          "%s claimed by %s, kept %s, %.1f s ago", n.last_conflict_ip.ToString(),
          MacText(n.last_conflict_mac), MacText(n.last_conflict_owner),
          double(now - std::min(now, n.last_conflict_ns)) / 1e9));
    }
  }
  tables::WorkerCounters t = tables::SumWorkerCounters(state_);
  out->set_rx_packets(t.rx_packets);
  out->set_tx_packets(t.tx_packets);
  for (uint32_t d = 0; d < tables::kDropCount; ++d) {
    (*out->mutable_drops())[tables::DropName(static_cast<tables::Drop>(d))] = t.drops[d];
  }
  FillStatusPorts(out);
  if (req.include_neighbours()) FillStatusNeighbours(out);
  return absl::OkStatus();
}

void Core::FillStatusWorkers(v1::NodeStatus* out) {
  const tables::StateHeader& h = state_.header();
  uint64_t now = MonotonicNs();
  uint32_t workers = std::min(h.n_workers.load(), state_.max_workers());
  for (uint32_t w = 0; w < workers; ++w) {
    const tables::WorkerHealth& wh = state_.health(w);
    const tables::WorkerCounters& wc = state_.worker_counters(w);
    v1::WorkerStatus* ws = out->add_workers();
    ws->set_index(w);
    ws->set_lcore(wh.lcore.load());
    ws->set_sleeping(wh.sleeping.load());
    uint64_t hb = wh.heartbeat_ns.load();
    uint64_t age = hb && now > hb ? (now - hb) / 1000000 : 0;
    ws->set_heartbeat_age_ms(age);
    ws->set_healthy(out->switch_running() && hb != 0 && age < 1000);
    ws->set_rx_packets(wc.rx_packets);
    ws->set_tx_packets(wc.tx_packets);
    uint64_t drops = 0;
    for (uint32_t d = 0; d < tables::kDropCount; ++d) drops += wc.drops[d];
    ws->set_drops(drops);
  }
}

void Core::FillStatusPorts(v1::NodeStatus* out) {
  const tables::StateHeader& h = state_.header();
  uint32_t ports = std::min(h.n_ports.load(), tables::kMaxPorts);
  for (uint32_t i = 0; i < ports; ++i) {
    const tables::PortState& p = state_.port(i);
    if (!p.present) continue;
    v1::PortStatus* ps = out->add_ports();
    ps->set_name(std::string(p.name, strnlen(p.name, sizeof p.name)));
    ps->set_devargs(std::string(p.devargs, strnlen(p.devargs, sizeof p.devargs)));
    ps->set_mac(absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2],
                                p.mac[3], p.mac[4], p.mac[5]));
    ps->set_link_up(p.link_up);
    ps->set_speed_mbps(p.speed_mbps);
    ps->set_ipackets(p.ipackets);
    ps->set_opackets(p.opackets);
    ps->set_ibytes(p.ibytes);
    ps->set_obytes(p.obytes);
    ps->set_imissed(p.imissed);
    ps->set_ierrors(p.ierrors);
    ps->set_oerrors(p.oerrors);
    ps->set_xdp_mode(std::string(p.xdp_mode, strnlen(p.xdp_mode, sizeof p.xdp_mode)));
  }
}

void Core::FillStatusNeighbours(v1::NodeStatus* out) {
  static const char* kStates[] = {"free", "incomplete", "reachable", "stale"};
  for (uint32_t i = 0; i < tables::kNeighCapacity; ++i) {
    const tables::NeighEntry& e = state_.neigh(i);
    // Sequence lock: retry a torn read a few times, then skip the entry.
    for (int attempt = 0; attempt < 4; ++attempt) {
      uint32_t s1 = e.seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      uint8_t st = e.state.load(std::memory_order_relaxed);
      IpAddr ip = e.ip;
      uint8_t mac[6];
      std::memcpy(mac, e.mac, 6);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (e.seq.load(std::memory_order_relaxed) != s1) continue;
      if (st != 0 && st < 4) {
        v1::Neighbour* n = out->add_neighbours();
        n->set_ip(ip.ToString());
        n->set_mac(absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                                   mac[3], mac[4], mac[5]));
        n->set_state(kStates[st]);
      }
      break;
    }
  }
}

// ---------------------------------------------------------------- metrics

std::string Core::RenderMetrics() {
  absl::MutexLock lock(&mu_);
  RefreshState();
  MetricsText m;
  const tables::TablesView& v = model_->writer().view();
  m.Gauge("tandem_role_active", "1 when this node's tables say active",
          v.role() == tables::Role::kActive ? 1 : 0);
  m.Gauge("tandem_epoch", "epoch of this node's role", double(v.epoch()));
  m.Gauge("tandem_legs", "live legs in the session tables", double(model_->writer().leg_count()));
  m.Gauge("tandem_legs_capacity", "leg capacity of the session tables", v.leg_capacity());
  m.Gauge("tandem_meetings_live", "live meetings in the session tables",
          double(model_->writer().meeting_count()));
  m.Gauge("tandem_meetings_capacity", "meeting capacity of the session tables",
          v.meeting_capacity());
  uint64_t by_state[4] = {};
  for (const auto& [id, mt] : model_->indexes().meetings) by_state[mt.state() & 3]++;
  const char* help = "meetings in the store by state";
  m.Gauge("tandem_meetings", help, double(by_state[v1::SCHEDULED]), {{"state", "scheduled"}});
  m.Gauge("tandem_meetings", help, double(by_state[v1::LIVE]), {{"state", "live"}});
  m.Gauge("tandem_meetings", help, double(by_state[v1::ENDED]), {{"state", "ended"}});
  m.Gauge("tandem_sites", "sites in the store", double(model_->indexes().sites.size()));
  uint64_t present = 0;
  for (const auto& [id, live] : model_->indexes().live) present += live.present;
  m.Gauge("tandem_participants", "participants present in live meetings", double(present));
  m.Gauge("tandem_pool_free", "local addresses left in the VIP pool", double(model_->pool().pool_free()));
  m.Counter("tandem_changes_total", "changes appended to the watch log",
            double(model_->changes().last_seq()));
  int32_t pid = have_state_ ? state_.header().switch_pid.load() : 0;
  bool up = pid > 0 && kill(pid, 0) == 0;
  m.Gauge("tandem_switch_up", "1 when the switch process of this node runs", up ? 1 : 0);
  if (have_state_) AddSwitchMetrics(m);
  return m.Serialize();
}

void Core::AddSwitchMetrics(MetricsText& m) {
  const tables::StateHeader& h = state_.header();
  m.Counter("tandem_switch_restarts_total", "times a switch adopted the state region",
            double(h.restarts.load()));
  tables::WorkerCounters t = tables::SumWorkerCounters(state_);
  m.Counter("tandem_rx_packets_total", "packets received by the workers", double(t.rx_packets));
  m.Counter("tandem_rx_bytes_total", "bytes received by the workers", double(t.rx_bytes));
  m.Counter("tandem_tx_packets_total", "packets sent by the workers", double(t.tx_packets));
  m.Counter("tandem_tx_bytes_total", "bytes sent by the workers", double(t.tx_bytes));
  m.Counter("tandem_forwarded_packets_total", "packets that matched a leg and fanned out",
            double(t.forwarded_in));
  m.Counter("tandem_slow_path_packets_total", "packets handed to the main thread",
            double(t.slow_path));
  m.Counter("tandem_udp_checksums_completed_total",
            "media packets that came with a partial UDP checksum (sender's offload)",
            double(t.csum_completed));
  for (uint32_t d = 0; d < tables::kDropCount; ++d) {
    m.Counter("tandem_dropped_packets_total", "packets dropped, by reason", double(t.drops[d]),
              {{"reason", tables::DropName(static_cast<tables::Drop>(d))}});
  }
  uint32_t workers = std::min(h.n_workers.load(), state_.max_workers());
  uint64_t now = MonotonicNs();
  m.Declare("tandem_worker_heartbeat_age_seconds", "time since a worker's last heartbeat", false);
  m.Declare("tandem_worker_rx_packets_total", "packets received, per worker", true);
  for (uint32_t w = 0; w < workers; ++w) {
    uint64_t hb = state_.health(w).heartbeat_ns.load();
    double age = hb && now > hb ? double(now - hb) / 1e9 : 0;
    std::string worker = absl::StrCat(w);
    m.Gauge("tandem_worker_heartbeat_age_seconds", "", age, {{"worker", worker}});
    m.Counter("tandem_worker_rx_packets_total", "", double(state_.worker_counters(w).rx_packets),
              {{"worker", worker}});
  }
  uint32_t ports = std::min(h.n_ports.load(), tables::kMaxPorts);
  m.Declare("tandem_port_link_up", "1 when a port's link is up", false);
  m.Declare("tandem_port_packets_total", "packets through a port (NIC counters)", true);
  m.Declare("tandem_port_missed_packets_total", "packets a port dropped for lack of room", true);
  m.Declare("tandem_port_errors_total", "port errors (NIC counters)", true);
  for (uint32_t i = 0; i < ports; ++i) {
    const tables::PortState& p = state_.port(i);
    if (!p.present) continue;
    std::string port(p.name, strnlen(p.name, sizeof p.name));
    m.Gauge("tandem_port_link_up", "", p.link_up ? 1 : 0, {{"port", port}});
    m.Counter("tandem_port_packets_total", "", double(p.ipackets),
              {{"port", port}, {"direction", "rx"}});
    m.Counter("tandem_port_packets_total", "", double(p.opackets),
              {{"port", port}, {"direction", "tx"}});
    m.Counter("tandem_port_missed_packets_total", "", double(p.imissed), {{"port", port}});
    m.Counter("tandem_port_errors_total", "", double(p.ierrors),
              {{"port", port}, {"direction", "rx"}});
    m.Counter("tandem_port_errors_total", "", double(p.oerrors),
              {{"port", port}, {"direction", "tx"}});
  }
  AddNeighbourMetrics(m);
}

void Core::AddNeighbourMetrics(MetricsText& m) {
  tables::NeighStatsSnapshot n = tables::ReadNeighStats(state_);
  uint64_t now = MonotonicNs();
  m.Gauge("tandem_neighbour_entries", "entries of the switch's neighbour table in use",
          double(n.entries));
  m.Counter("tandem_neighbour_conflicts_total",
            "addresses claimed or answered for by two MACs (the entry kept its MAC)",
            double(n.conflicts));
  m.Counter("tandem_neighbour_moves_total",
            "neighbour entries moved to a MAC that alone answered the switch's probes",
            double(n.moves));
  m.Counter("tandem_neighbour_evictions_total", "neighbour entries freed (unanswered probes)",
            double(n.evictions));
  m.Counter("tandem_neighbour_refused_total",
            "neighbour resolutions refused because the table was full", double(n.refused));
  bool recent = n.last_conflict_ns && now - std::min(now, n.last_conflict_ns) < kAlarmHoldNs;
  m.Gauge("tandem_neighbour_conflict_alarm",
          "1 while a neighbour conflict was seen within the last minute", recent ? 1 : 0);
}

}  // namespace tandem::control
