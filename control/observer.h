// What tandem-control tells the world about its node, from one thread that
// looks every 20 ms: role changes (logged at notice, the `notify` command
// run, the gRPC health status set: SERVING on the active node only),
// takeovers, pair alarms raised and cleared, refused backbone and heartbeat
// messages (at warning, at most one line per 5 s), a peer of another wire
// format version (at error, with both versions), the switch going down or up,
// and systemd's watchdog, fed only while the core answers (a deadlocked
// daemon stops feeding it and systemd restarts it).
//
// It only reads (Core's role and status, the pair's status), so it changes
// nothing the API or the pair decide. Start() once, destroy to stop.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "control/core.h"
#include "control/notify.h"
#include "control/pair.h"

namespace tandem::control {

class Observer {
 public:
  // `pair` may be null (a node without a pair); `notifier` may be null (no
  // [notify] command). `serving` is called with true when the node becomes
  // active and false when it stops being active (and once at start).
  Observer(Core& core, Pair* pair, Notifier* notifier, std::function<void(bool)> serving);
  ~Observer();
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  void Start();

 private:
  void Loop();
  void CheckRole();
  void CheckPair(int64_t now_ns);
  void CheckSwitch();
  void CheckVersionRefusals(int64_t now_ns);
  void FeedWatchdog(int64_t now_ns);

  Core& core_;
  Pair* pair_;
  Notifier* notifier_;
  std::function<void(bool)> serving_;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  // Only the observer's thread touches these.
  bool first_ = true;
  uint64_t loops_ = 0;
  std::string role_;
  uint64_t epoch_ = 0;
  uint64_t takeovers_ = 0;
  std::set<std::string> alarms_;
  std::map<std::string, uint64_t> refused_;
  int64_t refused_logged_ns_ = 0;
  int switch_up_ = -1;  // unknown at start
  uint64_t version_refusals_ = 0;
  int64_t version_logged_ns_ = 0;
  uint64_t watchdog_usec_ = 0;
  int64_t watchdog_fed_ns_ = 0;
};

}  // namespace tandem::control
