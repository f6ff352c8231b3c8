#include "switch/config.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "absl/strings/str_cat.h"
#include "common/keys.h"
#include "common/toml_keys.h"

namespace tandem::sw {
namespace {

class Reader {
 public:
  Reader(const toml::table& root, const std::string& source) : root_(root), source_(source) {}

  absl::Status error() const { return error_; }

  template <typename T>
  void Int(const char* path, T& out, int64_t min, int64_t max) {
    auto node = root_.at_path(path);
    if (!node) return;
    // toml++ converts a float to int64_t with undefined behaviour when it is
    // out of range: ask for the type first.
    if (!node.is_integer()) return Fail(path, "must be an integer");
    auto v = node.value<int64_t>();
    if (!v) return Fail(path, "must be an integer");
    if (*v < min || *v > max) {
      return Fail(path, absl::StrCat("must be between ", min, " and ", max));
    }
    out = static_cast<T>(*v);
  }
  void Str(const char* path, std::string& out) {
    auto node = root_.at_path(path);
    if (!node) return;
    if (!node.is_string()) return Fail(path, "must be a string");
    out = *node.value<std::string>();
  }
  void Bool(const char* path, bool& out) {
    auto node = root_.at_path(path);
    if (!node) return;
    if (!node.is_boolean()) return Fail(path, "must be true or false");
    out = *node.value<bool>();
  }
  void StrList(const char* path, std::vector<std::string>& out) {
    auto node = root_.at_path(path);
    if (!node) return;
    const toml::array* a = node.as_array();
    if (!a) return Fail(path, "must be a list of strings");
    out.clear();
    for (const auto& e : *a) {
      if (!e.is_string()) return Fail(path, "must be a list of strings");
      out.push_back(*e.value<std::string>());
    }
  }
  // A non-empty list of lcore or CPU numbers; `what` names them in errors.
  void NumberList(const char* path, std::vector<unsigned>& out, const char* what) {
    auto node = root_.at_path(path);
    if (!node) return;
    const toml::array* a = node.as_array();
    if (!a || a->empty()) {
      return Fail(path, absl::StrCat("must be a non-empty list of ", what, " numbers"));
    }
    out.clear();
    for (const auto& e : *a) {
      auto v = e.is_integer() ? e.value<int64_t>() : std::nullopt;
      if (!v || *v < 0 || *v > 1023) {
        return Fail(path, absl::StrCat("must be a list of ", what, " numbers"));
      }
      out.push_back(static_cast<unsigned>(*v));
    }
  }
  void Addr(const char* path, IpAddr& out) {
    std::string s;
    Str(path, s);
    if (s.empty()) return;
    auto a = IpAddr::Parse(s);
    if (!a.ok()) return Fail(path, std::string(a.status().message()));
    out = *a;
  }
  void Fail(const std::string& path, const std::string& what) {
    if (error_.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat(source_, ": ", path, " ", what));
    }
  }

 private:
  const toml::table& root_;
  std::string source_;
  absl::Status error_;
};

// Every key the parser below reads (docs/config.md); any other is an error.
const std::vector<absl::string_view> kKnownKeys = {
    "node", "shm_dir", "shm_group", "log_level",
    "tables.legs", "tables.meetings",
    "eal.args", "eal.main_lcore", "eal.worker_lcores", "eal.cpus",
    "switch.burst", "switch.rx_ring", "switch.tx_ring", "switch.mbufs", "switch.idle_sleep_us",
    "switch.idle_polls", "switch.zero_copy_min", "switch.mtu",
    "access.vlan", "access.neigh_reachable_s", "access.neigh_probe_ms", "access.gateway4",
    "access.gateway6", "access.prefixes", "access.slow_path_pps_per_source",
    "telemetry.enabled",
    "pair.node_id", "pair.peer_node_id", "pair.heartbeat_ms", "pair.worker_stall_ms", "pair.key",
    "pair.key_file",
    "shared_nic.xdp_prog", "shared_nic.media_ports",
    "port[].name", "port[].devargs", "port[].xdp_steering",
};

}  // namespace

