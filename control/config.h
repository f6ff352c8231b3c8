// Configuration of tandem-control: a TOML file in the switch's format (same
// node, shm_dir and [tables] keys), overridden by command-line flags.
//
//   node = "a"
//   shm_dir = "/dev/shm/tandem"  shm_group = "tandem" (optional: the region directory 0750)
//   role = "active"            # until the mirror owns role and epoch
//   [tables]   legs = 1048576   meetings = 262144
//   [api]      listen = "unix:/run/tandem/a.sock"   tcp = "127.0.0.1:7443" (optional)
//              socket_mode = "0660"  socket_group = "tandem"   (the Unix socket's access)
//              tls_cert = "server.crt"  tls_key = "server.key"  tls_ca = "clients-ca.crt"
//              (required by a TCP listener: mutual TLS, never plaintext)
//   [api.roles] read_only = [...]  operator = [...]  admin = [...]  (control/api_roles.h)
//   [store]    path = "/var/lib/tandem/a.db"
//   [metrics]  listen = "127.0.0.1:9464"            (empty: off)
//   [access]   vips = ["198.18.0.100", "2001:db8:1::100"]
//   [pool]     vips = [...] (default: access vips)  ports = "20000-59999"
//   [watch]    history = 65536   (changes held for resuming Watch streams)
//   [access]   mode = "l2" | "routed", and [routing]: control/routing_config.h
//   [limits]   audio_pps = 200  audio_kbps = 640  video_pps = 2000  video_kbps = 10000
//              share_pps = 2000  share_kbps = 10000  meeting_copies_per_s = 500000
//              (the node's defaults where a site's policy does not say; 0 = unlimited)
//   [notify]   command = "/etc/tandem/notify.sh"  timeout_s = 30  (control/notify.h)
//   [fleet]    etcd = [...]  pair_id = "pair-1"  data_center = "dc1" (control/fleet_config.h)
//   log_level = "info"          (common/log.h; unknown keys anywhere are errors)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/log.h"
#include "common/net/addr.h"
#include "common/tables/tables.h"
#include "control/api_roles.h"
#include "control/fleet_config.h"
#include "control/routing_config.h"
#include "control/media_limits.h"

namespace tandem::control {

// [pair]: this node is one of a primary/standby pair (docs/pair.md).
struct PairConfig {
  bool enabled = false;
  uint32_t node_id = 0;       // the same as the switch's pair.node_id
  uint32_t peer_node_id = 0;
  // The backbone replication key, derived from the pair key (pair.key_file,
  // or pair.key inline) by common/keys.h.
  std::string replication_key;
  std::string listen;         // "HOST:PORT" on the backbone: served while active
  std::string peer;           // the peer's listen address: followed while standby
  std::string peer_api;       // the peer's API address, named when a standby refuses a write
  bool sync = false;          // mode = "sync": writes return once the standby stored them
  bool strict = false;        // mode = "sync-strict": ... and are refused without a standby
  uint32_t sync_timeout_ms = 1000;
  // Alarm replication_lag while the oldest change the standby lacks is older.
  uint32_t lag_alarm_ms = 1000;
  uint32_t heartbeat_ms = 10;  // the same as the switch's pair.heartbeat_ms
  uint32_t multiplier = 3;
  bool preempt = false;
  // Replication in TLS 1.3 with a PSK from the pair key (mirror/tls.h); both
  // nodes must agree. Off only where the backbone is already encrypted.
  bool backbone_tls = true;
  uint32_t usage_interval_ms = 100;
  uint64_t compare_interval_s = 86400;
  // Changes the active keeps for a standby to resume from after a break
  // (older: a full resync): at most this many, in at most this much memory.
  uint64_t backlog_changes = 1u << 20;
  uint64_t backlog_mib = 128;
};

struct Config {
  std::string node = "a";
  // The region files' directory: made 0700 (0750 with shm_group) when
  // missing; refused when anyone else could write to it (common/secure_file.h).
  std::string shm_dir = "/dev/shm/tandem";
  std::string shm_group;
  std::string role = "active";  // "active" or "standby"
  log::Level log_level = log::Level::kInfo;  // the least important level logged
  // Run at every role change with the new role (control/notify.h); empty: none.
  std::string notify_command;
  uint64_t notify_timeout_s = 30;
  tables::Capacity capacity;
  std::string api_listen = "unix:/run/tandem/a.sock";
  std::string api_tcp;  // optional second listener, host:port
  // Access to the Unix socket: octal mode ("0660") and group (name or
  // number), set once the socket is bound. Empty: left as created (the
  // daemon's umask, 0755 under the usual 022: only its owner may connect).
  std::string api_socket_mode;
  std::string api_socket_group;
  // Mutual TLS of every TCP listener (PEM files): the server's certificate
  // chain and key, and the CA that issues the clients' certificates.
  std::string api_tls_cert;
  std::string api_tls_key;
  std::string api_tls_ca;
  // Who may make which call, by identity (control/api_roles.h).
  RolesConfig api_roles;
  std::string store_path = "/var/lib/tandem/a.db";
  std::string metrics_listen = "127.0.0.1:9464";
  std::vector<IpAddr> access_vips;
  std::vector<IpAddr> pool_vips;
  uint16_t pool_first_port = 20000;
  uint16_t pool_last_port = 59999;
  size_t watch_history = 65536;   // changes kept for resuming Watch streams ...
  uint64_t watch_history_mib = 64;  // ... in at most this much memory
  MediaLimits limits;  // [limits]
  PairConfig pair;
  // How the VIPs move between the nodes: GARP / unsolicited NA on one
  // segment, or BGP announcements through a routing daemon (docs/routed.md).
  AccessMode access_mode = AccessMode::kL2;
  RoutingConfig routing;
  FleetConfig fleet;  // [fleet]: registration in the fleet's directory
};

// Parses a config file; InvalidArgument naming the key on a bad value.
absl::StatusOr<Config> LoadConfig(const std::string& path);
// Parses TOML text (for tests).
absl::StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin);
// Checks cross-key rules (pool VIPs are access VIPs, role, ports, a TCP
// API listener has tls_cert, tls_key and tls_ca, the socket mode parses).
absl::Status ValidateConfig(Config& config);

// True for an API address that is a Unix socket path ("unix:PATH"); any
// other address is a network listener and needs mutual TLS.
bool IsUnixAddress(const std::string& addr);
// "HOST:PORT" or "[V6]:PORT" with a port 1..65535: the form of every TCP
// listener (API, metrics). InvalidArgument naming `what` otherwise.
absl::Status CheckHostPort(const std::string& text, const std::string& what);
// "0660", "660" or "0o660": permission bits 0..0777; InvalidArgument otherwise.
absl::StatusOr<uint32_t> ParseSocketMode(const std::string& text);

}  // namespace tandem::control
