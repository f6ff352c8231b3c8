// The etcd client's watch for a deletion (EtcdClient::WaitDeleted, what the
// witness's standby waits on) against a real etcd: a watch that runs out of
// time is a timeout, not an error, and a deletion wakes it at once.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "control/fleet/etcd.h"
#include "tests/unit/control/fleet/loopback_port.h"
#include "tests/unit/control/test_dir.h"
#include "gtest/gtest.h"

namespace tandem::fleet {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// One etcd member on loopback, in a directory of its own, killed at the end.
class RealEtcd {
 public:
  RealEtcd() {
    port_ = testing::UnusedLoopbackPort();
    endpoint_ = absl::StrCat("127.0.0.1:", port_);
    const std::string client = "http://" + endpoint_;
    const std::string peer = absl::StrCat("http://127.0.0.1:", testing::UnusedLoopbackPort());
    pid_ = fork();
    if (pid_ == 0) {
      freopen(dir_.File("etcd.log").c_str(), "w", stderr);
      execl("/usr/bin/etcd", "etcd", "--data-dir", dir_.File("data").c_str(),
            "--listen-client-urls", client.c_str(), "--advertise-client-urls", client.c_str(),
            "--listen-peer-urls", peer.c_str(), "--initial-advertise-peer-urls", peer.c_str(),
            "--initial-cluster", ("default=" + peer).c_str(), nullptr);
      _exit(127);
    }
  }
  ~RealEtcd() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& endpoint() const { return endpoint_; }
  // Until it answers its health check over HTTP (about a second). A gRPC
  // channel whose first attempts met an etcd still starting failed for
  // seconds after etcd was ready (docs/fleet.md): this test is about the
  // watch, so its client starts once etcd is ready.
  bool WaitServing() const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    const std::string request = "GET /health HTTP/1.0\r\n\r\n";
    for (auto until = Clock::now() + std::chrono::seconds(20); Clock::now() < until;) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      std::string answer;
      timeval tv{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          write(fd, request.data(), request.size()) == ssize_t(request.size())) {
        char buf[512];
        for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) answer.append(buf, size_t(n));
      }
      close(fd);
      if (answer.find("\"health\":\"true\"") != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }
  std::string log() const {
    std::ifstream f(dir_.File("etcd.log"));
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

 private:
  control::testing::TempDir dir_;
  std::string endpoint_;
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST(EtcdWatchTest, TimeoutIsNoErrorAndADeletionWakesTheWatch) {
  RealEtcd server;
  ASSERT_TRUE(server.WaitServing()) << "etcd did not start; its log:\n" << server.log();
  EtcdOptions o;
  o.endpoints = {server.endpoint()};
  auto etcd = EtcdClient::Create(o);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  absl::StatusOr<int64_t> rev = (*etcd)->Put("/leader", "x");
  ASSERT_TRUE(rev.ok()) << rev.status() << "\netcd's log:\n" << server.log();

  // Nothing deletes the key: each watch ends at its deadline, as a timeout.
  // (A stream cancelled after its deadline could report CANCELLED, which the
  // witness took for a broken watch and stopped watching.)
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    absl::StatusOr<bool> gone = (*etcd)->WaitDeleted("/leader", *rev, milliseconds(100));
    ASSERT_TRUE(gone.ok()) << "watch " << i << ": " << gone.status();
    EXPECT_FALSE(*gone);
    EXPECT_GE(Clock::now() - t0, milliseconds(90));
  }

  // Deleted while watched: the watch returns at once, not at its deadline.
  std::thread deleter([&] {
    std::this_thread::sleep_for(milliseconds(300));
    EXPECT_TRUE((*etcd)->Delete("/leader").ok());
  });
  auto t0 = Clock::now();
  absl::StatusOr<bool> gone = (*etcd)->WaitDeleted("/leader", *rev, milliseconds(5000));
  auto took = Clock::now() - t0;
  deleter.join();
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(*gone);
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(3000));

  // Deleted before the watch began: found from the revision it starts at.
  gone = (*etcd)->WaitDeleted("/leader", *rev, milliseconds(2000));
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(*gone);
}

// A data center that starts etcd and Tandem together: the client's first
// attempts reach etcd while it is still starting. Once etcd serves, a call
// gets through within seconds. Without the renewal of a channel that gets no
// answer (etcd.cc, Note) round 0 failed for its whole 30 s.
TEST(EtcdStartTest, ClientThatStartedFirstConnectsOnceEtcdServes) {
  for (int round = 0; round < 3; ++round) {
    EtcdOptions o;
    o.retry_timeout = milliseconds(30000);
    RealEtcd server;
    o.endpoints = {server.endpoint()};
    auto etcd = EtcdClient::Create(o);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    Clock::time_point served{};
    std::thread health([&] {
      if (server.WaitServing()) served = Clock::now();
    });
    absl::StatusOr<int64_t> rev = (*etcd)->Put("/started", "x");
    Clock::time_point put = Clock::now();
    health.join();
    ASSERT_NE(served, Clock::time_point{}) << "etcd did not start; its log:\n" << server.log();
    ASSERT_TRUE(rev.ok()) << "round " << round << ": " << rev.status();
    auto late = std::chrono::duration_cast<milliseconds>(put - served);
    // Two seconds without an answer renew the channel; one call's timeout
    // and the back-off between rounds come on top.
    EXPECT_LT(late, milliseconds(8000))
        << "round " << round << ": the put got through " << late.count()
        << " ms after etcd answered its health check";
    std::printf("round %d: put through %lld ms after etcd served (channels renewed: %llu)\n",
                round, static_cast<long long>(late.count()),
                static_cast<unsigned long long>((*etcd)->channel_renewals()));
  }
}

}  // namespace
}  // namespace tandem::fleet
