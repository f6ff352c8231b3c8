#include "control/config.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(c->store_path, "/tmp/x/b.db");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9999");
  ASSERT_EQ(c->access_vips.size(), 2u);
  ASSERT_EQ(c->pool_vips.size(), 1u);
  EXPECT_EQ(c->pool_first_port, 30000);
  EXPECT_EQ(c->pool_last_port, 30009);
  EXPECT_EQ(c->watch_history, 10u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
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

}  // namespace
}  // namespace tandem::control
