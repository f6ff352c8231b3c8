#include "control/pair.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "control/metrics.h"
#include "control/witness_link.h"

namespace tandem::control {
namespace {

// The switch stamps heartbeats with CLOCK_MONOTONIC: the role machine runs on it.
absl::Time MonoNow() { return absl::FromUnixNanos(static_cast<int64_t>(MonotonicNs())); }

// The last tick of the switch's slowest thread (workers and main thread): up
// to then it has surely taken in every heartbeat that reached the port.
absl::Time SwitchListeningUntil(const tables::StateView& state, absl::Time now) {
  uint32_t threads = std::min(state.header().n_workers.load() + 1, state.max_workers());
  absl::Time until = now;
  for (uint32_t i = 0; i < threads; ++i) {
    uint64_t tick = state.health(i).heartbeat_ns.load(std::memory_order_relaxed);
    if (tick != 0) until = std::min(until, absl::FromUnixNanos(static_cast<int64_t>(tick)));
  }
  return until;
}

mirror::Role ToMirror(tables::Role r) {
  return r == tables::Role::kActive ? mirror::Role::kActive : mirror::Role::kStandby;
}
tables::Role FromMirror(mirror::Role r) {
  return r == mirror::Role::kActive ? tables::Role::kActive : tables::Role::kStandby;
}

// How long after a start (of the daemon, or of its switch) or a demotion the
// node does not act on what it has not heard or not yet received: its switch
// needs a few heartbeats to hear the peer, its sink a moment to resync.
absl::Duration HoldDown(uint32_t heartbeat_ms) {
  return std::max(absl::Seconds(1), 20 * absl::Milliseconds(heartbeat_ms));
}

template <typename M>
std::string Tagged(char tag, const M& m) {
  std::string s(1, tag);
  m.AppendToString(&s);
  return s;
}

// The core's state for a standby's full resync, chunk by chunk
// (Core::ReadSnapshot), as 'S' records after a 'P' with the change-log
// position at the first chunk.
class StateSnapshot : public mirror::SnapshotReader {
 public:
  explicit StateSnapshot(Core& core) : core_(core) {}
  absl::StatusOr<Chunk> Next(size_t max_bytes) override {
    Chunk c;
    bool first = !cursor_.opened;
    std::vector<std::string> objects;
    // The stream is the change log: its position is the chunk's.
    c.seq = core_.ReadSnapshot(cursor_, max_bytes, &objects);
    c.records.reserve(objects.size() + 1);
    if (first) {
      v1::PositionRecord pos;
      pos.set_log_id(cursor_.log_id);
      pos.set_seq(cursor_.seq);
      c.records.push_back(Tagged('P', pos));
    }
    for (std::string& o : objects) c.records.push_back("S" + o);
    c.last = cursor_.done();
    return c;
  }

 private:
  Core& core_;
  Core::SnapshotCursor cursor_;
};

// Usage records carry this many legs at most, so that none nears the
// replication record limit (a leg takes about 60 bytes).
constexpr int kUsageLegsPerRecord = 16384;

}  // namespace

Pair::Pair(Core& core) : core_(core), cfg_(core.config().pair) {}

absl::StatusOr<std::unique_ptr<Pair>> Pair::Start(Core& core) {
  std::unique_ptr<Pair> p(new Pair(core));
  const PairConfig& c = p->cfg_;
  if (!mirror::ParseEndpoint(c.listen).ok() || !mirror::ParseEndpoint(c.peer).ok()) {
    return absl::InvalidArgumentError("[pair] listen and peer must be HOST:PORT");
  }
  absl::Time now = MonoNow();
  {
    absl::MutexLock lock(&p->mu_);
    // Role decisions wait for a hold-down after start: a daemon (or its
    // switch) that has just started has not heard its peer yet, and must not
    // mistake that for the peer's death.
    p->decide_from_ = now + HoldDown(c.heartbeat_ms);
    p->next_usage_ = now;
    p->next_compare_ = now + absl::Seconds(static_cast<int64_t>(c.compare_interval_s));
    if (core.node_role() == tables::Role::kActive) {
      p->BecomeActive();
    } else {
      p->BecomeStandby();
    }
  }
  if (core.config().access_mode == AccessMode::kRouted) {
    const Config& cc = core.config();
    // The best-path report says whether the peer still announces: a
    // takeover held on it waits for it, so it runs often.
    RoutingDriver::Options opt;
    opt.report_interval = absl::Milliseconds(50);
    // Until the role machine decides (after the hold-down), BIRD goes on
    // announcing what its file says: a restarting tandem-control keeps the
    // VIPs its switch forwards; a node that comes back with BIRD started
    // withdrawn stays so, rather than announce the active role its tables
    // kept, which its peer may have taken since (it would draw the traffic).
    auto r = RoutingDriver::Start(
        cc.routing, cc.access_vips,
        AnnouncementInFile(cc.routing.config_file).value_or(Announcement::kWithdrawn),
        SwitchHealth::Probe(cc.shm_dir, cc.node), opt);
    if (!r.ok()) return r.status();
    p->routing_ = std::move(*r);
  }
  // Without a witness the switch enforces no hold (a daemon configured with
  // one before may have left a deadline); with one, a restarted daemon leaves
  // the last hold in place until it holds the key again.
  if (!core.config().fleet.witness) core.SetActiveUntil(0);
  if (core.config().fleet.witness) {
    auto w = FleetWitness::Start(core.config().fleet, MonoNow);
    if (!w.ok()) return w.status();
    p->witness_ = *std::move(w);
  }
  p->thread_ = std::thread([pp = p.get()] { pp->Loop(); });
  return p;
}

Pair::~Pair() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  StopReplication();
}

