// A TCP relay for the replication tests: sits between sink and source so
// that a test can cut the "backbone" (close every connection and refuse new
// ones) or stall it, as a failing link would.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "mirror/net.h"

namespace tandem::mirror {

// Relays TCP connections from an ephemeral loopback port to `target`.
class Relay {
 public:
  explicit Relay(uint16_t target) : target_(target) {
    listen_ = std::move(*TcpListen({"127.0.0.1", 0}));
    port_ = LocalPort(listen_.get());
    thread_ = std::thread([this] { Run(); });
  }
  ~Relay() {
    stop_ = true;
    waker_.Wake();
    thread_.join();
  }
  uint16_t port() const { return port_; }
  // Down: every relayed connection is closed and new ones are refused.
  // Both setters return once the relay runs with the new setting.
  void SetUp(bool up) {
    up_ = up;
    Sync();
  }
  // Every byte relayed so far, both directions (what a tap on the link sees).
  std::string captured() const {
    absl::MutexLock l(&cap_mu_);
    return captured_;
  }
  // Stalled: connections stay open but no byte moves.
  void SetStalled(bool stalled) {
    stalled_ = stalled;
    Sync();
  }

 private:
  struct Link {
    Fd a, b;
  };
  void Sync() {
    uint64_t start = loops_.load();
    while (loops_.load() < start + 2) {
      waker_.Wake();
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  void Run() {
    std::vector<Link> links;
    char buf[65536];
    while (!stop_) {
      ++loops_;
      if (!up_) links.clear();
      std::vector<pollfd> fds = {{waker_.fd(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (auto& l : links) {
        short ev = stalled_ ? 0 : POLLIN;
        fds.push_back({l.a.get(), ev, 0});
        fds.push_back({l.b.get(), ev, 0});
      }
      poll(fds.data(), fds.size(), 100);
      if (fds[0].revents) waker_.Drain();
      const size_t polled = links.size();  // links accepted below were not polled
      if (fds[1].revents) {
        Fd in(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (in.valid() && up_) {
          absl::StatusOr<Fd> out = TcpConnect({"127.0.0.1", target_}, absl::Seconds(1));
          if (out.ok()) {
            TuneTcp(in.get());
            links.push_back({std::move(in), std::move(*out)});
          }
        }
      }
      std::vector<bool> dead(links.size(), false);
      for (size_t i = 0; i < polled; ++i) {
        for (int side = 0; side < 2; ++side) {
          if (!(fds[2 + 2 * i + side].revents)) continue;
          int from = side == 0 ? links[i].a.get() : links[i].b.get();
          int to = side == 0 ? links[i].b.get() : links[i].a.get();
          ssize_t n = read(from, buf, sizeof(buf));
          if (n <= 0) {
            if (n == 0 || errno != EAGAIN) dead[i] = true;
            continue;
          }
          {
            absl::MutexLock l(&cap_mu_);
            captured_.append(buf, n);
          }
          // Blocking-ish write: loopback buffers are large, retry briefly.
          ssize_t off = 0;
          while (off < n) {
            ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) {
              pollfd p{to, POLLOUT, 0};
              poll(&p, 1, 100);
              continue;
            }
            if (w < 0) {
              dead[i] = true;
              break;
            }
            off += w;
          }
        }
      }
      std::vector<Link> keep;
      for (size_t i = 0; i < links.size(); ++i) {
        if (!dead[i]) keep.push_back(std::move(links[i]));
      }
      links = std::move(keep);
    }
  }

  uint16_t target_;
  Fd listen_;
  uint16_t port_ = 0;
  Waker waker_;
  std::atomic<bool> stop_{false}, up_{true}, stalled_{false};
  std::atomic<uint64_t> loops_{0};
  mutable absl::Mutex cap_mu_;
  std::string captured_ ABSL_GUARDED_BY(cap_mu_);
  std::thread thread_;
};

}  // namespace tandem::mirror
