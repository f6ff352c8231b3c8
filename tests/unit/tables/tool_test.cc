// tandem-tables, run as a user runs it: apply files, read the result back
// through the library and through show/usage/stats, and check the errors.
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tables/tables_testing.h"

#ifndef TANDEM_TABLES_PATH
#error "meson passes the path of the built tandem-tables"
#endif

namespace tandem::tables {
namespace {

using ::tandem::tables::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Result {
  int exit_code;
  std::string out, err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

class TablesTool : public ::testing::Test {
 protected:
  // Runs tandem-tables on this test's node with `args`, feeding `input`.
  Result Run(const std::string& args, const std::string& input = "") {
    WriteFile(dir_.path() + "/stdin", input);
    std::string cmd = absl::StrCat(TANDEM_TABLES_PATH, " --shm-dir ", dir_.path(), " --node t ",
                                   args, " <", dir_.path(), "/stdin >", dir_.path(), "/stdout 2>",
                                   dir_.path(), "/stderr");
    int status = std::system(cmd.c_str());
    return Result{WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(dir_.path() + "/stdout"),
                  ReadFile(dir_.path() + "/stderr")};
  }
  std::string File(const std::string& name, const std::string& text) {
    std::string path = dir_.path() + "/" + name;
    WriteFile(path, text);
    return path;
  }

  TempDir dir_;
};

constexpr char kSetup[] = R"(# a meeting with three legs
role active 1
vip 198.18.0.100 2001:db8::100
meeting 7 1 5000   # capped at 5000 copies/s
leg 1 7 audio 198.18.0.10:5000 198.18.0.100:40000
leg 2 7 audio 198.18.0.11:5000 198.18.0.100:40002 send 22   # flags and participant
leg 3 7 video [2001:db8:1::10]:6000 [2001:db8::100]:40004 33
flags 1 recv,muted
limits 2 50 64
)";

LegKey Key(const char* remote, const char* local) {
  auto r = ParseEndpoint(remote);
  auto l = ParseEndpoint(local);
  LegKey k;
  k.remote = r->first;
  k.remote_port = r->second;
  k.local = l->first;
  k.local_port = l->second;
  return k;
}

TEST_F(TablesTool, ApplyWritesWhatReadersSee) {
  Result r = Run(absl::StrCat("--legs 100 --meetings 10 apply ", File("setup", kSetup)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");

  auto tables = AttachTables(dir_.tables());
  ASSERT_TRUE(tables.ok()) << tables.status();
  const TablesView& v = tables->second;
  EXPECT_EQ(v.leg_capacity(), 100u);
  EXPECT_EQ(v.role(), Role::kActive);
  EXPECT_EQ(v.epoch(), 1u);
  EXPECT_EQ(v.Vips(), (std::vector<IpAddr>{*IpAddr::Parse("198.18.0.100"),
                                           *IpAddr::Parse("2001:db8::100")}));
  uint32_t leg1 = v.Find(Key("198.18.0.10:5000", "198.18.0.100:40000"));
  ASSERT_NE(leg1, kNil);
  EXPECT_EQ(v.leg(leg1).leg_id, 1u);
  EXPECT_EQ(v.leg(leg1).flags.load(), kLegRecv | kLegMuted);
  uint32_t leg2 = v.Find(Key("198.18.0.11:5000", "198.18.0.100:40002"));
  ASSERT_NE(leg2, kNil);
  EXPECT_EQ(v.leg(leg2).flags.load(), kLegSend);
  EXPECT_EQ(v.leg(leg2).participant_id, 22u);
  EXPECT_EQ(v.leg(leg2).pps_limit.load(), 50u);
  EXPECT_EQ(v.leg(leg2).kbps_limit.load(), 64u);
  EXPECT_EQ(v.meeting(v.leg(leg2).meeting).copies_limit.load(), 5000u);
  uint32_t leg3 = v.Find(Key("[2001:db8:1::10]:6000", "[2001:db8::100]:40004"));
  ASSERT_NE(leg3, kNil);
  EXPECT_EQ(v.leg(leg3).flags.load(), kLegSend | kLegRecv);
  EXPECT_EQ(v.leg(leg3).participant_id, 33u);
  EXPECT_EQ(v.leg(leg3).channel, uint8_t(Channel::kVideo));
  EXPECT_EQ(v.header().writer_pid.load(), 0) << "the tool releases the tables when done";

  r = Run("show --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith(R"({"role":"active","epoch":1,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("vips":["198.18.0.100","2001:db8::100"])"));
  EXPECT_THAT(r.out, HasSubstr(R"("meetings":[{"meeting_id":7,"site_id":1,"flags":0,"copies_limit":5000,"legs":[1,2,3]}])"));
  EXPECT_THAT(r.out, HasSubstr(
      R"({"leg_id":2,"meeting_id":7,"participant_id":22,"channel":"audio","remote":"198.18.0.11:5000","local":"198.18.0.100:40002","flags":["send"])"));
  EXPECT_THAT(r.out, HasSubstr(R"("remote":"[2001:db8:1::10]:6000","local":"[2001:db8::100]:40004")"));

  r = Run("show");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("role active epoch 1\n"));
  EXPECT_THAT(r.out, HasSubstr("leg 1 meeting 7 audio 198.18.0.10:5000 -> 198.18.0.100:40000 "
                               "recv,muted participant 0\n"));

  // Removals, from stdin.
  r = Run("apply -", "remove-leg 2\nremove-meeting 7\nrole standby 2\nvip\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(v.Find(Key("198.18.0.10:5000", "198.18.0.100:40000")), kNil);
  EXPECT_EQ(v.header().leg_count.load(), 0u);
  EXPECT_EQ(v.header().meeting_count.load(), 0u);
  EXPECT_EQ(v.role(), Role::kStandby);
  EXPECT_TRUE(v.Vips().empty());
}

TEST_F(TablesTool, ApplyStopsAtTheFirstBadLineAndNamesIt) {
  struct Case {
    const char* line;
    const char* reason;
  };
  const Case cases[] = {
      {"leg 9 8 audio 198.18.0.12:5000 198.18.0.100:40000", "unknown meeting 8"},
      {"leg 9 7 audio 198.18.0.12:5000 [2001:db8::100]:40000", "different address families"},
      {"leg 9 7 audio 198.18.0.10:5000 198.18.0.100:40000", "already in use"},
      {"leg 1 7 audio 198.18.0.12:5000 198.18.0.100:40000", "leg 1 exists"},
      {"leg 9 7 voice 198.18.0.12:5000 198.18.0.100:40000", "invalid channel 'voice'"},
      {"leg 9 7 audio 198.18.0.12 198.18.0.100:40000", "invalid endpoint"},
      {"leg 9 7 audio 198.18.0.12:5000 198.18.0.100:40000 loud", "invalid flag 'loud'"},
      {"leg 9 7 audio", "expected 'leg LEG_ID"},
      {"meeting 7 1", "meeting 7 exists"},
      {"flags 99 send", "unknown leg 99"},
      {"remove-meeting 99", "unknown meeting 99"},
      {"role primary 2", "invalid role 'primary'"},
      {"vip 198.18.0.300", "invalid IP address"},
      {"frobnicate 1", "unknown change 'frobnicate'"},
  };
  ASSERT_EQ(Run("--legs 64 --meetings 8 apply " + File("setup", kSetup)).exit_code, 0);
  for (const Case& c : cases) {
    std::string path = File("bad", absl::StrCat("meeting 70 1\n\n", c.line,
                                                "\nmeeting 71 1\n"));
    Result r = Run("apply " + path);
    EXPECT_EQ(r.exit_code, 1) << c.line;
    EXPECT_THAT(r.err, StartsWith(absl::StrCat("tandem-tables: ", path, ":3: "))) << c.line;
    EXPECT_THAT(r.err, HasSubstr(c.reason)) << c.line;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    // The lines before it stay applied, the ones after are not.
    Result show = Run("show --json");
    EXPECT_THAT(show.out, HasSubstr(R"("meeting_id":70)")) << c.line;
    EXPECT_THAT(show.out, Not(HasSubstr(R"("meeting_id":71)"))) << c.line;
    ASSERT_EQ(Run("apply -", "remove-meeting 70\n").exit_code, 0);
  }
}

TEST_F(TablesTool, ApplyIsRefusedWhileAnotherWriterHoldsTheTables) {
  auto writer = TablesWriter::Open(dir_.tables(), {.legs = 16, .meetings = 4});
  ASSERT_TRUE(writer.ok());
  Result r = Run("apply -", "meeting 1 1\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("another writer (pid ", getpid(), ")")));
  EXPECT_FALSE((*writer)->HasMeeting(1));
  // Readers need no lock.
  EXPECT_EQ(Run("show").exit_code, 0);
}

TEST_F(TablesTool, CommandLineErrors) {
  Result r = Run("show");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(dir_.tables()));
  EXPECT_EQ(Run("stats").exit_code, 1);
  EXPECT_THAT(Run("frob").err, HasSubstr("unknown command 'frob'"));
  EXPECT_THAT(Run("").err, HasSubstr("no command"));
  EXPECT_THAT(Run("--legs x apply").err, HasSubstr("--legs needs a positive number"));
  EXPECT_THAT(Run("--colour show").err, HasSubstr("unknown option --colour"));
  EXPECT_EQ(Run("apply /nonexistent/file").exit_code, 1);
  r = Run("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, StartsWith("usage: tandem-tables"));
}

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

TEST_F(TablesTool, StatsReportsTheSwitchState) {
  // Two workers and the main thread, as the switch lays them out.
  auto state = OpenOrCreateState(dir_.state(), 64, 3);
  ASSERT_TRUE(state.ok()) << state.status();
  StateView& s = state->second;
  s.worker_counters(2).slow_path = 4;
  s.health(2).lcore.store(0);
  s.header().switch_pid.store(getpid());
  s.header().n_workers.store(2);
  s.header().n_ports.store(1);
  for (uint32_t w = 0; w < 2; ++w) {
    WorkerCounters& c = s.worker_counters(w);
    c.rx_packets = 10 + w * 10;  // 10 and 20
    c.tx_packets = 100;
    c.drops[uint32_t(Drop::kNotActive)] = 1 + w;
    s.health(w).lcore.store(w + 1);
  }
  s.health(0).heartbeat_ns.store(MonotonicNs() - 5'000'000);  // 5 ms ago
  // 1 GHz: 100 packets took 32..40 cycles (bucket 20), 1 took 4096..5120 (48).
  s.header().tsc_hz.store(1'000'000'000);
  s.worker_counters(0).latency_hist[20] = 100;
  s.worker_counters(1).latency_hist[48] = 1;
  PortState& p = s.port(0);
  std::strcpy(p.name, "access");
  p.present = 1;
  p.link_up = 1;
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(p.mac, mac, 6);
  p.ipackets = 55;
  NeighEntry& n = s.neigh(17);
  n.ip = *IpAddr::Parse("198.18.0.10");
  std::memcpy(n.mac, mac, 6);
  n.state.store(uint8_t(NeighState::kReachable));

  Result r = Run("stats --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith(absl::StrCat(R"({"switch_pid":)", getpid(), ",")));
  EXPECT_THAT(r.out, HasSubstr(R"("totals":{"rx_packets":30,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("tx_packets":200,)"));
  EXPECT_THAT(r.out, HasSubstr(
      R"("latency_us":{"samples":101,"p50":0.040,"p99":0.040,"p999":5.120})"));
  EXPECT_THAT(r.out, HasSubstr(R"("not_active":3,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("drops":{"malformed":0,"not_for_us":0,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("workers":[{"worker":0,"lcore":1,"rx_packets":10,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("worker":1,"lcore":2,"rx_packets":20,)"));
  std::smatch age;
  ASSERT_TRUE(std::regex_search(r.out, age, std::regex(R"("heartbeat_age_ms":([0-9.]+))")));
  EXPECT_GE(std::stod(age[1]), 5.0);
  EXPECT_LT(std::stod(age[1]), 5000.0);
  EXPECT_THAT(r.out, HasSubstr(R"("heartbeat_age_ms":null)")) << "worker 1 never beat";
  EXPECT_THAT(r.out, HasSubstr(R"("main":{"worker":2,"lcore":0,"rx_packets":0,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("slow_path":4,)")) << "totals include the main thread";
  EXPECT_THAT(r.out, HasSubstr(
      R"("ports":[{"port":0,"name":"access","devargs":"","mac":"02:00:00:00:00:01","link_up":true,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("ipackets":55,)"));
  EXPECT_THAT(r.out, HasSubstr(
      R"("neighbours":[{"ip":"198.18.0.10","mac":"02:00:00:00:00:01","state":"reachable",)"));

  r = Run("stats");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(running)"));
  EXPECT_THAT(r.out, HasSubstr("worker 1 lcore 2 heartbeat never"));
  EXPECT_THAT(r.out, HasSubstr("main lcore 0 heartbeat never"));
  EXPECT_THAT(r.out, HasSubstr("neighbour 198.18.0.10 02:00:00:00:00:01 reachable"));
}

TEST_F(TablesTool, UsageSumsWorkersOfTheLegsGeneration) {
  ASSERT_EQ(Run("--legs 64 --meetings 4 apply " + File("setup", kSetup)).exit_code, 0);
  auto tables = AttachTables(dir_.tables());
  ASSERT_TRUE(tables.ok());
  const uint32_t slot = tables->second.Find(Key("198.18.0.11:5000", "198.18.0.100:40002"));
  ASSERT_NE(slot, kNil);
  const uint32_t gen = tables->second.leg(slot).gen.load();
  auto state = OpenOrCreateState(dir_.state(), 64, 2);
  ASSERT_TRUE(state.ok());
  for (uint32_t w = 0; w < 2; ++w) {
    LegCounters& c = state->second.leg_counters(w, slot);
    c.gen.store(gen);
    c.packets_in = 5;
    c.bytes_in = 500;
  }
  state->second.leg_counters(1, slot).gen.store(gen - 1);  // an earlier leg's block

  Result r = Run("usage --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith(R"({"legs":[{"leg_id":1,)"));
  EXPECT_THAT(r.out, HasSubstr(R"("leg_id":2,"meeting_id":7,"participant_id":22,"channel":"audio","remote":"198.18.0.11:5000","local":"198.18.0.100:40002","flags":["send"],"packets_in":5,"bytes_in":500,)"));
  r = Run("usage");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("leg 2 meeting 7 audio in 5 pkts 500 bytes"));
}

}  // namespace
}  // namespace tandem::tables
