// The core's side of the pair: role changes, snapshots and usage for the
// standby, and the standby's application of replicated changes. See
// control/pair.h for the protocol and docs/pair.md for the behaviour.
#include <openssl/evp.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "control/core.h"
#include "control/records.h"

namespace tandem::control {
namespace {

using tables::kLegRecv;
using tables::kLegSend;

std::string Serialize(const v1::Change& c) {
  std::string s;
  c.SerializeToString(&s);
  return s;
}

uint64_t Sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

absl::Status Core::CheckWritable() const {
  if (role_ == tables::Role::kActive) {
    if (!config_.pair.enabled || !config_.pair.strict || standby_confirmed_.load()) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        "mode sync-strict: no standby holds a confirmed copy (none connected, or it is "
        "resyncing): the write is refused and nothing changed");
  }
  std::string where = config_.pair.peer_api.empty()
                          ? std::string("the active node of the pair")
                          : absl::StrCat("the active node at ", config_.pair.peer_api);
  return absl::FailedPreconditionError(
      absl::StrCat("node ", config_.node, " is standby: send writes to ", where));
}

tables::Role Core::node_role() const {
  absl::MutexLock lock(&mu_);
  return role_;
}

uint64_t Core::node_epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

absl::Status Core::EnsureStoreTxn() {
  return store_->in_transaction() ? absl::OkStatus() : store_->Begin();
}

absl::Status Core::CommitReplicated() {
  absl::MutexLock lock(&mu_);
  if (!store_->in_transaction()) return absl::OkStatus();
  absl::Status st = store_->Commit();  // rolled back on failure
  if (!st.ok()) {
    fprintf(stderr, "tandem-control: committing replicated changes: %s\n",
            std::string(st.message()).c_str());
  }
  return st;
}

uint64_t Core::SetNodeRole(tables::Role role, uint64_t epoch, const std::string& cause,
                           bool after_active_peer) {
  absl::MutexLock lock(&mu_);
  if (store_->in_transaction()) {
    // Replicated changes the sink had not committed yet (nor acknowledged).
    if (absl::Status st = store_->Commit(); !st.ok()) {
      fprintf(stderr, "tandem-control: committing replicated changes at a role change: %s\n",
              std::string(st.message()).c_str());
    }
  }
  const uint64_t position = changes_->last_seq();
  bool changed = role != role_ || epoch != epoch_;
  bool taking_over = role == tables::Role::kActive && role_ != tables::Role::kActive;
  role_ = role;
  epoch_ = epoch;
  (void)store_->SetMeta("epoch", epoch);
  writer_->SetRole(role, epoch);
  if (!changed) return position;
  if (taking_over && after_active_peer) {
    next_site_id_ += kTakeoverIdGap;
    next_meeting_id_ += kTakeoverIdGap;
    next_participant_id_ += kTakeoverIdGap;
    next_leg_id_ += kTakeoverIdGap;
  }
  if (role == tables::Role::kActive) {
    // Ids handed out from now on must not collide with replicated ones.
    leg_id_limit_ = next_leg_id_;
    v1::Change c = MakeChange(v1::Change::ROLE, 0);
    c.set_role("active");
    c.set_epoch(epoch);
    changes_->Append(std::move(c));
  }
  fprintf(stderr, "tandem-control: node %s is now %s, epoch %llu: %s\n", config_.node.c_str(),
          role == tables::Role::kActive ? "active" : "standby",
          static_cast<unsigned long long>(epoch), cause.c_str());
  return position;
}

void Core::SetPairHints(uint64_t position, bool handover) {
  absl::MutexLock lock(&mu_);
  tables::TablesHeader& h = writer_->view().header();
  h.mirror_position.store(position, std::memory_order_relaxed);
  h.handover.store(handover ? 1 : 0, std::memory_order_relaxed);
}

void Core::ReadSnapshot(SnapshotCursor& cur, size_t max_bytes, std::vector<std::string>* out,
                        const std::function<void()>& under_lock) {
  absl::MutexLock lock(&mu_);
  if (!cur.opened) {
    // Ids only: a few milliseconds for a million objects. In this order a
    // record never needs one read after it (a leg read here had its meeting
    // live and its participant present when they were read).
    cur.opened = true;
    cur.log_id = changes_->log_id();
    cur.seq = changes_->last_seq();
    cur.objects.reserve(sites_.size() + meetings_.size() + participants_.size() + legs_.size());
    for (const auto& [id, s] : sites_) cur.objects.emplace_back(v1::Change::SITE_PUT, id);
    for (const auto& [id, m] : meetings_) cur.objects.emplace_back(v1::Change::MEETING_PUT, id);
    for (const auto& [id, p] : participants_) {
      cur.objects.emplace_back(v1::Change::PARTICIPANT_PUT, id);
    }
    for (const auto& [id, l] : legs_) cur.objects.emplace_back(v1::Change::LEG_PUT, id);
  }
  size_t bytes = 0;
  for (; cur.next < cur.objects.size() && bytes < max_bytes; ++cur.next) {
    auto [kind, id] = cur.objects[cur.next];
    v1::Change c = MakeChange(kind, id);
    if (kind == v1::Change::SITE_PUT) {
      auto it = sites_.find(id);
      if (it == sites_.end()) continue;
      *c.mutable_site() = it->second;
    } else if (kind == v1::Change::MEETING_PUT) {
      auto it = meetings_.find(id);
      if (it == meetings_.end()) continue;
      *c.mutable_meeting() = it->second;
    } else if (kind == v1::Change::PARTICIPANT_PUT) {
      auto it = participants_.find(id);
      if (it == participants_.end()) continue;
      *c.mutable_participant() = it->second.p;
    } else {
      if (!legs_.contains(id)) continue;
      FillLeg(id, false, c.mutable_leg());
    }
    out->push_back(Serialize(c));
    bytes += out->back().size();
  }
  if (under_lock) under_lock();
}

v1::UsageRecord Core::UsageDelta() {
  absl::MutexLock lock(&mu_);
  RefreshState();
  v1::UsageRecord r;
  for (const auto& [id, rec] : legs_) {
    v1::Usage u = LegUsage(id);
    uint64_t mark = u.packets_in() + u.packets_out() + u.drop_not_allowed() + u.drop_policed() +
                    u.drop_other();
    uint64_t& sent = usage_sent_[id];
    if (mark == sent) continue;
    sent = mark;
    v1::LegUsageRecord* l = r.add_legs();
    l->set_leg_id(id);
    *l->mutable_usage() = u;
  }
  for (auto it = usage_sent_.begin(); it != usage_sent_.end();) {
    if (!legs_.contains(it->first)) {
      usage_sent_.erase(it++);
    } else {
      ++it;
    }
  }
  return r;
}

void Core::ApplyUsage(const v1::UsageRecord& r) {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) return;  // see ApplyReplicated
  RefreshState();
  for (const v1::LegUsageRecord& l : r.legs()) {
    if (!legs_.contains(l.leg_id())) continue;
    // Our own switch may hold counts of this leg from a time we were active:
    // the base is what they lack, so that base + own equals the peer's total.
    usage_base_.erase(l.leg_id());
    v1::Usage own = LegUsage(l.leg_id());
    const v1::Usage& t = l.usage();
    v1::Usage b;
    b.set_packets_in(Sub(t.packets_in(), own.packets_in()));
    b.set_bytes_in(Sub(t.bytes_in(), own.bytes_in()));
    b.set_packets_out(Sub(t.packets_out(), own.packets_out()));
    b.set_bytes_out(Sub(t.bytes_out(), own.bytes_out()));
    b.set_drop_not_allowed(Sub(t.drop_not_allowed(), own.drop_not_allowed()));
    b.set_drop_policed(Sub(t.drop_policed(), own.drop_policed()));
    b.set_drop_other(Sub(t.drop_other(), own.drop_other()));
    b.set_first_packet_unix_ns(t.first_packet_unix_ns());
    b.set_last_packet_unix_ns(t.last_packet_unix_ns());
    usage_base_[l.leg_id()] = b;
  }
}