namespace {

// The readers below run in the order of the keys' first errors: the first
// error of a configuration is the one reported.

void ReadProcess(Reader& r, SwitchConfig& c) {
  r.Str("node", c.node);
  std::string level;
  r.Str("log_level", level);
  if (!level.empty() && !log::ParseLevel(level, &c.log_level)) {
    r.Fail("log_level", "must be one of emerg, alert, crit, err, warning, notice, info, debug");
  }
  r.Str("shm_dir", c.shm_dir);
  r.Str("shm_group", c.shm_group);
  r.Int("tables.legs", c.capacity.legs, 1, int64_t{1} << 30);
  r.Int("tables.meetings", c.capacity.meetings, 1, int64_t{1} << 28);
  r.StrList("eal.args", c.eal_args);
  r.Int("eal.main_lcore", c.main_lcore, 0, 1023);
  r.NumberList("eal.worker_lcores", c.worker_lcores, "lcore");
  r.NumberList("eal.cpus", c.cpus, "CPU");
}

void ReadSwitchAndAccess(Reader& r, SwitchConfig& c) {
  r.Int("switch.burst", c.burst, 1, 256);
  r.Int("switch.rx_ring", c.rx_ring, 64, 16384);
  r.Int("switch.tx_ring", c.tx_ring, 64, 16384);
  r.Int("switch.mbufs", c.mbufs, 1023, 1 << 24);
  r.Int("switch.idle_sleep_us", c.idle_sleep_us, 0, 1000000);
  r.Int("switch.idle_polls", c.idle_polls, 1, 1 << 30);
  r.Int("switch.zero_copy_min", c.zero_copy_min, 0, 1 << 16);
  r.Int("switch.mtu", c.mtu, 576, 9000);
  r.Int("access.vlan", c.vlan, 0, 4094);
  r.Int("access.neigh_reachable_s", c.neigh_reachable_s, 1, 86400);
  r.Int("access.neigh_probe_ms", c.neigh_probe_ms, 10, 60000);
  r.Int("access.slow_path_pps_per_source", c.slow_path_pps_per_source, 1, 1000000);
  r.Addr("access.gateway4", c.gateway4);
  r.Addr("access.gateway6", c.gateway6);
}

void ReadPair(Reader& r, const std::string& source, SwitchConfig& c) {
  r.Int("pair.node_id", c.pair_node_id, 0, 0xffffffffll);
  r.Int("pair.peer_node_id", c.pair_peer_node_id, 0, 0xffffffffll);
  r.Int("pair.heartbeat_ms", c.heartbeat_ms, 1, 10000);
  r.Int("pair.worker_stall_ms", c.worker_stall_ms, 2, 60000);
  std::string key, key_file;
  r.Str("pair.key", key);
  r.Str("pair.key_file", key_file);
  if (c.pair_node_id != 0 && r.error().ok()) {
    auto secret = keys::LoadPairSecret(key, key_file, source);
    auto derived = secret.ok() ? keys::DerivePairKeys(*secret) : secret.status();
    if (!derived.ok()) {
      r.Fail("pair.key", std::string(derived.status().message()));
    } else {
      c.heartbeat_key = derived->heartbeat;
    }
  }
  if (c.pair_node_id != 0 &&
      (c.pair_peer_node_id == 0 || c.pair_peer_node_id == c.pair_node_id)) {
    // Heartbeats of any other node holding the key are refused: another
    // pair sharing it must not be taken for the peer.
    r.Fail("pair.peer_node_id", "must be set, non-zero and differ from pair.node_id");
  }
}

void ReadSharedNic(Reader& r, SwitchConfig& c) {
  r.Str("shared_nic.xdp_prog", c.xdp_prog);
  std::string media_ports;
  r.Str("shared_nic.media_ports", media_ports);
  if (media_ports.empty()) return;
  unsigned lo = 0, hi = 0;
  char end = 0;
  if (std::sscanf(media_ports.c_str(), "%u-%u%c", &lo, &hi, &end) != 2 || lo < 1 || lo > hi ||
      hi > 65535) {
    r.Fail("shared_nic.media_ports", "must be \"FIRST-LAST\" within 1-65535");
  } else {
    c.media_port_low = static_cast<uint16_t>(lo);
    c.media_port_high = static_cast<uint16_t>(hi);
  }
}

void ReadPrefixesAndGateways(Reader& r, SwitchConfig& c) {
  std::vector<std::string> prefixes;
  r.StrList("access.prefixes", prefixes);
  for (const auto& s : prefixes) {
    auto p = IpPrefix::Parse(s);
    if (!p.ok()) {
      r.Fail("access.prefixes", std::string(p.status().message()));
      break;
    }
    c.prefixes.push_back(*p);
  }
  if (!c.gateway4.is_zero() && !c.gateway4.is_v4()) r.Fail("access.gateway4", "must be IPv4");
  if (!c.gateway6.is_zero() && c.gateway6.is_v4()) r.Fail("access.gateway6", "must be IPv6");
}

// One [[port]] table; a role given twice is found in `ports`, those read before.
PortConfig ReadPort(const toml::table& t, const std::vector<PortConfig>& ports, Reader& r) {
  PortConfig p;
  p.name = t.at_path("name").value_or<std::string>("access");
  p.devargs = t.at_path("devargs").value_or<std::string>("");
  if (p.name == "access") {
    p.role = PortRole::kAccess;
  } else if (p.name == "backbone") {
    p.role = PortRole::kBackbone;
  } else {
    r.Fail("port.name", absl::StrCat("'", p.name, "' must be \"access\" or \"backbone\""));
  }
  if (p.devargs.empty()) r.Fail("port.devargs", "is required");
  if (auto x = t.at_path("xdp_steering")) {
    if (!x.is_boolean()) {
      r.Fail("port.xdp_steering", "must be true or false");
    } else {
      p.xdp_steering = *x.value<bool>();
    }
    if (p.xdp_steering && p.devargs.rfind("net_af_xdp", 0) != 0) {
      r.Fail("port.xdp_steering", "needs a net_af_xdp port (devargs net_af_xdp0,iface=...)");
    }
  }
  for (const auto& q : ports) {
    if (q.role == p.role) r.Fail("port.name", absl::StrCat("'", p.name, "' given twice"));
  }
  return p;
}

void ReadPorts(const toml::table& root, Reader& r, std::vector<PortConfig>& ports) {
  auto n = root.at_path("port");
  if (!n) return;
  const toml::array* a = n.as_array();
  if (!a) return r.Fail("port", "must be an array of tables ([[port]])");
  for (const auto& e : *a) {
    const toml::table* t = e.as_table();
    if (!t) return r.Fail("port", "must be an array of tables ([[port]])");
    ports.push_back(ReadPort(*t, ports, r));
  }
}

// The access port is port 0 in the switch; reorder if given second.
absl::Status PutAccessPortFirst(std::vector<PortConfig>& ports, const std::string& source) {
  if (!ports.empty() && ports[0].role == PortRole::kAccess) return absl::OkStatus();
  bool has_access = false;
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].role == PortRole::kAccess) {
      std::swap(ports[0], ports[i]);
      has_access = true;
    }
  }
  if (!has_access) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a [[port]] with name = \"access\" is required"));
  }
  return absl::OkStatus();
}

