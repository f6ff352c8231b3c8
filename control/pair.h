// The pair: role, takeover and replication of one node of a primary/standby
// pair (docs/pair.md).
//
// Failure detection: the switches exchange heartbeats on the access and the
// backbone port (switch/heartbeat.h) and publish what they hear in their
// state regions; a thread here feeds that to the role machine
// (mirror/role.h) every millisecond and applies its decisions: role and epoch
// go to the tables (the switch then announces the VIPs and forwards), and
// replication is turned around. Two faster signals travel on the replication
// connection: an active node whose switch died (its state-region lock is
// gone, tables::StateLocked) tells the standby at once (Notify, a report with
// the data plane dead), and a standby whose connection the peer's control
// daemon closed shortens its detection time (RoleMachine::SetPeerControlClosed).
//
// Replication (mirror/replication.h): the active node serves the stream on
// pair.listen, the standby follows the peer. The stream is the change log
// itself (one ring, numbered by log id and seq; the standby keeps the same
// numbers). Records are one tag byte and a body:
//   'C' a change of the change log (v1::Change, as the log holds it)
//   'S' a snapshot object (v1::Change with a PUT kind), 'P' the snapshot's
//       change-log position (v1::PositionRecord)
//   'U' usage of legs whose counts moved (v1::UsageRecord), every
//       pair.usage_interval_ms
//   'D' a digest of the site data at that point of the stream
//       (v1::DigestRecord): the standby compares its own and repairs drift by
//       a full resync
// A standby always starts from a full snapshot (mark and sweep of its own
// state), so a demoted primary never keeps writes the new active lacks.
//
// Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/tables/tables.h"
#include "control/core.h"
#include "control/fleet_witness.h"
#include "control/routing.h"
#include "mirror/replication.h"
#include "mirror/role.h"
#include "mirror/switch_feed.h"

namespace tandem::control {

class Pair {
 public:
  // Starts the role thread and the replication for the core's current role.
  static absl::StatusOr<std::unique_ptr<Pair>> Start(Core& core);
  ~Pair();

  // Synchronous mode, after a write: waits until the standby has stored
  // every change appended so far. OK at once in asynchronous mode or on a
  // standby. With no standby connected (counted and alarmed: the pair is
  // degraded) OK in mode "sync", DeadlineExceeded in "sync-strict".
  // DeadlineExceeded if the standby does not confirm in time.
  absl::Status WaitReplicated();

  // Active node: puts a digest of the site data into the stream now.
  absl::StatusOr<v1::ComparePairResponse> Compare();
  // Operator switchover (see RoleMachine::RequestSwitchover).
  absl::StatusOr<v1::SwitchoverResponse> Switchover(bool force);

  // The writes lost at the last takeover (control.proto, LostWritesResponse).
  v1::LostWritesResponse LostWrites() const;
  // Clears the writes_lost alarm (the list stays readable) until the next
  // takeover; FailedPrecondition while nothing is known to be lost.
  absl::StatusOr<v1::LostWritesResponse> AcknowledgeLostWrites();

  // Status and Prometheus lines of the pair, for whoever serves them (the
  // Service's GetStatus, the /metrics handler); the core never asks for them.
  void FillStatus(v1::PairStatus* out) const;
  std::string Metrics() const;