std::string Core::SiteDigest(uint64_t* position,
                             const std::function<void(const std::string&, uint64_t)>& under_lock) {
  absl::MutexLock lock(&mu_);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::string buf;
  auto add = [&](const google::protobuf::Message& m) {
    buf.clear();
    google::protobuf::io::StringOutputStream sos(&buf);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&cos);
    cos.Trim();
    uint64_t n = buf.size();
    EVP_DigestUpdate(ctx, &n, sizeof n);
    EVP_DigestUpdate(ctx, buf.data(), buf.size());
  };
  for (const auto& [id, s] : sites_) add(s);
  for (const auto& [id, m] : meetings_) {
    v1::Meeting copy = m;
    copy.set_participants(0);  // live counts are not site data
    copy.set_legs(0);
    add(copy);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string digest(reinterpret_cast<char*>(md), len);
  *position = changes_->last_seq();
  if (under_lock) under_lock(digest, *position);
  return digest;
}

void Core::BeginResync() {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) return;  // see ApplyReplicated
  resync_ = true;
  seen_sites_.clear();
  seen_meetings_.clear();
  seen_participants_.clear();
  seen_legs_.clear();
}

void Core::DropLegQuietly(uint64_t id) {
  auto it = legs_.find(id);
  if (it == legs_.end()) return;
  const LegRec& rec = it->second;
  pool_.Release(rec.local, rec.local_port);
  auto pit = participants_.find(rec.participant_id);
  if (pit != participants_.end()) {
    auto& v = pit->second.legs;
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
  }
  auto lit = live_.find(rec.meeting_id);
  if (lit != live_.end() && lit->second.legs > 0) lit->second.legs--;
  (void)writer_->RemoveLeg(id);
  legs_.erase(it);
  usage_base_.erase(id);
}

