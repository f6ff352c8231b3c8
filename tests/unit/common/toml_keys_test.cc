#include "common/toml_keys.h"

#include <toml++/toml.h>

#include "gtest/gtest.h"

namespace tandem {
namespace {

const std::vector<absl::string_view> kKnown = {"node", "switch.burst", "switch.idle_sleep_us",
                                              "api.roles.admin", "port[].name", "port[].devargs"};

absl::Status Check(const char* text) {
  toml::table t = toml::parse(text);
  return CheckKnownKeys(t, kKnown, "t.toml");
}

TEST(TomlKeys, KnownKeysPass) {
  EXPECT_TRUE(Check(R"(
node = "a"
[switch]
burst = 32
[api.roles]
admin = ["uid:0"]
[[port]]
name = "access"
devargs = "net_null0"
[[port]]
name = "backbone"
)").ok());
  EXPECT_TRUE(Check("").ok());
}

TEST(TomlKeys, UnknownKeysAreNamedWithTheNearestKnownOne) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"nod = \"a\"", "t.toml: unknown key 'nod' (did you mean node?)"},
      {"[switch]\nidle_sleep_ms = 1", "t.toml: unknown key 'switch.idle_sleep_ms' (did you mean "
                                      "switch.idle_sleep_us?)"},
      {"[swich]\nburst = 1", "t.toml: unknown key 'swich' (did you mean switch?)"},
      {"[api.roles]\nadmins = []", "t.toml: unknown key 'api.roles.admins' (did you mean "
                                   "api.roles.admin?)"},
      {"[[port]]\nname = \"access\"\ndevarg = \"x\"",
       "t.toml: unknown key 'port[].devarg' (did you mean port[].devargs?)"},
      {"completely_else = 1", "t.toml: unknown key 'completely_else'"},
      // No near key: the keys of its table, when they are few.
      {"[api.roles]\nroot = []", "t.toml: unknown key 'api.roles.root' (the keys of [api.roles]: "
                                 "admin)"},
      // A value where a table is known (a table where a value is: the parser's type check).
      {"switch = 3", "t.toml: switch must be a table ([switch])"},
  };
  for (const Case& c : cases) {
    absl::Status st = Check(c.text);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << c.text;
    EXPECT_EQ(st.message(), c.message) << c.text;
  }
}

TEST(TomlKeys, TheFirstUnknownKeyInFileOrderIsReported) {
  absl::Status st = Check("zzz = 1\naaa = 2\n");
  EXPECT_EQ(st.message(), "t.toml: unknown key 'zzz'");
}

}  // namespace
}  // namespace tandem
