#include "control/core.h"

#include "common/clock.h"
#include "common/secure_file.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/records.h"

namespace tandem::control {
namespace {

using tables::kLegMuted;
using tables::kLegRecv;
using tables::kLegSend;

// Leg ids are reserved in the store a block at a time, so ids never repeat
// across restarts without a store write per join.
constexpr uint64_t kLegIdBlock = 1u << 20;

// A neighbour conflict keeps its alarm raised this long (CLOCK_MONOTONIC ns).
constexpr uint64_t kAlarmHoldNs = 60'000'000'000ull;

std::string MacText(const uint8_t m[6]) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

void AddUsage(const v1::Usage& u, v1::Usage* acc) {
  acc->set_packets_in(acc->packets_in() + u.packets_in());
  acc->set_bytes_in(acc->bytes_in() + u.bytes_in());
  acc->set_packets_out(acc->packets_out() + u.packets_out());
  acc->set_bytes_out(acc->bytes_out() + u.bytes_out());
  acc->set_drop_not_allowed(acc->drop_not_allowed() + u.drop_not_allowed());
  acc->set_drop_policed(acc->drop_policed() + u.drop_policed());
  acc->set_drop_other(acc->drop_other() + u.drop_other());
  if (u.first_packet_unix_ns() &&
      (!acc->first_packet_unix_ns() || u.first_packet_unix_ns() < acc->first_packet_unix_ns())) {
    acc->set_first_packet_unix_ns(u.first_packet_unix_ns());
  }
  acc->set_last_packet_unix_ns(std::max(acc->last_packet_unix_ns(), u.last_packet_unix_ns()));
  acc->set_participant_minutes(acc->participant_minutes() + u.participant_minutes());
}

bool IsMulticastOrBroadcast(const IpAddr& a) {
  if (a.is_v4()) {
    uint8_t first = a.b[12];
    return first >= 224 || (a.b[12] == 255 && a.b[13] == 255 && a.b[14] == 255 && a.b[15] == 255);
  }
  return a.b[0] == 0xff;
}

const char* RoleName(tables::Role r) { return r == tables::Role::kActive ? "active" : "standby"; }

}  // namespace

Core::Core(Config config, std::unique_ptr<Store> store,
           std::unique_ptr<tables::TablesWriter> writer, uint64_t log_id)
    : config_(std::move(config)),
      store_(std::move(store)),
      writer_(std::move(writer)),
      changes_(std::make_unique<ChangeLog>(config_.watch_history,
                                                 config_.watch_history_mib << 20, log_id)),
      pool_(config_.pool_vips, config_.pool_first_port, config_.pool_last_port) {}

Core::~Core() { changes_->Close(); }

absl::StatusOr<std::unique_ptr<Core>> Core::Start(const Config& config) {
  std::optional<gid_t> shm_group;
  if (!config.shm_group.empty()) {
    auto g = LookupGroup(config.shm_group);
    if (!g.ok()) return absl::InvalidArgumentError(absl::StrCat("shm_group: ", g.status().message()));
    shm_group = *g;
  }
  if (auto st = PreparePrivateDir(config.shm_dir, shm_group); !st.ok()) return st;
  auto store = Store::Open(config.store_path);
  if (!store.ok()) return store.status();
  auto writer =
      tables::TablesWriter::Open(tables::TablesPath(config.shm_dir, config.node), config.capacity);
  if (!writer.ok()) return writer.status();
  std::random_device rd;
  uint64_t log_id = (uint64_t{rd()} << 32 | rd()) & 0x7fffffffffffffffULL;
  if (log_id == 0) log_id = 1;
  std::unique_ptr<Core> core(new Core(config, std::move(*store), std::move(*writer), log_id));
  absl::MutexLock lock(&core->mu_);
  if (auto st = core->Reconcile(); !st.ok()) return st;
  return core;
}

absl::Status Core::Reconcile() {
  auto sites = store_->LoadSites();
  if (!sites.ok()) return sites.status();
  for (v1::Site& s : *sites) {
    next_site_id_ = std::max(next_site_id_, s.site_id() + 1);
    sites_[s.site_id()] = std::move(s);
  }
  auto meetings = store_->LoadMeetings();
  if (!meetings.ok()) return meetings.status();
  for (v1::Meeting& m : *meetings) {
    next_meeting_id_ = std::max(next_meeting_id_, m.meeting_id() + 1);
    meetings_[m.meeting_id()] = std::move(m);
  }
  auto max_pid = store_->MaxParticipantId();
  if (!max_pid.ok()) return max_pid.status();
  next_participant_id_ = *max_pid + 1;
  auto limit = store_->GetMeta("leg_id_limit", 0);
  if (!limit.ok()) return limit.status();
  next_leg_id_ = std::max<uint64_t>(*limit, 1);
  leg_id_limit_ = next_leg_id_;  // the next id reserves a fresh block

  // Meetings: the store decides which are live.
  std::vector<uint64_t> stale_meetings;
  writer_->ForEachMeeting([&](uint64_t id, uint64_t, uint32_t) {
    auto it = meetings_.find(id);
    if (it == meetings_.end() || it->second.state() != v1::LIVE) stale_meetings.push_back(id);
  });
  for (uint64_t id : stale_meetings) {
    removed_on_start_ += writer_->LegsOfMeeting(id).size();
    (void)writer_->RemoveMeeting(id);
  }
  for (auto& [id, m] : meetings_) {
    if (m.state() != v1::LIVE) continue;
    uint32_t flags = m.presenter_only() ? tables::kMeetingPresenterOnly : 0;
    if (!writer_->HasMeeting(id)) {
      auto st = writer_->AddMeeting(id, m.site_id(), flags, m.copies_per_s_limit());
      if (!st.ok()) return st;
    } else {
      (void)writer_->SetMeetingFlags(id, flags);
      (void)writer_->SetMeetingCopiesLimit(id, m.copies_per_s_limit());
    }
    LiveMeeting& live = live_[id];
    auto parts = store_->LoadParticipants(id);
    if (!parts.ok()) return parts.status();
    for (v1::Participant& p : *parts) {
      live.participants.push_back(p.participant_id());
      if (p.left_unix_ns() == 0) ++live.present;
      participants_[p.participant_id()].p = std::move(p);
    }
  }

  // Legs: kept iff their participant is present in their meeting.
  std::vector<uint64_t> stale_legs;
  std::vector<tables::LegInfo> keep;
  writer_->ForEachLeg([&](const tables::LegInfo& info) {
    auto it = participants_.find(info.spec.participant_id);
    if (it == participants_.end() || it->second.p.left_unix_ns() != 0 ||
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
    ParticipantRec& pr = participants_[info.spec.participant_id];
    LegRec rec;
    rec.participant_id = info.spec.participant_id;
    rec.meeting_id = info.spec.meeting_id;
    rec.requested = info.spec.flags & (kLegSend | kLegRecv);
    rec.muted = (info.spec.flags & kLegMuted) != 0;
    // An attendee's leg in a presenter-only meeting had its send flag cleared
    // by policy; it asked to send unless it only receives, which we cannot
    // tell apart any more: assume it sends (the common case).
    const v1::Meeting& m = meetings_[rec.meeting_id];
    if (m.presenter_only() && pr.p.role() == v1::ATTENDEE) rec.requested |= kLegSend;
    rec.local = info.spec.key.local;
    rec.local_port = info.spec.key.local_port;
    (void)pool_.Reserve(rec.local, rec.local_port, info.spec.leg_id);
    pr.legs.push_back(info.spec.leg_id);
    live_[rec.meeting_id].legs++;
    legs_[info.spec.leg_id] = rec;
    max_leg = std::max(max_leg, info.spec.leg_id);
  }
  adopted_legs_ = keep.size();
  if (max_leg >= next_leg_id_) {
    next_leg_id_ = max_leg + 1;
    leg_id_limit_ = next_leg_id_;
  }

  auto epoch = store_->GetMeta("epoch", 1);
  if (!epoch.ok()) return epoch.status();
  epoch_ = *epoch;
  role_ = config_.role == "active" ? tables::Role::kActive : tables::Role::kStandby;
  if (config_.pair.enabled) {
    // The pair owns role and epoch: a restarted daemon keeps what its
    // tables say (so forwarding is untouched), a fresh node starts standby
    // and the pair elects.
    const tables::TablesView& v = writer_->view();
    epoch_ = std::max(epoch_, v.epoch());
    role_ = v.epoch() > 0 ? v.role() : tables::Role::kStandby;
  }
  if (auto st = store_->SetMeta("epoch", epoch_); !st.ok()) return st;
  if (auto st = writer_->SetVips(config_.access_vips); !st.ok()) return st;
  writer_->SetRole(role_, epoch_);
  v1::Change c = MakeChange(v1::Change::ROLE, 0);
  c.set_role(RoleName(role_));
  c.set_epoch(epoch_);
  changes_->Append(std::move(c));
  fprintf(stderr, "tandem-control: adopted %u legs, %zu live meetings; removed %u stale entries\n",
          adopted_legs_, live_.size(), removed_on_start_);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Core::NextLegId() {
  if (next_leg_id_ >= leg_id_limit_) {
    uint64_t limit = next_leg_id_ + kLegIdBlock;
    if (auto st = store_->SetMeta("leg_id_limit", limit); !st.ok()) return st;
    leg_id_limit_ = limit;
  }
  return next_leg_id_++;
}

void Core::RefreshState() {
  // A region of another leg capacity does not index our slots.
  have_state_ = state_region_.Attach(tables::StatePath(config_.shm_dir, config_.node)) &&
                state_region_.view().header().leg_capacity == writer_->view().leg_capacity();
  if (have_state_) state_ = state_region_.view();
}

uint32_t Core::EffectiveFlags(const LegRec& leg) const {
  auto pit = participants_.find(leg.participant_id);
  auto mit = meetings_.find(leg.meeting_id);
  bool withheld = pit != participants_.end() && mit != meetings_.end() &&
                  mit->second.presenter_only() && pit->second.p.role() == v1::ATTENDEE;
  return LegTableFlags(leg.requested, leg.muted, withheld);
}

v1::Usage Core::LegUsage(uint64_t leg_id) const {
  // Counts mirrored from the peer before a takeover, then our switch's own.
  v1::Usage u;
  if (auto b = usage_base_.find(leg_id); b != usage_base_.end()) u = b->second;
  if (!have_state_) return u;
  auto info = writer_->GetLeg(leg_id);
  if (!info.ok()) return u;
  tables::LegUsage lu = tables::SumLegUsage(state_, info->slot, info->gen);
  u.set_packets_in(u.packets_in() + lu.packets_in);
  u.set_bytes_in(u.bytes_in() + lu.bytes_in);
  u.set_packets_out(u.packets_out() + lu.packets_out);
  u.set_bytes_out(u.bytes_out() + lu.bytes_out);
  u.set_drop_not_allowed(u.drop_not_allowed() + lu.drop_not_allowed);
  u.set_drop_policed(u.drop_policed() + lu.drop_policed);
  u.set_drop_other(u.drop_other() + lu.drop_other);
  if (lu.first_unix_ns && !u.first_packet_unix_ns()) u.set_first_packet_unix_ns(lu.first_unix_ns);
  u.set_last_packet_unix_ns(std::max<uint64_t>(u.last_packet_unix_ns(), lu.last_unix_ns));
  return u;
}

v1::Usage Core::ParticipantUsage(const ParticipantRec& rec) const {
  v1::Usage u = rec.p.usage();  // legs that already left, and minutes when left
  for (uint64_t leg : rec.legs) AddUsage(LegUsage(leg), &u);
  if (rec.p.left_unix_ns() == 0) {
    uint64_t now = UnixNs();
    if (now > rec.p.joined_unix_ns()) {
      u.set_participant_minutes(double(now - rec.p.joined_unix_ns()) / 60e9);
    }
  }
  return u;
}

v1::Usage Core::MeetingUsage(const v1::Meeting& m) const {
  if (m.state() != v1::LIVE) return m.usage();
  v1::Usage u;
  auto it = live_.find(m.meeting_id());
  if (it == live_.end()) return u;
  for (uint64_t pid : it->second.participants) {
    auto p = participants_.find(pid);
    if (p != participants_.end()) AddUsage(ParticipantUsage(p->second), &u);
  }
  return u;
}

void Core::FillLeg(uint64_t leg_id, bool with_usage, v1::Leg* out) const {
  auto info = writer_->GetLeg(leg_id);
  auto rec = legs_.find(leg_id);
  if (!info.ok() || rec == legs_.end()) return;
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
  if (with_usage) *out->mutable_usage() = LegUsage(leg_id);
}

void Core::FillParticipant(const ParticipantRec& rec, bool with_legs, v1::Participant* out) const {
  *out = rec.p;
  *out->mutable_usage() = ParticipantUsage(rec);
  if (with_legs) {
    for (uint64_t leg : rec.legs) FillLeg(leg, false, out->add_legs());
  }
}

void Core::FillMeeting(const v1::Meeting& m, v1::Meeting* out) const {
  *out = m;
  if (m.state() == v1::LIVE) {
    auto it = live_.find(m.meeting_id());
    if (it != live_.end()) {
      out->set_participants(it->second.present);
      out->set_legs(it->second.legs);
    }
    *out->mutable_usage() = MeetingUsage(m);
  }
}

uint32_t Core::SiteLiveLegs(uint64_t site_id) const {
  uint32_t n = 0;
  for (const auto& [id, live] : live_) {
    auto it = meetings_.find(id);
    if (it != meetings_.end() && it->second.site_id() == site_id) n += live.legs;
  }
  return n;
}

uint32_t Core::SiteLiveMeetings(uint64_t site_id) const {
  uint32_t n = 0;
  for (const auto& [id, live] : live_) {
    auto it = meetings_.find(id);
    if (it != meetings_.end() && it->second.site_id() == site_id) ++n;
  }
  return n;
}

absl::StatusOr<v1::Meeting*> Core::FindMeeting(uint64_t id) {
  auto it = meetings_.find(id);
  if (it == meetings_.end()) return absl::NotFoundError(absl::StrCat("unknown meeting ", id));
  return &it->second;
}

// ---------------------------------------------------------------- status

absl::Status Core::GetStatus(const v1::GetStatusRequest& req, v1::NodeStatus* out) {
  absl::MutexLock lock(&mu_);
  RefreshState();
  const tables::TablesView& v = writer_->view();
  out->set_node(config_.node);
  out->set_role(RoleName(v.role()));
  out->set_epoch(v.epoch());
  for (const IpAddr& a : v.Vips()) out->add_vips(a.ToString());
  out->set_legs(writer_->leg_count());
  out->set_leg_capacity(v.leg_capacity());
  out->set_meetings(writer_->meeting_count());
  out->set_meeting_capacity(v.meeting_capacity());
  out->set_sites(sites_.size());
  out->set_change_seq(changes_->last_seq());
  out->set_log_id(changes_->log_id());
  out->set_pool_free(pool_.pool_free());
  out->set_version("0.1.0");
  if (!have_state_) return absl::OkStatus();
  const tables::StateHeader& h = state_.header();
  int32_t pid = h.switch_pid.load(std::memory_order_acquire);
  out->set_switch_pid(pid);
  out->set_switch_running(pid > 0 && kill(pid, 0) == 0);
  out->set_switch_restarts(h.restarts.load());
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
  {
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
  if (req.include_neighbours()) {
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
  return absl::OkStatus();
}

// ---------------------------------------------------------------- sites

namespace {

// Size limits of a site (docs/control.md, "Limits"). Every object goes to
// the standby as one replication record, which must fit one backbone frame
// (16 MiB): without a bound, one site grown by updates stalled replication
// for good. These keep every object far below it.
constexpr size_t kMaxMapKeyBytes = 256;
constexpr size_t kMaxMapValueBytes = 64 << 10;
constexpr size_t kMaxMapEntries = 1024;
constexpr size_t kMaxSiteBytes = 1 << 20;

absl::Status CheckSiteName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("a site needs a name");
  if (name.size() > 256) return absl::InvalidArgumentError("site name longer than 256 bytes");
  return absl::OkStatus();
}

absl::Status CheckSiteMap(const char* what,
                          const google::protobuf::Map<std::string, std::string>& m) {
  if (m.size() > kMaxMapEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", m.size(), " entries: the limit is ", kMaxMapEntries));
  }
  for (const auto& [k, v] : m) {
    if (k.size() > kMaxMapKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " key of ", k.size(), " bytes: the limit is ", kMaxMapKeyBytes));
    }
    if (v.size() > kMaxMapValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat(what, " value of \"", k, "\" is ", v.size(),
                                                     " bytes: the limit is ", kMaxMapValueBytes));
    }
  }
  return absl::OkStatus();
}

// A site as it would be stored: within every size limit.
absl::Status CheckSiteSize(const v1::Site& site) {
  if (auto st = CheckSiteMap("look_and_feel", site.look_and_feel()); !st.ok()) return st;
  if (auto st = CheckSiteMap("preferences", site.preferences()); !st.ok()) return st;
  if (size_t n = site.ByteSizeLong(); n > kMaxSiteBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the site would take ", n,
                                                   " bytes: the limit is ", kMaxSiteBytes,
                                                   " (name, look_and_feel and preferences)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Core::CreateSite(const v1::CreateSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  v1::Site site = req.site();
  if (auto st = CheckSiteName(site.name()); !st.ok()) return st;
  if (site.site_id() != 0 && sites_.contains(site.site_id())) {
    return absl::AlreadyExistsError(absl::StrCat("site ", site.site_id(), " exists"));
  }
  for (const auto& [id, s] : sites_) {
    if (s.name() == site.name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a site named \"", site.name(), "\" exists (site ", id, ")"));
    }
  }
  if (site.site_id() == 0) site.set_site_id(next_site_id_);
  uint64_t now = UnixNs();
  site.set_created_unix_ns(now);
  site.set_updated_unix_ns(now);
  if (auto st = CheckSiteSize(site); !st.ok()) return st;
  if (auto st = store_->Transaction([&] { return store_->PutSite(site); }); !st.ok()) return st;
  next_site_id_ = std::max(next_site_id_, site.site_id() + 1);
  sites_[site.site_id()] = site;
  v1::Change c = MakeChange(v1::Change::SITE_PUT, site.site_id());
  *c.mutable_site() = site;
  changes_->Append(std::move(c));
  *out = site;
  return absl::OkStatus();
}

absl::Status Core::GetSite(const v1::GetSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  auto it = sites_.find(req.site_id());
  if (it == sites_.end()) return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  *out = it->second;
  return absl::OkStatus();
}

absl::Status Core::ListSites(const v1::ListSitesRequest&, v1::ListSitesResponse* out) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, s] : sites_) *out->add_sites() = s;
  return absl::OkStatus();
}

