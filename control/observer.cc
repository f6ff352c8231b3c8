#include "control/observer.h"

#include <time.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/sd_notify.h"
#include "common/version.h"
#include "mirror/wire.h"

namespace tandem::control {
namespace {

constexpr int64_t kMs = 1000 * 1000;
constexpr int64_t kRefusedEveryNs = 5000 * kMs;
constexpr int64_t kVersionEveryNs = 10000 * kMs;

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string RoleName(tables::Role r) { return r == tables::Role::kActive ? "active" : "standby"; }

}  // namespace

Observer::Observer(Core& core, Pair* pair, Notifier* notifier, std::function<void(bool)> serving)
    : core_(core), pair_(pair), notifier_(notifier), serving_(std::move(serving)) {}

Observer::~Observer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Observer::Start() {
  watchdog_usec_ = sd::WatchdogUsec();
  CheckRole();  // the health status and the first notify before the API serves
  thread_ = std::thread([this] { Loop(); });
}

void Observer::Loop() {
  while (!stop_.load()) {
    int64_t now = MonoNs();
    CheckRole();
    if (pair_) CheckPair(now);
    CheckVersionRefusals(now);
    if (++loops_ % 10 == 0) CheckSwitch();  // GetStatus reads every port and worker
    FeedWatchdog(now);
    timespec ts{0, 20 * kMs};
    nanosleep(&ts, nullptr);
  }
}

void Observer::CheckRole() {
  std::string role = RoleName(core_.node_role());
  uint64_t epoch = core_.node_epoch();
  if (!first_ && role == role_ && epoch == epoch_) return;
  std::string cause;
  if (pair_ && !first_) {
    v1::PairStatus ps;
    pair_->FillStatus(&ps);
    if (role == "active") cause = ps.last_takeover_cause();
  }
  if (first_) {
    log::Logf(log::Level::kNotice, "node %s starts %s in epoch %d", core_.config().node, role,
              epoch);
  } else if (role != role_) {
    log::Logf(log::Level::kNotice, "role change: %s -> %s, epoch %d -> %d%s", role_, role,
              epoch_, epoch, cause.empty() ? "" : absl::StrCat(" (", cause, ")"));
  } else {
    log::Logf(log::Level::kNotice, "epoch %d -> %d, still %s", epoch_, epoch, role);
  }
  if (serving_ && (first_ || role != role_)) serving_(role == "active");
  if (notifier_ && (first_ || role != role_)) {
    notifier_->RoleChanged({role, first_ ? "" : role_, core_.config().node, epoch, cause});
  }
  sd::Status(absl::StrCat(role, ", epoch ", epoch));
  first_ = false;
  role_ = role;
  epoch_ = epoch;
}

void Observer::CheckPair(int64_t now) {
  v1::PairStatus ps;
  pair_->FillStatus(&ps);
  if (ps.takeovers() > takeovers_) {
    log::Logf(log::Level::kNotice, "took over as active (takeover %d of this run): %s",
              ps.takeovers(), ps.last_takeover_cause());
    takeovers_ = ps.takeovers();
  }
  std::set<std::string> alarms;
  if (!ps.alarms().empty() && ps.alarms() != "none") {
    for (absl::string_view a : absl::StrSplit(ps.alarms(), ',', absl::SkipEmpty())) {
      alarms.insert(std::string(a));
    }
  }
  for (const std::string& a : alarms) {
    if (!alarms_.contains(a)) {
      log::Logf(log::Level::kWarning, "pair alarm raised: %s (peer %s, replication %s)", a,
                ps.peer_state(), ps.replication());
    }
  }
  for (const std::string& a : alarms_) {
    if (!alarms.contains(a)) log::Logf(log::Level::kNotice, "pair alarm cleared: %s", a);
  }
  alarms_ = std::move(alarms);
  // Refused messages: a summary line at most every 5 s while they come.
  if (now - refused_logged_ns_ < kRefusedEveryNs) return;
  std::vector<std::string> grew;
  for (const auto& [what, n] : ps.refused()) {
    uint64_t before = refused_[what];
    if (n > before) grew.push_back(absl::StrCat(what, " +", n - before));
    refused_[what] = n;
  }
  if (!grew.empty()) {
    log::Logf(log::Level::kWarning,
              "refused pair messages (forged, replayed, malformed or of another release): %s",
              absl::StrJoin(grew, ", "));
    refused_logged_ns_ = now;
  }
}

void Observer::CheckVersionRefusals(int64_t now) {
  mirror::VersionRefusals v = mirror::WireVersionRefusals();
  if (v.count == version_refusals_ || now - version_logged_ns_ < kVersionEveryNs) return;
  log::Logf(log::Level::kErr,
            "refusing the peer: its backbone messages are wire format version %d, this build "
            "(%s, %s) reads only version %d; the peer runs a release this node cannot read "
            "(%d refused; docs/operations.md, \"Rolling upgrade\")",
            v.last_version, TANDEM_VERSION, TANDEM_COMMIT, mirror::kWireVersion,
            v.count - version_refusals_);
  version_refusals_ = v.count;
  version_logged_ns_ = now;
}

void Observer::CheckSwitch() {
  v1::NodeStatus st;
  if (!core_.GetStatus(v1::GetStatusRequest(), &st).ok()) return;
  int up = st.switch_running() ? 1 : 0;
  if (up == switch_up_) return;
  if (up) {
    log::Logf(log::Level::kNotice, "the switch of node %s runs (pid %d)", st.node(),
              st.switch_pid());
  } else {
    log::Logf(switch_up_ < 0 ? log::Level::kNotice : log::Level::kWarning,
              "the switch of node %s is not running", st.node());
  }
  switch_up_ = up;
}

void Observer::FeedWatchdog(int64_t now) {
  // Reached only when Core answered CheckRole and CheckSwitch (both take its lock).
  if (watchdog_usec_ == 0) return;
  if (now - watchdog_fed_ns_ < static_cast<int64_t>(watchdog_usec_) * 1000 / 4) return;
  sd::WatchdogPing();
  watchdog_fed_ns_ = now;
}

}  // namespace tandem::control
