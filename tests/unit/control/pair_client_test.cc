// tandem_client (control/client/pair_client.h): address parsing, choosing the
// active node, the retry rules and Watch resumption, against two in-process
// gRPC servers on Unix sockets that play the nodes of a pair.
#include "control/client/pair_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tests/unit/control/test_dir.h"

namespace tandem::client {
namespace {

using namespace std::chrono_literals;

// ---- pure parts ----

TEST(ParseAddress, UnixSocketsArePlain) {
  for (const char* text : {"unix:/run/tandem/a.sock", "unix-abstract:tandem", "/run/a.sock",
                           "./a.sock", "../a.sock"}) {
    auto a = ParseAddress(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_TRUE(a->unix_socket) << text;
    EXPECT_EQ(a->text, text);
  }
  EXPECT_EQ(ParseAddress("/run/a.sock")->target, "unix:/run/a.sock");
  EXPECT_EQ(ParseAddress("unix:/run/a.sock")->target, "unix:/run/a.sock");
}

TEST(ParseAddress, HostPortIsTls) {
  for (const char* text : {"192.0.2.10:7443", "node-a.example:7443", "[2001:db8::1]:7443",
                           "localhost:1", "dns:///node-a.example:7443", "ipv4:192.0.2.1:7443"}) {
    auto a = ParseAddress(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_FALSE(a->unix_socket) << text;
    EXPECT_EQ(a->target, text);
  }
}

TEST(ParseAddress, RefusesWhatIsNoAddress) {
  for (const char* text : {"", "unix:", "unix-abstract:", "node-a", "node-a:", ":7443", "node-a:0",
                           "node-a:65536", "node-a:http", "2001:db8::1:7443", "[2001:db8::1]"}) {
    auto a = ParseAddress(text);
    EXPECT_FALSE(a.ok()) << "'" << text << "' was taken";
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(ParseAddresses, OneOrTwo) {
  auto one = ParseAddresses("unix:/a.sock");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  auto two = ParseAddresses("unix:/a.sock,192.0.2.2:7443");
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_TRUE((*two)[0].unix_socket);
  EXPECT_FALSE((*two)[1].unix_socket);
  EXPECT_FALSE(ParseAddresses("unix:/a.sock,").ok());
  EXPECT_FALSE(ParseAddresses("").ok());
  auto three = ParseAddresses("/a,/b,/c");
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("a pair has two"), std::string::npos);
}

Probe Node(const std::string& role, uint64_t epoch, uint32_t node_id = 0) {
  Probe p;
  p.answered = true;
  p.status.set_role(role);
  p.status.set_epoch(epoch);
  if (node_id) p.status.mutable_pair()->set_node_id(node_id);
  return p;
}

TEST(ChooseActive, TheActiveOne) {
  EXPECT_EQ(ChooseActive({}), -1);
  EXPECT_EQ(ChooseActive({Node("standby", 1), Node("standby", 1)}), -1);
  EXPECT_EQ(ChooseActive({Node("standby", 2), Node("active", 2)}), 1);
  EXPECT_EQ(ChooseActive({Node("active", 1), Node("standby", 1)}), 0);
  Probe silent = Node("active", 9);
  silent.answered = false;  // a node that did not answer has no say
  EXPECT_EQ(ChooseActive({silent, Node("standby", 1)}), -1);
  EXPECT_EQ(ChooseActive({silent, Node("active", 1)}), 1);
}

TEST(ChooseActive, HighestEpochWinsThenLowerNodeId) {
  // A healed partition: the old active still says active in the lower epoch.
  EXPECT_EQ(ChooseActive({Node("active", 3), Node("active", 4)}), 1);
  EXPECT_EQ(ChooseActive({Node("active", 4), Node("active", 3)}), 0);
  // Two actives in one epoch: the higher node id demotes.
  EXPECT_EQ(ChooseActive({Node("active", 5, 2), Node("active", 5, 1)}), 1);
  EXPECT_EQ(ChooseActive({Node("active", 5, 1), Node("active", 5, 2)}), 0);
}

TEST(Classify, StandbyRefusalAndCallsThatNeverLeft) {
  EXPECT_TRUE(IsStandbyRefusal(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                   "node b is standby: send writes to the active node at unix:/run/a.sock")));
  EXPECT_FALSE(IsStandbyRefusal(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "meeting 3 is not live")));
  EXPECT_FALSE(IsStandbyRefusal(grpc::Status(grpc::StatusCode::UNAVAILABLE, "is standby")));
  EXPECT_TRUE(NeverSent(grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNKNOWN: unix:/x: Connection refused")));
  EXPECT_FALSE(NeverSent(grpc::Status(grpc::StatusCode::UNAVAILABLE, "Socket closed")));
  EXPECT_FALSE(NeverSent(grpc::Status(grpc::StatusCode::CANCELLED, "failed to connect")));
}

v1::NodeStatus At(uint64_t log_id, uint64_t change_seq, uint64_t takeover_log = 0,
                  uint64_t takeover_position = 0) {
  v1::NodeStatus s;
  s.set_node("b");
  s.set_log_id(log_id);
  s.set_change_seq(change_seq);
  s.mutable_pair()->set_takeover_log_id(takeover_log);
  s.mutable_pair()->set_takeover_position(takeover_position);
  return s;
}

TEST(CheckResume, FromTheChangeAfterTheLastDelivered) {
  uint64_t next = 11;
  // The new active took over after change 10 (or later): resume at 11.
  EXPECT_TRUE(CheckResume(7, 10, true, At(7, 12, 7, 10), &next).ok());
  EXPECT_EQ(next, 11u);
  EXPECT_TRUE(CheckResume(7, 10, true, At(7, 12, 7, 12), &next).ok());
  EXPECT_EQ(next, 11u);
  // The same node again (a broken connection): its own changes.
  EXPECT_TRUE(CheckResume(7, 10, false, At(7, 30, 7, 2), &next).ok());
  EXPECT_EQ(next, 11u);
  // Another log: the node answers for itself (OUT_OF_RANGE from its Watch).
  EXPECT_TRUE(CheckResume(7, 10, true, At(8, 3), &next).ok());
  EXPECT_EQ(next, 11u);
}

TEST(CheckResume, ChangesLostAtTheTakeoverAreReported) {
  uint64_t next = 11;
  grpc::Status st = CheckResume(7, 10, true, At(7, 12, 7, 8), &next);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(st.error_message().find("changes 9 to 10 of log 7"), std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find("took over after change 8"), std::string::npos);
  // A node whose log ends before what was delivered.
  st = CheckResume(7, 10, false, At(7, 9), &next);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

TEST(CheckResume, AnUndeliveredPositionIsTakenBack) {
  // "From now" was pinned at 11 on the old active, nothing was delivered
  // (the caller holds up to 4): the new active, which took over after 8,
  // numbers its own changes from 9, and the caller wants them all.
  uint64_t next = 11;
  EXPECT_TRUE(CheckResume(7, 4, true, At(7, 9, 7, 8), &next).ok());
  EXPECT_EQ(next, 9u);
}

// ---- against two fake nodes ----

// A node of the pair as the client sees it: GetStatus, CreateSite, GetSite
// and Watch, with behaviour the test sets.
class FakeNode final : public v1::Control::Service {
 public:
  explicit FakeNode(std::string name) : name_(std::move(name)) {}

  std::mutex mu;
  std::condition_variable cv;
  std::string role = "standby";
  uint64_t epoch = 1;
  uint64_t log_id = 7;
  uint64_t change_seq = 0;
  uint64_t takeover_position = 0;
  bool refuse_writes = false;  // as a standby that still says active
  bool hang = false;           // CreateSite and GetSite hold until cancelled
  int creates = 0, gets = 0, statuses = 0;
  std::vector<std::pair<uint64_t, uint64_t>> watches;  // (log_id, from_seq) asked for
  uint64_t next_site_id = 1;

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::NodeStatus* out) override {
    std::lock_guard<std::mutex> lock(mu);
    ++statuses;
    out->set_node(name_);
    out->set_role(role);
    out->set_epoch(epoch);
    out->set_log_id(log_id);
    out->set_change_seq(change_seq);
    out->mutable_pair()->set_takeover_log_id(takeover_position ? log_id : 0);
    out->mutable_pair()->set_takeover_position(takeover_position);
    return grpc::Status::OK;
  }

  grpc::Status CreateSite(grpc::ServerContext* ctx, const v1::CreateSiteRequest* req,
                          v1::Site* out) override {
    std::unique_lock<std::mutex> lock(mu);
    ++creates;
    cv.notify_all();
    if (role != "active" || refuse_writes) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "node " + name_ + " is standby: send writes to the active node");
    }
    if (hang) return Hang(ctx, lock);
    *out = req->site();
    out->set_site_id(next_site_id++);
    return grpc::Status::OK;
  }

  grpc::Status GetSite(grpc::ServerContext* ctx, const v1::GetSiteRequest* req,
                       v1::Site* out) override {
    std::unique_lock<std::mutex> lock(mu);
    ++gets;
    cv.notify_all();
    if (hang) return Hang(ctx, lock);
    out->set_site_id(req->site_id());
    out->set_name(name_);
    return grpc::Status::OK;
  }

  // Streams the changes of its log from the one asked for, up to change_seq,
  // then waits for more (AddChanges) until cancelled.
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::Change>* writer) override {
    std::unique_lock<std::mutex> lock(mu);
    watches.emplace_back(req->log_id(), req->from_seq());
    cv.notify_all();
    uint64_t next = req->from_seq() ? req->from_seq() : change_seq + 1;
    while (!ctx->IsCancelled()) {
      while (next <= change_seq) {
        v1::Change c;
        c.set_log_id(log_id);
        c.set_seq(next);
        c.set_kind(v1::Change::SITE_PUT);
        c.mutable_site()->set_name(name_);
        lock.unlock();
        bool ok = writer->Write(c);
        lock.lock();
        if (!ok) return grpc::Status::OK;
        ++next;
      }
      cv.wait_for(lock, 20ms);
    }
    return grpc::Status::OK;
  }

  void Set(std::function<void(FakeNode&)> f) {
    std::lock_guard<std::mutex> lock(mu);
    f(*this);
    cv.notify_all();
  }
  template <class Pred>
  bool WaitFor(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return pred(*this); });
  }

