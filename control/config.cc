#include "control/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/keys.h"
#include "common/toml_keys.h"
#include "control/toml_read.h"
#include "mirror/net.h"

namespace tandem::control {
namespace toml_read {

absl::Status Bad(const std::string& origin, const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", key, ": ", why));
}

absl::Status ReadString(const toml::table& t, const char* key, const std::string& origin,
                        std::string* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  auto v = n->value<std::string>();
  if (!v) return Bad(origin, key, "must be a string");
  *out = *v;
  return absl::OkStatus();
}

}  // namespace toml_read

namespace {

using toml_read::Bad;
using toml_read::ReadString;

absl::Status ReadUint(const toml::table& t, const char* key, const std::string& origin,
                      uint64_t max, uint64_t* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  // value<int64_t>() of an out-of-range float is undefined: ask for the type first.
  auto v = n->is_integer() ? n->value<int64_t>() : std::nullopt;
  if (!v || *v < 0 || static_cast<uint64_t>(*v) > max) {
    return Bad(origin, key, absl::StrCat("must be an integer 0..", max));
  }
  *out = static_cast<uint64_t>(*v);
  return absl::OkStatus();
}

// ReadUint into a narrower field; `max` keeps the value in its range.
template <typename T>
absl::Status ReadUintTo(const toml::table& t, const char* key, const std::string& origin,
                        uint64_t max, T* out) {
  uint64_t v = *out;
  absl::Status st = ReadUint(t, key, origin, max, &v);
  *out = static_cast<T>(v);
  return st;
}

absl::Status ReadStrings(const toml::table& t, const char* key, const std::string& origin,
                         std::vector<std::string>* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  const toml::array* arr = n->as_array();
  if (!arr) return Bad(origin, key, "must be an array of strings");
  out->clear();
  for (const toml::node& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) return Bad(origin, key, "must be an array of strings");
    out->push_back(*s);
  }
  return absl::OkStatus();
}

absl::Status ReadAddrs(const toml::table& t, const char* key, const std::string& origin,
                       std::vector<IpAddr>* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  const toml::array* arr = n->as_array();
  if (!arr) return Bad(origin, key, "must be an array of addresses");
  out->clear();
  for (const toml::node& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) return Bad(origin, key, "must be an array of addresses");
    auto a = IpAddr::Parse(*s);
    if (!a.ok()) return Bad(origin, key, std::string(a.status().message()));
    out->push_back(*a);
  }
  return absl::OkStatus();
}

// Every key this file and routing_config.cc read (docs/control.md, pair.md,
// config.md); any other is an error naming it.
const std::vector<absl::string_view> kKnownKeys = {
    "node", "shm_dir", "shm_group", "role", "log_level",
    "tables.legs", "tables.meetings",
    "api.listen", "api.tcp", "api.socket_mode", "api.socket_group", "api.tls_cert",
    "api.tls_key", "api.tls_ca", "api.roles.read_only", "api.roles.operator", "api.roles.admin",
    "store.path", "metrics.listen",
    "access.vips", "access.mode",
    "pool.vips", "pool.ports",
    "watch.history", "watch.history_mib",
    "notify.command", "notify.timeout_s",
    "pair.node_id", "pair.peer_node_id", "pair.key", "pair.key_file", "pair.listen", "pair.peer",
    "pair.peer_api", "pair.mode", "pair.sync_timeout_ms", "pair.heartbeat_ms", "pair.multiplier",
    "pair.preempt", "pair.usage_interval_ms", "pair.compare_interval_s", "pair.backlog_changes",
    "pair.backlog_mib", "pair.lag_alarm_ms", "pair.backbone_tls",
    "limits.audio_pps", "limits.audio_kbps", "limits.video_pps", "limits.video_kbps",
    "limits.share_pps", "limits.share_kbps", "limits.meeting_copies_per_s",
    "routing.daemon", "routing.control_socket", "routing.config_file", "routing.include",
    "routing.log", "routing.local_as", "routing.router_id", "routing.prefixes",
    "routing.standby", "routing.prepend", "routing.local_pref_active",
    "routing.local_pref_standby", "routing.bfd_interval_ms", "routing.bfd_multiplier",
    "routing.hold_time_s", "routing.connect_retry_s", "routing.preferred_dc",
    "routing.neighbor[].address", "routing.neighbor[].as", "routing.neighbor[].local",
    "routing.neighbor[].interface",
    "fleet.etcd", "fleet.prefix", "fleet.pair_id", "fleet.node_id", "fleet.data_center",
    "fleet.api", "fleet.legs", "fleet.meetings", "fleet.lease_ttl_s", "fleet.refresh_ms",
    "fleet.tls_ca", "fleet.tls_cert", "fleet.tls_key", "fleet.witness", "fleet.witness_ttl_s",
    "fleet.witness_renew_ms", "fleet.witness_margin_ms", "fleet.witness_guard_ms",
};

