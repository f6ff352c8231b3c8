// Routed mode (control/routing_config.h, control/bird.h, control/routing.h):
// the [routing] keys, the BIRD configuration generated for each announcement
// (checked by BIRD's own parser, `bird -p`), and the driver against a real
// BIRD process on a control socket in a temp dir. Its BGP neighbour is on
// the loopback, so no packet leaves the host and no session comes up.
#include "control/routing.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/bird.h"
#include "control/config.h"
#include "test_dir.h"

namespace tandem::control {
namespace {

constexpr char kRouted[] = R"(
node = "a"
[access]
mode = "routed"
vips = ["198.18.100.10", "2001:db8:100::10"]
[routing]
control_socket = "/tmp/bird.ctl"
config_file = "/tmp/bird.conf"
local_as = 65101
router_id = "198.18.30.2"
standby = "prepend"
prepend = 2
bfd_interval_ms = 20
bfd_multiplier = 4
hold_time_s = 6
preferred_dc = "peer"
[[routing.neighbor]]
address = "198.18.30.1"
as = 65010
local = "198.18.30.2"
interface = "sw0"
[[routing.neighbor]]
address = "2001:db8:30::1"
as = 65010
)";

Config Parse(const std::string& text) {
  auto c = ParseConfig(text, "t.toml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : Config{};
}

std::string ParseError(const std::string& text) {
  auto c = ParseConfig(text, "t.toml");
  if (!c.ok()) return std::string(c.status().message());
  absl::Status st = ValidateConfig(*c);
  return st.ok() ? "" : std::string(st.message());
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(RoutingConfigTest, ReadsEveryKey) {
  Config c = Parse(kRouted);
  ASSERT_TRUE(ValidateConfig(c).ok());
  EXPECT_EQ(c.access_mode, AccessMode::kRouted);
  const RoutingConfig& r = c.routing;
  EXPECT_EQ(r.local_as, 65101u);
  EXPECT_EQ(r.router_id.ToString(), "198.18.30.2");
  EXPECT_EQ(r.prepend, 2u);
  EXPECT_EQ(r.bfd_interval_ms, 20u);
  EXPECT_EQ(r.bfd_multiplier, 4u);
  EXPECT_EQ(r.hold_time_s, 6u);
  EXPECT_EQ(r.preferred_dc, PreferredDc::kPeer);
  ASSERT_EQ(r.neighbors.size(), 2u);
  EXPECT_EQ(r.neighbors[0].address.ToString(), "198.18.30.1");
  EXPECT_EQ(r.neighbors[0].local.ToString(), "198.18.30.2");
  EXPECT_EQ(r.neighbors[0].interface, "sw0");
  EXPECT_EQ(r.neighbors[1].as, 65010u);
  EXPECT_TRUE(r.neighbors[1].local.is_zero());
}

TEST(RoutingConfigTest, DefaultsToL2) {
  Config c = Parse("node = \"a\"\n");
  EXPECT_EQ(c.access_mode, AccessMode::kL2);
  EXPECT_EQ(c.routing.standby, StandbyPolicy::kPrepend);
  EXPECT_EQ(c.routing.bfd_interval_ms, 10u);
  EXPECT_EQ(c.routing.bfd_multiplier, 3u);
  EXPECT_EQ(c.routing.preferred_dc, PreferredDc::kAny);
}

TEST(RoutingConfigTest, RefusesBadValuesNamingTheKey) {
  struct Case {
    std::string from, to, error;
  };
  const Case cases[] = {
      {"mode = \"routed\"", "mode = \"bgp\"", "[access]: mode: must be \"l2\" or \"routed\""},
      {"standby = \"prepend\"", "standby = \"med\"", "standby: must be \"prepend\""},
      {"local_as = 65101", "local_as = 0", "local_as: must be an integer 1..4294967294"},
      {"preferred_dc = \"peer\"", "preferred_dc = \"a\"",
       "preferred_dc: must be \"any\", \"this\" or \"peer\""},
      {"prepend = 2", "prepend = 40", "prepend: must be an integer 1..16"},
      {"hold_time_s = 6", "hold_time_s = 1", "hold_time_s: must be an integer 3..65535"},
      {"router_id = \"198.18.30.2\"", "router_id = \"2001:db8::1\"", "router_id: must be an IPv4"},
      {"as = 65010\nlocal", "local", "neighbor 1: as: is required"},
      {"local = \"198.18.30.2\"", "local = \"2001:db8::2\"", "local: must be of the neighbour"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(absl::StrContains(ParseError(Replace(kRouted, c.from, c.to)), c.error))
        << c.to << " -> " << ParseError(Replace(kRouted, c.from, c.to));
  }
  EXPECT_TRUE(
      absl::StrContains(ParseError(Replace(kRouted, "[routing]", "[routing]\ndaemon = \"frr\"")),
                        "daemon: must be \"bird\""));
  EXPECT_TRUE(absl::StrContains(
      ParseError(Replace(kRouted, "[routing]", "[routing]\nprefixes = [\"198.18.100.1/24\"]")),
      "198.18.100.1/24 has host bits set"));
}

TEST(RoutingConfigTest, ValidatesAcrossKeys) {
  // Every VIP inside an announced prefix.
  EXPECT_TRUE(absl::StrContains(
      ParseError(Replace(kRouted, "[routing]",
                         "[routing]\nprefixes = [\"198.18.101.0/24\", \"2001:db8:100::/48\"]")),
      "VIP 198.18.100.10 is in no announced prefix"));
  // A family without a session of its own.
  std::string v4only =
      Replace(kRouted, "address = \"2001:db8:30::1\"", "address = \"198.18.31.1\"");
  EXPECT_TRUE(absl::StrContains(ParseError(v4only), "2001:db8:100::10/128 has no neighbour"));
  EXPECT_TRUE(absl::StrContains(ParseError(Replace(kRouted, "local_as = 65101\n", "")),
                                "local_as is required"));
  // l2 mode does not look at [routing].
  EXPECT_EQ(ParseError(Replace(Replace(kRouted, "local_as = 65101\n", ""), "\"routed\"", "\"l2\"")),
            "");
}

TEST(RoutingConfigTest, AnnouncesHostRoutesOrTheConfiguredPrefixes) {
  Config c = Parse(kRouted);
  std::vector<std::string> got;
  for (const IpPrefix& p : AnnouncedPrefixes(c.routing, c.access_vips)) got.push_back(p.ToString());
  EXPECT_EQ(absl::StrJoin(got, " "), "198.18.100.10/32 2001:db8:100::10/128");
  c = Parse(Replace(kRouted, "[routing]",
                    "[routing]\nprefixes = [\"198.18.100.0/24\", \"2001:db8:100::/48\"]"));
  got.clear();
  for (const IpPrefix& p : AnnouncedPrefixes(c.routing, c.access_vips)) got.push_back(p.ToString());
  EXPECT_EQ(absl::StrJoin(got, " "), "198.18.100.0/24 2001:db8:100::/48");
}

// BIRD's own parser on a generated file: `bird -p` exits 0 on a good one.
void ExpectBirdParses(const std::string& text, const std::string& what) {
  tandem::control::testing::TempDir dir;
  std::string path = dir.path() + "/bird.conf";
  std::ofstream(path) << text;
  ASSERT_EQ(system("command -v bird >/dev/null"), 0)
      << "bird is not installed (Debian package bird2; scripts/setup.sh installs it)";
  std::string cmd = absl::StrCat("bird -p -c ", path, " 2>&1");
  EXPECT_EQ(system(cmd.c_str()), 0) << what << ":\n" << text;
}

TEST(BirdConfigTest, CarriesTheAnnouncement) {
  Config c = Parse(kRouted);
  const RoutingConfig& r = c.routing;
  std::string active = GenerateBirdConfig(r, c.access_vips, Announcement::kActive);
  std::string standby = GenerateBirdConfig(r, c.access_vips, Announcement::kStandby);
  std::string none = GenerateBirdConfig(r, c.access_vips, Announcement::kWithdrawn);
  for (const std::string* t : {&active, &standby, &none}) {
    EXPECT_TRUE(absl::StrContains(*t, "router id 198.18.30.2;"));
    EXPECT_TRUE(absl::StrContains(*t, "route 198.18.100.10/32 blackhole;"));
    EXPECT_TRUE(absl::StrContains(*t, "route 2001:db8:100::10/128 blackhole;"));
    EXPECT_TRUE(absl::StrContains(*t, "min rx interval 20 ms;"));
    EXPECT_TRUE(absl::StrContains(*t, "multiplier 4;"));
    EXPECT_TRUE(absl::StrContains(*t, "local 198.18.30.2 as 65101;"));
    EXPECT_TRUE(absl::StrContains(*t, "neighbor 2001:db8:30::1 as 65010;"));
    EXPECT_TRUE(absl::StrContains(*t, "interface \"sw0\";"));
    EXPECT_TRUE(absl::StrContains(*t, "bfd on;"));
    EXPECT_TRUE(absl::StrContains(*t, "hold time 6;"));
    EXPECT_TRUE(absl::StrContains(*t, "if net ~ [ 198.18.100.10/32+ ] then accept;"));
  }
  EXPECT_FALSE(absl::StrContains(active, "prepend"));
  EXPECT_TRUE(absl::StrContains(
      standby, "  bgp_path.prepend(65101);\n  bgp_path.prepend(65101);\n  accept;"));
  EXPECT_TRUE(absl::StrContains(none, "filter tandem_export {\n  reject;\n}"));
  tandem::control::testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.File("b.conf"), standby).ok());
  EXPECT_EQ(AnnouncementInFile(dir.File("b.conf")), Announcement::kStandby);
  EXPECT_EQ(AnnouncementInFile(dir.File("missing.conf")), std::nullopt);
  ExpectBirdParses(active, "active");
  ExpectBirdParses(standby, "standby");
  ExpectBirdParses(none, "withdrawn");
}

TEST(BirdConfigTest, LocalPrefWithdrawAndCoveringPrefixes) {
  Config c = Parse(Replace(Replace(kRouted, "standby = \"prepend\"", "standby = \"local_pref\""),
                           "[routing]",
                           "[routing]\nprefixes = [\"198.18.100.0/24\"]\n"
                           "include = \"/etc/tandem/bird-extra.conf\""));
  std::string active = GenerateBirdConfig(c.routing, c.access_vips, Announcement::kActive);
  std::string standby = GenerateBirdConfig(c.routing, c.access_vips, Announcement::kStandby);
  EXPECT_TRUE(absl::StrContains(active, "bgp_local_pref = 200;"));
  EXPECT_TRUE(absl::StrContains(standby, "bgp_local_pref = 100;"));
  EXPECT_TRUE(absl::StrContains(active, "route 198.18.100.0/24 blackhole;"));
  EXPECT_TRUE(absl::StrContains(active, "include \"/etc/tandem/bird-extra.conf\";"));
  // No IPv6 prefix announced: that family takes nothing (BIRD has no empty set).
  EXPECT_TRUE(absl::StrContains(active, "filter tandem_import6 {\n  reject;\n}"));
  c.routing.include.clear();
  ExpectBirdParses(GenerateBirdConfig(c.routing, c.access_vips, Announcement::kActive),
                   "local_pref");
  c.routing.standby = StandbyPolicy::kWithdraw;
  EXPECT_TRUE(
      absl::StrContains(GenerateBirdConfig(c.routing, c.access_vips, Announcement::kStandby),
                        "filter tandem_export {\n  reject;\n}"));
}

TEST(BirdReplyTest, ParsesSessionsAndRoutes) {
  BirdReply protocols;
  protocols.lines = {
      "Name       Proto      Table      State  Since         Info",
      "tandem_device Device  ---        up     17:33:03.979  ",
      "tandem_n1  BGP        ---        up     17:33:06.710  Established   ",
      "tandem_n2  BGP        ---        start  17:33:04.950  Idle          Error: BFD session down",
  };
  std::vector<BirdSession> s = ParseBirdProtocols(protocols);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_TRUE(s[0].established);
  EXPECT_FALSE(s[1].established);
  EXPECT_EQ(s[1].info, "Idle Error: BFD session down");
  BirdReply routes;
  routes.lines = {
      "Table master4:",
      "198.18.100.10/32     unicast [tandem_n1 17:33:06.874] * (100) [AS65102i]",
      "\tvia 198.18.30.1 on sw0",
      "\tBGP.as_path: 65010 65000 65020 65102",
      "                     unicast [tandem_n1 17:33:07.001] (100) [AS65102i]",
      "\tBGP.as_path: 65010 65000 65020 65102 65102",
  };
  std::vector<CompetingPath> p = ParseBirdRoutes(routes, "tandem_n1");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].prefix, "198.18.100.10/32");
  EXPECT_EQ(p[0].as_path, "65010 65000 65020 65102");
  EXPECT_EQ(p[1].prefix, "198.18.100.10/32");
  EXPECT_EQ(p[1].as_path, "65010 65000 65020 65102 65102");
}

