// The `notify` command of tandem-control ([notify] command in its
// configuration), as keepalived's notify scripts: run at every role change of
// the node, so an operator's script can move a route, page someone or tell a
// load balancer. Called as
//
//   COMMAND ROLE NODE EPOCH        e.g. /etc/tandem/notify.sh active a 7
//
// with the environment TANDEM_ROLE, TANDEM_PREVIOUS_ROLE ("" at start),
// TANDEM_NODE, TANDEM_EPOCH and TANDEM_CAUSE (why, when the pair knows). It
// runs once at start with the role the node starts in, then at each change.
// Calls run one at a time, in order, on a thread of their own (a slow script
// never delays the pair); a call still running after `timeout_s` is killed.
// Each exit is logged (a failure at warning).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace tandem::control {

struct RoleEvent {
  std::string role;           // "active" or "standby"
  std::string previous_role;  // "" at start
  std::string node;
  uint64_t epoch = 0;
  std::string cause;
};

class Notifier {
 public:
  Notifier(std::string command, uint64_t timeout_s);
  ~Notifier();  // waits for the call running, drops the ones queued
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void RoleChanged(const RoleEvent& e);

 private:
  void Loop();
  void Run(const RoleEvent& e);

  const std::string command_;
  const uint64_t timeout_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RoleEvent> queue_;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  std::thread thread_;
};

}  // namespace tandem::control
