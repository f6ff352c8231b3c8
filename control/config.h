// Configuration of tandem-control: a TOML file in the switch's format (same
// node, shm_dir and [tables] keys), overridden by command-line flags.
//
//   node = "a"
//   shm_dir = "/dev/shm"
//   role = "active"            # until the mirror owns role and epoch
//   [tables]   legs = 1048576   meetings = 262144
//   [api]      listen = "unix:/run/tandem/a.sock"   tcp = "127.0.0.1:7443" (optional)
//   [store]    path = "/var/lib/tandem/a.db"
//   [metrics]  listen = "127.0.0.1:9464"            (empty: off)
//   [access]   vips = ["198.18.0.100", "2001:db8:1::100"]
//   [pool]     vips = [...] (default: access vips)  ports = "20000-59999"
//   [watch]    history = 65536   (changes held for resuming Watch streams)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/addr.h"
#include "common/tables/tables.h"

namespace tandem::control {

struct Config {
  std::string node = "a";
  std::string shm_dir = "/dev/shm";
  std::string role = "active";  // "active" or "standby"
  tables::Capacity capacity;
  std::string api_listen = "unix:/run/tandem/a.sock";
  std::string api_tcp;  // optional second listener, host:port
  std::string store_path = "/var/lib/tandem/a.db";
  std::string metrics_listen = "127.0.0.1:9464";
  std::vector<IpAddr> access_vips;
  std::vector<IpAddr> pool_vips;
  uint16_t pool_first_port = 20000;
  uint16_t pool_last_port = 59999;
  size_t watch_history = 65536;
};

// Parses a config file; InvalidArgument naming the key on a bad value.
absl::StatusOr<Config> LoadConfig(const std::string& path);
// Parses TOML text (for tests).
absl::StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin);
// Checks cross-key rules (pool VIPs are access VIPs, role, ports).
absl::Status ValidateConfig(Config& config);

}  // namespace tandem::control