void Pair::StopReplication() {
  for (int r = 0; r < static_cast<int>(mirror::RejectReason::kCount); ++r) {
    if (source_) refused_base_[r] += source_->rejects().Get(static_cast<mirror::RejectReason>(r));
    if (sink_) refused_base_[r] += sink_->rejects().Get(static_cast<mirror::RejectReason>(r));
  }
  core_.SetStandbyConfirmed(false);
  source_.reset();
  sink_.reset();
}

void Pair::BecomeActive() {
  StopReplication();
  mirror::SourceOptions o;
  o.node_id = cfg_.node_id;
  o.epoch = core_.node_epoch();
  o.key = cfg_.replication_key;
  o.tls = cfg_.backbone_tls;
  o.listen = *mirror::ParseEndpoint(cfg_.listen);
  o.snapshot = [this]() -> absl::StatusOr<std::unique_ptr<mirror::SnapshotReader>> {
    return std::make_unique<StateSnapshot>(core_);
  };
  // The change log is the stream, bounded by [pair] backlog_* (model.cc).
  o.log = core_.changes().records();
  o.greeting = [this] { return Greeting(); };
  o.on_message = [this](absl::string_view m) { OnStandbyMessage(m); };
  auto src = mirror::ReplicationSource::Start(std::move(o));
  if (!src.ok()) {
    // Alarmed (replication_listen_failed) and tried again by Step.
    std::string error = std::string(src.status().message());
    if (error != listen_error_) {
      fprintf(stderr, "tandem-control: pair: cannot serve replication on %s: %s (trying again)\n",
              cfg_.listen.c_str(), error.c_str());
    }
    listen_error_ = error;
    return;
  }
  if (!listen_error_.empty()) {
    fprintf(stderr, "tandem-control: pair: serving replication on %s\n", cfg_.listen.c_str());
  }
  listen_error_.clear();
  source_ = std::move(*src);
}

void Pair::BecomeStandby() {
  StopReplication();
  listen_error_.clear();
  mirror::SinkOptions o;
  o.node_id = cfg_.node_id;
  o.epoch = core_.node_epoch();
  o.key = cfg_.replication_key;
  o.tls = cfg_.backbone_tls;
  o.source = *mirror::ParseEndpoint(cfg_.peer);
  mirror::SinkCallbacks cb;
  cb.begin_snapshot = [this](uint64_t, uint64_t) { core_.BeginResync(); };
  cb.apply = [this](mirror::RecordKind kind, uint64_t seq, absl::string_view rec) {
    return ApplyRecord(kind, seq, rec);
  };
  cb.end_snapshot = [this](uint64_t) {
    return core_.EndResync(snapshot_log_id_.load(), snapshot_seq_.load());
  };
  // Acknowledged only once committed: a change the standby could not store
  // is never confirmed to the active (nor to a synchronous write).
  cb.commit = [this] { return core_.CommitReplicated(); };
  cb.peer_report = [this](uint32_t sender, uint64_t epoch, const mirror::HeartbeatBody& b) {
    mirror::PeerReport r;
    r.node_id = sender;
    r.role = b.role == mirror::WireRole::kActive ? mirror::Role::kActive : mirror::Role::kStandby;
    r.epoch = epoch;
    r.position = b.position;
    r.data_plane_ok = b.data_plane_ok;
    r.access_link_up = b.access_link_up;
    r.handover = b.handover;
    absl::MutexLock lock(&notice_mu_);
    notice_ = r;
  };
  cb.source_closed = [this] { peer_control_closed_ = true; };
  cb.message = [this](absl::string_view m) { OnActiveMessage(m); };
  auto sink = mirror::ReplicationSink::Start(std::move(o), std::move(cb));
  if (!sink.ok()) {
    fprintf(stderr, "tandem-control: pair: cannot follow %s: %s\n", cfg_.peer.c_str(),
            std::string(sink.status().message()).c_str());
    return;
  }
  sink_ = std::move(*sink);
}

