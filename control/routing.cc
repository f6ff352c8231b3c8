#include "control/routing.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "mirror/switch_feed.h"

namespace tandem::control {

const char* PathStateName(PathState s) {
  switch (s) {
    case PathState::kUnknown:
      return "unknown";
    case PathState::kBest:
      return "best";
    case PathState::kNotBest:
      return "not_best";
  }
  return "?";
}

Announcement PairAnnouncement(bool active, bool fenced, bool witness_withdrawn) {
  if (fenced || (!active && witness_withdrawn)) return Announcement::kWithdrawn;
  return active ? Announcement::kActive : Announcement::kStandby;
}

absl::StatusOr<std::unique_ptr<RoutingDriver>> RoutingDriver::Start(RoutingConfig cfg,
                                                                    std::vector<IpAddr> vips,
                                                                    Announcement initial,
                                                                    HealthFn health) {
  return Start(std::move(cfg), std::move(vips), initial, std::move(health), Options{});
}

absl::StatusOr<std::unique_ptr<RoutingDriver>> RoutingDriver::Start(RoutingConfig cfg,
                                                                    std::vector<IpAddr> vips,
                                                                    Announcement initial,
                                                                    HealthFn health, Options opt) {
  if (absl::Status st = ValidateRoutingConfig(cfg, vips); !st.ok()) return st;
  if (!health) return absl::InvalidArgumentError("RoutingDriver needs a health probe");
  auto d = std::unique_ptr<RoutingDriver>(
      new RoutingDriver(std::move(cfg), std::move(vips), initial, std::move(health), opt));
  d->thread_ = std::thread([p = d.get()] { p->Loop(); });
  return d;
}

RoutingDriver::RoutingDriver(RoutingConfig cfg, std::vector<IpAddr> vips, Announcement initial,
                             HealthFn health, Options opt)
    : cfg_(std::move(cfg)), vips_(std::move(vips)), health_(std::move(health)), opt_(opt) {
  st_.wanted = initial;
}

RoutingDriver::~RoutingDriver() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RoutingDriver::Announce(Announcement a) {
  absl::MutexLock lock(&mu_);
  st_.wanted = a;
}

RoutingStatus RoutingDriver::status() const {
  absl::MutexLock lock(&mu_);
  return st_;
}

bool RoutingDriver::WaitApplied(absl::Duration timeout) const {
  auto due = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    Announcement want = st_.data_plane_ok ? st_.wanted : Announcement::kWithdrawn;
    return st_.applied && st_.announced == want;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&due), timeout);
}

absl::StatusOr<BirdReply> RoutingDriver::Command(const std::string& line) {
  if (!bird_) {
    auto s = BirdSocket::Connect(cfg_.control_socket, opt_.command_timeout);
    if (!s.ok()) return s.status();
    bird_.emplace(std::move(*s));
  }
  auto r = bird_->Command(line, opt_.command_timeout);
  if (!r.ok() && absl::IsUnavailable(r.status())) bird_.reset();
  if (!r.ok() && absl::IsDeadlineExceeded(r.status())) bird_.reset();
  return r;
}

absl::Status RoutingDriver::Apply(Announcement a) {
  if (absl::Status st = WriteFileAtomically(cfg_.config_file, GenerateBirdConfig(cfg_, vips_, a));
      !st.ok()) {
    return st;
  }
  // 0003 "Reconfigured" or 0004 "Reconfiguration in progress" (BIRD ends it
  // by itself); a refusal (>= 8000) comes back as an error status.
  auto r = Command(absl::StrCat("configure \"", cfg_.config_file, "\""));
  return r.ok() ? absl::OkStatus() : r.status();
}

void RoutingDriver::Report() {
  int up = 0, total = 0;
  std::vector<CompetingPath> competing;
  auto protocols = Command("show protocols");
  if (!protocols.ok()) return;
  for (const BirdSession& s : ParseBirdProtocols(*protocols)) {
    ++total;
    if (!s.established) continue;
    ++up;
    auto routes = Command(absl::StrCat("show route protocol ", s.name, " all"));
    if (!routes.ok()) return;
    for (CompetingPath& p : ParseBirdRoutes(*routes, s.name)) competing.push_back(std::move(p));
  }
  absl::MutexLock lock(&mu_);
  st_.sessions_up = up;
  st_.sessions = total;
  st_.path = up == 0             ? PathState::kUnknown
             : competing.empty() ? PathState::kBest
                                 : PathState::kNotBest;
  st_.competing = std::move(competing);
}

void RoutingDriver::Loop() {
  absl::Time retry_at = absl::InfinitePast();
  absl::Time report_at = absl::InfinitePast();
  std::optional<Announcement> attempted;
  while (!stop_) {
    absl::Time now = absl::Now();
    bool ok = health_();
    Announcement due;
    bool pending;
    {
      absl::MutexLock lock(&mu_);
      st_.data_plane_ok = ok;
      due = ok ? st_.wanted : Announcement::kWithdrawn;
      pending = !st_.applied || st_.announced != due;
    }
    // A new announcement goes out at once; the same one again after `retry`.
    if (pending && (now >= retry_at || attempted != due)) {
      attempted = due;
      absl::Time t0 = absl::Now();
      absl::Status st = Apply(due);
      absl::Duration took = absl::Now() - t0;
      absl::MutexLock lock(&mu_);
      st_.announced = due;
      st_.applied = st.ok();
      st_.error = st.ok() ? "" : std::string(st.message());
      if (st.ok()) {
        ++st_.changes;
        st_.last_change_took = took;
      }
      retry_at = st.ok() ? absl::InfinitePast() : now + opt_.retry;
    }
    if (now >= report_at) {
      report_at = now + opt_.report_interval;
      Report();
    }
    absl::SleepFor(opt_.tick);
  }
}

SwitchHealth::SwitchHealth(std::string shm_dir, std::string node)
    : path_(tables::StatePath(shm_dir, node)) {}

bool SwitchHealth::Attach() {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) return attached_ = false;
  if (attached_ && st.st_ino == ino_) return true;
  auto m = tables::AttachState(path_);
  if (!m.ok()) return attached_ = false;
  map_ = std::move(m->first);
  state_ = m->second;
  ino_ = st.st_ino;
  return attached_ = true;
}

bool SwitchHealth::operator()() {
  if (!Attach()) return false;
  // The lock, not the pid: a killed switch not yet reaped still has one.
  bool alive = tables::StateLocked(map_);
  mirror::LocalHealth h = mirror::SwitchHeartbeatFeed::Local(state_.header(), alive, 0);
  return h.data_plane_ok && h.access_link_up;
}

RoutingDriver::HealthFn SwitchHealth::Probe(std::string shm_dir, std::string node) {
  auto probe = std::make_shared<SwitchHealth>(std::move(shm_dir), std::move(node));
  return [probe] { return (*probe)(); };
}

}  // namespace tandem::control
