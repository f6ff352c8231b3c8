#include "control/notify.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"

extern char** environ;

namespace tandem::control {

Notifier::Notifier(std::string command, uint64_t timeout_s)
    : command_(std::move(command)), timeout_s_(timeout_s), thread_([this] { Loop(); }) {}

Notifier::~Notifier() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Notifier::RoleChanged(const RoleEvent& e) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(e);
  }
  cv_.notify_all();
}

void Notifier::Loop() {
  for (;;) {
    RoleEvent e;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      e = std::move(queue_.front());
      queue_.pop_front();
    }
    Run(e);
  }
}

void Notifier::Run(const RoleEvent& e) {
  std::vector<std::string> args = {command_, e.role, e.node, absl::StrCat(e.epoch)};
  std::vector<std::string> env;
  for (char** p = environ; *p; ++p) env.emplace_back(*p);
  env.push_back("TANDEM_ROLE=" + e.role);
  env.push_back("TANDEM_PREVIOUS_ROLE=" + e.previous_role);
  env.push_back("TANDEM_NODE=" + e.node);
  env.push_back(absl::StrCat("TANDEM_EPOCH=", e.epoch));
  env.push_back("TANDEM_CAUSE=" + e.cause);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);
  // The daemon blocks SIGTERM and SIGINT for sigwait; the script gets them back.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, command_.c_str(), nullptr, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    log::Logf(log::Level::kWarning, "notify: cannot run %s: %s", command_, strerror(rc));
    return;
  }
  // Wait up to the timeout, polling: waitpid has no timeout of its own.
  int status = 0;
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (static_cast<uint64_t>(now.tv_sec - start.tv_sec) >= timeout_s_) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      log::Logf(log::Level::kWarning, "notify: %s %s killed after %d s ([notify] timeout_s)",
                command_, e.role, static_cast<int>(timeout_s_));
      return;
    }
    timespec ts{0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    log::Logf(log::Level::kInfo, "notify: %s %s %s %d: done", command_, e.role, e.node,
              e.epoch);
  } else {
    log::Logf(log::Level::kWarning, "notify: %s %s %s %d failed (%s %d)", command_, e.role,
              e.node, e.epoch,
              WIFEXITED(status) ? "exit" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
}

}  // namespace tandem::control