 private:
  grpc::Status Hang(grpc::ServerContext* ctx, std::unique_lock<std::mutex>& lock) {
    while (!ctx->IsCancelled()) cv.wait_for(lock, 10ms);
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }
  std::string name_;
};

class Server {
 public:
  Server(FakeNode* node, const std::string& path) : node_(node), address_("unix:" + path) {
    Start();
  }
  ~Server() { Kill(); }
  void Start() {
    grpc::ServerBuilder b;
    b.AddListeningPort(address_, grpc::InsecureServerCredentials());
    b.RegisterService(node_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_) << address_;
  }
  // As kill -9 does to the client: calls in flight are cut off.
  void Kill() {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }
  const std::string& address() const { return address_; }

 private:
  FakeNode* node_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

class PairClientTest : public ::testing::Test {
 protected:
  control::testing::TempDir dir;
  FakeNode a{"a"}, b{"b"};
  Server sa{&a, dir.File("a.sock")}, sb{&b, dir.File("b.sock")};

  std::unique_ptr<PairClient> Client(std::chrono::milliseconds failover = 5000ms) {
    PairOptions o;
    o.addresses = {sa.address(), sb.address()};
    o.call_timeout = 2000ms;
    o.failover_timeout = failover;
    o.probe_timeout = 500ms;
    o.probe_interval = 20ms;
    o.watch_check_interval = 200ms;
    // No GetStatus before a write after a pause: these tests count the
    // probes (a busy machine may pause longer than the default 50 ms). The
    // check is tested with a node killed for real (test_pair_clients.py).
    o.recheck_after = 1h;
    auto c = PairClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  static grpc::Status CreateSite(PairClient& c, const std::string& name, v1::Site* out,
                                 const CallOptions& opts = {}) {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name(name);
    return c.Call(&Stub::CreateSite, req, out, opts);
  }
};

TEST_F(PairClientTest, CallsGoToTheActiveNode) {
  b.Set([](FakeNode& n) { n.role = "active"; });
  auto c = Client();
  v1::Site s;
  ASSERT_TRUE(CreateSite(*c, "x", &s).ok());
  EXPECT_EQ(c->active_address(), sb.address());
  ASSERT_TRUE(CreateSite(*c, "y", &s).ok());
  EXPECT_EQ(a.creates, 0);
  EXPECT_EQ(b.creates, 2);
  // Found once, then cached.
  EXPECT_EQ(b.statuses, 1);
}

TEST_F(PairClientTest, NoActiveNodeWithinTheDeadline) {
  auto c = Client(300ms);
  v1::Site s;
  grpc::Status st = CreateSite(*c, "x", &s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("no active node among " + sa.address() + "," + sb.address()),
            std::string::npos)
      << st.error_message();
  sa.Kill();
  st = CreateSite(*c, "x", &s);
  EXPECT_NE(st.error_message().find("cannot reach tandem-control at " + sa.address()),
            std::string::npos)
      << st.error_message();
}

TEST_F(PairClientTest, AStandbysRefusalIsSentToTheNewActive) {
  a.Set([](FakeNode& n) { n.role = "active"; });
  auto c = Client();
  v1::Site s;
  ASSERT_TRUE(CreateSite(*c, "x", &s).ok());
  // A switchover: a is standby now, b active; the client still has a.
  a.Set([](FakeNode& n) { n.role = "standby"; });
  b.Set([](FakeNode& n) {
    n.role = "active";
    n.epoch = 2;
  });
  ASSERT_TRUE(CreateSite(*c, "y", &s).ok());
  EXPECT_EQ(c->active_address(), sb.address());
  EXPECT_EQ(a.creates, 2);  // one applied, one refused
  EXPECT_EQ(b.creates, 1);
}

TEST_F(PairClientTest, ADeadActiveIsLeftForTheNewOne) {
  a.Set([](FakeNode& n) { n.role = "active"; });
  auto c = Client();
  v1::Site s;
  ASSERT_TRUE(CreateSite(*c, "x", &s).ok());
  sa.Kill();
  // The takeover takes a moment: b is active only 300 ms later.
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    b.Set([](FakeNode& n) {
      n.role = "active";
      n.epoch = 2;
    });
  });
  grpc::Status st = CreateSite(*c, "y", &s);
  later.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(c->active_address(), sb.address());
  EXPECT_EQ(b.creates, 1);
}

