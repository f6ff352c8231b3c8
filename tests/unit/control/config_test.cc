#include "control/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "common/keys.h"
#include "control/fleet_node.h"

namespace tandem::control {
namespace {

TEST(ConfigTest, ReadsEveryKey) {
  auto c = ParseConfig(R"(
node = "b"
shm_dir = "/tmp/x"
role = "standby"
[tables]
legs = 1000
meetings = 50
[api]
listen = "unix:/tmp/x/api.sock"
tcp = "127.0.0.1:7443"
socket_mode = "0660"
socket_group = "tandem"
tls_cert = "/etc/tandem/server.crt"
tls_key = "/etc/tandem/server.key"
tls_ca = "/etc/tandem/clients-ca.crt"
[store]
path = "/tmp/x/b.db"
[metrics]
listen = "127.0.0.1:9999"
[access]
vips = ["198.18.0.100", "2001:db8:1::100"]
[pool]
vips = ["198.18.0.100"]
ports = "30000-30009"
[watch]
history = 10
history_mib = 3
)",
                       "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "b");
  EXPECT_EQ(c->shm_dir, "/tmp/x");
  EXPECT_EQ(c->role, "standby");
  EXPECT_EQ(c->capacity.legs, 1000u);
  EXPECT_EQ(c->capacity.meetings, 50u);
  EXPECT_EQ(c->api_listen, "unix:/tmp/x/api.sock");
  EXPECT_EQ(c->api_tcp, "127.0.0.1:7443");
  EXPECT_EQ(c->api_socket_mode, "0660");
  EXPECT_EQ(c->api_socket_group, "tandem");
  EXPECT_EQ(c->api_tls_cert, "/etc/tandem/server.crt");
  EXPECT_EQ(c->api_tls_key, "/etc/tandem/server.key");
  EXPECT_EQ(c->api_tls_ca, "/etc/tandem/clients-ca.crt");
  EXPECT_EQ(c->store_path, "/tmp/x/b.db");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9999");
  ASSERT_EQ(c->access_vips.size(), 2u);
  ASSERT_EQ(c->pool_vips.size(), 1u);
  EXPECT_EQ(c->pool_first_port, 30000);
  EXPECT_EQ(c->pool_last_port, 30009);
  EXPECT_EQ(c->watch_history, 10u);
  EXPECT_EQ(c->watch_history_mib, 3u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
  c->watch_history_mib = 0;
  EXPECT_FALSE(ValidateConfig(*c).ok());
}

TEST(ConfigTest, MediaLimitsDefaultAndOverride) {
  auto c = ParseConfig("node = \"a\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.channel[0].pps, 200u) << "shipped default, audio";
  EXPECT_EQ(c->limits.channel[1].kbps, 10000u) << "shipped default, video";
  EXPECT_EQ(c->limits.meeting_copies_per_s, 500000u);
  c = ParseConfig(R"(
[limits]
audio_pps = 100
audio_kbps = 0
video_pps = 1
video_kbps = 2
share_pps = 3
share_kbps = 4
meeting_copies_per_s = 5
)", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.channel[0].pps, 100u);
  EXPECT_EQ(c->limits.channel[0].kbps, 0u) << "0 = unlimited";
  EXPECT_EQ(c->limits.channel[1].pps, 1u);
  EXPECT_EQ(c->limits.channel[1].kbps, 2u);
  EXPECT_EQ(c->limits.channel[2].pps, 3u);
  EXPECT_EQ(c->limits.channel[2].kbps, 4u);
  EXPECT_EQ(c->limits.meeting_copies_per_s, 5u);
  c = ParseConfig("[limits]\nvideo_kbps = -1\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("video_kbps"), std::string::npos) << c.status();
}

TEST(ConfigTest, NamesTheBadKey) {
  auto c = ParseConfig("[access]\nvips = [\"not-an-ip\"]\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("vips"), std::string::npos) << c.status();
  c = ParseConfig("[pool]\nports = \"9-3\"\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ports"), std::string::npos);
  c = ParseConfig("node = 3\n", "t.toml");
  EXPECT_FALSE(c.ok());
  c = ParseConfig("node = \n", "t.toml");
  EXPECT_FALSE(c.ok());
}

// A key tandem-control does not read is an error naming it, in every table,
// [routing] and [[routing.neighbor]] included.
TEST(ConfigTest, UnknownKeysAreErrors) {
  struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"[api]\nlisen = \"unix:/x\"\n", "t.toml: unknown key 'api.lisen' (did you mean api.listen?)"},
      {"[pair]\nmultiplyer = 3\n", "t.toml: unknown key 'pair.multiplyer' (did you mean pair.multiplier?)"},
      {"[routing]\nlocal_as = 1\n[[routing.neighbor]]\naddress = \"198.18.30.1\"\nas = 2\nport = 179\n",
       "t.toml: unknown key 'routing.neighbor[].port' (the keys of [[routing.neighbor]]: "
       "address, as, local, interface)"},
      {"[metrics]\nport = 9464\n", "t.toml: unknown key 'metrics.port' (the keys of [metrics]: "
       "listen)"},
      {"[api.roles]\nroot = [\"uid:0\"]\n", "t.toml: unknown key 'api.roles.root' (the keys of "
       "[api.roles]: read_only, operator, admin)"},
      {"[notify]\ncommand = \"/bin/true\"\ntimeout = 3\n",
       "t.toml: unknown key 'notify.timeout' (did you mean notify.timeout_s?)"},
  };
  for (const auto& c : cases) {
    auto r = ParseConfig(c.text, "t.toml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().message(), c.message);
  }
  auto ok = ParseConfig("log_level = \"notice\"\n[notify]\ncommand = \"/bin/true\"\ntimeout_s = 3\n",
                        "t.toml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->notify_command, "/bin/true");
  EXPECT_EQ(ok->notify_timeout_s, 3u);
  EXPECT_EQ(ok->log_level, log::Level::kNotice);
  EXPECT_FALSE(ParseConfig("[notify]\ncommand = \"notify.sh\"\n", "t.toml").ok());
}

TEST(ConfigTest, PoolVipsMustBeAccessVipsAndDefaultToThem) {
  auto c = ParseConfig("[access]\nvips = [\"198.18.0.100\"]\n[pool]\nvips = [\"198.18.0.9\"]\n",
                       "t.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(ValidateConfig(*c).ok());
  c = ParseConfig("[access]\nvips = [\"198.18.0.100\"]\n", "t.toml");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(ValidateConfig(*c).ok());
  EXPECT_EQ(c->pool_vips.size(), 1u);
  c = ParseConfig("role = \"leader\"\n", "t.toml");
  EXPECT_FALSE(ValidateConfig(*c).ok());
}

TEST(ConfigTest, SocketAccessDefaultsToUnsetAndNeedsAUnixSocket) {
  Config d;
  EXPECT_EQ(d.api_listen, "unix:/run/tandem/a.sock");
  EXPECT_TRUE(d.api_tcp.empty());
  EXPECT_TRUE(d.api_socket_mode.empty());  // left as created (the umask)
  EXPECT_TRUE(d.api_socket_group.empty());
  EXPECT_TRUE(ValidateConfig(d).ok());
  auto c = ParseConfig("[api]\nlisten = \"unix:/tmp/a.sock\"\nsocket_mode = \"0600\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(ValidateConfig(*c).ok());
  c->api_listen = "127.0.0.1:7443";  // e.g. --api overrides it
  c->api_tls_cert = c->api_tls_key = c->api_tls_ca = "x.pem";
  absl::Status st = ValidateConfig(*c);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("socket_mode"), std::string::npos) << st;
}

TEST(ConfigTest, SocketModeIsOctalPermissionBits) {
  EXPECT_EQ(*ParseSocketMode("0660"), 0660u);
  EXPECT_EQ(*ParseSocketMode("600"), 0600u);
  EXPECT_EQ(*ParseSocketMode("0777"), 0777u);
  EXPECT_EQ(*ParseSocketMode("0000"), 0u);
  for (const char* bad :
       {"", "66", "0999", "1777", "4755", "07777", "rw-rw----", "0x1b0", " 660", "-660", "0660 "}) {
    EXPECT_FALSE(ParseSocketMode(bad).ok()) << bad;
  }
  auto c = ParseConfig("[api]\nsocket_mode = \"0986\"\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("socket_mode"), std::string::npos) << c.status();
  // An integer would be ambiguous (0o660 or 660?): only a string is taken.
  c = ParseConfig("[api]\nsocket_mode = 0o660\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("socket_mode"), std::string::npos) << c.status();
  c = ParseConfig("[api]\nsocket_group = 7\n", "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("socket_group"), std::string::npos) << c.status();
  // The flag's value is checked as well as the file's.
  Config d;
  d.api_socket_mode = "08";
  absl::Status st = ValidateConfig(d);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("socket_mode"), std::string::npos) << st;
}

TEST(ConfigTest, TcpListenerNeedsMutualTls) {
  const std::string base = "[api]\nlisten = \"unix:/tmp/a.sock\"\ntcp = \"127.0.0.1:7443\"\n";
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"tls_cert", "tls_cert = \"s.crt\"\n"},
      {"tls_key", "tls_key = \"s.key\"\n"},
      {"tls_ca", "tls_ca = \"ca.crt\"\n"}};
  // Each key left out is named; with all three the listener is accepted.
  for (size_t skip = 0; skip <= keys.size(); ++skip) {
    std::string text = base;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i != skip) text += keys[i].second;
    }
    auto c = ParseConfig(text, "t.toml");
    ASSERT_TRUE(c.ok()) << c.status();
    absl::Status st = ValidateConfig(*c);
    if (skip == keys.size()) {
      EXPECT_TRUE(st.ok()) << st;
      continue;
    }
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
    EXPECT_NE(st.message().find(keys[skip].first), std::string::npos) << st;
    EXPECT_NE(st.message().find("127.0.0.1:7443"), std::string::npos) << st;
  }
  auto c = ParseConfig(base, "t.toml");
  ASSERT_TRUE(c.ok());
  absl::Status st = ValidateConfig(*c);
  for (const char* k : {"tls_cert", "tls_key", "tls_ca"}) {
    EXPECT_NE(st.message().find(k), std::string::npos) << st;
  }
  // listen itself may be TCP: the same rule.
  Config d;
  d.api_listen = "[::1]:7443";
  st = ValidateConfig(d);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("tls_cert"), std::string::npos) << st;
  d.api_tls_cert = "s.crt";
  d.api_tls_key = "s.key";
  d.api_tls_ca = "ca.crt";
  EXPECT_TRUE(ValidateConfig(d).ok());
  // A Unix socket alone needs no TLS.
  EXPECT_TRUE(IsUnixAddress("unix:/run/tandem/a.sock"));
  EXPECT_FALSE(IsUnixAddress("127.0.0.1:7443"));
  EXPECT_FALSE(IsUnixAddress("unix-abstract:tandem"));  // anyone in the namespace could connect
}

TEST(ConfigTest, PairBacklogIsBounded) {
  const std::string pair = R"(
node = "a"
[pair]
node_id = 1
peer_node_id = 2
key = "0123456789abcdef0123456789abcdef"
listen = "198.19.0.1:7400"
peer = "198.19.0.2:7400"
)";
  auto c = ParseConfig(pair, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pair.backlog_changes, 1u << 20);
  c = ParseConfig(pair + "backlog_changes = 50000\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pair.backlog_changes, 50000u);
  EXPECT_EQ(c->pair.backlog_mib, 128u);
  c = ParseConfig(pair + "backlog_mib = 16\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pair.backlog_mib, 16u);
  c = ParseConfig(pair + "backlog_mib = 0\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(std::string(ValidateConfig(*c).message()).find("backlog_mib"), std::string::npos);
  c = ParseConfig(pair + "backlog_changes = 10\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::Status st = ValidateConfig(*c);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("backlog_changes"), std::string::npos);
}

// The control daemon keys the backbone with the replication key derived from
// the same file as the switch's heartbeat key: both nodes derive the same.
TEST(ConfigTest, ReplicationKeyIsDerivedFromTheKeyFile) {
  char dir[] = "/dev/shm/tandem-ctlcfg-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/pair.key";
  ASSERT_TRUE(keys::WriteNewPairKeyFile(path).ok());
  std::string text = "[pair]\nnode_id = 1\npeer_node_id = 2\nkey_file = \"" + path +
                     "\"\nlisten = \"198.19.0.1:7400\"\npeer = \"198.19.0.2:7400\"\n";
  auto c = ParseConfig(text, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  auto secret = keys::ReadPairKeyFile(path);
  ASSERT_TRUE(secret.ok());
  auto derived = keys::DerivePairKeys(*secret);
  EXPECT_EQ(c->pair.replication_key, derived->replication);
  EXPECT_NE(c->pair.replication_key, derived->heartbeat);
  EXPECT_NE(c->pair.replication_key, *secret);
  auto short_key = ParseConfig(
      "[pair]\nnode_id = 1\npeer_node_id = 2\nkey = \"0123456789abcdef\"\n", "t.toml");
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().message().find("16 bytes"), std::string::npos);
  unlink(path.c_str());
  rmdir(dir);
}

TEST(ConfigTest, RolesAreReadPerRole) {
  auto c = ParseConfig("[api.roles]\nread_only = [\"uid:5\"]\nadmin = [\"cert:ops\"]\n", "t");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->api_roles.read_only, std::vector<std::string>{"uid:5"});
  EXPECT_EQ(c->api_roles.admin, std::vector<std::string>{"cert:ops"});
  auto bad = ParseConfig("[api.roles]\nroot = [\"uid:0\"]\n", "t");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("root"), std::string::npos);
}

TEST(ConfigTest, ListenersAndPathsAreCheckedBeforeStart) {
  const std::pair<const char*, const char*> cases[] = {
      {"[metrics]\nlisten = \"127.0.0.1\"\n", "[metrics] listen"},
      {"[metrics]\nlisten = \"127.0.0.1:0\"\n", "[metrics] listen"},
      {"[api]\nlisten = \"unix:\"\n", "[api] listen"},
      {"[api]\ntcp = \"host\"\n", "[api] tcp"},
      {"shm_dir = \"rel\"\n", "shm_dir"},
      {"node = \"a/b\"\n", "node"},
      {"[store]\npath = \"\"\n", "[store] path"},
  };
  for (const auto& [text, key] : cases) {
    auto c = ParseConfig(text, "t");
    ASSERT_TRUE(c.ok()) << c.status();
    absl::Status st = ValidateConfig(*c);
    EXPECT_FALSE(st.ok()) << text;
    EXPECT_NE(st.message().find(key), std::string::npos) << st;
  }
}

TEST(ConfigTest, PairModesAndLagAlarm) {
  const std::string pair = R"(
node = "a"
[pair]
node_id = 1
peer_node_id = 2
key = "0123456789abcdef0123456789abcdef"
listen = "198.19.0.1:7400"
peer = "198.19.0.2:7400"
)";
  auto c = ParseConfig(pair, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->pair.sync);
  EXPECT_FALSE(c->pair.strict);
  EXPECT_EQ(c->pair.lag_alarm_ms, 1000u);
  c = ParseConfig(pair + "mode = \"sync\"\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->pair.sync);
  EXPECT_FALSE(c->pair.strict);
  c = ParseConfig(pair + "mode = \"sync-strict\"\nlag_alarm_ms = 250\n", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->pair.sync);
  EXPECT_TRUE(c->pair.strict);
  EXPECT_EQ(c->pair.lag_alarm_ms, 250u);
  c = ParseConfig(pair + "mode = \"strict\"\n", "test.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("sync-strict"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace tandem::control

namespace tandem::control {
namespace {

constexpr const char* kFleet = R"(
node = "b"
[tables]
legs = 1000
meetings = 50
[api]
listen = "unix:/tmp/x/b.sock"
[fleet]
etcd = ["198.18.7.1:2379", "http://198.18.7.2:2379"]
pair_id = "pair-1"
data_center = "dc2"
)";

TEST(FleetConfigTest, DefaultsComeFromTheNode) {
  auto c = ParseConfig(kFleet, "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(ValidateConfig(*c).ok()) << ValidateConfig(*c);
  const FleetConfig& f = c->fleet;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.etcd, (std::vector<std::string>{"198.18.7.1:2379", "http://198.18.7.2:2379"}));
  EXPECT_EQ(f.node_id, "b");
  EXPECT_EQ(f.api, "unix:/tmp/x/b.sock");
  EXPECT_EQ(f.legs, 1000u);
  EXPECT_EQ(f.meetings, 50u);
  EXPECT_EQ(f.prefix, "/tandem/fleet/");
  EXPECT_EQ(f.lease_ttl_s, 6u);
  EXPECT_FALSE(ParseConfig("node = \"a\"\n", "t.toml")->fleet.enabled);
}

TEST(FleetConfigTest, ReadsEveryKey) {
  auto c = ParseConfig(std::string(kFleet) + R"(node_id = "b-2"
api = "198.18.7.20:7443"
prefix = "/test/f"
legs = 900
meetings = 40
lease_ttl_s = 4
refresh_ms = 500
)",
                       "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(ValidateConfig(*c).ok());
  const FleetConfig& f = c->fleet;
  EXPECT_EQ(f.node_id, "b-2");
  EXPECT_EQ(f.api, "198.18.7.20:7443");
  EXPECT_EQ(f.prefix, "/test/f");
  EXPECT_EQ(f.legs, 900u);
  EXPECT_EQ(f.meetings, 40u);
  EXPECT_EQ(f.lease_ttl_s, 4u);
  EXPECT_EQ(f.refresh_ms, 500u);
}

TEST(FleetConfigTest, ReadsTheWitnessTiming) {
  auto c = ParseConfig(std::string(kFleet) + R"(witness = true
witness_ttl_s = 5
witness_renew_ms = 400
witness_margin_ms = 1500
witness_guard_ms = 200
)",
                       "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  fleet::WitnessConfig w = WitnessTiming(c->fleet);
  EXPECT_TRUE(c->fleet.witness);
  EXPECT_EQ(w.ttl, absl::Seconds(5));
  EXPECT_EQ(w.renew_interval, absl::Milliseconds(400));
  EXPECT_EQ(w.margin, absl::Milliseconds(1500));
  EXPECT_EQ(w.guard, absl::Milliseconds(200));
  EXPECT_TRUE(fleet::CheckWitnessConfig(w).ok());
  // Off unless asked for; the defaults are docs/fleet.md's.
  auto d = ParseConfig(kFleet, "t.toml");
  EXPECT_FALSE(d->fleet.witness);
  EXPECT_EQ(WitnessTiming(d->fleet).ttl, absl::Seconds(3));
  EXPECT_EQ(WitnessTiming(d->fleet).renew_interval, absl::Milliseconds(500));
  EXPECT_EQ(WitnessTiming(d->fleet).margin, absl::Seconds(1));
  EXPECT_FALSE(ParseConfig(std::string(kFleet) + "witness = 1\n", "t.toml").ok());
}

TEST(FleetConfigTest, BadKeysAndValuesAreNamed) {
  struct Case {
    std::string extra, error;
  };
  for (const Case& k : std::vector<Case>{
           {"datacenter = \"x\"\n", "fleet.datacenter"},
           {"legs = -1\n", "legs"},
           {"refresh_ms = \"1s\"\n", "refresh_ms"},
       }) {
    auto c = ParseConfig(std::string(kFleet) + k.extra, "t.toml");
    ASSERT_FALSE(c.ok()) << k.extra;
    EXPECT_NE(c.status().message().find(k.error), std::string::npos) << c.status();
  }
  for (const Case& k : std::vector<Case>{
           {"pair_id = \"pair 1\"\n", "pair id"},
           {"etcd = []\n", "etcd"},
           {"etcd = [\"198.18.7.1\"]\n", "HOST:PORT"},
           {"prefix = \"tandem\"\n", "prefix"},
           {"lease_ttl_s = 1\n", "lease_ttl_s"},
           {"lease_ttl_s = 2\nrefresh_ms = 2000\n", "refresh_ms"},
           {"tls_ca = \"/nonexistent/ca.crt\"\n", "tls_ca: cannot read /nonexistent/ca.crt"},
           {"etcd = [\"https://198.18.7.1:2379\"]\n", "https needs the CA"},
           {"witness = true\nwitness_ttl_s = 1\n", "witness ttl 1s"},
           {"witness = true\nwitness_margin_ms = 3000\n", "witness margin"},
           {"witness = true\nwitness_renew_ms = 1500\n", "witness renew_interval"},
           {"witness = true\nwitness_guard_ms = 0\n", "witness guard"},
           {"witness = true\n", "witness = true needs a [pair]"},
       }) {
    // A key given twice is a TOML error: replace the table's value instead.
    std::string text = kFleet;
    std::string key = k.extra.substr(0, k.extra.find(' '));
    size_t at = text.find("\n" + key + " ");
    if (at != std::string::npos) text.erase(at + 1, text.find('\n', at + 1) - at);
    auto c = ParseConfig(text + k.extra, "t.toml");
    ASSERT_TRUE(c.ok()) << k.extra << c.status();
    absl::Status st = ValidateConfig(*c);
    ASSERT_FALSE(st.ok()) << k.extra;
    EXPECT_NE(st.message().find(k.error), std::string::npos) << st;
  }
  std::string no_dc = kFleet;
  no_dc.erase(no_dc.find("data_center"));
  auto c = ParseConfig(no_dc, "t.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(ValidateConfig(*c).message().find("data_center"), std::string::npos);
}

}  // namespace
}  // namespace tandem::control

namespace tandem::control {
namespace {

TEST(FleetNodeTest, PacketRateKeepsTwoSignificantDigits) {
  EXPECT_EQ(TwoDigits(0), 0u);
  EXPECT_EQ(TwoDigits(99), 99u);
  EXPECT_EQ(TwoDigits(100), 100u);
  EXPECT_EQ(TwoDigits(1049), 1000u);
  EXPECT_EQ(TwoDigits(123456), 120000u);
  EXPECT_EQ(TwoDigits(~0ull), 18000000000000000000ull);
}

}  // namespace
}  // namespace tandem::control