absl::Status Core::UpdateSite(const v1::UpdateSiteRequest& req, v1::Site* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto it = sites_.find(req.site_id());
  if (it == sites_.end()) return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  v1::Site site = it->second;
  if (req.has_name()) {
    if (auto st = CheckSiteName(req.name()); !st.ok()) return st;
    for (const auto& [id, s] : sites_) {
      if (id != site.site_id() && s.name() == req.name()) {
        return absl::AlreadyExistsError(
            absl::StrCat("a site named \"", req.name(), "\" exists (site ", id, ")"));
      }
    }
    site.set_name(req.name());
  }
  for (const auto& [k, v] : req.set_look_and_feel()) (*site.mutable_look_and_feel())[k] = v;
  for (const std::string& k : req.remove_look_and_feel()) site.mutable_look_and_feel()->erase(k);
  for (const auto& [k, v] : req.set_preferences()) (*site.mutable_preferences())[k] = v;
  for (const std::string& k : req.remove_preferences()) site.mutable_preferences()->erase(k);
  if (req.has_policy()) *site.mutable_policy() = req.policy();
  site.set_updated_unix_ns(UnixNs());
  if (auto st = CheckSiteSize(site); !st.ok()) return st;
  if (auto st = store_->Transaction([&] { return store_->PutSite(site); }); !st.ok()) return st;
  it->second = site;
  v1::Change c = MakeChange(v1::Change::SITE_PUT, site.site_id());
  *c.mutable_site() = site;
  changes_->Append(std::move(c));
  *out = site;
  return absl::OkStatus();
}

