// The pair's status and metrics, gathered by whoever serves them (the API's
// GetStatus, the /metrics handler) from what Pair::Loop publishes.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control/metrics.h"
#include "control/pair.h"

namespace tandem::control {

void Pair::PublishStatus(absl::Time now) {
  v1::PairStatus s;
  s.set_node_id(cfg_.node_id);
  s.set_peer_node_id(cfg_.peer_node_id);
  s.set_mode(cfg_.strict ? "sync-strict" : cfg_.sync ? "sync" : "async");
  const bool active = core_.node_role() == tables::Role::kActive;
  s.set_peer_api(cfg_.peer_api);
  s.set_position(core_.changes().last_seq());
  if (routing_) {
    RoutingStatus r = routing_->status();
    s.set_routing_wanted(AnnouncementName(r.wanted));
    s.set_routing_announced(AnnouncementName(r.announced));
    s.set_routing_applied(r.applied);
    s.set_routing_sessions_up(static_cast<uint32_t>(r.sessions_up));
    s.set_routing_sessions(static_cast<uint32_t>(r.sessions));
    s.set_routing_error(r.error);
  }
  {
    absl::MutexLock lock(&mu_);
    if (!machine_) {
      s.set_peer_state("starting");
      absl::MutexLock slock(&status_mu_);
      status_ = std::move(s);
      return;
    }
    std::vector<std::string> alarms;
    PeerStatus(now, &s, &alarms);
    HealthAndRefusals(&s);
    ReplicationStatus(active, &s, &alarms);
    s.set_alarms(alarms.empty() ? "none" : absl::StrJoin(alarms, ","));
  }
  absl::MutexLock lock(&status_mu_);
  s.set_takeovers(takeovers_);
  s.set_compare_seq(compare_seq_);
  s.set_compare_result(compare_result_);
  s.set_drift_repairs(drift_repairs_);
  s.set_takeover_log_id(takeover_log_id_);
  s.set_takeover_position(takeover_position_);
  s.set_takeover_peer_position(takeover_peer_position_);
  s.set_lost_writes(lost_state_);
  s.set_lost_changes(lost_changes_.size());
  if (WritesLostAlarm()) {
    s.set_alarms(s.alarms() == "none" ? "writes_lost" : absl::StrCat(s.alarms(), ",writes_lost"));
  }
  status_ = std::move(s);
}

void Pair::PeerStatus(absl::Time now, v1::PairStatus* out, std::vector<std::string>* alarms) {
  v1::PairStatus& s = *out;
  const auto& peer = machine_->peer();
  bool backbone = machine_->peer_heard(mirror::Path::kBackbone, now);
  bool access = routing_ ? backbone  // routed: no access path between the DCs
                         : machine_->peer_heard(mirror::Path::kAccess, now);
  if (!peer) {
    s.set_peer_state("never heard");
  } else if (access && backbone) {
    s.set_peer_state("up");
  } else if (access) {
    s.set_peer_state("backbone down");
  } else if (backbone) {
    s.set_peer_state("access path down");
  } else {
    s.set_peer_state("lost");
  }
  if (peer) {
    s.set_peer_role(mirror::RoleName(peer->role));
    s.set_peer_epoch(peer->epoch);
    s.set_peer_position(peer->position);
    s.set_peer_data_plane_ok(peer->data_plane_ok);
    s.set_peer_access_link_up(peer->access_link_up);
  }
  if (machine_->alarms().any()) alarms->push_back(machine_->alarms().ToString());
  s.set_peer_clock_skew_ms(absl::ToDoubleMilliseconds(machine_->peer_clock_skew()));
  if (mirror::PeerIncompatible()) alarms->push_back("peer_incompatible");  // issue 19: another wire version
  if (routing_down_) alarms->push_back("routing_down");
  if (fenced_) alarms->push_back("fenced");  // split brain avoided: writes refused
  // A takeover the peer's silence would make, held: the routing shows it.
  if (peer_routed_ && machine_->role() == mirror::Role::kStandby &&
      !machine_->peer_heard(mirror::Path::kBackbone, now)) {
    alarms->push_back("takeover_held");
  }
  if (const auto& t = machine_->last_takeover()) {
    s.set_last_takeover_cause(t->cause);
    s.set_last_takeover_unix_ns(
        static_cast<uint64_t>(absl::ToUnixNanos(absl::Now() - (now - t->at))));
  }
}

void Pair::HealthAndRefusals(v1::PairStatus* out) {
  v1::PairStatus& s = *out;
  auto& refused = *s.mutable_refused();
  if (routing_) refused["writes_fenced"] = core_.fenced_refusals();
  if (state_region_.attached()) {
    uint32_t f = state_region_.view().header().local_flags.load(std::memory_order_relaxed);
    s.set_data_plane_ok(f & tables::kHbDataPlaneOk);
    s.set_access_link_up(f & tables::kHbAccessLinkUp);
    refused["heartbeat_access"] = state_region_.view().header().peer[0].frames_refused;
    refused["heartbeat_backbone"] = state_region_.view().header().peer[1].frames_refused;
    // Authenticated, but from a node that is not our peer (or for the other path).
    refused["heartbeat_other_node"] =
        state_region_.view().header().peer[0].frames_other + state_region_.view().header().peer[1].frames_other;
  }
  for (int r = 0; r < static_cast<int>(mirror::RejectReason::kCount); ++r) {
    auto reason = static_cast<mirror::RejectReason>(r);
    uint64_t n = refused_base_[r];
    if (source_) n += source_->rejects().Get(reason);
    if (sink_) n += sink_->rejects().Get(reason);
    refused[absl::StrCat("replication_", mirror::RejectReasonName(reason))] = n;
  }
}

void Pair::ReplicationStatus(bool active, v1::PairStatus* out, std::vector<std::string>* alarms) {
  v1::PairStatus& s = *out;
  auto& refused = *s.mutable_refused();
  if (source_) {
    mirror::SourceStatus st = source_->status();
    s.set_replication(st.standby_connected
                          ? (st.standby_synced ? "serving standby" : "sending snapshot")
                          : "no standby");
    refused["replication_oversized"] = st.oversized;
    if (cfg_.sync && !st.standby_synced) alarms->push_back("sync_degraded");
    if (cfg_.lag_alarm_ms > 0 && absl::ToInt64Milliseconds(st.lag_time) >= cfg_.lag_alarm_ms) {
      alarms->push_back("replication_lag");
    }
    s.set_acked_position(st.acked_seq);
    s.set_lag_changes(st.lag_records);
    s.set_lag_ms(absl::ToDoubleMilliseconds(st.lag_time));
    s.set_snapshots(st.snapshots_sent);
    s.set_backlog_changes(st.backlog_records);
    s.set_backlog_bytes(st.backlog_bytes);
    s.set_backlog_resident_bytes(st.backlog_resident);
  } else if (sink_) {
    mirror::SinkStatus st = sink_->status();
    s.set_replication(!st.store_error.empty() ? "not storing: " + st.store_error
                      : !st.connected         ? "connecting"
                      : st.consistent         ? "following"
                                              : "resyncing");
    s.set_acked_position(st.applied_seq);
    s.set_snapshots(st.snapshots);
    // The backlog is the change log on either role: one ring, still mapped here.
    const std::shared_ptr<mirror::ReplicationLog>& log = core_.changes().records();
    absl::MutexLock g(&log->mu());
    s.set_backlog_changes(log->ring().size());
    s.set_backlog_bytes(log->ring().bytes());
    s.set_backlog_resident_bytes(log->ring().resident());
    // Nothing more is acknowledged until the store takes it again.
    if (!st.store_error.empty()) alarms->push_back("store_failed");
  } else if (active && !listen_error_.empty()) {
    s.set_replication("cannot listen on " + cfg_.listen + ": " + listen_error_);
    alarms->push_back("replication_listen_failed");
    if (cfg_.sync) alarms->push_back("sync_degraded");
  } else {
    s.set_replication("off");
  }
}

void Pair::FillStatus(v1::PairStatus* out) const {
  absl::MutexLock lock(&status_mu_);
  *out = status_;
}

v1::LostWritesResponse Pair::LostWrites() const {
  v1::LostWritesResponse r;
  absl::MutexLock lock(&status_mu_);
  r.set_log_id(takeover_log_id_);
  r.set_after_seq(takeover_position_);
  r.set_last_heard_seq(takeover_peer_position_);
  r.set_state(lost_state_);
  r.set_takeover_unix_ns(takeover_unix_ns_);
  for (const v1::Change& c : lost_changes_) *r.add_changes() = c;
  r.set_acknowledged(lost_acknowledged_);
  return r;
}

bool Pair::WritesLostAlarm() const {
  bool lost = (lost_state_ == "listed" && !lost_changes_.empty()) || lost_state_ == "unknown";
  return lost && !lost_acknowledged_;
}

absl::StatusOr<v1::LostWritesResponse> Pair::AcknowledgeLostWrites() {
  {
    absl::MutexLock lock(&status_mu_);
    if (lost_state_ == "none" || lost_state_ == "pending") {
      return absl::FailedPreconditionError(absl::StrCat(
          "no lost writes to acknowledge (",
          lost_state_ == "none" ? "no takeover from a peer" : "the old active has not returned yet",
          ")"));
    }
    lost_acknowledged_ = true;  // the next status (within heartbeat_ms / 2) drops the alarm
  }
  fprintf(stderr, "tandem-control: pair: the lost writes of the last takeover were acknowledged\n");
  return LostWrites();
}

// One series per alarm: every alarm the role machine knows, 0 or 1, and
// any other alarm the status names while it is raised.
static void AlarmGauges(const v1::PairStatus& s, MetricsText& m) {
  std::vector<std::string> raised;
  if (s.alarms() != "none") raised = absl::StrSplit(s.alarms(), ',', absl::SkipEmpty());
  std::vector<std::string> names;
  for (const auto& [name, on] : mirror::Alarms{}.List()) names.push_back(name);
  for (const std::string& r : raised) {
    if (std::find(names.begin(), names.end(), r) == names.end()) names.push_back(r);
  }
  for (const std::string& name : names) {
    bool on = std::find(raised.begin(), raised.end(), name) != raised.end();
    m.Gauge("tandem_pair_alarm", "1 while the pair alarm named by the label is raised", on,
            {{"alarm", name}});
  }
}

static void WitnessGauges(const FleetWitness::Status& w, MetricsText& m) {
  m.Gauge("tandem_pair_witness_holds", "1 while this node holds the pair's key in etcd", w.holds);
  m.Gauge("tandem_pair_witness_key_epoch", "the epoch the key is held at (0: not held)",
          double(w.key_epoch));
  m.Counter("tandem_pair_witness_renew_failures_total",
            "renewals of the key's lease etcd did not acknowledge", double(w.renew_failures));
  m.Counter("tandem_pair_witness_losses_total", "times etcd said the key's lease was gone",
            double(w.losses));
  m.Counter("tandem_pair_witness_watched_deletions_total",
            "deletions of the key a watch saw (acquisition tried at once)",
            double(w.watched_deletions));
}

std::string Pair::Metrics() const {
  v1::PairStatus s;
  uint64_t degraded, timeouts;
  {
    absl::MutexLock lock(&status_mu_);
    s = status_;
    degraded = sync_degraded_;
    timeouts = sync_timeouts_;
  }
  MetricsText m;
  m.Gauge("tandem_pair_peer_up", "1 when the peer is heard on both paths",
          s.peer_state() == "up");
  m.Gauge("tandem_pair_peer_heard_backbone", "1 when the peer is heard on the backbone",
          s.peer_state() == "up" || s.peer_state() == "access path down");
  m.Gauge("tandem_pair_peer_heard_access", "1 when the peer is heard on the access network",
          s.peer_state() == "up" || s.peer_state() == "backbone down");
  AlarmGauges(s, m);
  m.Gauge("tandem_pair_position", "last change of the log this node holds", double(s.position()));
  m.Gauge("tandem_pair_acked_position",
          "active: last change the standby applied; standby: last applied",
          double(s.acked_position()));
  m.Gauge("tandem_pair_lag_changes", "changes the standby has not applied yet",
          double(s.lag_changes()));
  m.Gauge("tandem_pair_lag_seconds", "age of the oldest change the standby lacks",
          double(s.lag_ms()) / 1000);
  m.Counter("tandem_pair_takeovers_total", "times this node became active", double(s.takeovers()));
  m.Declare("tandem_pair_refused_messages_total",
            "backbone and heartbeat messages refused (forged, replayed, malformed)", true);
  std::map<std::string, uint64_t> refused(s.refused().begin(), s.refused().end());
  for (const auto& [what, n] : refused) {
    m.Counter("tandem_pair_refused_messages_total", "", double(n), {{"what", what}});
  }
  m.Gauge("tandem_pair_lost_changes",
          "changes the old active handed over at its return that never reached this node "
          "(tandemctl pair lost)",
          double(s.lost_changes()));
  m.Gauge("tandem_pair_backlog_changes",
          "active: changes kept for a standby to resume from ([pair] backlog_changes)",
          double(s.backlog_changes()));
  m.Gauge("tandem_pair_backlog_bytes",
          "active: bytes those changes take, as bounded by [pair] backlog_mib",
          double(s.backlog_bytes()));
  m.Gauge("tandem_pair_backlog_resident_bytes", "active: memory the backlog keeps resident",
          double(s.backlog_resident_bytes()));
  m.Counter("tandem_pair_snapshots_total", "full resyncs served or received",
            double(s.snapshots()));
  m.Counter("tandem_pair_drift_repairs_total",
            "site-data comparisons that found drift (repaired by a resync)",
            double(s.drift_repairs()));
  m.Counter("tandem_pair_sync_degraded_total",
            "synchronous writes that found no standby connected", double(degraded));
  m.Counter("tandem_pair_sync_timeouts_total",
            "synchronous writes the standby did not confirm in time", double(timeouts));
  if (witness_) WitnessGauges(witness_->status(), m);
  return m.Serialize();
}

}  // namespace tandem::control
