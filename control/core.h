// The control core of a node: the single writer of the node's session tables
// and the owner of its durable store. Every API call of tandem-control is a
// method here; the gRPC service (service.h) only translates.
//
// Consistency rules (see docs/control.md):
//  - Sites, meetings and participants are durable (Store); live legs exist
//    only in the shared-memory tables. A call validates everything first, then
//    writes the store in one transaction and the tables, so that a failed call
//    changes nothing and an acknowledged call survives kill -9.
//  - On start the core adopts the live tables and reconciles them with the
//    store: a meeting is live in the tables iff the store says LIVE; a leg is
//    kept iff its participant is present in the store (an unacknowledged join
//    interrupted by a crash is rolled back).
//
// Each write plans its change (control/sites.h, meetings.h, participants.h)
// and applies the plan through the model (control/model.h), the one path the
// standby's replicated records take too.
//
// Thread-safe: one mutex serialises every call (the tables have one writer).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <optional>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/tables/tables.h"
#include "control.pb.h"
#include "control/change_log.h"
#include "control/config.h"
#include "control/metrics.h"
#include "control/model.h"
#include "control/pool.h"
#include "control/store.h"

namespace tandem::control {

class Core {
 public:
  // Opens the store and the tables (adopting what they hold), reconciles
  // them and sets role, epoch and VIPs. FailedPrecondition if another writer
  // holds the tables.
  static absl::StatusOr<std::unique_ptr<Core>> Start(const Config& config);
  ~Core();

  // The node's status; its `pair` field is the Service's (Pair::FillStatus).
  absl::Status GetStatus(const v1::GetStatusRequest& req, v1::NodeStatus* out);

  absl::Status CreateSite(const v1::CreateSiteRequest& req, v1::Site* out);
  absl::Status GetSite(const v1::GetSiteRequest& req, v1::Site* out);
  absl::Status ListSites(const v1::ListSitesRequest& req, v1::ListSitesResponse* out);
  absl::Status UpdateSite(const v1::UpdateSiteRequest& req, v1::Site* out);
  absl::Status DeleteSite(const v1::DeleteSiteRequest& req, v1::DeleteSiteResponse* out);

  absl::Status ScheduleMeeting(const v1::ScheduleMeetingRequest& req, v1::Meeting* out);
  absl::Status StartMeeting(const v1::StartMeetingRequest& req, v1::Meeting* out);
  absl::Status EndMeeting(const v1::EndMeetingRequest& req, v1::Meeting* out);
  absl::Status GetMeeting(const v1::GetMeetingRequest& req, v1::Meeting* out);
  absl::Status ListMeetings(const v1::ListMeetingsRequest& req, v1::ListMeetingsResponse* out);
  absl::Status UpdateMeeting(const v1::UpdateMeetingRequest& req, v1::Meeting* out);

  absl::Status Join(const v1::JoinRequest& req, v1::JoinResponse* out);
  absl::Status Leave(const v1::LeaveRequest& req, v1::LeaveResponse* out);
  absl::Status SetRole(const v1::SetRoleRequest& req, v1::Participant* out);
  absl::Status SetMute(const v1::SetMuteRequest& req, v1::SetMuteResponse* out);
  absl::Status ListParticipants(const v1::ListParticipantsRequest& req,
                                v1::ListParticipantsResponse* out);
  absl::Status ListLegs(const v1::ListLegsRequest& req, v1::ListLegsResponse* out);
  absl::Status GetUsage(const v1::GetUsageRequest& req, v1::GetUsageResponse* out);

  // Prometheus text exposition of the node (tables, switch counters, store);
  // the pair's and the API's series are added by the metrics handler.
  std::string RenderMetrics();
  // Frees retired table entries; called periodically by the daemon.
  void Housekeeping();

  ChangeLog& changes() { return model_->changes(); }
  const Config& config() const { return config_; }