// Collects the first error of a configuration, the one reported.
class FirstError {
 public:
  void operator()(absl::Status s) {
    if (st_.ok()) st_ = std::move(s);
  }
  bool ok() const { return st_.ok(); }
  const absl::Status& status() const { return st_; }

 private:
  absl::Status st_;
};

void ReadApiRoles(const toml::node& r, const std::string& origin, Config& c, FirstError& chain) {
  const toml::table* roles = r.as_table();
  if (!roles) chain(Bad(origin + " [api]", "roles", "must be a table"));
  std::string o = origin + " [api.roles]";
  for (const auto& [k, v] : roles ? *roles : toml::table{}) {
    (void)v;
    std::string key(k.str());
    std::vector<std::string>* list = key == "read_only" ? &c.api_roles.read_only
                                     : key == "operator" ? &c.api_roles.operator_
                                     : key == "admin"    ? &c.api_roles.admin
                                                         : nullptr;
    if (!list) {
      chain(Bad(o, key, "is not a role: want read_only, operator or admin"));
      continue;
    }
    chain(ReadStrings(*roles, key.c_str(), o, list));
  }
}

void ReadApi(const toml::table& t, const std::string& origin, Config& c, FirstError& chain) {
  chain(ReadString(t, "listen", origin + " [api]", &c.api_listen));
  chain(ReadString(t, "tcp", origin + " [api]", &c.api_tcp));
  chain(ReadString(t, "socket_mode", origin + " [api]", &c.api_socket_mode));
  if (!c.api_socket_mode.empty()) {
    if (auto m = ParseSocketMode(c.api_socket_mode); !m.ok()) {
      chain(Bad(origin + " [api]", "socket_mode", std::string(m.status().message())));
    }
  }
  chain(ReadString(t, "socket_group", origin + " [api]", &c.api_socket_group));
  chain(ReadString(t, "tls_cert", origin + " [api]", &c.api_tls_cert));
  chain(ReadString(t, "tls_key", origin + " [api]", &c.api_tls_key));
  chain(ReadString(t, "tls_ca", origin + " [api]", &c.api_tls_ca));
  if (const toml::node* r = t.get("roles")) ReadApiRoles(*r, origin, c, chain);
}

void ReadPool(const toml::table& t, const std::string& origin, Config& c, FirstError& chain) {
  chain(ReadAddrs(t, "vips", origin + " [pool]", &c.pool_vips));
  std::string ports;
  chain(ReadString(t, "ports", origin + " [pool]", &ports));
  if (!ports.empty()) {
    std::vector<std::string> parts = absl::StrSplit(ports, '-');
    uint32_t lo = 0, hi = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &lo) ||
        !absl::SimpleAtoi(parts[1], &hi) || lo == 0 || hi > 65535 || lo > hi) {
      chain(Bad(origin + " [pool]", "ports", "must be \"FIRST-LAST\" within 1-65535"));
    } else {
      c.pool_first_port = static_cast<uint16_t>(lo);
      c.pool_last_port = static_cast<uint16_t>(hi);
    }
  }
}

void ReadLimits(const toml::table& t, const std::string& origin, Config& c, FirstError& chain) {
  std::string o = origin + " [limits]";
  static constexpr const char* kKeys[tables::kChannels][2] = {
      {"audio_pps", "audio_kbps"}, {"video_pps", "video_kbps"}, {"share_pps", "share_kbps"}};
  for (uint32_t ch = 0; ch < tables::kChannels; ++ch) {
    ChannelLimits& l = c.limits.channel[ch];
    uint64_t pps = l.pps, kbps = l.kbps;
    chain(ReadUint(t, kKeys[ch][0], o, 0xffffffffu, &pps));
    chain(ReadUint(t, kKeys[ch][1], o, 0xffffffffu, &kbps));
    l.pps = static_cast<uint32_t>(pps);
    l.kbps = static_cast<uint32_t>(kbps);
  }
  uint64_t copies = c.limits.meeting_copies_per_s;
  chain(ReadUint(t, "meeting_copies_per_s", o, 0xffffffffu, &copies));
  c.limits.meeting_copies_per_s = static_cast<uint32_t>(copies);
}

