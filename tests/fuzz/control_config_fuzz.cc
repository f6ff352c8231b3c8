// Fuzz target: the control plane's configuration loader (control/config.h
// ParseConfig + ValidateConfig) on arbitrary TOML text: a config or an
// InvalidArgument error, never a throw, crash or hang.
#include <cstdint>
#include <string>

#include "control/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = tandem::control::ParseConfig(text, "fuzz.toml");
  if (!c.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(c.status()), "parse error code: %s",
               c.status().ToString().c_str());
    return 0;
  }
  absl::Status st = tandem::control::ValidateConfig(*c);
  if (!st.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(st), "validate error code: %s", st.ToString().c_str());
    return 0;
  }
  FUZZ_CHECK(c->role == "active" || c->role == "standby", "role '%s'", c->role.c_str());
  FUZZ_CHECK(c->pool_first_port <= c->pool_last_port, "pool ports %u-%u", c->pool_first_port,
             c->pool_last_port);
  FUZZ_CHECK(c->capacity.legs >= 1 && c->capacity.meetings >= 1, "capacity");
  for (const auto& v : c->pool_vips) {
    bool in_access = false;
    for (const auto& a : c->access_vips) in_access |= a == v;
    FUZZ_CHECK(in_access, "pool VIP %s is not an access VIP", v.ToString().c_str());
  }
  return 0;
}
