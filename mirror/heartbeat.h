// Heartbeats between the two nodes of a pair, over UDP on two paths (the
// backbone and the access network), and PairMonitor, which feeds them to a
// RoleMachine.
//
// Each heartbeat is one frame (wire.h, MsgType::kHeartbeat) MACed with the
// configured key, carrying node id, epoch, role, replication position and the
// data-plane-ok / access-link-up / handover flags. Replay protection: the
// counter is the sender's wall clock in nanoseconds at sending (kept strictly
// rising), so it keeps rising across restarts; the receiver accepts on each
// path only counters above the last it accepted, and none older than
// max_clock_skew by its own clock (the pair's clocks are NTP-synchronised), so
// recorded heartbeats cannot be replayed after the receiver restarts either.
//
// Threads: one thread per Heartbeater sends every interval and receives
// (poll() with a timeout, no busy loop). Public methods are thread-safe.
// Callbacks run on that thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mirror/net.h"
#include "mirror/role.h"
#include "mirror/wire.h"

namespace tandem::mirror {

struct HeartbeatOptions {
  uint32_t node_id = 0;
  uint32_t peer_node_id = 0;  // heartbeats from any other sender are refused
  std::string key;            // >= kMinKeySize bytes, the backbone key
  Endpoint backbone_local, backbone_peer;
  Endpoint access_local, access_peer;
  absl::Duration interval = absl::Milliseconds(10);
  absl::Duration max_clock_skew = absl::Seconds(2);  // zero: no staleness check
};

// What this node says about itself.
struct LocalBeat {
  Role role = Role::kStandby;
  uint64_t epoch = 0;
  uint64_t position = 0;
  bool data_plane_ok = true;
  bool access_link_up = true;
  bool handover = false;
};

struct HeartbeatStats {
  std::array<uint64_t, 2> sent{};      // by Path
  std::array<uint64_t, 2> received{};  // accepted, by Path
};

class Heartbeater {
 public:
  // Both callbacks return the beat to send from now on; a beat whose role,
  // epoch or handover flag changed is sent at once on both paths, so a role
  // change is announced without waiting for the next interval.
  // Called with each accepted heartbeat; `now` is the monotonic clock (MonoNow).
  using OnReport = std::function<LocalBeat(Path path, const PeerReport& report, absl::Time now)>;
  // Called once per interval, before sending.
  using OnTick = std::function<LocalBeat(absl::Time now)>;

  // Binds both sockets (port 0: ephemeral, see local_port) and starts the
  // thread. InvalidArgument on bad options, Unavailable if a bind fails.
  static absl::StatusOr<std::unique_ptr<Heartbeater>> Start(HeartbeatOptions options,
                                                            LocalBeat initial, OnReport on_report,
                                                            OnTick on_tick);
  ~Heartbeater();

  // Replaces the beat and sends it at once on both paths (a role change is
  // announced without waiting for the next interval).
  void SendNow(const LocalBeat& beat);
  uint16_t local_port(Path p) const;
  HeartbeatStats stats() const;
  const RejectCounters& rejects() const;

 private:
  struct State;
  explicit Heartbeater(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// A Heartbeater and a RoleMachine wired together: the usual way to run
// failure detection in the control daemon.
//
//   PairMonitor::Start(hb_options, role_config, Role::kStandby, epoch,
//                      [&](const Decision& d) { /* write role/epoch to tables,
//                                                 announce VIPs, log d.cause */ },
//                      [&] { return LocalHealth{switch_ok, link_up, repl_pos}; });
//
// on_decision and local_health run on the heartbeat thread, without the
// monitor's lock; they must not call back into the monitor's Switchover().
class PairMonitor {
 public:
  using OnDecision = std::function<void(const Decision&)>;
  using LocalHealthFn = std::function<LocalHealth()>;

  static absl::StatusOr<std::unique_ptr<PairMonitor>> Start(HeartbeatOptions hb, RoleConfig role,
                                                            Role initial_role, uint64_t epoch,
                                                            OnDecision on_decision,
                                                            LocalHealthFn local_health);
  ~PairMonitor();

  Role role() const;
  uint64_t epoch() const;
  Alarms alarms() const;
  std::optional<PeerReport> peer() const;
  std::optional<Decision> last_takeover() const;
  absl::Status Switchover(bool force = false);
  const Heartbeater& heartbeater() const { return *hb_; }

 private:
  PairMonitor() = default;
  // Runs on_decision for each new decision; returns the beat to send.
  LocalBeat Publish(std::vector<Decision> decisions);
  LocalBeat Beat() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<RoleMachine> machine_ ABSL_GUARDED_BY(mu_);
  LocalHealth health_ ABSL_GUARDED_BY(mu_);
  OnDecision on_decision_;
  LocalHealthFn local_health_;
  std::unique_ptr<Heartbeater> hb_;
};

}  // namespace tandem::mirror