void ReadPair(const toml::table& t, const std::string& origin, PairConfig& p, FirstError& chain) {
  std::string o = origin + " [pair]";
  p.enabled = true;
  chain(ReadUintTo(t, "node_id", o, 0xffffffffu, &p.node_id));
  chain(ReadUintTo(t, "peer_node_id", o, 0xffffffffu, &p.peer_node_id));
  std::string key, key_file;
  chain(ReadString(t, "key", o, &key));
  chain(ReadString(t, "key_file", o, &key_file));
  if (chain.ok()) {
    auto secret = keys::LoadPairSecret(key, key_file, origin);
    auto derived = secret.ok() ? keys::DerivePairKeys(*secret) : secret.status();
    if (!derived.ok()) {
      chain(absl::InvalidArgumentError(std::string(derived.status().message())));
    } else {
      p.replication_key = derived->replication;
    }
  }
  chain(ReadString(t, "listen", o, &p.listen));
  chain(ReadString(t, "peer", o, &p.peer));
  chain(ReadString(t, "peer_api", o, &p.peer_api));
  std::string mode = "async";
  chain(ReadString(t, "mode", o, &mode));
  if (mode != "async" && mode != "sync" && mode != "sync-strict") {
    chain(Bad(o, "mode", "must be \"async\", \"sync\" or \"sync-strict\""));
  }
  p.sync = mode == "sync" || mode == "sync-strict";
  p.strict = mode == "sync-strict";
  chain(ReadUintTo(t, "sync_timeout_ms", o, 600000, &p.sync_timeout_ms));
  chain(ReadUintTo(t, "lag_alarm_ms", o, 3600000, &p.lag_alarm_ms));
  chain(ReadUintTo(t, "heartbeat_ms", o, 10000, &p.heartbeat_ms));
  chain(ReadUintTo(t, "multiplier", o, 100, &p.multiplier));
  if (const toml::node* n = t.get("preempt")) {
    if (!n->is_boolean()) chain(Bad(o, "preempt", "must be true or false"));
    else p.preempt = *n->value<bool>();
  }
  if (const toml::node* n = t.get("backbone_tls")) {
    if (!n->is_boolean()) chain(Bad(o, "backbone_tls", "must be true or false"));
    else p.backbone_tls = *n->value<bool>();
  }
  chain(ReadUintTo(t, "usage_interval_ms", o, 3600000, &p.usage_interval_ms));
  chain(ReadUint(t, "compare_interval_s", o, 365ull * 86400, &p.compare_interval_s));
  chain(ReadUint(t, "backlog_changes", o, 1ull << 26, &p.backlog_changes));
  chain(ReadUint(t, "backlog_mib", o, 1ull << 20, &p.backlog_mib));
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << e.source().begin;
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", os.str(), ": ", std::string(e.description())));
  }
  Config c;
  FirstError chain;
  chain(CheckKnownKeys(root, kKnownKeys, origin));
  chain(ReadString(root, "node", origin, &c.node));
  std::string level;
  chain(ReadString(root, "log_level", origin, &level));
  if (!level.empty() && !log::ParseLevel(level, &c.log_level)) {
    chain(Bad(origin, "log_level",
              "must be one of emerg, alert, crit, err, warning, notice, info, debug"));
  }
  chain(ReadString(root, "shm_dir", origin, &c.shm_dir));
  chain(ReadString(root, "shm_group", origin, &c.shm_group));
  chain(ReadString(root, "role", origin, &c.role));
  if (const toml::table* t = root["tables"].as_table()) {
    uint64_t legs = c.capacity.legs, meetings = c.capacity.meetings;
    chain(ReadUint(*t, "legs", origin + " [tables]", 1u << 26, &legs));
    chain(ReadUint(*t, "meetings", origin + " [tables]", 1u << 24, &meetings));
    c.capacity.legs = static_cast<uint32_t>(legs);
    c.capacity.meetings = static_cast<uint32_t>(meetings);
  }
  if (const toml::table* t = root["api"].as_table()) ReadApi(*t, origin, c, chain);
  if (const toml::table* t = root["store"].as_table()) {
    chain(ReadString(*t, "path", origin + " [store]", &c.store_path));
  }
  if (const toml::table* t = root["metrics"].as_table()) {
    chain(ReadString(*t, "listen", origin + " [metrics]", &c.metrics_listen));
  }
  if (const toml::table* t = root["access"].as_table()) {
    chain(ReadAddrs(*t, "vips", origin + " [access]", &c.access_vips));
  }
  if (const toml::table* t = root["pool"].as_table()) ReadPool(*t, origin, c, chain);
  if (const toml::table* t = root["watch"].as_table()) {
    uint64_t h = c.watch_history;
    chain(ReadUint(*t, "history", origin + " [watch]", 1u << 24, &h));
    c.watch_history = h;
    chain(ReadUint(*t, "history_mib", origin + " [watch]", 1u << 16, &c.watch_history_mib));
  }
  if (const toml::table* t = root["notify"].as_table()) {
    chain(ReadString(*t, "command", origin + " [notify]", &c.notify_command));
    chain(ReadUint(*t, "timeout_s", origin + " [notify]", 3600, &c.notify_timeout_s));
    if (!c.notify_command.empty() && c.notify_command.front() != '/') {
      chain(Bad(origin + " [notify]", "command", "must be an absolute path"));
    }
  }
  if (const toml::table* t = root["limits"].as_table()) ReadLimits(*t, origin, c, chain);
  if (const toml::table* t = root["pair"].as_table()) ReadPair(*t, origin, c.pair, chain);
  chain(ParseRoutingConfig(root, origin, &c.access_mode, &c.routing));
  chain(ParseFleetConfig(root, origin, &c.fleet));
  if (!chain.ok()) return chain.status();
  return c;
}

