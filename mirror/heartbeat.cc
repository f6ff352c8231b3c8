#include "mirror/heartbeat.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tandem::mirror {
namespace {

uint64_t WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + ts.tv_nsec;
}

HeartbeatBody ToBody(const LocalBeat& b) {
  HeartbeatBody h;
  h.role = b.role == Role::kActive ? WireRole::kActive : WireRole::kStandby;
  h.data_plane_ok = b.data_plane_ok;
  h.access_link_up = b.access_link_up;
  h.handover = b.handover;
  h.position = b.position;
  return h;
}

bool SameAnnouncement(const LocalBeat& a, const LocalBeat& b) {
  return a.role == b.role && a.epoch == b.epoch && a.handover == b.handover &&
         a.data_plane_ok == b.data_plane_ok && a.access_link_up == b.access_link_up;
}

}  // namespace

struct Heartbeater::State {
  HeartbeatOptions opt;
  std::optional<Hmac> key;
  Fd sock[2];
  sockaddr_storage peer[2];
  socklen_t peer_len[2];
  Waker waker;
  RejectCounters rejects;
  OnReport on_report;
  OnTick on_tick;
  std::thread io;
  std::atomic<bool> stop{false};

  mutable absl::Mutex mu;
  LocalBeat beat ABSL_GUARDED_BY(mu);
  uint64_t counter ABSL_GUARDED_BY(mu) = 0;
  HeartbeatStats stats ABSL_GUARDED_BY(mu);
  uint64_t last_counter[2] = {0, 0};  // I/O thread only

  void Send(const LocalBeat& b) {
    absl::MutexLock l(&mu);
    beat = b;
    std::string body = EncodeHeartbeat(ToBody(b));
    for (int p = 0; p < 2; ++p) {
      // The counter is our wall clock in ns (kept strictly rising), so that
      // the receiver can also refuse stale frames replayed after it restarted.
      counter = std::max(counter + 1, WallNanos());
      std::string f = Encode(*key, MsgType::kHeartbeat, opt.node_id, b.epoch, counter, body);
      if (sendto(sock[p].get(), f.data(), f.size(), MSG_DONTWAIT,
                 reinterpret_cast<sockaddr*>(&peer[p]), peer_len[p]) > 0) {
        ++stats.sent[p];
      }
    }
  }

  // Sends `next` at once if it announces something new.
  void Update(const LocalBeat& next) {
    LocalBeat prev;
    {
      absl::MutexLock l(&mu);
      prev = beat;
      beat = next;
    }
    if (!SameAnnouncement(prev, next)) Send(next);
  }

  void Receive(int p) {
    char buf[512];
    for (;;) {
      ssize_t n = recv(sock[p].get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0) return;
      absl::StatusOr<Message> m = DecodeVerified(absl::string_view(buf, n), *key);
      if (!m.ok()) {
        rejects.Count(ReasonOf(m.status()));
        continue;
      }
      if (m->type != MsgType::kHeartbeat || m->sender != opt.peer_node_id) {
        rejects.Count(RejectReason::kUnexpected);
        continue;
      }
      uint64_t skew = static_cast<uint64_t>(absl::ToInt64Nanoseconds(opt.max_clock_skew));
      if (m->counter <= last_counter[p] || (skew > 0 && m->counter + skew < WallNanos())) {
        rejects.Count(RejectReason::kReplayed);
        continue;
      }
      absl::StatusOr<HeartbeatBody> hb = ParseHeartbeat(m->body);
      if (!hb.ok()) {
        rejects.Count(RejectReason::kMalformed);
        continue;
      }
      last_counter[p] = m->counter;
      {
        absl::MutexLock l(&mu);
        ++stats.received[p];
      }
      PeerReport r;
      r.node_id = m->sender;
      r.epoch = m->epoch;
      r.role = hb->role == WireRole::kActive ? Role::kActive : Role::kStandby;
      r.position = hb->position;
      r.data_plane_ok = hb->data_plane_ok;
      r.access_link_up = hb->access_link_up;
      r.handover = hb->handover;
      Update(on_report(static_cast<Path>(p), r, MonoNow()));
    }
  }

  void Run() {
    const int64_t interval = absl::ToInt64Nanoseconds(opt.interval);
    int64_t next = MonoNanos();
    while (!stop.load()) {
      int64_t now = MonoNanos();
      if (now >= next) {
        LocalBeat b = on_tick(absl::FromUnixNanos(now));
        Send(b);
        next += interval;
        if (next <= now) next = now + interval;  // we were held up: do not burst
      }
      pollfd fds[3] = {
          {waker.fd(), POLLIN, 0}, {sock[0].get(), POLLIN, 0}, {sock[1].get(), POLLIN, 0}};
      int64_t left = next - MonoNanos();
      poll(fds, 3, left <= 0 ? 0 : static_cast<int>((left + 999999) / 1000000));
      if (fds[0].revents) waker.Drain();
      for (int p = 0; p < 2; ++p) {
        if (fds[p + 1].revents) Receive(p);
      }
    }
  }
};

