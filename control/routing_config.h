// Routed VIPs (docs/routed.md): with `[access] mode = "routed"` a node announces
// its VIP prefixes over BGP to its data center's routers through BIRD 2, a
// routing daemon that runs beside Tandem as its own process. Tandem writes
// BIRD's whole configuration from the [routing] table and reloads it over
// BIRD's control socket; it speaks neither BGP nor BFD itself.
//
//   [access]
//   mode = "routed"                       # "l2" (default): GARP / unsolicited NA
//   [routing]
//   daemon = "bird"                       # the only one supported
//   control_socket = "/run/bird/bird.ctl" # bird -s ...
//   config_file = "/etc/bird/bird.conf"   # bird -c ...: written by Tandem
//   include = ""                          # the operator's own BIRD configuration
//   log = "syslog"                        # or "stderr", or a file
//   local_as = 65101
//   router_id = "198.18.30.2"
//   prefixes = []                         # empty: each VIP as /32 or /128
//   standby = "prepend"                   # or "local_pref", or "withdraw"
//   prepend = 3
//   local_pref_active = 200               # standby = "local_pref" (iBGP)
//   local_pref_standby = 100
//   bfd_interval_ms = 10
//   bfd_multiplier = 3
//   hold_time_s = 3
//   connect_retry_s = 1
//   preferred_dc = "any"                  # or "this", or "peer": split brain
//   [[routing.neighbor]]
//   address = "198.18.30.1"               # IPv4 or IPv6: carries that family
//   as = 65010
//   local = "198.18.30.2"                 # optional
//   interface = "eth1"                    # optional
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/net/addr.h"

namespace tandem::control {

enum class AccessMode { kL2, kRouted };

// What a standby announces.
enum class StandbyPolicy {
  kPrepend,    // the VIP prefixes with our AS prepended `prepend` more times
  kLocalPref,  // the VIP prefixes with LOCAL_PREF local_pref_standby (iBGP routers)
  kWithdraw,   // nothing
};

// Who yields when the backbone is cut and both nodes are active
// (docs/routed.md "Split brain"): an active node that cannot hear its peer
// is fenced (refuses writes, withdraws the VIPs) when...
enum class PreferredDc {
  kAny,   // ... its router offers it another origin's path: its own is not best
  kThis,  // ... never: this DC wins every cut (the peer must be "peer")
  kPeer,  // ... always: the peer's DC wins every cut, even one the peer did not survive
};

struct RoutingNeighbor {
  IpAddr address;  // the router's address; its family is the session's
  uint32_t as = 0;
  IpAddr local;           // our address toward it; zero: the kernel's choice
  std::string interface;  // empty: any
};

struct RoutingConfig {
  std::string daemon = "bird";
  std::string control_socket = "/run/bird/bird.ctl";
  std::string config_file = "/etc/bird/bird.conf";
  std::string include;
  std::string log = "syslog";
  uint32_t local_as = 0;
  IpAddr router_id;
  std::vector<IpPrefix> prefixes;
  StandbyPolicy standby = StandbyPolicy::kPrepend;
  uint32_t prepend = 3;
  uint32_t local_pref_active = 200;
  uint32_t local_pref_standby = 100;
  uint32_t bfd_interval_ms = 10;
  uint32_t bfd_multiplier = 3;
  uint32_t hold_time_s = 3;
  uint32_t connect_retry_s = 1;
  PreferredDc preferred_dc = PreferredDc::kAny;
  std::vector<RoutingNeighbor> neighbors;
};

// Reads `[access] mode` and the [routing] table of a tandem-control
// configuration; InvalidArgument naming the key on a bad value.
absl::Status ParseRoutingConfig(const toml::table& root, const std::string& origin,
                                AccessMode* mode, RoutingConfig* out);

// Cross-key rules of routed mode: a router id, an AS, at least one
// neighbour, and every VIP inside an announced prefix.
absl::Status ValidateRoutingConfig(const RoutingConfig& r, const std::vector<IpAddr>& vips);

// The prefixes announced for `vips`: the configured ones, else each VIP as a
// host route (/32, /128).
std::vector<IpPrefix> AnnouncedPrefixes(const RoutingConfig& r, const std::vector<IpAddr>& vips);

}  // namespace tandem::control