 private:
  explicit Pair(Core& core);
  void Loop();
  void Step(absl::Time now);
  // Step's parts: the role machine fed (made at the first step; returns the
  // witness's hold), from the switch's state region when there is one; a
  // decision applied; what an active does on the side (usage, digests).
  absl::Time FeedMachine(absl::Time now, uint64_t position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FeedSwitch(absl::Time now, uint64_t position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A standby whose switch is dead tells the active it follows that it is
  // alive (PairMessage.standby_report, every heartbeat interval), and once
  // that its switch runs again.
  void ReportToActive(absl::Time now, bool data_plane_ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(const mirror::Decision& d, bool peer_was_active, uint64_t peer_position);
  void Housekeeping(absl::Time now, uint64_t position);
  void BecomeActive();
  void BecomeStandby();
  void StopReplication();
  // The standby's side of a record; an error: not stored, not acknowledged.
  absl::Status ApplyRecord(mirror::RecordKind kind, uint64_t seq, absl::string_view rec);
  absl::Status CompareDigest(absl::string_view digest_record);
  void PublishStatus(absl::Time now);
  // PublishStatus's parts (control/pair_status.cc), under mu_.
  void PeerStatus(absl::Time now, v1::PairStatus* out, std::vector<std::string>* alarms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HealthAndRefusals(v1::PairStatus* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReplicationStatus(bool active, v1::PairStatus* out, std::vector<std::string>* alarms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Routed mode: our health as the routing shows it (routing_down_ takes the
  // access path down in `local`) and whether the peer still announces.
  void RoutedHealth(mirror::LocalHealth* local) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Routed mode, split brain: fences (or frees) an active node that cannot
  // hear its peer and yields the VIPs to it ([routing] preferred_dc).
  void Fence(absl::Time now);
  bool AttachState();
  // The lost-writes exchange (control.proto, PairMessage).
  std::string Greeting();                          // active, to a new standby
  void OnStandbyMessage(absl::string_view msg);    // active, from the standby
  void OnActiveMessage(absl::string_view msg);     // standby, from the active

  Core& core_;
  const PairConfig cfg_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable absl::Mutex mu_;  // role machine and replication objects
  std::unique_ptr<mirror::RoleMachine> machine_ ABSL_GUARDED_BY(mu_);
  mirror::SwitchHeartbeatFeed feed_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<mirror::ReplicationSource> source_ ABSL_GUARDED_BY(mu_);
  // Active without a source: why it could not listen; tried again every second.
  std::string listen_error_ ABSL_GUARDED_BY(mu_);
  absl::Time next_listen_retry_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<mirror::ReplicationSink> sink_ ABSL_GUARDED_BY(mu_);
  // Routed mode: moves the VIPs by BGP (docs/routed.md); its own thread,
  // safe to call from any.
  std::unique_ptr<RoutingDriver> routing_;
  // [fleet] witness = true: etcd as the pair's witness (rule 7); its own thread.
  std::unique_ptr<FleetWitness> witness_;
  // Replication refusals of the sources and sinks already destroyed.
  std::array<uint64_t, static_cast<int>(mirror::RejectReason::kCount)> refused_base_
      ABSL_GUARDED_BY(mu_) = {};
  tables::StateFollower state_region_;
  absl::Time next_usage_, next_compare_, next_notice_, next_report_, next_publish_;
  absl::Time decide_from_;  // startup hold-down: no role decision before
  bool switch_alive_ = false;
  bool reported_dead_ = false;  // the last standby_report said the switch is dead
  absl::Time switch_hold_until_;  // the same after the switch (re)started: no takeover before
  absl::Time active_until_;  // the witness's hold last written for the switch (Step only)
  // Routed mode (docs/routed.md, "Failures of the pair across data centers"):
  // a BGP session of ours has been up since start; none is now (our router
  // is gone: our access path is down); the routing shows another origin of
  // our VIPs (the peer announces: its silence on the backbone is no death).
  bool routing_was_up_ ABSL_GUARDED_BY(mu_) = false;
  bool routing_down_ ABSL_GUARDED_BY(mu_) = false;
  bool peer_routed_ ABSL_GUARDED_BY(mu_) = false;
  bool routing_role_announced_ = false;  // the pair thread's: the first role announced
  // The pair thread's: stepped down for the witness (W3), the peer not heard
  // since: routed mode announces nothing (PairAnnouncement).
  bool witness_withdrawn_ = false;
  std::atomic<bool> fenced_{false};      // set by the pair thread (Fence)
  absl::Time fence_until_ ABSL_GUARDED_BY(mu_);
  // Since when the best-path report has said yield, without a break.
  absl::Time yield_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();

  std::atomic<bool> resync_wanted_{false};     // drift found: follow anew
  // Set by the sink's callbacks (its I/O thread, which must not take mu_:
  // the sink is destroyed under mu_), consumed by Step.
  std::atomic<bool> peer_control_closed_{false};
  absl::Mutex notice_mu_;
  std::optional<mirror::PeerReport> notice_ ABSL_GUARDED_BY(notice_mu_);
  // The standby's report on the replication connection (rule 8), by the
  // source's thread, consumed by Step.
  std::optional<mirror::PeerControlReport> standby_report_ ABSL_GUARDED_BY(notice_mu_);
  std::optional<std::string> reply_ ABSL_GUARDED_BY(notice_mu_);  // to the active, by Step
  std::atomic<uint64_t> snapshot_log_id_{0}, snapshot_seq_{0};

  mutable absl::Mutex status_mu_;
  v1::PairStatus status_ ABSL_GUARDED_BY(status_mu_);
  uint64_t takeovers_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t drift_repairs_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t sync_degraded_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t sync_timeouts_ ABSL_GUARDED_BY(status_mu_) = 0;
  std::string compare_result_ ABSL_GUARDED_BY(status_mu_);
  uint64_t compare_seq_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t takeover_log_id_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t takeover_position_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t takeover_peer_position_ ABSL_GUARDED_BY(status_mu_) = 0;
  uint64_t takeover_unix_ns_ ABSL_GUARDED_BY(status_mu_) = 0;
  std::string lost_state_ ABSL_GUARDED_BY(status_mu_) = "none";
  std::vector<v1::Change> lost_changes_ ABSL_GUARDED_BY(status_mu_);
  bool lost_acknowledged_ ABSL_GUARDED_BY(status_mu_) = false;
  // Raised from the old active's answer ("listed" with changes, or "unknown")
  // until an operator acknowledges it.
  bool WritesLostAlarm() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(status_mu_);
};

}  // namespace tandem::control