void Core::EndLiveQuietly(uint64_t meeting_id) {
  auto lit = live_.find(meeting_id);
  if (lit == live_.end()) return;
  for (uint64_t pid : lit->second.participants) {
    auto pit = participants_.find(pid);
    if (pit == participants_.end()) continue;
    std::vector<uint64_t> legs = pit->second.legs;
    for (uint64_t leg : legs) DropLegQuietly(leg);
    participants_.erase(pit);
  }
  if (writer_->HasMeeting(meeting_id)) (void)writer_->RemoveMeeting(meeting_id);
  live_.erase(lit);
}

absl::Status Core::ApplyReplicated(const v1::Change& c, std::string raw, bool snapshot) {
  absl::MutexLock lock(&mu_);
  // The pair stops the sink just after SetNodeRole made this node active: a
  // record of the old active still in flight then is not applied. It comes
  // after the takeover position this node reports, would take a sequence
  // number of its own log, and would open a store transaction that nothing
  // commits on an active node (every API write after it failed with
  // "store: nested transaction").
  if (role_ == tables::Role::kActive) {
    return absl::FailedPreconditionError("this node is active: replicated change not applied");
  }
  if (absl::Status st = EnsureStoreTxn(); !st.ok()) return st;
  // The store is written first: a change it refuses leaves memory as it was,
  // and the transaction is rolled back (the sink applies its changes again).
  auto refused = [&](absl::Status st) {
    store_->Rollback();
    fprintf(stderr, "tandem-control: replicated change %llu (kind %d) not stored: %s\n",
            static_cast<unsigned long long>(c.seq()), int(c.kind()),
            std::string(st.message()).c_str());
    return st;
  };
  absl::Status st;  // of the tables: logged, not refused
  switch (c.kind()) {
    case v1::Change::SITE_PUT:
      if (absl::Status put = store_->PutSite(c.site()); !put.ok()) return refused(put);
      sites_[c.site().site_id()] = c.site();
      next_site_id_ = std::max(next_site_id_, c.site().site_id() + 1);
      if (resync_) seen_sites_.insert(c.site().site_id());  // only a resync sweeps by them
      break;
    case v1::Change::SITE_DELETED: {
      if (absl::Status del = store_->DeleteSite(c.id()); !del.ok()) return refused(del);
      sites_.erase(c.id());
      for (auto it = meetings_.begin(); it != meetings_.end();) {
        if (it->second.site_id() == c.id()) {
          EndLiveQuietly(it->first);
          it = meetings_.erase(it);
        } else {
          ++it;
        }
      }
      break;
    }
    case v1::Change::MEETING_PUT: {
      const v1::Meeting& m = c.meeting();
      if (absl::Status put = store_->PutMeeting(m); !put.ok()) return refused(put);
      meetings_[m.meeting_id()] = m;
      if (resync_) seen_meetings_.insert(m.meeting_id());  // only a resync sweeps by them
      next_meeting_id_ = std::max(next_meeting_id_, m.meeting_id() + 1);
      if (m.state() == v1::LIVE) {
        uint32_t flags = m.presenter_only() ? tables::kMeetingPresenterOnly : 0;
        if (!writer_->HasMeeting(m.meeting_id())) {
          st.Update(
              writer_->AddMeeting(m.meeting_id(), m.site_id(), flags, m.copies_per_s_limit()));
        } else {
          (void)writer_->SetMeetingFlags(m.meeting_id(), flags);
          (void)writer_->SetMeetingCopiesLimit(m.meeting_id(), m.copies_per_s_limit());
        }
        live_.try_emplace(m.meeting_id());
      } else {
        EndLiveQuietly(m.meeting_id());
      }
      break;
    }
    case v1::Change::MEETING_DELETED:
      EndLiveQuietly(c.id());
      meetings_.erase(c.id());
      break;
    case v1::Change::PARTICIPANT_PUT:
    case v1::Change::PARTICIPANT_LEFT: {
      v1::Participant p = c.participant();
      p.clear_legs();
      if (absl::Status put = store_->PutParticipant(p); !put.ok()) return refused(put);
      next_participant_id_ = std::max(next_participant_id_, p.participant_id() + 1);
      if (resync_) seen_participants_.insert(p.participant_id());  // only a resync sweeps by them
      if (auto old = participants_.find(p.participant_id());
          old != participants_.end() && (old->second.p.meeting_id() != p.meeting_id() ||
                                         old->second.p.joined_unix_ns() != p.joined_unix_ns())) {
        // Another participant under the same id (see LEG_PUT): the old one
        // goes, with its legs and its place in its meeting.
        std::vector<uint64_t> stale = old->second.legs;
        for (uint64_t leg : stale) DropLegQuietly(leg);
        if (auto olit = live_.find(old->second.p.meeting_id()); olit != live_.end()) {
          auto& v = olit->second.participants;
          v.erase(std::remove(v.begin(), v.end(), old->first), v.end());
          if (old->second.p.left_unix_ns() == 0 && olit->second.present > 0) {
            olit->second.present--;
          }
        }
        participants_.erase(old);
      }
      auto lit = live_.find(p.meeting_id());
      if (lit == live_.end()) break;  // its meeting ended: the store has it
      auto [it, fresh] = participants_.try_emplace(p.participant_id());
      bool was_present = !fresh && it->second.p.left_unix_ns() == 0;
      bool present = p.left_unix_ns() == 0;
      it->second.p = std::move(p);
      if (fresh) lit->second.participants.push_back(it->first);
      if (present && !was_present) lit->second.present++;
      if (!present && was_present && lit->second.present > 0) lit->second.present--;
      break;
    }
    case v1::Change::LEG_PUT: {
      const v1::Leg& leg = c.leg();
      if (resync_) seen_legs_.insert(leg.leg_id());  // only a resync sweeps by them
      // What the leg asked (records before `requested` existed: its flags).
      const uint32_t requested =
          leg.requested() ? leg.requested() : (leg.send() ? kLegSend : 0) | (leg.recv() ? kLegRecv : 0);
      auto remote = ParseEndpoint(leg.remote());
      auto local = ParseEndpoint(leg.local());
      if (auto it = legs_.find(leg.leg_id()); it != legs_.end()) {
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
        if (!same) DropLegQuietly(leg.leg_id());
      }
      if (auto it = legs_.find(leg.leg_id()); it != legs_.end()) {
        it->second.muted = leg.muted();
        it->second.requested = requested;
        st.Update(writer_->SetLegFlags(leg.leg_id(), EffectiveFlags(it->second)));
        st.Update(writer_->SetLegLimits(leg.leg_id(), leg.pps_limit(), leg.kbps_limit()));
        break;
      }
      if (!remote.ok() || !local.ok()) {
        st = absl::InvalidArgumentError(absl::StrCat("replicated leg ", leg.leg_id(),
                                                     " has a bad address"));
        break;
      }
      auto channel = ChannelFromProto(leg.channel());
      if (!channel.ok()) {
        st = absl::InvalidArgumentError(
            absl::StrCat("replicated leg ", leg.leg_id(), ": ", channel.status().message()));
        break;
      }
      LegRec rec;
      rec.participant_id = leg.participant_id();
      rec.meeting_id = leg.meeting_id();
      rec.requested = requested;
      rec.muted = leg.muted();
      rec.local = local->first;
      rec.local_port = local->second;
      tables::LegSpec spec;
      spec.leg_id = leg.leg_id();
      spec.participant_id = leg.participant_id();
      spec.meeting_id = leg.meeting_id();
      spec.channel = *channel;
      spec.key.remote = remote->first;
      spec.key.remote_port = remote->second;
      spec.key.local = local->first;
      spec.key.local_port = local->second;
      spec.flags = EffectiveFlags(rec);
      spec.pps_limit = leg.pps_limit();
      spec.kbps_limit = leg.kbps_limit();
      // A leg of an earlier life of this node may still hold the address.
      if (auto holder = writer_->FindLegByKey(spec.key); holder.ok()) DropLegQuietly(*holder);
      pool_.Release(local->first, local->second);
      st = writer_->AddLeg(spec);
      if (!st.ok()) break;
      (void)pool_.Reserve(local->first, local->second, leg.leg_id());
      legs_[leg.leg_id()] = rec;
      participants_[rec.participant_id].legs.push_back(leg.leg_id());
      live_[rec.meeting_id].legs++;
      next_leg_id_ = std::max(next_leg_id_, leg.leg_id() + 1);
      break;
    }
    case v1::Change::LEG_REMOVED:
      DropLegQuietly(c.id());
      break;
    default:
      break;  // ROLE: this node's role is its own
  }
  if (!snapshot) changes_->AppendReplicated(std::move(raw), c);
  if (!st.ok()) {
    fprintf(stderr, "tandem-control: replicated change %llu (kind %d): %s\n",
            static_cast<unsigned long long>(c.seq()), int(c.kind()),
            std::string(st.message()).c_str());
  }
  return absl::OkStatus();
}