absl::Status Core::DeleteSite(const v1::DeleteSiteRequest& req, v1::DeleteSiteResponse*) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto it = sites_.find(req.site_id());
  if (it == sites_.end()) return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  std::vector<uint64_t> doomed;
  for (const auto& [id, m] : meetings_) {
    if (m.site_id() != req.site_id()) continue;
    if (m.state() == v1::LIVE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "site ", req.site_id(), " has live meeting ", id, ": end it before deleting the site"));
    }
    doomed.push_back(id);
  }
  absl::Status put = store_->Transaction([&] { return store_->DeleteSite(req.site_id()); });
  if (!put.ok()) return put;
  std::vector<v1::Change> changes;
  for (uint64_t id : doomed) {
    meetings_.erase(id);
    changes.push_back(MakeChange(v1::Change::MEETING_DELETED, id));
  }
  sites_.erase(it);
  changes.push_back(MakeChange(v1::Change::SITE_DELETED, req.site_id()));
  changes_->AppendAll(changes);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- meetings

absl::Status Core::ScheduleMeeting(const v1::ScheduleMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  v1::Meeting m = req.meeting();
  if (!sites_.contains(m.site_id())) {
    return absl::NotFoundError(absl::StrCat("unknown site ", m.site_id()));
  }
  if (m.title().empty()) return absl::InvalidArgumentError("a meeting needs a title");
  if (m.title().size() > 256) {
    return absl::InvalidArgumentError("meeting title longer than 256 bytes");
  }
  if (m.meeting_id() != 0 && meetings_.contains(m.meeting_id())) {
    return absl::AlreadyExistsError(absl::StrCat("meeting ", m.meeting_id(), " exists"));
  }
  if (m.meeting_id() == 0) m.set_meeting_id(next_meeting_id_);
  m.set_state(v1::SCHEDULED);
  m.set_started_unix_ns(0);
  m.set_ended_unix_ns(0);
  m.set_participants(0);
  m.set_legs(0);
  m.clear_usage();
  m.set_created_unix_ns(UnixNs());
  if (auto st = store_->Transaction([&] { return store_->PutMeeting(m); }); !st.ok()) return st;
  next_meeting_id_ = std::max(next_meeting_id_, m.meeting_id() + 1);
  meetings_[m.meeting_id()] = m;
  v1::Change c = MakeChange(v1::Change::MEETING_PUT, m.meeting_id());
  *c.mutable_meeting() = m;
  changes_->Append(std::move(c));
  *out = m;
  return absl::OkStatus();
}

