// The model of a node's control plane and its one mutation path.
//
// `Indexes` is what the API reads (sites, meetings, live meetings,
// participants, legs, id counters): plain memory, no store and no tables, so
// the planners (control/sites.h, meetings.h, participants.h) are pure
// functions of it, unit-tested without SQLite or shared memory.
//
// `Model` owns the Indexes, the store, the tables writer, the local pool and
// the change log, and changes them only through `Apply(plan, source)`: a plan
// is a list of change records (v1::Change), the very records the change log
// and the replication stream carry. The active's API handlers plan and
// apply; the standby decodes each replicated record into a one-change plan
// and applies it through the same function. So both nodes run the same code
// for every change, and a digest mismatch between them can only mean the
// transport (docs/control.md, "One mutation path").
//
// Not thread-safe: Core calls it under its mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/addr.h"
#include "common/tables/tables.h"
#include "control.pb.h"
#include "control/change_log.h"
#include "control/config.h"
#include "control/pool.h"
#include "control/store.h"

namespace tandem::control {

// A plan: change records to apply in order, all or none (on the active).
using Plan = std::vector<v1::Change>;

// A live leg as the API knows it; the tables hold the same (and its flags).
struct LegRec {
  uint64_t participant_id = 0;
  uint64_t meeting_id = 0;
  uint32_t requested = 0;  // kLegSend|kLegRecv as asked at join
  bool muted = false;
  v1::Channel channel = v1::CHANNEL_UNSPECIFIED;
  IpAddr remote, local;
  uint16_t remote_port = 0, local_port = 0;
  uint32_t pps_limit = 0, kbps_limit = 0;
};
struct ParticipantRec {
  v1::Participant p;  // no legs; usage = legs that already left
  std::vector<uint64_t> legs;
};
struct LiveMeeting {
  std::vector<uint64_t> participants;  // present and left, in join order
  uint32_t present = 0;
  uint32_t legs = 0;
};

struct Indexes {
  std::map<uint64_t, v1::Site> sites;
  std::map<uint64_t, v1::Meeting> meetings;  // every state
  absl::flat_hash_map<uint64_t, LiveMeeting> live;
  absl::flat_hash_map<uint64_t, ParticipantRec> participants;  // of live meetings
  absl::flat_hash_map<uint64_t, LegRec> legs;
  uint64_t next_site_id = 1;
  uint64_t next_meeting_id = 1;
  uint64_t next_participant_id = 1;
  uint64_t next_leg_id = 1;

  uint32_t SiteLiveLegs(uint64_t site_id) const;
  uint32_t SiteLiveMeetings(uint64_t site_id) const;
  // A present participant of a live meeting, or nullptr.
  const ParticipantRec* Present(uint64_t participant_id) const;
  // The record of a live leg as a LEG_PUT carries it, without the fields
  // the tables decide (send, recv, creation time: Model::Apply adds them).
  v1::Leg LegRecord(uint64_t leg_id) const;
};

// A change record of `kind` about `id`, with its body.
v1::Change SiteChange(const v1::Site& s);
v1::Change MeetingChange(const v1::Meeting& m);
v1::Change ParticipantChange(v1::Change::Kind kind, v1::Participant p);
v1::Change LegChange(v1::Leg leg);

// When the tables refuse a change (full), the active refuses the whole plan
// (nothing changed); the standby logs it and goes on (its store must follow
// the active's even when its tables are full).
class Model {
 public:
  // Where a plan comes from.
  struct Source {
    // Replicated record (standby): `raw` is appended to the change log as
    // received unless `snapshot`; the store transaction is left open for
    // CommitReplicated. Otherwise (active): committed, logged with new seqs.
    bool replicated = false;
    bool snapshot = false;
    std::string raw;
  };

  Model(const Config& config, std::unique_ptr<Store> store,
        std::unique_ptr<tables::TablesWriter> writer, uint64_t log_id);
  ~Model();

  // Loads the store and reconciles the adopted tables with it (core.h).
  absl::Status Load();
  // The one mutation path. Active: all or nothing; its LEG_PUT records are
  // completed from the tables (flags, creation time) before they are logged.
  // Replicated: a store error rolls back the open transaction and is
  // returned; a tables error is logged, not returned.
  absl::Status Apply(Plan plan, Source source);
  // Resync (standby): objects not seen since BeginSweep go at EndSweep.
  void BeginSweep();
  absl::Status EndSweep(uint64_t log_id, uint64_t seq);

  const Indexes& indexes() const { return ix_; }
  Store& store() { return *store_; }
  tables::TablesWriter& writer() { return *writer_; }
  const tables::TablesWriter& writer() const { return *writer_; }
  ChangeLog& changes() { return *changes_; }
  const LocalPool& pool() const { return pool_; }
  LocalPool& pool() { return pool_; }

  // The leg as the tables hold it (no usage). False if unknown.
  bool FillLeg(uint64_t leg_id, v1::Leg* out) const;
  // Id counters jump ahead at a takeover (Core::SetNodeRole).
  void SkipIds(uint64_t gap);
  // On becoming active: the next leg id reserves a fresh block in the store.
  void ReserveLegIdsAfresh() { leg_id_limit_ = ix_.next_leg_id; }
  uint32_t adopted_legs() const { return adopted_legs_; }
  uint32_t removed_on_start() const { return removed_on_start_; }
  // Usage mirrored from the peer, per leg (goes with the leg).
  absl::flat_hash_map<uint64_t, v1::Usage>& usage_base() { return usage_base_; }
  const absl::flat_hash_map<uint64_t, v1::Usage>& usage_base() const { return usage_base_; }

 private:
  absl::Status LoadStore();
  void ReconcileLegs();
  // The store's part of one change (in the open transaction).
  absl::Status Store1(const v1::Change& c);
  // Tables additions a plan needs (new live meetings, new legs), before any
  // memory changes, so that the active can refuse the plan as a whole.
  struct Added {
    std::vector<uint64_t> meetings, legs;
  };
  absl::Status AddToTables(const Plan& plan, bool replicated, Added* added);
  void UndoAdded(const Added& added);
  // Memory and the tables' updates that cannot fail, for one change.
  void Index1(const v1::Change& c, const Added& added);
  void IndexMeeting(const v1::Meeting& m);
  void IndexParticipant(v1::Participant p);
  void IndexLeg(const v1::Leg& leg, bool added);
  absl::Status AddLeg(const v1::Leg& leg, uint32_t flags);
  // The tables' flags of a leg, with the meeting and participant as `plan`
  // leaves them.
  uint32_t LegFlags(const Plan& plan, uint64_t meeting_id, uint64_t participant_id,
                    uint32_t requested, bool muted) const;
  uint32_t EffectiveFlags(const LegRec& leg) const;
  void DropLeg(uint64_t leg_id);
  void EndLive(uint64_t meeting_id);
  void Forget(uint64_t participant_id);
  absl::Status ReserveLegIds();

  const Config& config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<tables::TablesWriter> writer_;
  std::unique_ptr<ChangeLog> changes_;
  LocalPool pool_;
  Indexes ix_;
  uint64_t leg_id_limit_ = 0;  // leg ids below are reserved in the store
  absl::flat_hash_map<uint64_t, v1::Usage> usage_base_;
  bool sweeping_ = false;
  absl::flat_hash_set<uint64_t> seen_sites_, seen_meetings_, seen_participants_, seen_legs_;
  uint32_t adopted_legs_ = 0, removed_on_start_ = 0;
};

// The leg's `requested` of a record (records before the field existed: its
// send and recv flags).
uint32_t RequestedOf(const v1::Leg& leg);

}  // namespace tandem::control
