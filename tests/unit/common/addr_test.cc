// Addresses as the tables store them: both families in one 16-byte form.
#include "common/net/addr.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(IpAddr, UnspecifiedInBothFamiliesIsNoHostsAddress) {
  // 0.0.0.0 is stored IPv4-mapped (::ffff:0.0.0.0): not all-zero bytes.
  IpAddr v4 = *IpAddr::Parse("0.0.0.0");
  EXPECT_TRUE(v4.is_v4());
  EXPECT_FALSE(v4.is_zero());
  EXPECT_TRUE(v4.is_unspecified());
  EXPECT_TRUE(IpAddr::Parse("::")->is_unspecified());
  EXPECT_TRUE(IpAddr{}.is_unspecified());
  for (const char* host : {"198.18.0.1", "0.0.0.1", "2001:db8::1", "::1", "::ffff:0.0.0.1"}) {
    EXPECT_FALSE(IpAddr::Parse(host)->is_unspecified()) << host;
  }
}

TEST(IpAddr, EndpointsRoundTripInBothFamilies) {
  auto v4 = ParseEndpoint("198.18.0.10:5000");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(FormatEndpoint(v4->first, v4->second), "198.18.0.10:5000");
  auto v6 = ParseEndpoint("[2001:db8::10]:5000");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(FormatEndpoint(v6->first, v6->second), "[2001:db8::10]:5000");
  EXPECT_FALSE(ParseEndpoint("198.18.0.10").ok());
  EXPECT_FALSE(ParseEndpoint("[2001:db8::10]:70000").ok());
}

}  // namespace
}  // namespace tandem