absl::Status Core::StartMeeting(const v1::StartMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  v1::Meeting& cur = **found;
  if (cur.state() == v1::LIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", cur.meeting_id(), " is already live"));
  }
  if (cur.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", cur.meeting_id(), " has ended; schedule a new one"));
  }
  const v1::Site& site = sites_[cur.site_id()];
  uint32_t max = site.policy().max_live_meetings();
  if (max && SiteLiveMeetings(site.site_id()) >= max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("site ", site.site_id(), " policy: at most ", max, " live meetings"));
  }
  v1::Meeting m = cur;
  m.set_state(v1::LIVE);
  m.set_started_unix_ns(UnixNs());
  m.set_copies_per_s_limit(MeetingCopiesFor(config_.limits, site.policy()));
  // Store first (uncommitted), then the tables, then commit: a crash before
  // the commit leaves a meeting in the tables that the store does not call
  // live, and the restart removes it.
  if (auto st = store_->Begin(); !st.ok()) return st;
  if (auto st = store_->PutMeeting(m); !st.ok()) {
    store_->Rollback();
    return st;
  }
  uint32_t flags = m.presenter_only() ? tables::kMeetingPresenterOnly : 0;
  if (auto st = writer_->AddMeeting(m.meeting_id(), m.site_id(), flags, m.copies_per_s_limit());
      !st.ok()) {
    store_->Rollback();
    return st;
  }
  if (auto st = store_->Commit(); !st.ok()) {
    (void)writer_->RemoveMeeting(m.meeting_id());
    return st;
  }
  cur = m;
  live_[m.meeting_id()] = LiveMeeting{};
  v1::Change c = MakeChange(v1::Change::MEETING_PUT, m.meeting_id());
  *c.mutable_meeting() = m;
  changes_->Append(std::move(c));
  FillMeeting(cur, out);
  return absl::OkStatus();
}

absl::Status Core::EndMeeting(const v1::EndMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  v1::Meeting& cur = **found;
  if (cur.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", cur.meeting_id(), " has already ended"));
  }
  RefreshState();
  v1::Meeting m = cur;
  uint64_t now = UnixNs();
  std::vector<v1::Participant> finals;
  std::vector<uint64_t> legs;
  if (m.state() == v1::LIVE) {
    v1::Usage total;
    for (uint64_t pid : live_[m.meeting_id()].participants) {
      ParticipantRec& pr = participants_[pid];
      v1::Participant p = pr.p;
      *p.mutable_usage() = ParticipantUsage(pr);
      if (p.left_unix_ns() == 0) p.set_left_unix_ns(now);
      AddUsage(p.usage(), &total);
      legs.insert(legs.end(), pr.legs.begin(), pr.legs.end());
      finals.push_back(std::move(p));
    }
    *m.mutable_usage() = total;
  }
  m.set_state(v1::ENDED);
  m.set_ended_unix_ns(now);
  m.set_participants(0);
  m.set_legs(0);
  // Commit first, then clear the tables: a crash in between leaves a meeting
  // in the tables that the store calls ended, and the restart removes it.
  if (auto st = store_->Begin(); !st.ok()) return st;
  absl::Status st = store_->PutMeeting(m);
  for (const v1::Participant& p : finals) {
    if (st.ok()) st = store_->PutParticipant(p);
  }
  if (!st.ok()) {
    store_->Rollback();
    return st;
  }
  if (auto cst = store_->Commit(); !cst.ok()) return cst;
  std::vector<v1::Change> changes;
  DropLegs(legs, &changes);
  if (writer_->HasMeeting(m.meeting_id())) (void)writer_->RemoveMeeting(m.meeting_id());
  for (v1::Participant& p : finals) {
    participants_.erase(p.participant_id());
    v1::Change c = MakeChange(v1::Change::PARTICIPANT_LEFT, p.participant_id());
    *c.mutable_participant() = std::move(p);
    changes.push_back(std::move(c));
  }
  live_.erase(m.meeting_id());
  cur = m;
  v1::Change c = MakeChange(v1::Change::MEETING_PUT, m.meeting_id());
  *c.mutable_meeting() = m;
  changes.push_back(std::move(c));
  changes_->AppendAll(changes);
  *out = m;
  return absl::OkStatus();
}

