#include "control/pool.h"

#include <gtest/gtest.h>

#include <set>

namespace tandem::control {
namespace {

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

TEST(LocalPoolTest, AllocatesEveryEndpointOnceThenIsExhausted) {
  LocalPool pool({Ip("198.18.0.100"), Ip("198.18.0.101")}, 20000, 20002);
  EXPECT_EQ(pool.pool_size(), 6u);
  std::set<std::string> seen;
  for (int i = 0; i < 6; ++i) {
    auto ep = pool.Allocate(true, i + 1);
    ASSERT_TRUE(ep.ok()) << ep.status();
    EXPECT_TRUE(seen.insert(FormatEndpoint(ep->first, ep->second)).second);
    EXPECT_GE(ep->second, 20000);
    EXPECT_LE(ep->second, 20002);
  }
  EXPECT_EQ(pool.pool_free(), 0u);
  auto none = pool.Allocate(true, 7);
  EXPECT_TRUE(absl::IsResourceExhausted(none.status()));
  EXPECT_NE(none.status().message().find("exhausted"), std::string::npos);
  pool.Release(Ip("198.18.0.101"), 20001);
  EXPECT_EQ(pool.pool_free(), 1u);
  auto again = pool.Allocate(true, 8);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(FormatEndpoint(again->first, again->second), "198.18.0.101:20001");
}

TEST(LocalPoolTest, AllocatesInTheRemotesFamily) {
  LocalPool pool({Ip("198.18.0.100"), Ip("2001:db8:1::100")}, 20000, 20000);
  auto v6 = pool.Allocate(false, 1);
  ASSERT_TRUE(v6.ok());
  EXPECT_FALSE(v6->first.is_v4());
  EXPECT_TRUE(absl::IsResourceExhausted(pool.Allocate(false, 2).status()));
  EXPECT_TRUE(pool.Allocate(true, 3).ok());
  LocalPool v4only({Ip("198.18.0.100")}, 20000, 20010);
  auto st = v4only.Allocate(false, 1).status();
  EXPECT_TRUE(absl::IsResourceExhausted(st));
  EXPECT_NE(st.message().find("IPv6"), std::string::npos);
}

TEST(LocalPoolTest, ReserveNamesTheHolderOfATakenEndpoint) {
  LocalPool pool({Ip("198.18.0.100")}, 20000, 20001);
  ASSERT_TRUE(pool.Reserve(Ip("198.18.0.100"), 20000, 41).ok());
  EXPECT_EQ(pool.pool_free(), 1u);
  auto st = pool.Reserve(Ip("198.18.0.100"), 20000, 42);
  EXPECT_TRUE(absl::IsAlreadyExists(st));
  EXPECT_NE(st.message().find("leg 41"), std::string::npos) << st;
  // Outside the pool's port range: tracked, but not counted against the pool.
  ASSERT_TRUE(pool.Reserve(Ip("198.18.0.100"), 5004, 43).ok());
  EXPECT_EQ(pool.pool_free(), 1u);
  EXPECT_TRUE(pool.InUse(Ip("198.18.0.100"), 5004));
  // Allocation skips the reserved endpoint.
  auto ep = pool.Allocate(true, 44);
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->second, 20001);
}

}  // namespace
}  // namespace tandem::control