TEST_F(PairClientTest, AWriteCutOffIsNotRepeatedButAReadIs) {
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.hang = true;
  });
  b.Set([](FakeNode& n) { n.epoch = 2; });
  auto c = Client();
  std::thread killer([&] {
    ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return n.creates == 1; }));
    b.Set([](FakeNode& n) { n.role = "active"; });
    sa.Kill();
  });
  v1::Site s;
  grpc::Status st = CreateSite(*c, "x", &s);
  killer.join();
  EXPECT_TRUE(st.error_code() == grpc::StatusCode::UNAVAILABLE ||
              st.error_code() == grpc::StatusCode::CANCELLED)
      << st.error_code() << " " << st.error_message();
  EXPECT_NE(st.error_message().find("may have been applied"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(b.creates, 0) << "a write cut off was sent again";
  // The next call goes to the new active.
  ASSERT_TRUE(CreateSite(*c, "y", &s).ok());
  EXPECT_EQ(b.creates, 1);
}

TEST_F(PairClientTest, AReadCutOffIsSentAgain) {
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.hang = true;
  });
  b.Set([](FakeNode& n) { n.epoch = 2; });
  auto c = Client();
  std::thread killer([&] {
    ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return n.gets == 1; }));
    b.Set([](FakeNode& n) { n.role = "active"; });
    sa.Kill();
  });
  v1::GetSiteRequest req;
  req.set_site_id(4);
  v1::Site s;
  grpc::Status st = c->Call(&Stub::GetSite, req, &s);
  killer.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(s.name(), "b");
  EXPECT_EQ(b.gets, 1);
}