absl::Status Pair::ApplyRecord(mirror::RecordKind kind, uint64_t seq, absl::string_view rec) {
  if (rec.empty()) return absl::OkStatus();
  // Our change log keeps the active's numbers: its records that are no
  // changes too (one numbering, control/change_log.h).
  if (kind != mirror::RecordKind::kSnapshot && (rec[0] == kUsageTag || rec[0] == kDigestTag)) {
    core_.LogReplicated(seq, rec);
  }
  absl::string_view body = rec.substr(1);
  auto unparsed = [&](const char* what) {
    // Never acknowledged: a version mismatch or a bug, to be seen (alarm).
    return absl::DataLossError(absl::StrCat("a replicated ", what, " does not parse"));
  };
  switch (rec[0]) {
    case 'C':
    case 'S': {
      v1::Change c;
      if (!c.ParseFromArray(body.data(), static_cast<int>(body.size()))) return unparsed("change");
      return core_.ApplyReplicated(c, std::string(body), rec[0] == 'S');
    }
    case 'P': {
      v1::PositionRecord p;
      if (!p.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
        return unparsed("position");
      }
      snapshot_log_id_ = p.log_id();
      snapshot_seq_ = p.seq();
      return absl::OkStatus();
    }
    case 'U': {
      v1::UsageRecord u;
      if (u.ParseFromArray(body.data(), static_cast<int>(body.size()))) core_.ApplyUsage(u);
      return absl::OkStatus();
    }
    case 'D':
      // While a snapshot's changes are replayed the state is not yet the
      // active's: no comparison then.
      return kind == mirror::RecordKind::kChange ? CompareDigest(body) : absl::OkStatus();
    default:
      fprintf(stderr, "tandem-control: pair: unknown record tag %d\n", rec[0]);
      return absl::OkStatus();
  }
}

absl::Status Pair::CompareDigest(absl::string_view body) {
  v1::DigestRecord d;
  if (!d.ParseFromArray(body.data(), static_cast<int>(body.size()))) return absl::OkStatus();
  if (absl::Status st = core_.CommitReplicated(); !st.ok()) return st;
  uint64_t pos = 0;
  std::string mine = core_.SiteDigest(&pos);
  bool match = mine == d.sha256();
  {
    absl::MutexLock lock(&status_mu_);
    compare_seq_ = d.position();
    compare_result_ = match ? "match" : "drift repaired";
    if (!match) drift_repairs_++;
  }
  fprintf(stderr, "tandem-control: pair: site data at change %llu %s\n",
          static_cast<unsigned long long>(d.position()),
          match ? "matches the active node" : "DIFFERS from the active node: resyncing");
  if (!match) resync_wanted_ = true;
  return absl::OkStatus();
}

absl::Status Pair::WaitReplicated() {
  if (!cfg_.sync) return absl::OkStatus();
  std::shared_ptr<mirror::ReplicationSource> s;
  {
    absl::MutexLock lock(&mu_);
    s = source_;  // kept alive while we wait, without holding mu_
  }
  absl::Status st =
      s ? s->WaitAcked(core_.changes().last_seq(), absl::Milliseconds(cfg_.sync_timeout_ms))
        : absl::UnavailableError("not serving replication");
  if (st.ok()) return st;
  absl::MutexLock slock(&status_mu_);
  if (absl::IsUnavailable(st)) {
    sync_degraded_++;  // no standby: alarmed (sync_degraded)
    // Strict: the standby went away between the check before the write and now.
    if (!cfg_.strict) return absl::OkStatus();  // the pair runs degraded, writes go on
    return absl::DeadlineExceededError(
        "applied on this node, but no standby confirmed it (mode sync-strict): the standby "
        "went away during the write");
  }
  sync_timeouts_++;
  return absl::DeadlineExceededError(
      absl::StrCat("applied on this node, but the standby has not confirmed it within ",
                   cfg_.sync_timeout_ms, " ms"));
}

