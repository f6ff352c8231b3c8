// Heartbeats and PairMonitor over real loopback UDP sockets: 127.0.0.1 plays
// the backbone, 127.0.0.2 the access network.
#include "mirror/heartbeat.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::mirror {
namespace {

using ::testing::HasSubstr;

const char kKey[] = "heartbeat-test-key-0123456789";

bool WaitFor(const std::function<bool()>& pred, absl::Duration limit = absl::Seconds(5)) {
  absl::Time end = absl::Now() + limit;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return pred();
}

// Distinct ports per test process so parallel test runs do not collide.
uint16_t BasePort() { return static_cast<uint16_t>(20000 + (getpid() * 8) % 40000); }

HeartbeatOptions Options(uint32_t self, uint32_t peer, uint16_t base, int test) {
  uint16_t p = static_cast<uint16_t>(base + test * 2);
  HeartbeatOptions o;
  o.node_id = self;
  o.peer_node_id = peer;
  o.key = kKey;
  uint16_t mine = self == 1 ? p : p + 1, theirs = self == 1 ? p + 1 : p;
  o.backbone_local = {"127.0.0.1", mine};
  o.backbone_peer = {"127.0.0.1", theirs};
  o.access_local = {"127.0.0.2", mine};
  o.access_peer = {"127.0.0.2", theirs};
  return o;
}

struct Node {
  std::atomic<bool> data_plane_ok{true};
  absl::Mutex mu;
  std::vector<Decision> decisions;
  absl::Time decided_at;
  std::unique_ptr<PairMonitor> monitor;

  // `multiplier`: tests that must see no role change use a longer detection
  // time, so that a thread starved on a loaded machine does not look dead.
  void Start(HeartbeatOptions o, Role role, uint64_t epoch, int multiplier = 3) {
    RoleConfig rc;
    rc.multiplier = multiplier;
    absl::StatusOr<std::unique_ptr<PairMonitor>> m = PairMonitor::Start(
        o, rc, role, epoch,
        [this](const Decision& d) {
          absl::MutexLock l(&mu);
          decisions.push_back(d);
          decided_at = absl::Now();
        },
        [this] {
          return LocalHealth{data_plane_ok.load(), true, 0};
        });
    ASSERT_TRUE(m.ok()) << m.status();
    monitor = std::move(*m);
  }
  size_t n_decisions() {
    absl::MutexLock l(&mu);
    return decisions.size();
  }
};

TEST(PairMonitor, PeersHearEachOtherOnBothPathsAndKeepTheirRoles) {
  Node a, b;
  a.Start(Options(1, 2, BasePort(), 0), Role::kActive, 1, /*multiplier=*/20);
  b.Start(Options(2, 1, BasePort(), 0), Role::kStandby, 1, /*multiplier=*/20);
  ASSERT_TRUE(WaitFor([&] {
    HeartbeatStats s = b.monitor->heartbeater().stats();
    return s.received[0] > 20 && s.received[1] > 20;
  }));
  EXPECT_EQ(a.monitor->role(), Role::kActive);
  EXPECT_EQ(b.monitor->role(), Role::kStandby);
  EXPECT_FALSE(a.monitor->alarms().any()) << a.monitor->alarms().ToString();
  EXPECT_FALSE(b.monitor->alarms().any()) << b.monitor->alarms().ToString();
  ASSERT_TRUE(b.monitor->peer().has_value());
  EXPECT_EQ(b.monitor->peer()->role, Role::kActive);
  EXPECT_EQ(a.n_decisions() + b.n_decisions(), 0u);
  EXPECT_EQ(a.monitor->heartbeater().rejects().Total(), 0u);
}

TEST(PairMonitor, StandbyTakesOverWithinDetectionTimeWhenThePrimaryDies) {
  Node a, b;
  a.Start(Options(1, 2, BasePort(), 1), Role::kActive, 1);
  b.Start(Options(2, 1, BasePort(), 1), Role::kStandby, 1);
  ASSERT_TRUE(WaitFor([&] { return b.monitor->peer().has_value(); }));
  absl::SleepFor(absl::Milliseconds(100));
  absl::Time killed = absl::Now();
  a.monitor.reset();  // the primary's heartbeats stop on both paths
  ASSERT_TRUE(WaitFor([&] { return b.n_decisions() == 1; }));
  absl::MutexLock l(&b.mu);
  EXPECT_EQ(b.decisions[0].role, Role::kActive);
  EXPECT_EQ(b.decisions[0].epoch, 2u);
  EXPECT_THAT(b.decisions[0].cause, HasSubstr("peer lost"));
  // 10 ms x 3, plus scheduling on a shared machine.
  EXPECT_LT(b.decided_at - killed, absl::Milliseconds(100));
  EXPECT_GE(b.decided_at - killed, absl::Milliseconds(20));  // last beat was up to 10 ms before
}

TEST(PairMonitor, DeadDataPlaneIsReportedAndTheOldPrimaryDemotes) {
  Node a, b;
  a.Start(Options(1, 2, BasePort(), 2), Role::kActive, 1);
  b.Start(Options(2, 1, BasePort(), 2), Role::kStandby, 1);
  ASSERT_TRUE(WaitFor([&] { return b.monitor->peer().has_value(); }));
  a.data_plane_ok = false;
  ASSERT_TRUE(WaitFor([&] { return b.monitor->role() == Role::kActive; }));
  ASSERT_TRUE(WaitFor([&] { return a.monitor->role() == Role::kStandby; }));
  EXPECT_EQ(a.monitor->epoch(), 2u);
  EXPECT_THAT(b.monitor->last_takeover()->cause, HasSubstr("data plane dead"));
}

TEST(PairMonitor, SwitchoverCommand) {
  Node a, b;
  a.Start(Options(1, 2, BasePort(), 3), Role::kActive, 1);
  b.Start(Options(2, 1, BasePort(), 3), Role::kStandby, 1);
  ASSERT_TRUE(WaitFor([&] { return a.monitor->peer().has_value(); }));
  ASSERT_TRUE(a.monitor->Switchover().ok());
  ASSERT_TRUE(WaitFor([&] { return a.monitor->role() == Role::kStandby; }));
  EXPECT_EQ(b.monitor->role(), Role::kActive);
  EXPECT_EQ(b.monitor->epoch(), 2u);
}

TEST(Heartbeater, RecordedHeartbeatsAreStaleAfterAReceiverRestart) {
  // A fresh receiver has no last counter: the clock check refuses old frames.
  HeartbeatOptions o = Options(2, 1, BasePort(), 5);
  std::atomic<int> reports{0};
  auto hb = *Heartbeater::Start(
      o, LocalBeat{},
      [&](Path, const PeerReport&, absl::Time) {
        ++reports;
        return LocalBeat{};
      },
      [](absl::Time) { return LocalBeat{}; });
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  socklen_t len;
  sockaddr_storage to = *ToSockaddr(o.access_local, &len);
  Hmac right = *Hmac::Create(kKey);
  const uint64_t recorded =
      static_cast<uint64_t>(absl::ToUnixNanos(absl::Now() - absl::Seconds(30)));
  std::string f = Encode(right, MsgType::kHeartbeat, 1, 1, recorded, EncodeHeartbeat({}));
  sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), len);
  ASSERT_TRUE(WaitFor([&] { return hb->rejects().Get(RejectReason::kReplayed) == 1; }));
  EXPECT_EQ(reports.load(), 0);
  close(fd);
}