absl::Status Core::GetMeeting(const v1::GetMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  RefreshState();
  FillMeeting(**found, out);
  return absl::OkStatus();
}

absl::Status Core::ListMeetings(const v1::ListMeetingsRequest& req, v1::ListMeetingsResponse* out) {
  absl::MutexLock lock(&mu_);
  if (req.site_id() != 0 && !sites_.contains(req.site_id())) {
    return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
  }
  RefreshState();
  for (const auto& [id, m] : meetings_) {
    if (req.site_id() != 0 && m.site_id() != req.site_id()) continue;
    if (req.state() != v1::MEETING_STATE_UNSPECIFIED && m.state() != req.state()) continue;
    if (req.listed_only() && !m.listed()) continue;
    FillMeeting(m, out->add_meetings());
  }
  return absl::OkStatus();
}

absl::Status Core::UpdateMeeting(const v1::UpdateMeetingRequest& req, v1::Meeting* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  v1::Meeting& cur = **found;
  if (cur.state() == v1::ENDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("meeting ", cur.meeting_id(), " has ended and cannot change"));
  }
  v1::Meeting m = cur;
  if (req.has_title()) {
    if (req.title().empty()) return absl::InvalidArgumentError("a meeting needs a title");
    if (req.title().size() > 256) {
      return absl::InvalidArgumentError("meeting title longer than 256 bytes");
    }
    m.set_title(req.title());
  }
  if (req.has_presenter_only()) m.set_presenter_only(req.presenter_only());
  if (req.has_listed()) m.set_listed(req.listed());
  if (req.has_scheduled_start_unix()) m.set_scheduled_start_unix(req.scheduled_start_unix());
  if (req.has_duration_minutes()) m.set_duration_minutes(req.duration_minutes());
  v1::Meeting stored = m;
  stored.clear_usage();
  stored.set_participants(0);
  stored.set_legs(0);
  absl::Status put = store_->Transaction([&] { return store_->PutMeeting(stored); });
  if (!put.ok()) return put;
  bool fanout_changed = cur.presenter_only() != m.presenter_only();
  cur = stored;
  std::vector<v1::Change> changes;
  v1::Change c = MakeChange(v1::Change::MEETING_PUT, m.meeting_id());
  *c.mutable_meeting() = stored;
  changes.push_back(std::move(c));
  if (fanout_changed && cur.state() == v1::LIVE) {
    (void)writer_->SetMeetingFlags(m.meeting_id(),
                                   m.presenter_only() ? tables::kMeetingPresenterOnly : 0);
    std::vector<uint64_t> legs;
    for (uint64_t pid : live_[m.meeting_id()].participants) {
      const ParticipantRec& pr = participants_[pid];
      legs.insert(legs.end(), pr.legs.begin(), pr.legs.end());
    }
    ApplyFlags(legs, &changes);
  }
  changes_->AppendAll(changes);
  RefreshState();
  FillMeeting(cur, out);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- participants

