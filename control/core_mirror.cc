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

std::string Serialize(const v1::Change& c) {
  std::string s;
  c.SerializeToString(&s);
  return s;
}

uint64_t Sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

absl::Status Core::CheckWritable() const {
  // Worded as a standby's refusal: the client library follows it (IsStandbyRefusal).
  if (role_ == tables::Role::kActive && stepping_down_.load()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", config_.node, " is standby (stepping down): the write is refused and nothing "
        "changed; send it to the pair's active node"));
  }
  if (role_ == tables::Role::kActive) {
    if (fenced_.load()) {
      fenced_refusals_.fetch_add(1);
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", config_.node,
          " is fenced: it cannot hear its peer and yields the VIPs to it (its router prefers "
          "the peer's announcement, or [routing] preferred_dc = \"peer\"; split brain, "
          "docs/routed.md): the write is refused and nothing changed; send it to the node "
          "the VIPs route to"));
    }
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

tables::Role Core::node_role() const { return role_; }

uint64_t Core::node_epoch() const { return epoch_; }

absl::Status Core::CommitReplicated() {
  absl::MutexLock lock(&mu_);
  if (!model_->store().in_transaction()) return absl::OkStatus();
  absl::Status st = model_->store().Commit();  // rolled back on failure
  if (!st.ok()) {
    fprintf(stderr, "tandem-control: committing replicated changes: %s\n",
            std::string(st.message()).c_str());
  }
  return st;
}

void Core::SetActiveUntil(uint64_t mono_ns) { model_->writer().SetActiveUntil(mono_ns); }

void Core::BeginStepDown(uint64_t epoch) {
  stepping_down_ = true;
  // Without the lock: the tables' role is atomics only (TablesWriter::SetRole),
  // and the pair thread, which calls this and SetNodeRole, its only writer.
  model_->writer().SetRole(tables::Role::kStandby, epoch);
}

uint64_t Core::SetNodeRole(tables::Role role, uint64_t epoch, const std::string& cause,
                           bool after_active_peer) {
  absl::MutexLock lock(&mu_);
  const uint64_t position = model_->changes().last_seq();
  bool changed = role != role_ || epoch != epoch_;
  bool taking_over = role == tables::Role::kActive && role_ != tables::Role::kActive;
  role_ = role;
  epoch_ = epoch;
  stepping_down_ = false;
  // The switch first: each store commit below waits for an fdatasync, which
  // a loaded host stretches to seconds. A daemon restarted in between adopts
  // the tables' epoch (Reconcile).
  model_->writer().SetRole(role, epoch);
  if (model_->store().in_transaction()) {
    // Replicated changes the sink had not committed yet (nor acknowledged).
    if (absl::Status st = model_->store().Commit(); !st.ok()) {
      fprintf(stderr, "tandem-control: committing replicated changes at a role change: %s\n",
              std::string(st.message()).c_str());
    }
  }
  (void)model_->store().SetMeta("epoch", epoch);
  if (!changed) return position;
  if (taking_over && after_active_peer) model_->SkipIds(kTakeoverIdGap);
  if (role == tables::Role::kActive) {
    // Ids handed out from now on must not collide with replicated ones.
    model_->ReserveLegIdsAfresh();
    v1::Change c = MakeChange(v1::Change::ROLE, 0);
    c.set_role("active");
    c.set_epoch(epoch);
    model_->changes().Append(std::move(c));
  }
  fprintf(stderr, "tandem-control: node %s is now %s, epoch %llu: %s\n", config_.node.c_str(),
          role == tables::Role::kActive ? "active" : "standby",
          static_cast<unsigned long long>(epoch), cause.c_str());
  return position;
}

void Core::SetPairHints(uint64_t position, bool handover) {
  tables::TablesHeader& h = model_->writer().view().header();
  h.mirror_position.store(position, std::memory_order_relaxed);
  h.handover.store(handover ? 1 : 0, std::memory_order_relaxed);
}