TEST(Heartbeater, ForgedAndReplayedHeartbeatsAreRefusedAndCounted) {
  HeartbeatOptions o = Options(2, 1, BasePort(), 4);
  std::atomic<int> reports{0};
  auto hb = *Heartbeater::Start(
      o, LocalBeat{},
      [&](Path, const PeerReport&, absl::Time) {
        ++reports;
        return LocalBeat{};
      },
      [](absl::Time) { return LocalBeat{}; });
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  socklen_t len;
  sockaddr_storage to = *ToSockaddr(o.backbone_local, &len);
  auto send_frame = [&](const std::string& f) {
    sendto(fd, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), len);
  };
  Hmac right = *Hmac::Create(kKey), wrong = *Hmac::Create("some-other-key-0123456789");
  std::string body = EncodeHeartbeat({WireRole::kActive, true, true, false, 1});
  const uint64_t now = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  send_frame(Encode(wrong, MsgType::kHeartbeat, 1, 9, now, body));  // no key
  std::string good = Encode(right, MsgType::kHeartbeat, 1, 1, now, body);
  send_frame(good);
  send_frame(good);                                                        // replayed
  send_frame(Encode(right, MsgType::kHeartbeat, 1, 1, now - 1000, body));  // older counter
  send_frame(good.substr(0, good.size() - 3));                             // truncated
  send_frame(Encode(right, MsgType::kHeartbeat, 3, 1, now + 1, body));     // not our peer
  ASSERT_TRUE(WaitFor([&] { return hb->rejects().Total() == 5; }));
  EXPECT_EQ(reports.load(), 1);
  EXPECT_EQ(hb->rejects().Get(RejectReason::kBadMac), 1u);
  EXPECT_EQ(hb->rejects().Get(RejectReason::kReplayed), 2u);
  EXPECT_EQ(hb->rejects().Get(RejectReason::kTruncated), 1u);
  EXPECT_EQ(hb->rejects().Get(RejectReason::kUnexpected), 1u);
  close(fd);
}

}  // namespace
}  // namespace tandem::mirror
