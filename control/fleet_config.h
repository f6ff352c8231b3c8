// [fleet]: this node registers itself in the fleet's directory on etcd
// (docs/fleet.md, "Registration by the daemon"). Without the table the node
// is in no fleet.
//
//   [fleet]
//   etcd = ["198.18.7.1:2379", "198.18.7.2:2379", "198.18.7.3:2379"]
//   pair_id = "pair-1"
//   data_center = "dc1"
//   node_id = "a"             # default: the node's name
//   api = "unix:/run/tandem/a.sock"  # the address applications call; default:
//                                    # [api] tcp, else [api] listen
//   prefix = "/tandem/fleet/"
//   legs = 0  meetings = 0    # capacity offered; 0: the [tables] capacity
//   lease_ttl_s = 6           # the record goes this long after a kill -9
//   refresh_ms = 1000         # role, epoch and load are looked at this often
//   tls_ca = "/etc/tandem/etcd-ca.crt"   # TLS to etcd (every endpoint); optional
//   tls_cert = "/etc/tandem/etcd-client.crt"  # and tls_key: for --client-cert-auth
//   witness = false           # etcd as the pair's witness (needs [pair]); below:
//   witness_ttl_s = 3         # the leadership key's lease
//   witness_renew_ms = 500    # renewed this often
//   witness_margin_ms = 1000  # an active cut off steps down this long before
//                             # its lease can expire in etcd
//   witness_guard_ms = 100    # a standby takes over this long after acquiring
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/fleet/witness.h"

namespace tandem::control {

struct FleetConfig {
  bool enabled = false;
  std::vector<std::string> etcd;
  std::string prefix = "/tandem/fleet/";
  std::string pair_id;
  std::string node_id;
  std::string data_center;
  std::string api;
  uint64_t legs = 0, meetings = 0;
  uint64_t lease_ttl_s = 6;
  uint64_t refresh_ms = 1000;
  std::string tls_ca, tls_cert, tls_key;  // file paths
  bool witness = false;
  uint64_t witness_ttl_s = 3;
  uint64_t witness_renew_ms = 500;
  uint64_t witness_margin_ms = 1000;
  uint64_t witness_guard_ms = 100;
  // Their contents, read by ValidateFleetConfig.
  std::string tls_ca_pem, tls_cert_pem, tls_key_pem;
};

// Reads root's [fleet] table, if any (its keys are in config.cc's known keys).
absl::Status ParseFleetConfig(const toml::table& root, const std::string& origin,
                              FleetConfig* out);
// Fills the defaults (node id, API address, capacity), reads the TLS files
// and checks every key.
absl::Status ValidateFleetConfig(FleetConfig& fleet, const std::string& node,
                                 const std::string& api_default, uint64_t legs,
                                 uint64_t meetings);
// The witness's timing as fleet::Witness takes it.
fleet::WitnessConfig WitnessTiming(const FleetConfig& fleet);

}  // namespace tandem::control