absl::StatusOr<v1::ComparePairResponse> Pair::Compare() {
  {
    absl::MutexLock lock(&mu_);
    if (!source_) {
      return absl::FailedPreconditionError("compare runs on the active node of the pair");
    }
  }
  // Without mu_: the digest may wait for a write's commit, the pair thread must not.
  v1::ComparePairResponse out;
  v1::DigestRecord d = core_.AppendDigest();
  out.set_position(d.position());
  out.set_digest(absl::BytesToHexString(d.sha256()));
  return out;
}

absl::StatusOr<v1::SwitchoverResponse> Pair::Switchover(bool force) {
  // While media flows the active appends usage records every usage_interval_ms,
  // and the standby's reported position trails by the last few milliseconds:
  // a refusal ("not caught up") is tried again for a moment before it is final.
  const absl::Time until = MonoNow() + absl::Seconds(2);
  absl::MutexLock lock(&mu_);
  if (!machine_) return absl::UnavailableError("the pair is still starting: try again in a second");
  for (absl::Status st; !(st = machine_->RequestSwitchover(MonoNow(), force)).ok();) {
    if (!absl::IsFailedPrecondition(st) || MonoNow() >= until) return st;
    mu_.Unlock();  // the pair thread hears the peer meanwhile
    absl::SleepFor(absl::Milliseconds(5));
    mu_.Lock();
  }
  v1::SwitchoverResponse out;
  out.set_role(mirror::RoleName(machine_->role()));
  out.set_epoch(machine_->epoch());
  return out;
}

bool Pair::AttachState() { return state_region_.Attach(tables::StatePath(core_.config().shm_dir, core_.config().node)); }

