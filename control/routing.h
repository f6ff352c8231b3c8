// The routing driver: what the pair calls to move the VIPs by BGP in routed
// mode (`[access] mode = "routed"`, docs/routed.md).
//
//   auto r = RoutingDriver::Start(cfg.routing, cfg.access_vips, Announcement::kStandby,
//                                 SwitchHealth::Probe(cfg.shm_dir, cfg.node));
//   (*r)->Announce(Announcement::kActive);   // on becoming active
//   (*r)->Announce(Announcement::kStandby);  // on demotion / as the standby
//   (*r)->Announce(Announcement::kWithdrawn);// nothing at all (maintenance)
//   RoutingStatus s = (*r)->status();        // sessions, best path, errors
//
// Rules:
//  1. What BIRD announces is the pair's wish gated by the data plane's health:
//     while the health probe says the switch is not forwarding (its state lock
//     released, workers stalled, access link down) every prefix is withdrawn,
//     whatever the pair asked; when it forwards again the wish is announced.
//  2. The driver's own thread looks at the probe every millisecond and applies
//     a change at once (configuration written, `configure` over BIRD's control
//     socket), so a dead switch is withdrawn without waiting for the pair.
//  3. Announce() and status() never block on BIRD: they set or read state the
//     thread owns. A failure to reach BIRD is retried every 100 ms and shown in
//     status().error.
//  4. Stopping the driver (its destructor) leaves BIRD as it is: a restarting
//     tandem-control must not withdraw VIPs its switch still forwards.
//  5. The best-path report looks, every `report_interval`, at the paths to our
//     prefixes that the neighbours send us. A neighbour that offers one
//     prefers (or was told by its own neighbours of) another origin for our
//     VIPs: we are not best there. None offered while a session is up: best,
//     as far as the routers tell (they must send what they have: BGP add-path
//     from the router, docs/routed.md). No session up: unknown.
//
// Threads: every method may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tables/tables.h"
#include "control/bird.h"
#include "control/routing_config.h"

namespace tandem::control {

enum class PathState { kUnknown, kBest, kNotBest };
const char* PathStateName(PathState s);

struct RoutingStatus {
  Announcement wanted = Announcement::kWithdrawn;     // what the pair asked
  Announcement announced = Announcement::kWithdrawn;  // what BIRD was last told
  bool applied = false;             // BIRD took `announced` (false: not yet, or failing)
  bool data_plane_ok = false;       // the health probe's last answer
  std::string error;                // why BIRD was not driven; empty when fine
  uint64_t changes = 0;             // configurations BIRD took
  absl::Duration last_change_took;  // the last write + configure
  int sessions_up = 0;
  int sessions = 0;
  PathState path = PathState::kUnknown;
  std::vector<CompetingPath> competing;
};

// What the pair asks the driver to announce for its node: its role (active;
// standby, less preferred), but nothing while it is fenced (split brain,
// docs/routed.md) or while it stepped down for the witness and its peer is
// still not heard (an active whose lease on the pair's key could not be
// renewed withdraws its routes: docs/fleet.md, W3).
Announcement PairAnnouncement(bool active, bool fenced, bool witness_withdrawn);

class RoutingDriver {
 public:
  using HealthFn = std::function<bool()>;

  struct Options {
    absl::Duration tick = absl::Milliseconds(1);
    absl::Duration retry = absl::Milliseconds(100);
    absl::Duration report_interval = absl::Milliseconds(200);
    absl::Duration command_timeout = absl::Seconds(2);
  };

  // Starts the thread, which writes BIRD's configuration for `initial` (gated
  // by `health`) and reloads BIRD. Fails only on a configuration that cannot
  // be generated; an unreachable BIRD is retried (rule 3).
  static absl::StatusOr<std::unique_ptr<RoutingDriver>> Start(RoutingConfig cfg,
                                                              std::vector<IpAddr> vips,
                                                              Announcement initial,
                                                              HealthFn health);
  static absl::StatusOr<std::unique_ptr<RoutingDriver>> Start(RoutingConfig cfg,
                                                              std::vector<IpAddr> vips,
                                                              Announcement initial, HealthFn health,
                                                              Options opt);
  ~RoutingDriver();

  void Announce(Announcement a);
  RoutingStatus status() const;
  // Waits until BIRD took the announcement now due (tests, tools).
  bool WaitApplied(absl::Duration timeout) const;

 private:
  RoutingDriver(RoutingConfig cfg, std::vector<IpAddr> vips, Announcement initial, HealthFn health,
                Options opt);
  void Loop();
  absl::Status Apply(Announcement a);
  void Report();
  absl::StatusOr<BirdReply> Command(const std::string& line);

  const RoutingConfig cfg_;
  const std::vector<IpAddr> vips_;
  const HealthFn health_;
  const Options opt_;
  std::optional<BirdSocket> bird_;  // the thread's own

  mutable absl::Mutex mu_;
  RoutingStatus st_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The health of this node's data plane as the switch publishes it: the
// switch holds its state-region lock (it runs), its workers beat and its
// access link is up (the flags the pair heartbeats carry; they need
// [pair] node_id on the switch). Attaches to the region when it appears and
// again when a restarted switch made a new one.
class SwitchHealth {
 public:
  SwitchHealth(std::string shm_dir, std::string node);
  bool operator()();
  static RoutingDriver::HealthFn Probe(std::string shm_dir, std::string node);

 private:
  bool Attach();
  std::string path_;
  tables::Mapping map_;
  tables::StateView state_;
  bool attached_ = false;
  uint64_t ino_ = 0;
};

}  // namespace tandem::control
