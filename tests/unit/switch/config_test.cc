#include "switch/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/keys.h"

namespace tandem::sw {
namespace {

constexpr char kMinimal[] = R"(
[[port]]
name = "access"
devargs = "net_null0"
)";

TEST(SwitchConfig, DefaultsFromAMinimalFile) {
  auto c = ParseSwitchConfig(kMinimal, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "a");
  EXPECT_EQ(c->capacity.legs, 1u << 20);
  EXPECT_EQ(c->worker_lcores, std::vector<unsigned>{1});
  EXPECT_EQ(c->burst, 32);
  ASSERT_EQ(c->ports.size(), 1u);
  EXPECT_EQ(c->ports[0].role, PortRole::kAccess);
}

TEST(SwitchConfig, FullFile) {
  auto c = ParseSwitchConfig(R"(
node = "b"
shm_dir = "/tmp/x"
[tables]
legs = 1000
meetings = 10
[eal]
args = ["--no-huge"]
main_lcore = 0
worker_lcores = [1, 2]
[switch]
burst = 64
idle_sleep_us = 50
zero_copy_min = 256
[[port]]
name = "backbone"
devargs = "net_ring1"
[[port]]
name = "access"
devargs = "0000:01:00.0"
[access]
prefixes = ["198.18.0.0/24", "2001:db8::/64"]
gateway4 = "198.18.0.1"
gateway6 = "2001:db8::1"
vlan = 7
[pair]
node_id = 2
peer_node_id = 1
key = "0123456789abcdef0123456789abcdef"
worker_stall_ms = 400
)",
                             "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "b");
  EXPECT_EQ(c->capacity.legs, 1000u);
  EXPECT_EQ(c->worker_lcores, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(c->ports[0].name, "access");  // the access port always comes first
  EXPECT_EQ(c->ports[1].role, PortRole::kBackbone);
  EXPECT_EQ(c->prefixes.size(), 2u);
  EXPECT_EQ(c->gateway4, *IpAddr::Parse("198.18.0.1"));
  EXPECT_EQ(c->vlan, 7);
  EXPECT_EQ(c->zero_copy_min, 256u);
  EXPECT_EQ(c->pair_node_id, 2u);
  EXPECT_EQ(c->pair_peer_node_id, 1u);
  EXPECT_EQ(c->worker_stall_ms, 400u);
}

TEST(SwitchConfig, ErrorsNameTheKey) {
  struct {
    const char* text;
    const char* expect;
  } cases[] = {
      {"[switch]\nburst = 0\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "switch.burst"},
      {"[switch]\nburst = \"a\"\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "switch.burst"},
      {"[access]\nprefixes=[\"1.2.3.4\"]\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
       "access.prefixes"},
      {"[access]\ngateway4=\"2001:db8::1\"\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
       "access.gateway4"},
      {"[[port]]\nname=\"backbone\"\ndevargs=\"x\"", "access"},
      {"[[port]]\nname=\"other\"\ndevargs=\"x\"", "port.name"},
      {"[[port]]\nname=\"access\"", "port.devargs"},
      {"[eal]\nworker_lcores=[0]\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "main lcore"},
      {"[eal]\nworker_lcores=[1,1]\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "listed twice"},
      {"[eal]\nworker_lcores=[1,2]\ncpus=[0,1]\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
       "eal.cpus gives 2 CPUs; it needs 3"},
      {"[eal]\ncpus=[-1, 0]\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "eal.cpus"},
      {"[pair]\nworker_stall_ms = 0\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
       "pair.worker_stall_ms"},
      {"[pair]\nnode_id = 1\nkey = \"0123456789abcdef0123456789abcdef\"\n[[port]]\n"
       "name=\"access\"\ndevargs=\"x\"",
       "pair.peer_node_id"},
      {"[pair]\nnode_id = 1\npeer_node_id = 1\nkey = \"0123456789abcdef0123456789abcdef\"\n"
       "[[port]]\n"
       "name=\"access\"\ndevargs=\"x\"",
       "pair.peer_node_id"},
      {"[access]\nslow_path_pps_per_source = 0\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
       "access.slow_path_pps_per_source"},
      {"this is = = not toml", "t.toml:1"},
  };
  for (const auto& c : cases) {
    auto r = ParseSwitchConfig(c.text, "t.toml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), absl::string_view::npos)
        << r.status().message();
  }
}

TEST(SwitchConfig, CpusMapLcoresToCpus) {
  auto r = ParseSwitchConfig(
      "[eal]\nworker_lcores=[1,2]\ncpus=[0,1,0]\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
      "t.toml");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->cpus, (std::vector<unsigned>{0, 1, 0}));
  EXPECT_EQ(r->worker_lcores, (std::vector<unsigned>{1, 2}));
}

// A key the switch does not read is an error naming it (a typo must not
// leave a default in force), with the nearest known key.
TEST(SwitchConfig, UnknownKeysAreErrors) {
  auto r = ParseSwitchConfig("[switch]\nidle_sleep_ms = 0\n[[port]]\nname=\"access\"\ndevargs=\"x\"",
                             "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "t.toml: unknown key 'switch.idle_sleep_ms' (did you mean switch.idle_sleep_us?)");
  r = ParseSwitchConfig("[[port]]\nname=\"access\"\ndevargs=\"x\"\nqueues = 2", "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "t.toml: unknown key 'port[].queues' (the keys of [[port]]: name, devargs, "
            "xdp_steering)");
  r = ParseSwitchConfig("log_level = \"loud\"\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("log_level"), std::string::npos);
  r = ParseSwitchConfig("log_level = \"debug\"\n[[port]]\nname=\"access\"\ndevargs=\"x\"", "t.toml");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->log_level, log::Level::kDebug);
}

// The switch keys its heartbeats with the key derived from the pair key file,
// never with the file's contents; a file others may read is refused.
TEST(SwitchConfig, HeartbeatKeyIsDerivedFromTheKeyFile) {
  char dir[] = "/dev/shm/tandem-swcfg-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/pair.key";
  ASSERT_TRUE(keys::WriteNewPairKeyFile(path).ok());
  std::string text = "[pair]\nnode_id = 1\npeer_node_id = 2\nkey_file = \"" + path +
                     "\"\n[[port]]\nname=\"access\"\ndevargs=\"x\"";
  auto c = ParseSwitchConfig(text, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  auto secret = keys::ReadPairKeyFile(path);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(c->heartbeat_key, keys::DerivePairKeys(*secret)->heartbeat);
  EXPECT_NE(c->heartbeat_key, *secret);
  chmod(path.c_str(), 0640);
  auto refused = ParseSwitchConfig(text, "t.toml");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("mode 0640"), std::string::npos) << refused.status();
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace tandem::sw