// A real BIRD on a temp control socket, driven by a RoutingDriver.
class BirdProcess {
 public:
  explicit BirdProcess(const std::string& dir)
      : socket_(dir + "/bird.ctl"), conf_(dir + "/bird.conf") {}
  ~BirdProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  // BIRD needs a configuration to start: the generated one, withdrawn.
  bool Start(const RoutingConfig& r, const std::vector<IpAddr>& vips) {
    if (!WriteFileAtomically(conf_, GenerateBirdConfig(r, vips, Announcement::kWithdrawn)).ok()) {
      return false;
    }
    pid_ = fork();
    if (pid_ == 0) {
      execlp("bird", "bird", "-f", "-c", conf_.c_str(), "-s", socket_.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (BirdSocket::Connect(socket_, absl::Seconds(1)).ok()) return true;
      usleep(10000);
    }
    return false;
  }
  const std::string& socket() const { return socket_; }
  const std::string& conf() const { return conf_; }

 private:
  std::string socket_, conf_;
  pid_t pid_ = -1;
};

// What BIRD would export: the announced prefixes with their AS path, as
// the running export filter leaves them ("" for a prefix it rejects).
std::string Exported(const std::string& socket) {
  auto s = BirdSocket::Connect(socket, absl::Seconds(2));
  if (!s.ok()) return s.status().ToString();
  auto r = s->Command("show route filter tandem_export all", absl::Seconds(2));
  if (!r.ok()) return r.status().ToString();
  std::vector<std::string> out;
  for (const std::string& l : r->lines) {
    if (absl::StrContains(l, "blackhole") || absl::StrContains(l, "unicast")) {
      out.push_back(l.substr(0, l.find(' ')));
    }
    if (absl::StartsWith(l, "\tBGP.as_path:")) out.back() += " [" + l.substr(14) + "]";
    if (absl::StartsWith(l, "\tBGP.local_pref:")) out.back() += " lp" + l.substr(16);
  }
  return absl::StrJoin(out, ", ");
}

TEST(PairAnnouncementTest, RoleUnlessFencedOrSteppedDownForTheWitness) {
  struct Case {
    bool active, fenced, witness_withdrawn;
    Announcement want;
  } cases[] = {
      {true, false, false, Announcement::kActive},
      {false, false, false, Announcement::kStandby},
      {true, true, false, Announcement::kWithdrawn},   // split brain, the loser
      {false, false, true, Announcement::kWithdrawn},  // lease not renewed (W3)
      {false, true, true, Announcement::kWithdrawn},
      // Active again (it acquired the key): its role, whatever came before.
      {true, false, true, Announcement::kActive},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PairAnnouncement(c.active, c.fenced, c.witness_withdrawn), c.want)
        << c.active << c.fenced << c.witness_withdrawn;
  }
}