absl::Status Core::Join(const v1::JoinRequest& req, v1::JoinResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  if (req.participants_size() == 0) {
    return absl::InvalidArgumentError("join needs at least one participant");
  }
  struct NewLeg {
    size_t participant;  // index into the request
    tables::LegSpec spec;
    LegRec rec;
  };
  std::vector<NewLeg> legs;
  std::vector<v1::Participant> joined(req.participants_size());
  std::vector<bool> is_new(req.participants_size());
  // Endpoints reserved for this call are released unless the call succeeds.
  absl::Cleanup release = [&] {
    for (const NewLeg& l : legs) pool_.Release(l.rec.local, l.rec.local_port);
  };
  absl::flat_hash_map<uint64_t, uint32_t> new_present;  // meeting -> joiners in this call
  absl::flat_hash_map<uint64_t, uint32_t> new_legs;     // site -> legs in this call
  absl::flat_hash_map<uint64_t, uint32_t> site_legs;    // site -> live legs (cached)
  uint64_t now = UnixNs();
  uint64_t next_pid = next_participant_id_;

  for (int i = 0; i < req.participants_size(); ++i) {
    const v1::ParticipantJoin& pj = req.participants(i);
    std::string who =
        req.participants_size() > 1 ? absl::StrCat("participant #", i + 1, ": ") : std::string();
    auto mit = meetings_.find(pj.meeting_id());
    if (mit == meetings_.end()) {
      return absl::NotFoundError(absl::StrCat(who, "unknown meeting ", pj.meeting_id()));
    }
    const v1::Meeting& m = mit->second;
    if (m.state() != v1::LIVE) {
      return absl::FailedPreconditionError(absl::StrCat(
          who, "meeting ", m.meeting_id(), " is ",
          m.state() == v1::SCHEDULED ? "scheduled, not live: start it first" : "ended"));
    }
    const v1::Policy& policy = sites_[m.site_id()].policy();
    v1::Participant& p = joined[i];
    if (pj.participant_id() != 0) {
      auto pit = participants_.find(pj.participant_id());
      if (pit == participants_.end() || pit->second.p.left_unix_ns() != 0 ||
          pit->second.p.meeting_id() != m.meeting_id()) {
        return absl::NotFoundError(absl::StrCat(who, "unknown participant ", pj.participant_id(),
                                                " in meeting ", m.meeting_id()));
      }
      p = pit->second.p;
    } else {
      uint32_t present = live_[m.meeting_id()].present + ++new_present[m.meeting_id()];
      if (policy.max_participants_per_meeting() &&
          present > policy.max_participants_per_meeting()) {
        return absl::ResourceExhaustedError(
            absl::StrCat(who, "site ", m.site_id(), " policy: at most ",
                         policy.max_participants_per_meeting(), " participants per meeting"));
      }
      if (pj.name().size() > 256) {
        return absl::InvalidArgumentError(absl::StrCat(who, "name longer than 256 bytes"));
      }
      if (pj.role() < 0 || pj.role() > v1::ATTENDEE) {
        return absl::InvalidArgumentError(absl::StrCat(who, "invalid role"));
      }
      p.set_participant_id(next_pid++);
      p.set_meeting_id(m.meeting_id());
      p.set_name(pj.name());
      p.set_role(pj.role() == v1::ROLE_UNSPECIFIED ? v1::ATTENDEE : pj.role());
      p.set_joined_unix_ns(now);
      is_new[i] = true;
    }
    if (pj.legs_size() > 0) {
      auto [sit, fresh] = site_legs.try_emplace(m.site_id(), 0);
      if (fresh) sit->second = SiteLiveLegs(m.site_id());
      uint32_t total = sit->second + (new_legs[m.site_id()] += pj.legs_size());
      if (policy.max_legs() && total > policy.max_legs()) {
        return absl::ResourceExhaustedError(absl::StrCat(
            who, "site ", m.site_id(), " policy: at most ", policy.max_legs(), " live legs"));
      }
    }
    for (int j = 0; j < pj.legs_size(); ++j) {
      const v1::LegRequest& lr = pj.legs(j);
      std::string where = absl::StrCat(who, "leg #", j + 1, ": ");
      auto channel = ChannelFromProto(lr.channel());
      if (!channel.ok())
        return absl::InvalidArgumentError(where + std::string(channel.status().message()));
      if (lr.recv_only() && lr.send_only()) {
        return absl::InvalidArgumentError(where + "recv_only and send_only exclude each other");
      }
      auto remote = ParseEndpoint(lr.remote());
      if (!remote.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "invalid remote address '", lr.remote(),
                         "' (want 198.18.0.10:5000 or [2001:db8::10]:5000)"));
      }
      if (remote->first.is_zero() || remote->second == 0 || IsMulticastOrBroadcast(remote->first)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "remote address ", lr.remote(),
                         " must be a unicast address with a non-zero port"));
      }
      for (const IpAddr& vip : config_.access_vips) {
        if (vip == remote->first) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "remote address ", lr.remote(), " is a VIP of this node"));
        }
      }
      auto leg_id = NextLegId();
      if (!leg_id.ok()) return leg_id.status();
      NewLeg nl;
      nl.participant = i;
      if (!lr.local().empty()) {
        auto local = ParseEndpoint(lr.local());
        if (!local.ok() || local->second == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "invalid local address '", lr.local(), "'"));
        }
        bool is_vip = false;
        for (const IpAddr& vip : config_.access_vips) is_vip |= (vip == local->first);
        if (!is_vip) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, "local address ", local->first.ToString(), " is not a VIP of this node"));
        }
        if (local->first.is_v4() != remote->first.is_v4()) {
          return absl::InvalidArgumentError(absl::StrCat(where, "remote ", lr.remote(),
                                                         " and local ", lr.local(),
                                                         " are of different address families"));
        }
        if (auto st = pool_.Reserve(local->first, local->second, *leg_id); !st.ok()) {
          return absl::AlreadyExistsError(where + std::string(st.message()));
        }
        nl.rec.local = local->first;
        nl.rec.local_port = local->second;
      } else {
        auto local = pool_.Allocate(remote->first.is_v4(), *leg_id);
        if (!local.ok()) {
          return absl::ResourceExhaustedError(where + std::string(local.status().message()));
        }
        nl.rec.local = local->first;
        nl.rec.local_port = local->second;
      }
      nl.rec.participant_id = p.participant_id();
      nl.rec.meeting_id = m.meeting_id();
      nl.rec.requested = (lr.recv_only() ? 0 : kLegSend) | (lr.send_only() ? 0 : kLegRecv);
      nl.rec.muted = p.muted();
      nl.spec.leg_id = *leg_id;
      nl.spec.participant_id = p.participant_id();
      nl.spec.meeting_id = m.meeting_id();
      nl.spec.channel = *channel;
      nl.spec.key.remote = remote->first;
      nl.spec.key.remote_port = remote->second;
      nl.spec.key.local = nl.rec.local;
      nl.spec.key.local_port = nl.rec.local_port;
      ChannelLimits limits = LegLimitsFor(config_.limits, policy, *channel);
      nl.spec.pps_limit = limits.pps;
      nl.spec.kbps_limit = limits.kbps;
      nl.spec.flags = LegTableFlags(nl.rec.requested, nl.rec.muted,
                                    m.presenter_only() && p.role() == v1::ATTENDEE);
      legs.push_back(std::move(nl));
    }
  }

  // Store (uncommitted), tables, commit: a crash before the commit leaves
  // legs of a participant the store does not know, removed on restart.
  if (auto st = store_->Begin(); !st.ok()) return st;
  for (size_t i = 0; i < joined.size(); ++i) {
    if (!is_new[i]) continue;
    if (auto st = store_->PutParticipant(joined[i]); !st.ok()) {
      store_->Rollback();
      return st;
    }
  }
  std::vector<tables::LegSpec> specs;
  specs.reserve(legs.size());
  for (const NewLeg& l : legs) specs.push_back(l.spec);
  if (!specs.empty()) {
    if (auto st = writer_->AddLegs(specs); !st.ok()) {
      store_->Rollback();
      return st;
    }
  }
  if (auto st = store_->Commit(); !st.ok()) {
    for (const NewLeg& l : legs) (void)writer_->RemoveLeg(l.spec.leg_id);
    return st;
  }
  std::move(release).Cancel();
  next_participant_id_ = next_pid;

  std::vector<v1::Change> changes;
  changes.reserve(joined.size() + legs.size());
  for (size_t i = 0; i < joined.size(); ++i) {
    if (!is_new[i]) continue;
    ParticipantRec& pr = participants_[joined[i].participant_id()];
    pr.p = joined[i];
    LiveMeeting& live = live_[joined[i].meeting_id()];
    live.participants.push_back(joined[i].participant_id());
    live.present++;
    v1::Change c = MakeChange(v1::Change::PARTICIPANT_PUT, joined[i].participant_id());
    *c.mutable_participant() = joined[i];
    changes.push_back(std::move(c));
  }
  for (NewLeg& l : legs) {
    participants_[l.rec.participant_id].legs.push_back(l.spec.leg_id);
    live_[l.rec.meeting_id].legs++;
    legs_[l.spec.leg_id] = l.rec;
  }
  out->mutable_participants()->Reserve(joined.size());
  std::vector<v1::Participant*> replies;
  for (size_t i = 0; i < joined.size(); ++i) {
    v1::Participant* r = out->add_participants();
    *r = joined[i];
    replies.push_back(r);
  }
  for (const NewLeg& l : legs) {
    v1::Leg* leg = replies[l.participant]->add_legs();
    FillLeg(l.spec.leg_id, false, leg);
    v1::Change c = MakeChange(v1::Change::LEG_PUT, l.spec.leg_id);
    *c.mutable_leg() = *leg;
    changes.push_back(std::move(c));
  }
  changes_->AppendAll(changes);
  return absl::OkStatus();
}