  // ---- The pair (control/pair.h drives these) ----
  tables::Role node_role() const;
  uint64_t node_epoch() const;
  // Sets role and epoch in the tables (the switch answers for the VIPs and
  // forwards only while active) and the store.
  // Returns the change-log position at the change (before the ROLE change it
  // appends on becoming active): no replicated record is applied after it.
  // `after_active_peer`: this node takes over from an active peer, whose
  // writes that never reached us used ids we must not hand out again (an
  // application redoing a lost write, or `pair lost`, would name two objects
  // by one id), so every id counter jumps ahead by kTakeoverIdGap.
  // The end of this node's hold on the pair's key in etcd, CLOCK_MONOTONIC ns
  // (0: no witness), for the switch to enforce (TablesHeader::active_until_ns).
  // Without the lock: the pair thread is the only writer of that field.
  void SetActiveUntil(uint64_t mono_ns);
  // A step-down decided (to standby in `epoch`): writes are refused and the
  // switch stops serving from now on, before SetNodeRole (which waits for a
  // commit in progress) records it in the store.
  void BeginStepDown(uint64_t epoch);
  uint64_t SetNodeRole(tables::Role role, uint64_t epoch, const std::string& cause,
                       bool after_active_peer = false);
  static constexpr uint64_t kTakeoverIdGap = 1u << 20;
  // Replication position and handover request, carried by the switch's
  // heartbeats (without the lock: the pair thread is their only writer).
  void SetPairHints(uint64_t position, bool handover);
  // Active side, a full resync of the standby: the objects still to read.
  struct SnapshotCursor {
    bool opened = false;
    uint64_t log_id = 0, seq = 0;  // the change log's position at the first chunk
    // Sites, meetings, participants, legs, as they were at the first chunk.
    std::vector<std::pair<v1::Change::Kind, uint64_t>> objects;
    size_t next = 0;
    bool done() const { return opened && next == objects.size(); }
  };
  // Appends to `out` the next objects of `cursor` as PUT changes
  // (serialised), about `max_bytes` of them, under the lock, which is held
  // for that chunk only: API calls are held up by one chunk, not by the whole
  // state. The first call takes the ids of every object and the position.
  // Objects changed later are read as they are then (the standby replays
  // every change after the position over them), objects gone are left out.
  // Returns the change log's position at this chunk, read under the same
  // lock (the replication stream is the change log: no change comes in
  // between).
  uint64_t ReadSnapshot(SnapshotCursor& cursor, size_t max_bytes, std::vector<std::string>* out);
  // Active side: usage of the legs whose counts moved since the last call;
  // nullopt, nothing read, while a write holds the lock (the pair thread
  // calls it between role decisions, which must not wait on a commit).
  std::optional<v1::UsageRecord> TryUsageDelta();
  // SHA-256 of sites and meetings (the durable site data) and the position it is at.
  std::string SiteDigest(uint64_t* position);
  // Active side: the same, appended to the change log (kDigestTag) at
  // exactly that position, for the standby to compare its own there.
  // TryAppendDigest: nullopt while a write holds the lock (as TryUsageDelta).
  v1::DigestRecord AppendDigest();
  std::optional<v1::DigestRecord> TryAppendDigest();
  // Standby side: a full resync starts; objects not seen before EndResync go.
  void BeginResync();
  // Standby side: applies one replicated change (idempotent PUT semantics)
  // in the open store transaction; `raw` is its record, appended to our change
  // log unless part of a snapshot. An error means the store refused it: the
  // transaction is rolled back (with the changes applied since the last
  // commit, which must be applied again) and memory is left as it was for this
  // change. A change the tables cannot take is logged, not an error.
  absl::Status ApplyReplicated(const v1::Change& c, std::string raw, bool snapshot);
  // The snapshot's records are applied: what it lacked goes (committed).
  absl::Status EndResync(uint64_t log_id, uint64_t seq);
  void ApplyUsage(const v1::UsageRecord& u);
  // Standby side: a replicated record that is no change (usage, digest) at
  // the active's `seq`, kept in our change log (ChangeLog::AppendReplicatedRecord).
  void LogReplicated(uint64_t seq, absl::string_view record);
  // Commits the replicated changes applied so far to the store; only then may
  // the standby acknowledge them.
  absl::Status CommitReplicated();
  // Mode sync-strict, active side: the pair tells whether a standby holds a
  // confirmed copy. Without one every write is refused before it changes
  // anything. (The pair pushes this down; the core never calls up into it.)
  void SetStandbyConfirmed(bool confirmed) { standby_confirmed_.store(confirmed); }
  // Routed mode, a backbone cut (docs/routed.md "Split brain"): the pair
  // fences an active node that lost the route; its writes are refused
  // (FAILED_PRECONDITION, as on a standby) and counted.
  void SetFenced(bool fenced) { fenced_.store(fenced); }
  uint64_t fenced_refusals() const { return fenced_refusals_.load(); }

 private:
  Core(Config config, std::unique_ptr<Store> store, std::unique_ptr<tables::TablesWriter> writer,
       uint64_t log_id);
  // Loads the model and sets role, epoch and VIPs.
  absl::Status Reconcile() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies an API call's plan (model.h); the call's error if it is none.
  absl::Status ApplyPlan(absl::StatusOr<Plan> plan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The switch's counters from the state region (have_state_).
  void AddSwitchMetrics(MetricsText& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddNeighbourMetrics(MetricsText& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillStatusWorkers(v1::NodeStatus* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillStatusPorts(v1::NodeStatus* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillStatusNeighbours(v1::NodeStatus* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Usage LegUsage(uint64_t leg_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Usage ParticipantUsage(const ParticipantRec& rec) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Usage MeetingUsage(const v1::Meeting& m) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillLeg(uint64_t leg_id, bool with_usage, v1::Leg* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillParticipant(const ParticipantRec& rec, bool with_legs, v1::Participant* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillMeeting(const v1::Meeting& m, v1::Meeting* out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<const v1::Meeting*> FindMeeting(uint64_t id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string DigestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::UsageRecord UsageDeltaLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::DigestRecord AppendDigestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FailedPrecondition on a standby, naming the active node's API.
  absl::Status CheckWritable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Config config_;
  mutable absl::Mutex mu_;
  // The one writer of the node's store, tables and change log; its contents
  // are read and changed under mu_ only (the pointer never changes).
  const std::unique_ptr<Model> model_;
  // Written under mu_, read without it: the pair thread's role decisions
  // must not wait for a write's commit (an fdatasync that a loaded host
  // can stretch to seconds).
  std::atomic<tables::Role> role_{tables::Role::kStandby};
  std::atomic<uint64_t> epoch_{1};
  // Set by the pair thread from a step-down's decision until SetNodeRole
  // carries it out: the writes queued behind a commit are refused meanwhile.
  std::atomic<bool> stepping_down_{false};

  // The switch's state region, mapped when it exists; have_state_ when it
  // also has our tables' leg capacity (state_ is then its view).
  tables::StateFollower state_region_ ABSL_GUARDED_BY(mu_);
  tables::StateView state_ ABSL_GUARDED_BY(mu_);
  bool have_state_ ABSL_GUARDED_BY(mu_) = false;

  // The pair.
  absl::flat_hash_map<uint64_t, uint64_t> usage_sent_ ABSL_GUARDED_BY(mu_);  // leg -> packets
  std::atomic<bool> standby_confirmed_{false};
  std::atomic<bool> fenced_{false};
  mutable std::atomic<uint64_t> fenced_refusals_{0};
};

}  // namespace tandem::control