void Pair::Loop() {
  // Every millisecond: a decision waits for this loop, and a look at the
  // state region is cheap. The status is built less often.
  const absl::Duration publish = absl::Milliseconds(std::max<uint32_t>(1, cfg_.heartbeat_ms / 2));
  while (!stop_) {
    absl::Time now = MonoNow();
    Step(now);
    if (now >= next_publish_) {
      next_publish_ = now + publish;
      PublishStatus(now);
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

void Pair::Step(absl::Time now) {
  const uint64_t position = core_.changes().last_seq();
  std::vector<mirror::Decision> decisions;
  bool peer_was_active = false;  // else no writes can have been lost
  uint64_t peer_position = 0;
  absl::Time hold_until = absl::InfinitePast();  // of the witness's key, when held
  {
    absl::MutexLock lock(&mu_);
    if (core_.node_role() == tables::Role::kActive && !source_ && now >= next_listen_retry_) {
      next_listen_retry_ = now + absl::Seconds(1);
      BecomeActive();  // the listener could not bind before: alarmed meanwhile
    }
    core_.SetStandbyConfirmed(source_ && source_->status().standby_synced);
    if (!machine_ && now < decide_from_) return;
    hold_until = FeedMachine(now, position);
    if (witness_ && machine_->role() == mirror::Role::kActive) {
      // Rule 8 holds the role like the key: the switch is told so too.
      hold_until = std::max(hold_until, machine_->peer_switch_dead_until());
    }
    decisions = machine_->TakeDecisions();
    if (witness_) witness_->See(SightOf(*machine_, now));
    if (machine_->peer() && machine_->peer()->role == mirror::Role::kActive) {
      peer_was_active = true;
      peer_position = machine_->peer()->position;
    }
  }
  if (hold_until != absl::InfinitePast() && hold_until != active_until_) {
    // The switch goes quiet at this time unless renewed or the peer is heard,
    // also if this daemon dies (its clock: MonoNow, CLOCK_MONOTONIC).
    active_until_ = hold_until;
    core_.SetActiveUntil(static_cast<uint64_t>(std::max<int64_t>(1, absl::ToUnixNanos(hold_until))));
  }
  if (routing_ && !routing_role_announced_) {
    // The role machine's first word: its role after this step's decisions.
    routing_role_announced_ = true;
    bool active = decisions.empty() ? core_.node_role() == tables::Role::kActive
                                    : decisions.back().role == mirror::Role::kActive;
    routing_->Announce(PairAnnouncement(active, false, false));
  }
  for (const mirror::Decision& d : decisions) Apply(d, peer_was_active, peer_position);
  Fence(now);
  Housekeeping(now, position);
}

absl::Time Pair::FeedMachine(absl::Time now, uint64_t position) {
  if (!machine_) {
    mirror::RoleConfig rc;
    rc.node_id = cfg_.node_id;
    rc.peer_node_id = cfg_.peer_node_id;
    rc.interval = absl::Milliseconds(cfg_.heartbeat_ms);
    rc.multiplier = static_cast<int>(cfg_.multiplier);
    rc.preempt = cfg_.preempt;
    rc.rejoin_hold = HoldDown(cfg_.heartbeat_ms);
    // Rule 8: below the holds of a (re)started switch (the pair's on a
    // standby, the switch's own on an active: HoldNs in switch/pair_link.cc),
    // and 15 intervals or more, for a loaded host.
    rc.control_timeout =
        std::min(HoldDown(cfg_.heartbeat_ms),
                 std::max(absl::Milliseconds(300), 30 * absl::Milliseconds(cfg_.heartbeat_ms))) /
        2;
    rc.backbone_only = core_.config().access_mode == AccessMode::kRouted;
    machine_ = std::make_unique<mirror::RoleMachine>(rc, ToMirror(core_.node_role()),
                                                     core_.node_epoch(), now);
  }
  std::optional<mirror::PeerReport> notice;
  std::optional<mirror::PeerControlReport> report;
  {
    absl::MutexLock nlock(&notice_mu_);
    notice.swap(notice_);
    report.swap(standby_report_);
  }
  if (notice) machine_->OnHeartbeat(mirror::Path::kBackbone, *notice, now);
  if (notice && !notice->data_plane_ok) {
    // The active's word that its switch is dead is its control daemon's too
    // (rule 8): it bridges our takeover until it follows us and reports.
    report = mirror::PeerControlReport{notice->node_id, notice->role, notice->epoch, false};
  }
  if (report) machine_->OnPeerControl(*report, now);
  absl::Time hold_until = absl::InfinitePast();
  if (witness_) {
    mirror::WitnessInput in = witness_->Input();
    machine_->SetWitness(in);
    hold_until = in.hold_until;
  }
  mirror::SinkStatus sink = sink_ ? sink_->status() : mirror::SinkStatus{};
  machine_->SetPeerControlClosed(peer_control_closed_.load() && !sink.connected);
  machine_->SetResynced(sink_ && sink.connected && sink.consistent);
  if (AttachState()) {
    FeedSwitch(now, position);
  } else {
    // No switch on this node: unhealthy, so it never takes over.
    mirror::LocalHealth none;
    none.data_plane_ok = false;
    none.access_link_up = false;
    none.position = position;
    machine_->SetLocal(none, now);
    machine_->Tick(now);
    ReportToActive(now, false);
  }
  return hold_until;
}

void Pair::ReportToActive(absl::Time now, bool data_plane_ok) {
  // Only while the switch is dead (its heartbeats say the rest), and once
  // when it runs again, so that the active knows at once.
  if (data_plane_ok && !reported_dead_) return;
  if (machine_->role() != mirror::Role::kStandby || !sink_ || now < next_report_) return;
  next_report_ = now + absl::Milliseconds(cfg_.heartbeat_ms);
  if (!sink_->status().connected) return;
  reported_dead_ = !data_plane_ok;
  v1::PairMessage m;
  v1::PairMessage::StandbyReport* r = m.mutable_standby_report();
  r->set_node_id(cfg_.node_id);
  r->set_epoch(machine_->epoch());
  r->set_data_plane_ok(data_plane_ok);
  sink_->Send(m.SerializeAsString());
}

void Pair::FeedSwitch(absl::Time now, uint64_t position) {
  const tables::StateHeader& h = state_region_.view().header();
  // The lock, not the pid: a killed switch not yet reaped still has one.
  bool alive = tables::StateLocked(state_region_.mapping());
  if (alive && !switch_alive_) {
    switch_hold_until_ = now + HoldDown(cfg_.heartbeat_ms);
  }
  switch_alive_ = alive;
  mirror::LocalHealth local = mirror::SwitchHeartbeatFeed::Local(h, alive, position);
  RoutedHealth(&local);
  // A switch that has just (re)started has not heard the peer yet: its
  // silence is not the peer's death until the hold-down passes (as at
  // the daemon's start). Nor is a peer's whose VIP announcement the
  // routing still shows: the backbone alone is cut (docs/routed.md).
  machine_->SetSilenceHold(now < switch_hold_until_ || peer_routed_);
  if (alive) machine_->SetListeningUntil(SwitchListeningUntil(state_region_.view(), now));
  feed_.Poll(h, local, machine_.get(), now);
  if (machine_->role() == mirror::Role::kActive &&
      (!local.data_plane_ok || routing_down_) && source_ && now >= next_notice_) {
    // Our switch is dead and sends no heartbeat that could say so; or
    // our router is, which our switch cannot see.
    next_notice_ = now + absl::Milliseconds(cfg_.heartbeat_ms);
    mirror::HeartbeatBody b;
    b.role = mirror::WireRole::kActive;
    b.data_plane_ok = local.data_plane_ok;
    b.access_link_up = local.access_link_up;
    b.position = position;
    source_->Notify(b);
  }
  ReportToActive(now, local.data_plane_ok);
}

void Pair::Apply(const mirror::Decision& d, bool peer_was_active, uint64_t peer_position) {
  bool taking_over = d.role == mirror::Role::kActive && core_.node_role() != tables::Role::kActive;
  witness_withdrawn_ = d.role == mirror::Role::kStandby && d.for_witness;
  auto announce = [&] {
    if (routing_) {
      routing_->Announce(
          PairAnnouncement(d.role == mirror::Role::kActive, false, witness_withdrawn_));
    }
  };
  // A step-down stops the switch, refuses writes and withdraws the routes
  // first: SetNodeRole waits for a write's commit in progress (seconds on a
  // loaded host), the witness's deadline does not. A takeover announces
  // after the tables: the switch forwards as the new role before BGP brings
  // it the traffic.
  const bool stepping_down = d.role == mirror::Role::kStandby &&
                             core_.node_role() == tables::Role::kActive;
  if (stepping_down) {
    core_.BeginStepDown(d.epoch);
    announce();
  }
  // The position at the role change: no replicated record is applied after it.
  uint64_t at = core_.SetNodeRole(FromMirror(d.role), d.epoch, d.cause, peer_was_active);
  if (!stepping_down) announce();
  if (taking_over) {
    absl::MutexLock slock(&status_mu_);
    takeover_log_id_ = core_.changes().log_id();
    takeover_position_ = at;
    takeover_peer_position_ = peer_position;
    takeover_unix_ns_ = UnixNs();
    lost_state_ = peer_was_active ? "pending" : "none";
    lost_changes_.clear();
    lost_acknowledged_ = false;
  }
  absl::MutexLock lock(&mu_);
  if (d.role == mirror::Role::kActive) {
    absl::MutexLock slock(&status_mu_);
    takeovers_++;
  }
  if (d.role == mirror::Role::kActive && !source_) {
    peer_control_closed_ = false;
    if (sink_) {
      // The old active may still be up without its switch (which cannot
      // hear our heartbeats): without this it would go on taking writes
      // that never reach us, acknowledged even in synchronous mode.
      v1::PairMessage m;
      m.mutable_took_over()->set_node_id(cfg_.node_id);
      m.mutable_took_over()->set_epoch(d.epoch);
      sink_->Send(m.SerializeAsString());
      sink_->Drain(absl::Milliseconds(20));
    }
    BecomeActive();
  } else if (d.role == mirror::Role::kStandby && !sink_) {
    BecomeStandby();
  }
  if (source_) source_->SetEpoch(d.epoch);
  if (sink_) sink_->SetEpoch(d.epoch);
}

void Pair::Housekeeping(absl::Time now, uint64_t position) {
  bool handover;
  {
    absl::MutexLock lock(&mu_);
    handover = machine_->handover_requested();
    if (resync_wanted_.exchange(false) && sink_) BecomeStandby();  // follow anew: full resync
    std::optional<std::string> reply;
    {
      absl::MutexLock nlock(&notice_mu_);
      reply.swap(reply_);
    }
    if (reply && sink_) sink_->Send(std::move(*reply));
  }
  core_.SetPairHints(position, handover);
  if (core_.node_role() == tables::Role::kActive) {
    // Both wait for no write's commit: tried again at the next step while
    // one holds the core (this thread decides the roles).
    std::optional<v1::UsageRecord> u;
    if (now >= next_usage_ && (u = core_.TryUsageDelta())) {
      next_usage_ = now + absl::Milliseconds(cfg_.usage_interval_ms);
      absl::MutexLock lock(&mu_);
      for (int i = 0; source_ && i < u->legs_size(); i += kUsageLegsPerRecord) {
        v1::UsageRecord part;
        for (int j = i; j < std::min(u->legs_size(), i + kUsageLegsPerRecord); ++j) {
          *part.add_legs() = u->legs(j);
        }
        core_.changes().AppendRecord(Tagged(kUsageTag, part));  // far below the limit
      }
    }
    if (now >= next_compare_) {
      absl::MutexLock lock(&mu_);
      if (!source_ || core_.TryAppendDigest()) {
        next_compare_ = now + absl::Seconds(static_cast<int64_t>(cfg_.compare_interval_s));
      }
    }
  }
  // A standby commits what it applied on the sink's thread, before it
  // acknowledges (SinkCallbacks::commit).
}

void Pair::RoutedHealth(mirror::LocalHealth* local) {
  if (!routing_) return;
  RoutingStatus r = routing_->status();
  if (r.sessions_up > 0) routing_was_up_ = true;
  // Every session down after one was up: no router hears us, we reach no
  // participant, as with our access link down (at start: not yet up).
  routing_down_ = routing_was_up_ && r.sessions_up == 0;
  if (routing_down_) local->access_link_up = false;
  peer_routed_ = r.sessions_up > 0 && !r.competing.empty();
}

constexpr absl::Duration kFenceHold = absl::Seconds(1);
constexpr absl::Duration kYieldConfirm = absl::Milliseconds(500);

void Pair::Fence(absl::Time now) {
  if (!routing_) return;
  bool fence, heal;
  {
    absl::MutexLock lock(&mu_);
    if (!machine_) return;
    bool yield = false;
    switch (core_.config().routing.preferred_dc) {
      case PreferredDc::kAny:
        // Our router offers us the peer's path: ours is not best. Both may
        // see that at once while the routes move; the higher node id yields
        // at once, the lower only when it lasts kYieldConfirm, by when the
        // other's withdrawal has reached its router (a double yield stopped
        // the media for the hold: test_dc_split_brain.py).
        if (!peer_routed_) {
          yield_since_ = absl::InfiniteFuture();
        } else if (yield_since_ == absl::InfiniteFuture()) {
          yield_since_ = now;
        }
        yield = peer_routed_ && (cfg_.node_id > cfg_.peer_node_id || fenced_ ||
                                 now - yield_since_ >= kYieldConfirm);
        break;
      case PreferredDc::kThis:
        break;
      case PreferredDc::kPeer:
        yield = true;
        break;
    }
    bool cut = machine_->role() == mirror::Role::kActive &&
               !machine_->peer_heard(mirror::Path::kBackbone, now);
    // The fence outlasts a moment without the peer's path (a BGP session
    // flapping under load lifted it, both took writes): it lifts once the
    // path has been gone for kFenceHold, or at once when the peer is heard.
    // The higher node id holds twice as long: when both yielded at once
    // (each saw the other's path as best while the routes moved), both
    // withdrew, and lifting together made two writers again until the next
    // report; staggered, the lower id announces first and the other sees its
    // path before its own hold ends (test_dc_split_brain.py).
    const absl::Duration hold =
        cfg_.node_id < cfg_.peer_node_id ? kFenceHold : 2 * kFenceHold;
    if (cut && yield) fence_until_ = now + hold;
    fence = cut && now < fence_until_;
    // Stepped down for the witness: withdrawn until the peer is heard again
    // (really heard: a switch that stopped listening hears nothing).
    heal = witness_withdrawn_ && machine_->PeerHeardBy(now);
  }
  if (heal) witness_withdrawn_ = false;
  // Fenced: withdrawn, so no router sends us the VIPs' traffic; the switch
  // keeps its tables and forwards again the moment the fence lifts. Again
  // each step: a role decision announces over it.
  Announcement want =
      PairAnnouncement(core_.node_role() == tables::Role::kActive, fence, witness_withdrawn_);
  if ((fence || fenced_ || heal) && routing_->status().wanted != want) routing_->Announce(want);
  if (fence != fenced_) {
    core_.SetFenced(fence);
    fenced_ = fence;
  }
}

std::string Pair::Greeting() {
  v1::PairMessage m;
  {
    absl::MutexLock lock(&status_mu_);
    if (lost_state_ != "pending") return "";
    m.mutable_takeover()->set_log_id(takeover_log_id_);
    m.mutable_takeover()->set_seq(takeover_position_);
  }
  return m.SerializeAsString();
}

void Pair::OnActiveMessage(absl::string_view msg) {
  v1::PairMessage m;
  if (!m.ParseFromArray(msg.data(), static_cast<int>(msg.size())) || !m.has_takeover()) return;
  // Read now, on the sink's thread: the snapshot that follows resets the log.
  const uint64_t log_id = m.takeover().log_id(), after = m.takeover().seq();
  v1::PairMessage out;
  v1::PairMessage::Lost* lost = out.mutable_lost();
  lost->set_log_id(log_id);
  lost->set_after_seq(after);
  bool complete = core_.changes().log_id() == log_id;
  // The answer is one backbone message: beyond this size only the range is told.
  constexpr size_t kMaxLostBytes = mirror::kMaxRecord / 2;
  size_t bytes = 0;
  for (uint64_t from = after + 1; complete && from <= core_.changes().last_seq();) {
    std::vector<v1::Change> batch;
    uint64_t next = from;
    absl::Status st = core_.changes().Read(from, 4096, absl::ZeroDuration(), &batch, &next);
    if (!st.ok()) complete = false;  // no longer held
    if (next == from) break;
    from = next;  // past records that are no changes too
    for (v1::Change& c : batch) {
      if (c.kind() == v1::Change::ROLE) continue;
      bytes += c.ByteSizeLong() + 8;
      if (bytes > kMaxLostBytes) {
        complete = false;
        break;
      }
      *lost->add_changes() = std::move(c);
    }
  }
  lost->set_complete(complete);
  if (!complete) lost->clear_changes();
  fprintf(stderr, "tandem-control: pair: handing over %d changes after %llu the active lacks%s\n",
          lost->changes_size(), static_cast<unsigned long long>(after),
          complete ? "" : " (this node no longer holds that log)");
  absl::MutexLock lock(&notice_mu_);
  reply_ = out.SerializeAsString();
}

void Pair::OnStandbyMessage(absl::string_view msg) {
  v1::PairMessage m;
  if (!m.ParseFromArray(msg.data(), static_cast<int>(msg.size()))) return;
  if (m.has_took_over()) {
    // To the role machine as a report of the peer, active in its new epoch
    // (rule 1: a higher epoch demotes at once), on the next Step.
    mirror::PeerReport r;
    r.node_id = m.took_over().node_id();
    r.role = mirror::Role::kActive;
    r.epoch = m.took_over().epoch();
    absl::MutexLock lock(&notice_mu_);
    notice_ = r;
    return;
  }
  if (m.has_standby_report()) {
    mirror::PeerControlReport r;
    r.node_id = m.standby_report().node_id();
    r.role = mirror::Role::kStandby;
    r.epoch = m.standby_report().epoch();
    r.data_plane_ok = m.standby_report().data_plane_ok();
    absl::MutexLock lock(&notice_mu_);
    standby_report_ = r;
    return;
  }
  if (!m.has_lost()) return;
  absl::MutexLock lock(&status_mu_);
  const v1::PairMessage::Lost& l = m.lost();
  if (lost_state_ != "pending" || l.log_id() != takeover_log_id_ ||
      l.after_seq() != takeover_position_) {
    return;
  }
  lost_state_ = l.complete() ? "listed" : "unknown";
  for (const v1::Change& c : l.changes()) {
    if (c.seq() > takeover_position_) lost_changes_.push_back(c);
  }
  fprintf(stderr,
          "tandem-control: pair: the old active returned; %s: %zu changes after %llu of log %llu "
          "were never replicated (tandemctl pair lost)\n",
          lost_state_.c_str(), lost_changes_.size(),
          static_cast<unsigned long long>(takeover_position_),
          static_cast<unsigned long long>(takeover_log_id_));
}

}  // namespace tandem::control
