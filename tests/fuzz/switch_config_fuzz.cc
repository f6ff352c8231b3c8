// Fuzz target: the switch configuration loader (switch/config.h
// ParseSwitchConfig) on arbitrary TOML text. It returns a config or an
// InvalidArgument error naming the source; it never throws, crashes or hangs,
// and what it accepts is within the documented ranges.
#include <cstdint>
#include <string>

#include "switch/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // pair.key_file names a file the loader reads; fuzzed paths must not reach
  // devices or the fuzzer's own files (a separate unit test covers the key file).
  if (text.find("key_file") != std::string::npos) return 0;
  auto c = tandem::sw::ParseSwitchConfig(text, "fuzz.toml");
  if (!c.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(c.status()), "error code: %s",
               c.status().ToString().c_str());
    FUZZ_CHECK(c.status().message().find("fuzz.toml") != absl::string_view::npos,
               "error does not name the source: %s", c.status().ToString().c_str());
    return 0;
  }
  FUZZ_CHECK(c->burst >= 1 && c->burst <= 256, "burst %u", c->burst);
  FUZZ_CHECK(c->mtu >= 576 && c->mtu <= 9000, "mtu %u", c->mtu);
  FUZZ_CHECK(c->vlan <= 4094, "vlan %u", c->vlan);
  FUZZ_CHECK(!c->worker_lcores.empty(), "no worker lcore");
  FUZZ_CHECK(c->capacity.legs >= 1 && c->capacity.meetings >= 1, "capacity");
  FUZZ_CHECK(!c->ports.empty(), "accepted without a port");
  return 0;
}
