#include "control/model.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "control/records.h"

namespace tandem::control {
namespace {

using tables::kLegMuted;
using tables::kLegRecv;
using tables::kLegSend;

// Leg ids are reserved in the store a block at a time, so ids never repeat
// across restarts without a store write per join.
constexpr uint64_t kLegIdBlock = 1u << 20;

uint32_t MeetingFlags(const v1::Meeting& m) {
  return m.presenter_only() ? tables::kMeetingPresenterOnly : 0;
}

void Erase(std::vector<uint64_t>& v, uint64_t id) { v.erase(std::remove(v.begin(), v.end(), id), v.end()); }

template <typename Map>
std::vector<uint64_t> Unseen(const Map& held, const absl::flat_hash_set<uint64_t>& seen) {
  std::vector<uint64_t> out;
  for (const auto& [id, v] : held) {
    if (!seen.contains(id)) out.push_back(id);
  }
  return out;
}

}  // namespace

uint32_t RequestedOf(const v1::Leg& leg) {
  return leg.requested() ? leg.requested()
                         : (leg.send() ? kLegSend : 0) | (leg.recv() ? kLegRecv : 0);
}

v1::Change SiteChange(const v1::Site& s) {
  v1::Change c = MakeChange(v1::Change::SITE_PUT, s.site_id());
  *c.mutable_site() = s;
  return c;
}

v1::Change MeetingChange(const v1::Meeting& m) {
  v1::Change c = MakeChange(v1::Change::MEETING_PUT, m.meeting_id());
  *c.mutable_meeting() = m;
  return c;
}

v1::Change ParticipantChange(v1::Change::Kind kind, v1::Participant p) {
  v1::Change c = MakeChange(kind, p.participant_id());
  *c.mutable_participant() = std::move(p);
  return c;
}

v1::Change LegChange(v1::Leg leg) {
  v1::Change c = MakeChange(v1::Change::LEG_PUT, leg.leg_id());
  *c.mutable_leg() = std::move(leg);
  return c;
}

// ---------------------------------------------------------------- Indexes

uint32_t Indexes::SiteLiveLegs(uint64_t site_id) const {
  uint32_t n = 0;
  for (const auto& [id, l] : live) {
    auto it = meetings.find(id);
    if (it != meetings.end() && it->second.site_id() == site_id) n += l.legs;
  }
  return n;
}

uint32_t Indexes::SiteLiveMeetings(uint64_t site_id) const {
  uint32_t n = 0;
  for (const auto& [id, l] : live) {
    auto it = meetings.find(id);
    if (it != meetings.end() && it->second.site_id() == site_id) ++n;
  }
  return n;
}

const ParticipantRec* Indexes::Present(uint64_t participant_id) const {
  auto it = participants.find(participant_id);
  if (it == participants.end() || it->second.p.left_unix_ns() != 0) return nullptr;
  return &it->second;
}

v1::Leg Indexes::LegRecord(uint64_t leg_id) const {
  v1::Leg l;
  auto it = legs.find(leg_id);
  if (it == legs.end()) return l;
  const LegRec& r = it->second;
  l.set_leg_id(leg_id);
  l.set_participant_id(r.participant_id);
  l.set_meeting_id(r.meeting_id);
  l.set_channel(r.channel);
  l.set_remote(FormatEndpoint(r.remote, r.remote_port));
  l.set_local(FormatEndpoint(r.local, r.local_port));
  l.set_muted(r.muted);
  l.set_pps_limit(r.pps_limit);
  l.set_kbps_limit(r.kbps_limit);
  l.set_requested(r.requested);
  return l;
}

namespace {
// One ring is both the Watch history and the pair's backlog (the replication
// source reads the change log): it holds what the larger of the two asks.
size_t ChangeLogRecords(const Config& c) {
  return c.pair.enabled ? std::max<size_t>(c.watch_history, c.pair.backlog_changes)
                        : c.watch_history;
}
size_t ChangeLogBytes(const Config& c) {
  uint64_t mib = c.pair.enabled ? std::max(c.watch_history_mib, c.pair.backlog_mib)
                                : c.watch_history_mib;
  return static_cast<size_t>(mib) << 20;
}
}  // namespace

// ---------------------------------------------------------------- Model

Model::Model(const Config& config, std::unique_ptr<Store> store,
             std::unique_ptr<tables::TablesWriter> writer, uint64_t log_id)
    : config_(config),
      store_(std::move(store)),
      writer_(std::move(writer)),
      changes_(std::make_unique<ChangeLog>(ChangeLogRecords(config), ChangeLogBytes(config),
                                           log_id)),
      pool_(config.pool_vips, config.pool_first_port, config.pool_last_port) {}

Model::~Model() { changes_->Close(); }

bool Model::FillLeg(uint64_t leg_id, v1::Leg* out) const {
  auto info = writer_->GetLeg(leg_id);
  auto rec = ix_.legs.find(leg_id);
  if (!info.ok() || rec == ix_.legs.end()) return false;
  const tables::LegSpec& s = info->spec;
  out->set_leg_id(leg_id);
  out->set_participant_id(s.participant_id);
  out->set_meeting_id(s.meeting_id);
  out->set_channel(ChannelToProto(s.channel));
  out->set_remote(FormatEndpoint(s.key.remote, s.key.remote_port));
  out->set_local(FormatEndpoint(s.key.local, s.key.local_port));
  out->set_send((s.flags & kLegSend) && !(s.flags & kLegMuted));
  out->set_recv(s.flags & kLegRecv);
  out->set_muted(s.flags & kLegMuted);
  out->set_pps_limit(s.pps_limit);
  out->set_kbps_limit(s.kbps_limit);
  out->set_created_unix_ns(info->created_unix_ns);
  out->set_requested(rec->second.requested);
  return true;
}

void Model::SkipIds(uint64_t gap) {
  ix_.next_site_id += gap;
  ix_.next_meeting_id += gap;
  ix_.next_participant_id += gap;
  ix_.next_leg_id += gap;
}

absl::Status Model::ReserveLegIds() {
  if (ix_.next_leg_id <= leg_id_limit_) return absl::OkStatus();
  // Whole blocks, so that the reservation does not depend on how the legs
  // were batched (one join of many, or one replicated record each).
  uint64_t limit = (ix_.next_leg_id / kLegIdBlock + 1) * kLegIdBlock;
  if (auto st = store_->SetMeta("leg_id_limit", limit); !st.ok()) return st;
  leg_id_limit_ = limit;
  return absl::OkStatus();
}

// ---------------------------------------------------------------- Apply

absl::Status Model::Apply(Plan plan, Source source) {
  const bool replicated = source.replicated;
  absl::Status st = replicated && store_->in_transaction() ? absl::OkStatus() : store_->Begin();
  if (!st.ok()) return st;
  // The store first: a change it refuses leaves memory and the tables as
  // they were, and the transaction is rolled back (a standby's sink applies
  // the changes since its last commit again).
  uint64_t max_leg = 0;
  const uint64_t limit_before = leg_id_limit_;
  for (const v1::Change& c : plan) {
    st.Update(Store1(c));
    if (c.kind() == v1::Change::LEG_PUT) max_leg = std::max(max_leg, c.leg().leg_id());
  }
  if (st.ok() && max_leg >= ix_.next_leg_id) {
    ix_.next_leg_id = max_leg + 1;
    st = ReserveLegIds();
  }
  if (!st.ok()) {
    store_->Rollback();
    leg_id_limit_ = limit_before;
    if (replicated) {
      fprintf(stderr, "tandem-control: replicated change %llu (kind %d) not stored: %s\n",
              static_cast<unsigned long long>(plan[0].seq()), int(plan[0].kind()),
              std::string(st.message()).c_str());
    }
    return st;
  }
  // Then the tables' additions, which can fail (full, key taken).
  Added added;
  absl::Status tables = AddToTables(plan, replicated, &added);
  if (!replicated) {
    if (!tables.ok()) {
      store_->Rollback();
      leg_id_limit_ = limit_before;
      return tables;
    }
    // A crash before the commit leaves entries in the tables that the store
    // does not know: the restart removes them (Load).
    if (auto cst = store_->Commit(); !cst.ok()) {
      leg_id_limit_ = limit_before;
      UndoAdded(added);
      return cst;
    }
  }
  for (const v1::Change& c : plan) Index1(c, added);
  if (replicated) {
    if (!source.snapshot) changes_->AppendReplicated(std::move(source.raw), plan[0]);
    if (!tables.ok()) {
      fprintf(stderr, "tandem-control: replicated change %llu (kind %d): %s\n",
              static_cast<unsigned long long>(plan[0].seq()), int(plan[0].kind()),
              std::string(tables.message()).c_str());
    }
    return absl::OkStatus();
  }
  for (v1::Change& c : plan) {
    if (c.kind() == v1::Change::LEG_PUT) FillLeg(c.id(), c.mutable_leg());
  }
  changes_->AppendAll(plan);
  return absl::OkStatus();
}

absl::Status Model::Store1(const v1::Change& c) {
  switch (c.kind()) {
    case v1::Change::SITE_PUT:
      return store_->PutSite(c.site());
    case v1::Change::SITE_DELETED:
      return store_->DeleteSite(c.id());
    case v1::Change::MEETING_PUT:
      return store_->PutMeeting(c.meeting());
    case v1::Change::MEETING_DELETED:
      return store_->DeleteMeeting(c.id());
    case v1::Change::PARTICIPANT_PUT:
    case v1::Change::PARTICIPANT_LEFT: {
      if (c.participant().legs_size() == 0) return store_->PutParticipant(c.participant());
      v1::Participant p = c.participant();
      p.clear_legs();
      return store_->PutParticipant(p);
    }
    default:
      return absl::OkStatus();  // legs live in the tables only; ROLE is a node's own
  }
}

uint32_t Model::LegFlags(const Plan& plan, uint64_t meeting_id, uint64_t participant_id,
                         uint32_t requested, bool muted) const {
  const v1::Meeting* m = nullptr;
  const v1::Participant* p = nullptr;
  if (auto it = ix_.meetings.find(meeting_id); it != ix_.meetings.end()) m = &it->second;
  if (auto it = ix_.participants.find(participant_id); it != ix_.participants.end()) {
    p = &it->second.p;
  }
  for (const v1::Change& c : plan) {  // as the plan leaves them
    if (c.kind() == v1::Change::MEETING_PUT && c.id() == meeting_id) m = &c.meeting();
    if ((c.kind() == v1::Change::PARTICIPANT_PUT || c.kind() == v1::Change::PARTICIPANT_LEFT) &&
        c.id() == participant_id) {
      p = &c.participant();
    }
  }
  bool withheld = m && p && m->presenter_only() && p->role() == v1::ATTENDEE;
  return LegTableFlags(requested, muted, withheld);
}

uint32_t Model::EffectiveFlags(const LegRec& leg) const {
  return LegFlags({}, leg.meeting_id, leg.participant_id, leg.requested, leg.muted);
}

absl::Status Model::AddToTables(const Plan& plan, bool replicated, Added* added) {
  std::vector<tables::LegSpec> specs;
  for (const v1::Change& c : plan) {
    if (c.kind() == v1::Change::MEETING_PUT && c.meeting().state() == v1::LIVE &&
        !writer_->HasMeeting(c.id())) {
      const v1::Meeting& m = c.meeting();
      absl::Status st =
          writer_->AddMeeting(m.meeting_id(), m.site_id(), MeetingFlags(m), m.copies_per_s_limit());
      if (!st.ok()) {
        if (!replicated) UndoAdded(*added);
        return st;  // a replicated plan is one change
      }
      added->meetings.push_back(m.meeting_id());
    }
    if (c.kind() != v1::Change::LEG_PUT) continue;
    const v1::Leg& leg = c.leg();
    auto remote = ParseEndpoint(leg.remote());
    auto local = ParseEndpoint(leg.local());
    if (ix_.legs.contains(leg.leg_id())) {
      // After an asynchronous takeover the new active hands out again the
      // ids the old active used in the writes it lost: when the old active
      // resyncs, a leg of its own may hold the id of another leg. A PUT
      // replaces it unless it is the same leg.
      auto held = writer_->GetLeg(leg.leg_id());
      bool same = held.ok() && remote.ok() && local.ok() &&
                  held->spec.participant_id == leg.participant_id() &&
                  held->spec.meeting_id == leg.meeting_id() &&
                  held->spec.key.remote == remote->first &&
                  held->spec.key.remote_port == remote->second &&
                  held->spec.key.local == local->first &&
                  held->spec.key.local_port == local->second;
      if (same) continue;  // updated in place (Index1)
      DropLeg(leg.leg_id());
    }
    if (!remote.ok() || !local.ok()) {
      UndoAdded(*added);
      return absl::InvalidArgumentError(
          absl::StrCat("leg ", leg.leg_id(), " has a bad address"));
    }
    auto channel = ChannelFromProto(leg.channel());
    if (!channel.ok()) {
      UndoAdded(*added);
      return absl::InvalidArgumentError(
          absl::StrCat("leg ", leg.leg_id(), ": ", channel.status().message()));
    }
    tables::LegSpec spec;
    spec.leg_id = leg.leg_id();
    spec.participant_id = leg.participant_id();
    spec.meeting_id = leg.meeting_id();
    spec.channel = *channel;
    spec.key.remote = remote->first;
    spec.key.remote_port = remote->second;
    spec.key.local = local->first;
    spec.key.local_port = local->second;
    spec.flags = LegFlags(plan, leg.meeting_id(), leg.participant_id(), RequestedOf(leg),
                          leg.muted());
    spec.pps_limit = leg.pps_limit();
    spec.kbps_limit = leg.kbps_limit();
    // A leg of an earlier life of this node may still hold the address.
    if (auto holder = writer_->FindLegByKey(spec.key); holder.ok()) DropLeg(*holder);
    specs.push_back(spec);
  }
  if (specs.empty()) return absl::OkStatus();
  // The planner may hold the endpoints for these legs already.
  for (const tables::LegSpec& s : specs) pool_.Release(s.key.local, s.key.local_port);
  if (absl::Status st = writer_->AddLegs(specs); !st.ok()) {
    UndoAdded(*added);
    return st;
  }
  for (const tables::LegSpec& s : specs) {
    (void)pool_.Reserve(s.key.local, s.key.local_port, s.leg_id);
    added->legs.push_back(s.leg_id);
  }
  return absl::OkStatus();
}

void Model::UndoAdded(const Added& added) {
  for (uint64_t id : added.legs) (void)writer_->RemoveLeg(id);
  for (uint64_t id : added.meetings) (void)writer_->RemoveMeeting(id);
}

void Model::Index1(const v1::Change& c, const Added& added) {
  switch (c.kind()) {
    case v1::Change::SITE_PUT:
      ix_.sites[c.id()] = c.site();
      ix_.next_site_id = std::max(ix_.next_site_id, c.id() + 1);
      if (sweeping_) seen_sites_.insert(c.id());  // only a resync sweeps by them
      break;
    case v1::Change::SITE_DELETED:
      ix_.sites.erase(c.id());
      for (auto it = ix_.meetings.begin(); it != ix_.meetings.end();) {
        if (it->second.site_id() != c.id()) {
          ++it;
          continue;
        }
        EndLive(it->first);
        it = ix_.meetings.erase(it);
      }
      break;
    case v1::Change::MEETING_PUT:
      IndexMeeting(c.meeting());
      break;
    case v1::Change::MEETING_DELETED:
      EndLive(c.id());
      ix_.meetings.erase(c.id());
      break;
    case v1::Change::PARTICIPANT_PUT:
    case v1::Change::PARTICIPANT_LEFT:
      IndexParticipant(c.participant());
      break;
    case v1::Change::LEG_PUT:
      IndexLeg(c.leg(), std::find(added.legs.begin(), added.legs.end(), c.id()) !=
                            added.legs.end());
      break;
    case v1::Change::LEG_REMOVED:
      DropLeg(c.id());
      break;
    default:
      break;
  }
}

void Model::IndexMeeting(const v1::Meeting& m) {
  ix_.meetings[m.meeting_id()] = m;
  if (sweeping_) seen_meetings_.insert(m.meeting_id());
  ix_.next_meeting_id = std::max(ix_.next_meeting_id, m.meeting_id() + 1);
  if (m.state() != v1::LIVE) {
    EndLive(m.meeting_id());
    return;
  }
  if (writer_->HasMeeting(m.meeting_id())) {
    (void)writer_->SetMeetingFlags(m.meeting_id(), MeetingFlags(m));
    (void)writer_->SetMeetingCopiesLimit(m.meeting_id(), m.copies_per_s_limit());
  }
  ix_.live.try_emplace(m.meeting_id());
}

void Model::IndexParticipant(v1::Participant p) {
  p.clear_legs();
  const uint64_t pid = p.participant_id();
  ix_.next_participant_id = std::max(ix_.next_participant_id, pid + 1);
  if (sweeping_) seen_participants_.insert(pid);
  if (auto old = ix_.participants.find(pid);
      old != ix_.participants.end() && (old->second.p.meeting_id() != p.meeting_id() ||
                                        old->second.p.joined_unix_ns() != p.joined_unix_ns())) {
    // Another participant under the same id (see AddToTables): the old one
    // goes, with its legs and its place in its meeting.
    Forget(pid);
  }
  auto lit = ix_.live.find(p.meeting_id());
  if (lit == ix_.live.end()) return;  // its meeting ended: the store has it
  auto [it, fresh] = ix_.participants.try_emplace(pid);
  bool was_present = !fresh && it->second.p.left_unix_ns() == 0;
  bool present = p.left_unix_ns() == 0;
  it->second.p = std::move(p);
  if (fresh) lit->second.participants.push_back(pid);
  if (present && !was_present) lit->second.present++;
  if (!present && was_present && lit->second.present > 0) lit->second.present--;
}

void Model::IndexLeg(const v1::Leg& leg, bool added) {
  if (sweeping_) seen_legs_.insert(leg.leg_id());
  auto it = ix_.legs.find(leg.leg_id());
  if (it != ix_.legs.end()) {
    it->second.muted = leg.muted();
    it->second.requested = RequestedOf(leg);
    it->second.pps_limit = leg.pps_limit();
    it->second.kbps_limit = leg.kbps_limit();
    (void)writer_->SetLegFlags(leg.leg_id(), EffectiveFlags(it->second));
    (void)writer_->SetLegLimits(leg.leg_id(), leg.pps_limit(), leg.kbps_limit());
    return;
  }
  if (!added) return;  // the tables refused it (logged)
  auto remote = ParseEndpoint(leg.remote());
  auto local = ParseEndpoint(leg.local());
  LegRec rec;
  rec.participant_id = leg.participant_id();
  rec.meeting_id = leg.meeting_id();
  rec.requested = RequestedOf(leg);
  rec.muted = leg.muted();
  rec.channel = leg.channel();
  rec.remote = remote->first;
  rec.remote_port = remote->second;
  rec.local = local->first;
  rec.local_port = local->second;
  rec.pps_limit = leg.pps_limit();
  rec.kbps_limit = leg.kbps_limit();
  ix_.legs[leg.leg_id()] = rec;
  ix_.participants[rec.participant_id].legs.push_back(leg.leg_id());
  ix_.live[rec.meeting_id].legs++;
}

void Model::DropLeg(uint64_t id) {
  auto it = ix_.legs.find(id);
  if (it == ix_.legs.end()) return;
  const LegRec& rec = it->second;
  pool_.Release(rec.local, rec.local_port);
  if (auto pit = ix_.participants.find(rec.participant_id); pit != ix_.participants.end()) {
    Erase(pit->second.legs, id);
  }
  auto lit = ix_.live.find(rec.meeting_id);
  if (lit != ix_.live.end() && lit->second.legs > 0) lit->second.legs--;
  (void)writer_->RemoveLeg(id);
  ix_.legs.erase(it);
  usage_base_.erase(id);
}

void Model::Forget(uint64_t pid) {
  auto it = ix_.participants.find(pid);
  if (it == ix_.participants.end()) return;
  std::vector<uint64_t> legs = it->second.legs;
  for (uint64_t leg : legs) DropLeg(leg);
  if (auto lit = ix_.live.find(it->second.p.meeting_id()); lit != ix_.live.end()) {
    Erase(lit->second.participants, pid);
    if (it->second.p.left_unix_ns() == 0 && lit->second.present > 0) lit->second.present--;
  }
  ix_.participants.erase(it);
}

void Model::EndLive(uint64_t meeting_id) {
  auto lit = ix_.live.find(meeting_id);
  if (lit == ix_.live.end()) return;
  for (uint64_t pid : lit->second.participants) {
    auto pit = ix_.participants.find(pid);
    if (pit == ix_.participants.end()) continue;
    std::vector<uint64_t> legs = pit->second.legs;
    for (uint64_t leg : legs) DropLeg(leg);
    ix_.participants.erase(pit);
  }
  if (writer_->HasMeeting(meeting_id)) (void)writer_->RemoveMeeting(meeting_id);
  ix_.live.erase(lit);
}

// ---------------------------------------------------------------- resync

void Model::BeginSweep() {
  sweeping_ = true;
  seen_sites_.clear();
  seen_meetings_.clear();
  seen_participants_.clear();
  seen_legs_.clear();
}

absl::Status Model::EndSweep(uint64_t log_id, uint64_t seq) {
  if (!store_->in_transaction()) {
    if (absl::Status st = store_->Begin(); !st.ok()) return st;
  }
  // Mark and sweep: whatever the snapshot did not hold is gone on the active
  // (an old active that rejoins holds the writes it made while cut off).
  // The store first, committed with the snapshot's records: if that fails,
  // memory is left as it was, so that the sweep can be done again. Only
  // participants held in memory are swept: those of ended meetings are not
  // in any snapshot.
  std::vector<uint64_t> sites = Unseen(ix_.sites, seen_sites_);
  std::vector<uint64_t> meetings = Unseen(ix_.meetings, seen_meetings_);
  std::vector<uint64_t> participants = Unseen(ix_.participants, seen_participants_);
  absl::Status stored;
  for (uint64_t id : sites) stored.Update(store_->DeleteSite(id));
  for (uint64_t id : meetings) stored.Update(store_->DeleteMeeting(id));
  for (uint64_t id : participants) stored.Update(store_->DeleteParticipant(id));
  if (!stored.ok()) {
    store_->Rollback();
    return stored;
  }
  if (auto st = store_->Commit(); !st.ok()) {
    fprintf(stderr, "tandem-control: committing a resync: %s\n", std::string(st.message()).c_str());
    return st;
  }
  std::vector<uint64_t> legs = Unseen(ix_.legs, seen_legs_);
  for (uint64_t id : legs) DropLeg(id);
  for (uint64_t id : sites) ix_.sites.erase(id);  // its meetings were not in the snapshot either
  for (uint64_t id : meetings) {
    EndLive(id);
    ix_.meetings.erase(id);
  }
  for (uint64_t id : participants) Forget(id);  // gone already if it went with its meeting
  // Meetings live in the tables but not on the active.
  std::vector<uint64_t> stale;
  writer_->ForEachMeeting([&](uint64_t id, uint64_t, uint32_t) {
    auto it = ix_.meetings.find(id);
    if (it == ix_.meetings.end() || it->second.state() != v1::LIVE) stale.push_back(id);
  });
  for (uint64_t id : stale) (void)writer_->RemoveMeeting(id);
  changes_->Reset(log_id, seq + 1);
  sweeping_ = false;
  // Kept only for the sweep: a standby that follows for days must not keep
  // the id of every participant and leg it ever applied.
  absl::flat_hash_set<uint64_t>().swap(seen_sites_);
  absl::flat_hash_set<uint64_t>().swap(seen_meetings_);
  absl::flat_hash_set<uint64_t>().swap(seen_participants_);
  absl::flat_hash_set<uint64_t>().swap(seen_legs_);
  fprintf(stderr,
          "tandem-control: resynced from the active node: %zu sites, %zu meetings, %zu legs "
          "(dropped %zu legs, %zu meetings, %zu sites)\n",
          ix_.sites.size(), ix_.meetings.size(), ix_.legs.size(), legs.size(), meetings.size(),
          sites.size());
  return absl::OkStatus();
}

// ---------------------------------------------------------------- load

absl::Status Model::Load() {
  if (auto st = LoadStore(); !st.ok()) return st;
  ReconcileLegs();
  return absl::OkStatus();
}

absl::Status Model::LoadStore() {
  auto sites = store_->LoadSites();
  if (!sites.ok()) return sites.status();
  for (v1::Site& s : *sites) {
    ix_.next_site_id = std::max(ix_.next_site_id, s.site_id() + 1);
    ix_.sites[s.site_id()] = std::move(s);
  }
  auto meetings = store_->LoadMeetings();
  if (!meetings.ok()) return meetings.status();
  for (v1::Meeting& m : *meetings) {
    ix_.next_meeting_id = std::max(ix_.next_meeting_id, m.meeting_id() + 1);
    ix_.meetings[m.meeting_id()] = std::move(m);
  }
  auto max_pid = store_->MaxParticipantId();
  if (!max_pid.ok()) return max_pid.status();
  ix_.next_participant_id = *max_pid + 1;
  auto limit = store_->GetMeta("leg_id_limit", 0);
  if (!limit.ok()) return limit.status();
  ix_.next_leg_id = std::max<uint64_t>(*limit, 1);
  leg_id_limit_ = ix_.next_leg_id;  // the next id reserves a fresh block

  // Meetings: the store decides which are live.
  std::vector<uint64_t> stale_meetings;
  writer_->ForEachMeeting([&](uint64_t id, uint64_t, uint32_t) {
    auto it = ix_.meetings.find(id);
    if (it == ix_.meetings.end() || it->second.state() != v1::LIVE) stale_meetings.push_back(id);
  });
  for (uint64_t id : stale_meetings) {
    removed_on_start_ += writer_->LegsOfMeeting(id).size();
    (void)writer_->RemoveMeeting(id);
  }
  for (auto& [id, m] : ix_.meetings) {
    if (m.state() != v1::LIVE) continue;
    if (!writer_->HasMeeting(id)) {
      auto st = writer_->AddMeeting(id, m.site_id(), MeetingFlags(m), m.copies_per_s_limit());
      if (!st.ok()) return st;
    } else {
      (void)writer_->SetMeetingFlags(id, MeetingFlags(m));
      (void)writer_->SetMeetingCopiesLimit(id, m.copies_per_s_limit());
    }
    LiveMeeting& live = ix_.live[id];
    auto parts = store_->LoadParticipants(id);
    if (!parts.ok()) return parts.status();
    for (v1::Participant& p : *parts) {
      live.participants.push_back(p.participant_id());
      if (p.left_unix_ns() == 0) ++live.present;
      ix_.participants[p.participant_id()].p = std::move(p);
    }
  }
  return absl::OkStatus();
}

void Model::ReconcileLegs() {
  // Legs: kept iff their participant is present in their meeting.
  std::vector<uint64_t> stale_legs;
  std::vector<tables::LegInfo> keep;
  writer_->ForEachLeg([&](const tables::LegInfo& info) {
    auto it = ix_.participants.find(info.spec.participant_id);
    if (it == ix_.participants.end() || it->second.p.left_unix_ns() != 0 ||
        it->second.p.meeting_id() != info.spec.meeting_id) {
      stale_legs.push_back(info.spec.leg_id);
    } else {
      keep.push_back(info);
    }
  });
  for (uint64_t id : stale_legs) (void)writer_->RemoveLeg(id);
  removed_on_start_ += stale_legs.size();
  // Leg ids rise in join order: a participant's legs are listed as they joined.
  std::sort(keep.begin(), keep.end(), [](const tables::LegInfo& a, const tables::LegInfo& b) {
    return a.spec.leg_id < b.spec.leg_id;
  });
  uint64_t max_leg = 0;
  for (const tables::LegInfo& info : keep) {
    const tables::LegSpec& s = info.spec;
    ParticipantRec& pr = ix_.participants[s.participant_id];
    LegRec rec;
    rec.participant_id = s.participant_id;
    rec.meeting_id = s.meeting_id;
    rec.requested = s.flags & (kLegSend | kLegRecv);
    rec.muted = (s.flags & kLegMuted) != 0;
    // An attendee's leg in a presenter-only meeting had its send flag cleared
    // by policy; it asked to send unless it only receives, which we cannot
    // tell apart any more: assume it sends (the common case).
    const v1::Meeting& m = ix_.meetings[rec.meeting_id];
    if (m.presenter_only() && pr.p.role() == v1::ATTENDEE) rec.requested |= kLegSend;
    rec.channel = ChannelToProto(s.channel);
    rec.remote = s.key.remote;
    rec.remote_port = s.key.remote_port;
    rec.local = s.key.local;
    rec.local_port = s.key.local_port;
    rec.pps_limit = s.pps_limit;
    rec.kbps_limit = s.kbps_limit;
    (void)pool_.Reserve(rec.local, rec.local_port, s.leg_id);
    pr.legs.push_back(s.leg_id);
    ix_.live[rec.meeting_id].legs++;
    ix_.legs[s.leg_id] = rec;
    max_leg = std::max(max_leg, s.leg_id);
  }
  adopted_legs_ = keep.size();
  if (max_leg >= ix_.next_leg_id) {
    ix_.next_leg_id = max_leg + 1;
    leg_id_limit_ = ix_.next_leg_id;
  }
}

}  // namespace tandem::control