TEST_F(PairClientTest, AnIdempotentWriteCutOffIsSentAgain) {
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.hang = true;
  });
  b.Set([](FakeNode& n) { n.epoch = 2; });
  auto c = Client();
  std::thread killer([&] {
    ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return n.creates == 1; }));
    b.Set([](FakeNode& n) { n.role = "active"; });
    sa.Kill();
  });
  v1::Site s;
  CallOptions once_is_enough;
  once_is_enough.idempotent = true;
  grpc::Status st = CreateSite(*c, "x", &s, once_is_enough);
  killer.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(b.creates, 1);
}

TEST_F(PairClientTest, ReadAnyIsAnsweredByAStandby) {
  sa.Kill();
  auto c = Client();
  v1::GetSiteRequest req;
  req.set_site_id(1);
  v1::Site s;
  std::string by;
  grpc::Status st = c->ReadAny(&Stub::GetSite, req, &s, &by);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(by, sb.address());
  EXPECT_EQ(s.name(), "b");
}

TEST_F(PairClientTest, OneAddressIsThatNodeWhateverItsRole) {
  PairOptions o;
  o.addresses = {sa.address()};
  auto c = PairClient::Create(o);
  ASSERT_TRUE(c.ok());
  v1::GetSiteRequest req;
  v1::Site s;
  ASSERT_TRUE((*c)->Call(&Stub::GetSite, req, &s).ok());
  EXPECT_EQ(a.statuses, 0);  // no discovery
  v1::CreateSiteRequest w;
  grpc::Status st = (*c)->Call(&Stub::CreateSite, w, &s);
  EXPECT_TRUE(IsStandbyRefusal(st));  // no retry: there is nowhere else
  sa.Kill();
  st = (*c)->Call(&Stub::GetSite, req, &s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message().rfind("cannot reach tandem-control at " + sa.address(), 0), 0u)
      << st.error_message();
}