void Core::DropLegs(const std::vector<uint64_t>& leg_ids, std::vector<v1::Change>* changes) {
  for (uint64_t id : leg_ids) {
    if (!legs_.contains(id)) continue;
    DropLegQuietly(id);
    changes->push_back(MakeChange(v1::Change::LEG_REMOVED, id));
  }
}

absl::Status Core::Leave(const v1::LeaveRequest& req, v1::LeaveResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
    return absl::InvalidArgumentError("leave needs participant ids or leg ids");
  }
  absl::flat_hash_set<uint64_t> leaving;
  for (uint64_t pid : req.participant_ids()) {
    auto it = participants_.find(pid);
    if (it == participants_.end() || it->second.p.left_unix_ns() != 0) {
      return absl::NotFoundError(
          absl::StrCat("unknown participant ", pid, " (not present in a live meeting)"));
    }
    leaving.insert(pid);
  }
  absl::flat_hash_set<uint64_t> doomed;
  for (uint64_t lid : req.leg_ids()) {
    if (!legs_.contains(lid)) return absl::NotFoundError(absl::StrCat("unknown leg ", lid));
    doomed.insert(lid);
  }
  for (uint64_t pid : leaving) {
    for (uint64_t lid : participants_[pid].legs) doomed.insert(lid);
  }
  RefreshState();
  // Fold the final usage of each leaving leg into its participant.
  absl::flat_hash_map<uint64_t, v1::Participant> updated;
  for (uint64_t lid : doomed) {
    uint64_t pid = legs_[lid].participant_id;
    auto [it, fresh] = updated.try_emplace(pid);
    if (fresh) it->second = participants_[pid].p;
    AddUsage(LegUsage(lid), it->second.mutable_usage());
  }
  uint64_t now = UnixNs();
  for (uint64_t pid : leaving) {
    auto [it, fresh] = updated.try_emplace(pid);
    if (fresh) it->second = participants_[pid].p;
    it->second.set_left_unix_ns(now);
    uint64_t joined = it->second.joined_unix_ns();
    it->second.mutable_usage()->set_participant_minutes(now > joined ? double(now - joined) / 60e9
                                                                     : 0);
  }
  if (auto st = store_->Begin(); !st.ok()) return st;
  for (const auto& [pid, p] : updated) {
    if (auto st = store_->PutParticipant(p); !st.ok()) {
      store_->Rollback();
      return st;
    }
  }
  if (auto st = store_->Commit(); !st.ok()) return st;
  std::vector<v1::Change> changes;
  std::vector<uint64_t> ids(doomed.begin(), doomed.end());
  std::sort(ids.begin(), ids.end());
  DropLegs(ids, &changes);
  for (auto& [pid, p] : updated) {
    participants_[pid].p = p;
    if (leaving.contains(pid)) {
      live_[p.meeting_id()].present--;
      v1::Change c = MakeChange(v1::Change::PARTICIPANT_LEFT, pid);
      *c.mutable_participant() = p;
      changes.push_back(std::move(c));
    }
  }
  changes_->AppendAll(changes);
  out->set_participants_left(leaving.size());
  out->set_legs_removed(ids.size());
  return absl::OkStatus();
}

void Core::ApplyFlags(const std::vector<uint64_t>& leg_ids, std::vector<v1::Change>* changes) {
  for (uint64_t id : leg_ids) {
    auto it = legs_.find(id);
    if (it == legs_.end()) continue;
    (void)writer_->SetLegFlags(id, EffectiveFlags(it->second));
    v1::Change c = MakeChange(v1::Change::LEG_PUT, id);
    FillLeg(id, false, c.mutable_leg());
    changes->push_back(std::move(c));
  }
}

absl::Status Core::SetRole(const v1::SetRoleRequest& req, v1::Participant* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  auto it = participants_.find(req.participant_id());
  if (it == participants_.end() || it->second.p.left_unix_ns() != 0) {
    return absl::NotFoundError(absl::StrCat("unknown participant ", req.participant_id(),
                                            " (not present in a live meeting)"));
  }
  if (req.role() <= v1::ROLE_UNSPECIFIED || req.role() > v1::ATTENDEE) {
    return absl::InvalidArgumentError("role must be host, presenter or attendee");
  }
  v1::Participant p = it->second.p;
  p.set_role(req.role());
  if (auto st = store_->Transaction([&] { return store_->PutParticipant(p); }); !st.ok()) return st;
  it->second.p = p;
  std::vector<v1::Change> changes;
  v1::Change c = MakeChange(v1::Change::PARTICIPANT_PUT, p.participant_id());
  *c.mutable_participant() = p;
  changes.push_back(std::move(c));
  ApplyFlags(it->second.legs, &changes);
  changes_->AppendAll(changes);
  RefreshState();
  FillParticipant(it->second, true, out);
  return absl::OkStatus();
}

absl::Status Core::SetMute(const v1::SetMuteRequest& req, v1::SetMuteResponse* out) {
  absl::MutexLock lock(&mu_);
  if (auto st = CheckWritable(); !st.ok()) return st;
  if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
    return absl::InvalidArgumentError("mute needs participant ids or leg ids");
  }
  for (uint64_t pid : req.participant_ids()) {
    auto it = participants_.find(pid);
    if (it == participants_.end() || it->second.p.left_unix_ns() != 0) {
      return absl::NotFoundError(
          absl::StrCat("unknown participant ", pid, " (not present in a live meeting)"));
    }
  }
  for (uint64_t lid : req.leg_ids()) {
    if (!legs_.contains(lid)) return absl::NotFoundError(absl::StrCat("unknown leg ", lid));
  }
  // The participant's mute is durable (new legs join muted); leg mutes live
  // in the tables' flags.
  if (req.participant_ids_size() > 0) {
    if (auto st = store_->Begin(); !st.ok()) return st;
    for (uint64_t pid : req.participant_ids()) {
      v1::Participant p = participants_[pid].p;
      p.set_muted(req.muted());
      if (auto st = store_->PutParticipant(p); !st.ok()) {
        store_->Rollback();
        return st;
      }
    }
    if (auto st = store_->Commit(); !st.ok()) return st;
  }
  std::vector<uint64_t> legs(req.leg_ids().begin(), req.leg_ids().end());
  std::vector<v1::Change> changes;
  for (uint64_t pid : req.participant_ids()) {
    ParticipantRec& pr = participants_[pid];
    pr.p.set_muted(req.muted());
    legs.insert(legs.end(), pr.legs.begin(), pr.legs.end());
    v1::Change c = MakeChange(v1::Change::PARTICIPANT_PUT, pid);
    *c.mutable_participant() = pr.p;
    changes.push_back(std::move(c));
  }
  std::sort(legs.begin(), legs.end());
  legs.erase(std::unique(legs.begin(), legs.end()), legs.end());
  for (uint64_t lid : legs) legs_[lid].muted = req.muted();
  ApplyFlags(legs, &changes);
  changes_->AppendAll(changes);
  out->set_legs_changed(legs.size());
  return absl::OkStatus();
}