// The checks across keys, once every key has read well.
absl::Status CheckSwitchConfig(const SwitchConfig& c, const std::string& source) {
  if (c.shm_dir.empty() || c.shm_dir.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": shm_dir must be an absolute path, not \"", c.shm_dir, "\""));
  }
  if (c.node.empty() || c.node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": node must be a plain name"));
  }
  if (c.worker_lcores.size() > tables::kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": at most ", tables::kMaxWorkers, " workers"));
  }
  if (!c.cpus.empty() && c.cpus.size() != 1 + c.worker_lcores.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": eal.cpus gives ", c.cpus.size(), " CPUs; it needs ", 1 + c.worker_lcores.size(),
        ": the main lcore's, then one per worker lcore"));
  }
  for (unsigned l : c.worker_lcores) {
    if (std::count(c.worker_lcores.begin(), c.worker_lcores.end(), l) > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": worker lcore ", l, " is listed twice"));
    }
    if (l == c.main_lcore) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": worker lcore ", l, " is also the main lcore"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SwitchConfig> ParseSwitchConfig(const std::string& text,
                                               const std::string& source) {
  toml::table root;
  try {
    // toml++ reports syntax errors by exception; it stays at this boundary.
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ":", e.source().begin.line, ": ", std::string(e.description())));
  }
  if (absl::Status st = CheckKnownKeys(root, kKnownKeys, source); !st.ok()) return st;
  SwitchConfig c;
  Reader r(root, source);
  ReadProcess(r, c);
  ReadSwitchAndAccess(r, c);
  r.Bool("telemetry.enabled", c.telemetry);
  ReadPair(r, source, c);
  ReadSharedNic(r, c);
  ReadPrefixesAndGateways(r, c);
  ReadPorts(root, r, c.ports);
  if (!r.error().ok()) return r.error();
  if (absl::Status st = PutAccessPortFirst(c.ports, source); !st.ok()) return st;
  if (absl::Status st = CheckSwitchConfig(c, source); !st.ok()) return st;
  return c;
}

absl::StatusOr<SwitchConfig> LoadSwitchConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read configuration ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSwitchConfig(ss.str(), path);
}

}  // namespace tandem::sw