TEST_F(PairClientTest, WatchResumesOnTheNewActiveWithoutGapOrRepeat) {
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.change_seq = 10;
  });
  b.Set([](FakeNode& n) { n.change_seq = 10; });
  auto c = Client();
  std::vector<uint64_t> seqs;
  std::vector<std::string> from;
  std::mutex mu;
  std::condition_variable cv;
  std::thread w([&] {
    grpc::Status st = c->Watch(0, 0, [&](const v1::Change& ch) {
      std::lock_guard<std::mutex> lock(mu);
      seqs.push_back(ch.seq());
      from.push_back(ch.site().name());
      cv.notify_all();
      return ch.seq() < 16;
    });
    EXPECT_TRUE(st.ok()) << st.error_message();
  });
  // "From now": the watch starts after change 10 of log 7.
  ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return !n.watches.empty(); }));
  EXPECT_EQ(a.watches[0], std::make_pair(uint64_t{7}, uint64_t{11}));
  a.Set([](FakeNode& n) { n.change_seq = 13; });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return seqs.size() == 3; }));
  }
  // b applied them all, then a dies and b takes over after change 13.
  b.Set([](FakeNode& n) { n.change_seq = 13; });
  sa.Kill();
  b.Set([](FakeNode& n) {
    n.role = "active";
    n.epoch = 2;
    n.takeover_position = 13;
    n.change_seq = 16;
  });
  w.join();
  EXPECT_EQ(seqs, (std::vector<uint64_t>{11, 12, 13, 14, 15, 16}));
  EXPECT_EQ(from, (std::vector<std::string>{"a", "a", "a", "b", "b", "b"}));
  ASSERT_FALSE(b.watches.empty());
  EXPECT_EQ(b.watches.back(), std::make_pair(uint64_t{7}, uint64_t{14}));
}

TEST_F(PairClientTest, WatchSaysWhenDeliveredChangesWereLostAtTheTakeover) {
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.change_seq = 5;
  });
  auto c = Client();
  std::atomic<uint64_t> last{0};
  std::thread killer([&] {
    while (last < 5) std::this_thread::sleep_for(5ms);
    sa.Kill();
    // b never got 4 and 5 (asynchronous replication) and took over after 3.
    b.Set([](FakeNode& n) {
      n.role = "active";
      n.epoch = 2;
      n.takeover_position = 3;
      n.change_seq = 6;
    });
  });
  grpc::Status st = c->Watch(7, 1, [&](const v1::Change& ch) {
    last = ch.seq();
    return true;
  });
  killer.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE) << st.error_message();
  EXPECT_NE(st.error_message().find("changes 4 to 5 of log 7"), std::string::npos)
      << st.error_message();
  EXPECT_TRUE(b.watches.empty()) << "resumed where numbers mean other changes";
}

TEST_F(PairClientTest, WatchLeavesANodeSupersededByAHigherEpoch) {
  // a stays up and keeps its stream open, but b took over (a is cut off).
  a.Set([](FakeNode& n) {
    n.role = "active";
    n.change_seq = 2;
  });
  b.Set([](FakeNode& n) { n.change_seq = 2; });
  auto c = Client();
  std::vector<uint64_t> seqs;
  std::thread later([&] {
    ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return !n.watches.empty(); }));
    b.Set([](FakeNode& n) {
      n.role = "active";
      n.epoch = 2;
      n.takeover_position = 2;
      n.change_seq = 4;
    });
  });
  grpc::Status st = c->Watch(7, 2, [&](const v1::Change& ch) {
    seqs.push_back(ch.seq());
    return ch.seq() < 4;
  });
  later.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3, 4}));
}

TEST_F(PairClientTest, WatchStopsWhenAskedFromAnotherThread) {
  a.Set([](FakeNode& n) { n.role = "active"; });
  auto c = Client();
  WatchStop stop;
  std::thread stopper([&] {
    ASSERT_TRUE(a.WaitFor([](FakeNode& n) { return !n.watches.empty(); }));
    stop.Stop();
  });
  grpc::Status st = c->Watch(
      0, 0, [](const v1::Change&) { return true; }, &stop);
  stopper.join();
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace tandem::client