absl::Status Core::ListParticipants(const v1::ListParticipantsRequest& req,
                                    v1::ListParticipantsResponse* out) {
  absl::MutexLock lock(&mu_);
  auto found = FindMeeting(req.meeting_id());
  if (!found.ok()) return found.status();
  RefreshState();
  auto lit = live_.find(req.meeting_id());
  if (lit != live_.end()) {
    for (uint64_t pid : lit->second.participants) {
      const ParticipantRec& pr = participants_[pid];
      if (pr.p.left_unix_ns() != 0 && !req.include_left()) continue;
      FillParticipant(pr, true, out->add_participants());
    }
    return absl::OkStatus();
  }
  if ((*found)->state() != v1::ENDED || !req.include_left()) return absl::OkStatus();
  auto parts = store_->LoadParticipants(req.meeting_id());
  if (!parts.ok()) return parts.status();
  for (v1::Participant& p : *parts) *out->add_participants() = std::move(p);
  return absl::OkStatus();
}

absl::Status Core::ListLegs(const v1::ListLegsRequest& req, v1::ListLegsResponse* out) {
  absl::MutexLock lock(&mu_);
  if (req.meeting_id() != 0 && !meetings_.contains(req.meeting_id())) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", req.meeting_id()));
  }
  if (req.participant_id() != 0 && !participants_.contains(req.participant_id())) {
    return absl::NotFoundError(
        absl::StrCat("unknown participant ", req.participant_id(), " (not in a live meeting)"));
  }
  if (req.with_usage()) RefreshState();
  std::vector<uint64_t> ids;
  if (req.participant_id() != 0) {
    ids = participants_[req.participant_id()].legs;
  } else {
    ids.reserve(legs_.size());
    for (const auto& [id, rec] : legs_) {
      if (req.meeting_id() == 0 || rec.meeting_id == req.meeting_id()) ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    if (req.meeting_id() != 0 && legs_[id].meeting_id != req.meeting_id()) continue;
    FillLeg(id, req.with_usage(), out->add_legs());
  }
  return absl::OkStatus();
}

absl::Status Core::GetUsage(const v1::GetUsageRequest& req, v1::GetUsageResponse* out) {
  absl::MutexLock lock(&mu_);
  RefreshState();
  switch (req.scope_case()) {
    case v1::GetUsageRequest::kLegId:
      if (!legs_.contains(req.leg_id())) {
        return absl::NotFoundError(absl::StrCat("unknown leg ", req.leg_id()));
      }
      *out->mutable_usage() = LegUsage(req.leg_id());
      return absl::OkStatus();
    case v1::GetUsageRequest::kParticipantId: {
      auto it = participants_.find(req.participant_id());
      if (it != participants_.end()) {
        *out->mutable_usage() = ParticipantUsage(it->second);
        return absl::OkStatus();
      }
      auto p = store_->GetParticipant(req.participant_id());
      if (!p.ok()) return p.status();
      *out->mutable_usage() = p->usage();
      return absl::OkStatus();
    }
    case v1::GetUsageRequest::kMeetingId: {
      auto found = FindMeeting(req.meeting_id());
      if (!found.ok()) return found.status();
      *out->mutable_usage() = MeetingUsage(**found);
      return absl::OkStatus();
    }
    case v1::GetUsageRequest::kSiteId: {
      if (!sites_.contains(req.site_id())) {
        return absl::NotFoundError(absl::StrCat("unknown site ", req.site_id()));
      }
      v1::Usage total;
      for (const auto& [id, m] : meetings_) {
        if (m.site_id() == req.site_id()) AddUsage(MeetingUsage(m), &total);
      }
      *out->mutable_usage() = total;
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("usage needs a site, meeting, participant or leg id");
  }
}

// ---------------------------------------------------------------- upkeep

void Core::Housekeeping() {
  absl::MutexLock lock(&mu_);
  writer_->Reclaim();
}

std::string Core::RenderMetrics() {
  absl::MutexLock lock(&mu_);
  RefreshState();
  MetricsText m;
  const tables::TablesView& v = writer_->view();
  m.Gauge("tandem_role_active", "1 when this node's tables say active",
          v.role() == tables::Role::kActive ? 1 : 0);
  m.Gauge("tandem_epoch", "epoch of this node's role", double(v.epoch()));
  m.Gauge("tandem_legs", "live legs in the session tables", double(writer_->leg_count()));
  m.Gauge("tandem_legs_capacity", "leg capacity of the session tables", v.leg_capacity());
  m.Gauge("tandem_meetings_live", "live meetings in the session tables",
          double(writer_->meeting_count()));
  m.Gauge("tandem_meetings_capacity", "meeting capacity of the session tables",
          v.meeting_capacity());
  uint64_t by_state[4] = {};
  for (const auto& [id, mt] : meetings_) by_state[mt.state() & 3]++;
  const char* help = "meetings in the store by state";
  m.Gauge("tandem_meetings", help, double(by_state[v1::SCHEDULED]), {{"state", "scheduled"}});
  m.Gauge("tandem_meetings", help, double(by_state[v1::LIVE]), {{"state", "live"}});
  m.Gauge("tandem_meetings", help, double(by_state[v1::ENDED]), {{"state", "ended"}});
  m.Gauge("tandem_sites", "sites in the store", double(sites_.size()));
  uint64_t present = 0;
  for (const auto& [id, live] : live_) present += live.present;
  m.Gauge("tandem_participants", "participants present in live meetings", double(present));
  m.Gauge("tandem_pool_free", "local addresses left in the VIP pool", double(pool_.pool_free()));
  m.Counter("tandem_changes_total", "changes appended to the watch log",
            double(changes_->last_seq()));
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