namespace {
template <typename Map>
std::vector<uint64_t> Unseen(const Map& held, const absl::flat_hash_set<uint64_t>& seen) {
  std::vector<uint64_t> out;
  for (const auto& [id, v] : held) {
    if (!seen.contains(id)) out.push_back(id);
  }
  return out;
}
}  // namespace

absl::Status Core::EndResync(uint64_t log_id, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) {  // see ApplyReplicated
    return absl::FailedPreconditionError("this node is active: resync not applied");
  }
  if (absl::Status st = EnsureStoreTxn(); !st.ok()) return st;
  // Mark and sweep: whatever the snapshot did not hold is gone on the active
  // (an old active that rejoins holds the writes it made while cut off).
  // The store first, committed with the snapshot's records: if that fails,
  // memory is left as it was, so that the sweep can be done again. Only
  // participants held in memory are swept: those of ended meetings are not
  // in any snapshot.
  std::vector<uint64_t> sites = Unseen(sites_, seen_sites_);
  std::vector<uint64_t> meetings = Unseen(meetings_, seen_meetings_);
  std::vector<uint64_t> participants = Unseen(participants_, seen_participants_);
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
  std::vector<uint64_t> legs = Unseen(legs_, seen_legs_);
  for (uint64_t id : legs) DropLegQuietly(id);
  for (uint64_t id : sites) sites_.erase(id);  // its meetings were not in the snapshot either
  for (uint64_t id : meetings) {
    EndLiveQuietly(id);
    meetings_.erase(id);
  }
  for (uint64_t id : participants) {
    auto it = participants_.find(id);
    if (it == participants_.end()) continue;  // went with its meeting
    auto lit = live_.find(it->second.p.meeting_id());
    if (lit != live_.end()) {
      auto& v = lit->second.participants;
      v.erase(std::remove(v.begin(), v.end(), id), v.end());
      if (it->second.p.left_unix_ns() == 0 && lit->second.present > 0) lit->second.present--;
    }
    participants_.erase(it);
  }
  // Meetings live in the tables but not on the active.
  std::vector<uint64_t> stale;
  writer_->ForEachMeeting([&](uint64_t id, uint64_t, uint32_t) {
    auto it = meetings_.find(id);
    if (it == meetings_.end() || it->second.state() != v1::LIVE) stale.push_back(id);
  });
  for (uint64_t id : stale) (void)writer_->RemoveMeeting(id);
  changes_->Reset(log_id, seq + 1);
  resync_ = false;
  // Kept only for the sweep: a standby that follows for days must not keep
  // the id of every participant and leg it ever applied.
  absl::flat_hash_set<uint64_t>().swap(seen_sites_);
  absl::flat_hash_set<uint64_t>().swap(seen_meetings_);
  absl::flat_hash_set<uint64_t>().swap(seen_participants_);
  absl::flat_hash_set<uint64_t>().swap(seen_legs_);
  fprintf(stderr,
          "tandem-control: resynced from the active node: %zu sites, %zu meetings, %zu legs "
          "(dropped %zu legs, %zu meetings, %zu sites)\n",
          sites_.size(), meetings_.size(), legs_.size(), legs.size(), meetings.size(),
          sites.size());
  return absl::OkStatus();
}

}  // namespace tandem::control