TEST(RoutingDriverTest, DrivesBirdAndWithdrawsWhileTheDataPlaneIsDown) {
  tandem::control::testing::TempDir dir;
  Config c = Parse(kRouted);
  RoutingConfig r = c.routing;
  r.control_socket = dir.path() + "/bird.ctl";
  r.config_file = dir.path() + "/bird.conf";
  r.log = dir.path() + "/bird.log";
  // Loopback neighbours: BIRD waits for them; nothing leaves the host.
  r.neighbors[0] = RoutingNeighbor{*IpAddr::Parse("127.0.0.2"), 65010, {}, ""};
  r.neighbors[1] = RoutingNeighbor{*IpAddr::Parse("::1"), 65010, {}, ""};
  BirdProcess bird(dir.path());
  ASSERT_TRUE(bird.Start(r, c.access_vips)) << "bird did not start";
  std::atomic<bool> healthy{true};
  auto d =
      RoutingDriver::Start(r, c.access_vips, Announcement::kActive, [&] { return healthy.load(); });
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE((*d)->WaitApplied(absl::Seconds(5))) << (*d)->status().error;
  EXPECT_EQ(Exported(r.control_socket), "198.18.100.10/32, 2001:db8:100::10/128");

  (*d)->Announce(Announcement::kStandby);
  ASSERT_TRUE((*d)->WaitApplied(absl::Seconds(5))) << (*d)->status().error;
  EXPECT_EQ(Exported(r.control_socket),
            "198.18.100.10/32 [65101 65101], 2001:db8:100::10/128 [65101 65101]");

  // The data plane dies: withdrawn whatever the pair asked; back when it forwards.
  healthy = false;
  RoutingStatus s;
  for (int i = 0; i < 500; ++i) {
    s = (*d)->status();
    if (!s.data_plane_ok && s.applied) break;
    usleep(10000);
  }
  EXPECT_EQ(s.announced, Announcement::kWithdrawn);
  EXPECT_EQ(s.wanted, Announcement::kStandby);
  EXPECT_FALSE(s.data_plane_ok);
  EXPECT_EQ(Exported(r.control_socket), "");
  (*d)->Announce(Announcement::kActive);
  healthy = true;
  for (int i = 0; i < 500 && !(*d)->status().data_plane_ok; ++i) usleep(10000);
  ASSERT_TRUE((*d)->WaitApplied(absl::Seconds(5)));
  EXPECT_EQ(Exported(r.control_socket), "198.18.100.10/32, 2001:db8:100::10/128");
  s = (*d)->status();
  EXPECT_EQ(s.sessions, 2);
  EXPECT_EQ(s.sessions_up, 0);
  EXPECT_EQ(s.path, PathState::kUnknown);
  EXPECT_EQ(s.error, "");
}