uint64_t Core::ReadSnapshot(SnapshotCursor& cur, size_t max_bytes, std::vector<std::string>* out) {
  absl::MutexLock lock(&mu_);
  const Indexes& ix = model_->indexes();
  if (!cur.opened) {
    // Ids only: a few milliseconds for a million objects. In this order a
    // record never needs one read after it (a leg read here had its meeting
    // live and its participant present when they were read).
    cur.opened = true;
    cur.log_id = model_->changes().log_id();
    cur.seq = model_->changes().last_seq();
    cur.objects.reserve(ix.sites.size() + ix.meetings.size() + ix.participants.size() +
                        ix.legs.size());
    for (const auto& [id, s] : ix.sites) cur.objects.emplace_back(v1::Change::SITE_PUT, id);
    for (const auto& [id, m] : ix.meetings) cur.objects.emplace_back(v1::Change::MEETING_PUT, id);
    for (const auto& [id, p] : ix.participants) {
      cur.objects.emplace_back(v1::Change::PARTICIPANT_PUT, id);
    }
    for (const auto& [id, l] : ix.legs) cur.objects.emplace_back(v1::Change::LEG_PUT, id);
  }
  size_t bytes = 0;
  for (; cur.next < cur.objects.size() && bytes < max_bytes; ++cur.next) {
    auto [kind, id] = cur.objects[cur.next];
    v1::Change c = MakeChange(kind, id);
    if (kind == v1::Change::SITE_PUT) {
      auto it = ix.sites.find(id);
      if (it == ix.sites.end()) continue;
      *c.mutable_site() = it->second;
    } else if (kind == v1::Change::MEETING_PUT) {
      auto it = ix.meetings.find(id);
      if (it == ix.meetings.end()) continue;
      *c.mutable_meeting() = it->second;
    } else if (kind == v1::Change::PARTICIPANT_PUT) {
      auto it = ix.participants.find(id);
      if (it == ix.participants.end()) continue;
      *c.mutable_participant() = it->second.p;
    } else {
      if (!model_->FillLeg(id, c.mutable_leg())) continue;
    }
    out->push_back(Serialize(c));
    bytes += out->back().size();
  }
  return model_->changes().last_seq();
}

std::optional<v1::UsageRecord> Core::TryUsageDelta() {
  if (!mu_.TryLock()) return std::nullopt;
  v1::UsageRecord r = UsageDeltaLocked();
  mu_.Unlock();
  return r;
}

v1::UsageRecord Core::UsageDeltaLocked() {
  RefreshState();
  v1::UsageRecord r;
  const Indexes& ix = model_->indexes();
  for (const auto& [id, rec] : ix.legs) {
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
    if (!ix.legs.contains(it->first)) {
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
  auto& usage_base = model_->usage_base();
  for (const v1::LegUsageRecord& l : r.legs()) {
    if (!model_->indexes().legs.contains(l.leg_id())) continue;
    // Our own switch may hold counts of this leg from a time we were active:
    // the base is what they lack, so that base + own equals the peer's total.
    usage_base.erase(l.leg_id());
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
    usage_base[l.leg_id()] = b;
  }
}

std::string Core::SiteDigest(uint64_t* position) {
  absl::MutexLock lock(&mu_);
  *position = model_->changes().last_seq();
  return DigestLocked();
}

v1::DigestRecord Core::AppendDigest() {
  absl::MutexLock lock(&mu_);
  return AppendDigestLocked();
}

std::optional<v1::DigestRecord> Core::TryAppendDigest() {
  if (!mu_.TryLock()) return std::nullopt;
  v1::DigestRecord r = AppendDigestLocked();
  mu_.Unlock();
  return r;
}

v1::DigestRecord Core::AppendDigestLocked() {
  v1::DigestRecord r;
  r.set_position(model_->changes().last_seq());
  r.set_sha256(DigestLocked());
  std::string rec(1, kDigestTag);
  r.AppendToString(&rec);
  model_->changes().AppendRecord(rec);
  return r;
}

std::string Core::DigestLocked() {
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
  for (const auto& [id, s] : model_->indexes().sites) add(s);
  for (const auto& [id, m] : model_->indexes().meetings) {
    v1::Meeting copy = m;
    copy.set_participants(0);  // live counts are not site data
    copy.set_legs(0);
    add(copy);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(md), len);
}

void Core::LogReplicated(uint64_t seq, absl::string_view record) {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) return;  // see ApplyReplicated
  model_->changes().AppendReplicatedRecord(seq, record);
}

void Core::BeginResync() {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) return;  // see ApplyReplicated
  model_->BeginSweep();
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
  // The same Apply as the active's API calls: the record is the plan.
  Model::Source source{.replicated = true, .snapshot = snapshot, .raw = std::move(raw)};
  return model_->Apply(Plan{c}, source);
}

absl::Status Core::EndResync(uint64_t log_id, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  if (role_ == tables::Role::kActive) {  // see ApplyReplicated
    return absl::FailedPreconditionError("this node is active: resync not applied");
  }
  return model_->EndSweep(log_id, seq);
}

}  // namespace tandem::control
