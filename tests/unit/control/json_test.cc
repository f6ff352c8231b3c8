// tandemctl --json: map fields print in key order, whatever order protobuf
// keeps them in, so the same content always gives the same text.
#include "control/client/json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control.pb.h"

namespace tandem::control {
namespace {

TEST(Json, StringMapKeysInOrderWhateverTheInsertionOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) keys.push_back(absl::StrCat("k", i * 7919 % 1000));
  v1::Site forward, backward;
  for (size_t i = 0; i < keys.size(); ++i) {
    (*forward.mutable_preferences())[keys[i]] = absl::StrCat("v", i);
    (*backward.mutable_preferences())[keys[keys.size() - 1 - i]] =
        absl::StrCat("v", keys.size() - 1 - i);
  }
  std::string a = ToJson(forward), b = ToJson(backward);
  EXPECT_EQ(a, b);
  // Each key appears after the one before it in sorted order.
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  size_t at = 0;
  for (const std::string& k : sorted) {
    size_t p = a.find(absl::StrCat("\"", k, "\":"));
    ASSERT_NE(p, std::string::npos) << k;
    EXPECT_GT(p, at) << k << " out of order in " << a;
    at = p;
  }
}

TEST(Json, RepeatedCallsPrintTheSameText) {
  v1::NodeStatus s;
  for (int i = 0; i < 40; ++i) (*s.mutable_drops())[absl::StrCat("reason_", i)] = i;
  std::string first = ToJson(s);
  for (int i = 0; i < 20; ++i) {
    v1::NodeStatus copy;
    ASSERT_TRUE(copy.ParseFromString(s.SerializeAsString()));
    EXPECT_EQ(ToJson(copy), first);
  }
  EXPECT_LT(first.find("\"reason_0\":0"), first.find("\"reason_1\":1"));
  EXPECT_LT(first.find("\"reason_1\":1"), first.find("\"reason_10\":10"));
}

}  // namespace
}  // namespace tandem::control