TEST(RoutingDriverTest, ReportsAnUnreachableDaemonAndRetries) {
  tandem::control::testing::TempDir dir;
  Config c = Parse(kRouted);
  RoutingConfig r = c.routing;
  r.control_socket = dir.path() + "/bird.ctl";
  r.config_file = dir.path() + "/bird.conf";
  r.log = dir.path() + "/bird.log";
  r.neighbors[0] = RoutingNeighbor{*IpAddr::Parse("127.0.0.2"), 65010, {}, ""};
  r.neighbors[1] = RoutingNeighbor{*IpAddr::Parse("::1"), 65010, {}, ""};
  auto d = RoutingDriver::Start(r, c.access_vips, Announcement::kActive, [] { return true; });
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE((*d)->WaitApplied(absl::Milliseconds(300)));
  EXPECT_TRUE(absl::StrContains((*d)->status().error, "cannot connect to BIRD"))
      << (*d)->status().error;
  // BIRD starts later: the driver's retry gets it there.
  BirdProcess bird(dir.path());
  ASSERT_TRUE(bird.Start(r, c.access_vips));
  ASSERT_TRUE((*d)->WaitApplied(absl::Seconds(5))) << (*d)->status().error;
  EXPECT_EQ(Exported(r.control_socket), "198.18.100.10/32, 2001:db8:100::10/128");
}

}  // namespace
}  // namespace tandem::control