absl::StatusOr<std::unique_ptr<Heartbeater>> Heartbeater::Start(HeartbeatOptions options,
                                                                LocalBeat initial,
                                                                OnReport on_report,
                                                                OnTick on_tick) {
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("heartbeat interval must be positive");
  }
  if (options.peer_node_id == options.node_id) {
    return absl::InvalidArgumentError("peer node id must differ from our own");
  }
  if (!on_report || !on_tick) return absl::InvalidArgumentError("callbacks are required");
  absl::StatusOr<Hmac> key = Hmac::Create(options.key);
  if (!key.ok()) return key.status();
  auto s = std::make_unique<State>();
  const Endpoint* local[2] = {&options.backbone_local, &options.access_local};
  const Endpoint* peer[2] = {&options.backbone_peer, &options.access_peer};
  for (int p = 0; p < 2; ++p) {
    absl::StatusOr<Fd> fd = UdpBind(*local[p]);
    if (!fd.ok()) return fd.status();
    s->sock[p] = std::move(*fd);
    absl::StatusOr<sockaddr_storage> sa = ToSockaddr(*peer[p], &s->peer_len[p]);
    if (!sa.ok()) return sa.status();
    s->peer[p] = *sa;
  }
  s->key = std::move(*key);
  s->opt = std::move(options);
  s->on_report = std::move(on_report);
  s->on_tick = std::move(on_tick);
  {
    absl::MutexLock l(&s->mu);
    s->beat = initial;
    s->counter = 0;
  }
  State* raw = s.get();
  s->io = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Heartbeater>(new Heartbeater(std::move(s)));
}

Heartbeater::Heartbeater(std::unique_ptr<State> s) : s_(std::move(s)) {}

Heartbeater::~Heartbeater() {
  s_->stop.store(true);
  s_->waker.Wake();
  s_->io.join();
}

void Heartbeater::SendNow(const LocalBeat& beat) { s_->Send(beat); }

uint16_t Heartbeater::local_port(Path p) const {
  return LocalPort(s_->sock[static_cast<int>(p)].get());
}

HeartbeatStats Heartbeater::stats() const {
  absl::MutexLock l(&s_->mu);
  return s_->stats;
}

const RejectCounters& Heartbeater::rejects() const { return s_->rejects; }

// ================================================================ PairMonitor

absl::StatusOr<std::unique_ptr<PairMonitor>> PairMonitor::Start(HeartbeatOptions hb,
                                                                RoleConfig role, Role initial_role,
                                                                uint64_t epoch,
                                                                OnDecision on_decision,
                                                                LocalHealthFn local_health) {
  if (!local_health) return absl::InvalidArgumentError("local_health is required");
  role.node_id = hb.node_id;
  role.interval = hb.interval;
  std::unique_ptr<PairMonitor> m(new PairMonitor());
  m->on_decision_ = std::move(on_decision);
  m->local_health_ = std::move(local_health);
  LocalBeat initial;
  {
    absl::MutexLock l(&m->mu_);
    m->machine_ = std::make_unique<RoleMachine>(role, initial_role, epoch, MonoNow());
    m->health_ = m->local_health_();
    m->machine_->SetLocal(m->health_, MonoNow());
    initial = m->Beat();
  }
  PairMonitor* raw = m.get();
  auto on_report = [raw](Path path, const PeerReport& r, absl::Time now) {
    std::vector<Decision> d;
    {
      absl::MutexLock l(&raw->mu_);
      raw->machine_->OnHeartbeat(path, r, now);
      d = raw->machine_->TakeDecisions();
    }
    return raw->Publish(std::move(d));
  };
  auto on_tick = [raw](absl::Time now) {
    LocalHealth h = raw->local_health_();
    std::vector<Decision> d;
    {
      absl::MutexLock l(&raw->mu_);
      raw->health_ = h;
      raw->machine_->SetLocal(h, now);
      raw->machine_->Tick(now);
      d = raw->machine_->TakeDecisions();
    }
    return raw->Publish(std::move(d));
  };
  absl::StatusOr<std::unique_ptr<Heartbeater>> hbr =
      Heartbeater::Start(std::move(hb), initial, on_report, on_tick);
  if (!hbr.ok()) return hbr.status();
  m->hb_ = std::move(*hbr);
  return m;
}

PairMonitor::~PairMonitor() { hb_.reset(); }

LocalBeat PairMonitor::Beat() const {
  LocalBeat b;
  b.role = machine_->role();
  b.epoch = machine_->epoch();
  b.handover = machine_->handover_requested();
  b.position = health_.position;
  b.data_plane_ok = health_.data_plane_ok;
  b.access_link_up = health_.access_link_up;
  return b;
}

LocalBeat PairMonitor::Publish(std::vector<Decision> decisions) {
  if (on_decision_) {
    for (const Decision& d : decisions) on_decision_(d);
  }
  absl::MutexLock l(&mu_);
  return Beat();
}

Role PairMonitor::role() const {
  absl::MutexLock l(&mu_);
  return machine_->role();
}

uint64_t PairMonitor::epoch() const {
  absl::MutexLock l(&mu_);
  return machine_->epoch();
}

Alarms PairMonitor::alarms() const {
  absl::MutexLock l(&mu_);
  return machine_->alarms();
}

std::optional<PeerReport> PairMonitor::peer() const {
  absl::MutexLock l(&mu_);
  return machine_->peer();
}

std::optional<Decision> PairMonitor::last_takeover() const {
  absl::MutexLock l(&mu_);
  return machine_->last_takeover();
}

absl::Status PairMonitor::Switchover(bool force) {
  std::vector<Decision> d;
  absl::Status s;
  {
    absl::MutexLock l(&mu_);
    s = machine_->RequestSwitchover(MonoNow(), force);
    d = machine_->TakeDecisions();
  }
  hb_->SendNow(Publish(std::move(d)));
  return s;
}

}  // namespace tandem::mirror