bool IsUnixAddress(const std::string& addr) { return addr.rfind("unix:", 0) == 0; }

absl::StatusOr<uint32_t> ParseSocketMode(const std::string& text) {
  bool ok = text.size() >= 3 && text.size() <= 4;
  uint32_t mode = 0;
  for (char ch : text) {
    ok = ok && ch >= '0' && ch <= '7';
    mode = mode * 8 + static_cast<uint32_t>(ch - '0');
  }
  if (!ok || mode > 0777) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text,
                     "\" is not a mode: want 3 or 4 octal digits up to 0777, such as "
                     "\"0660\""));
  }
  return mode;
}

absl::Status CheckHostPort(const std::string& text, const std::string& what) {
  size_t colon = text.rfind(':');
  int port = 0;
  std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (colon == std::string::npos || host.empty() ||
      !absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", text, "\" is not HOST:PORT with a port 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

namespace {

absl::Status ValidateListeners(const Config& c) {
  if (!c.metrics_listen.empty()) {
    if (auto st = CheckHostPort(c.metrics_listen, "[metrics] listen"); !st.ok()) return st;
  }
  if (IsUnixAddress(c.api_listen)) {
    if (c.api_listen.size() <= 5 || c.api_listen.size() - 5 >= 108) {
      return absl::InvalidArgumentError(absl::StrCat(
          "[api] listen: \"", c.api_listen, "\" needs a socket path of 1..107 bytes"));
    }
  } else if (!c.api_listen.empty()) {
    if (auto st = CheckHostPort(c.api_listen, "[api] listen"); !st.ok()) return st;
  }
  if (!c.api_tcp.empty()) {
    if (auto st = CheckHostPort(c.api_tcp, "[api] tcp"); !st.ok()) return st;
  }
  return absl::OkStatus();
}

// Without [pool] vips, the pool hands out all [access] vips.
absl::Status ValidatePoolVips(Config& c) {
  if (c.pool_vips.empty()) c.pool_vips = c.access_vips;
  for (const IpAddr& p : c.pool_vips) {
    bool found = false;
    for (const IpAddr& a : c.access_vips) found |= (a == p);
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("[pool] vip ", p.ToString(), " is not one of the [access] vips"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateApiAccess(const Config& c) {
  if (c.api_listen.empty() && c.api_tcp.empty()) {
    return absl::InvalidArgumentError("[api] needs listen or tcp");
  }
  if (!c.api_socket_mode.empty()) {
    if (auto m = ParseSocketMode(c.api_socket_mode); !m.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("[api] socket_mode: ", m.status().message()));
    }
  }
  if ((!c.api_socket_mode.empty() || !c.api_socket_group.empty()) && !IsUnixAddress(c.api_listen)) {
    return absl::InvalidArgumentError(
        "[api] socket_mode and socket_group need a Unix socket listen = \"unix:PATH\"");
  }
  // The API is never served in plaintext over TCP: a network listener takes
  // only clients whose certificate the configured CA issued.
  std::string tcp = !c.api_tcp.empty()             ? c.api_tcp
                    : !IsUnixAddress(c.api_listen) ? c.api_listen
                                                   : "";
  if (tcp.empty()) return absl::OkStatus();
  std::vector<std::string> missing;
  if (c.api_tls_cert.empty()) missing.push_back("tls_cert");
  if (c.api_tls_key.empty()) missing.push_back("tls_key");
  if (c.api_tls_ca.empty()) missing.push_back("tls_ca");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[api] TCP listener ", tcp, " needs ", absl::StrJoin(missing, ", "),
                     " (mutual TLS: the server's certificate and key, the CA of the clients' "
                     "certificates; the API is never served in plaintext over TCP)"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePair(const PairConfig& p) {
  if (p.node_id == 0 || p.peer_node_id == 0 || p.node_id == p.peer_node_id) {
    return absl::InvalidArgumentError(
        "[pair] node_id and peer_node_id must be set, non-zero and different");
  }
  if (p.listen.empty() || p.peer.empty()) {
    return absl::InvalidArgumentError("[pair] listen and peer (HOST:PORT) are required");
  }
  for (const auto& [key, value] : {std::pair{"listen", p.listen}, std::pair{"peer", p.peer}}) {
    if (auto e = mirror::ParseEndpoint(value); !e.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[pair] ", key, ": \"", value, "\" is not IP:PORT (", e.status().message(), ")"));
    }
  }
  if (p.backlog_changes < 1024) {
    return absl::InvalidArgumentError("[pair] backlog_changes must be >= 1024");
  }
  if (p.backlog_mib < 1) return absl::InvalidArgumentError("[pair] backlog_mib must be >= 1");
  if (p.heartbeat_ms == 0 || p.multiplier == 0 || p.usage_interval_ms == 0) {
    return absl::InvalidArgumentError(
        "[pair] heartbeat_ms, multiplier and usage_interval_ms must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateConfig(Config& c) {
  if (c.node.empty() || c.node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("node must be a plain, non-empty name");
  }
  if (c.shm_dir.empty() || c.shm_dir.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("shm_dir must be an absolute path, not \"", c.shm_dir, "\""));
  }
  if (c.store_path.empty() || c.store_path.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("[store] path must name a file, not \"", c.store_path, "\""));
  }
  if (absl::Status st = ValidateListeners(c); !st.ok()) return st;
  if (c.watch_history == 0 || c.watch_history_mib == 0) {
    return absl::InvalidArgumentError("[watch] history and history_mib must be >= 1");
  }
  if (c.role != "active" && c.role != "standby") {
    return absl::InvalidArgumentError(
        absl::StrCat("role must be \"active\" or \"standby\", not \"", c.role, "\""));
  }
  if (c.capacity.legs == 0 || c.capacity.meetings == 0) {
    return absl::InvalidArgumentError("[tables] legs and meetings must be positive");
  }
  if (absl::Status st = ValidatePoolVips(c); !st.ok()) return st;
  if (absl::Status st = ValidateApiAccess(c); !st.ok()) return st;
  if (c.access_mode == AccessMode::kRouted) {
    if (absl::Status st = ValidateRoutingConfig(c.routing, c.access_vips); !st.ok()) return st;
  }
  if (absl::Status st = ValidateFleetConfig(c.fleet, c.node, c.api_tcp.empty() ? c.api_listen : c.api_tcp,
                                            c.capacity.legs, c.capacity.meetings);
      !st.ok()) {
    return st;
  }
  if (c.fleet.witness && !c.pair.enabled) {
    return absl::InvalidArgumentError("[fleet] witness = true needs a [pair]: it witnesses one");
  }
  if (c.pair.enabled) return ValidatePair(c.pair);
  return absl::OkStatus();
}

}  // namespace tandem::control
