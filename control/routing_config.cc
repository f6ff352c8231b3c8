#include "control/routing_config.h"

#include "absl/strings/str_cat.h"
#include "control/toml_read.h"

namespace tandem::control {
namespace {

using toml_read::Bad;
using toml_read::ReadString;

absl::Status ReadUint32(const toml::table& t, const char* key, const std::string& origin,
                        uint32_t lo, uint32_t hi, uint32_t* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  auto v = n->is_integer() ? n->value<int64_t>() : std::nullopt;
  if (!v || *v < lo || *v > hi) {
    return Bad(origin, key, absl::StrCat("must be an integer ", lo, "..", hi));
  }
  *out = static_cast<uint32_t>(*v);
  return absl::OkStatus();
}

absl::Status ReadAddr(const toml::table& t, const char* key, const std::string& origin,
                      IpAddr* out) {
  std::string s;
  if (absl::Status st = ReadString(t, key, origin, &s); !st.ok() || s.empty()) return st;
  auto a = IpAddr::Parse(s);
  if (!a.ok()) return Bad(origin, key, std::string(a.status().message()));
  *out = *a;
  return absl::OkStatus();
}

// BIRD refuses a prefix with host bits set; say so here, naming the key.
bool HostBitsClear(const IpPrefix& p) {
  IpPrefix zero = p;
  int bits = p.addr.is_v4() ? p.len + 96 : p.len;
  for (int i = 0; i < 16; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    zero.addr.b[i] &= mask;
  }
  return zero.addr == p.addr;
}

absl::Status ReadPrefixes(const toml::table& t, const std::string& origin,
                          std::vector<IpPrefix>* out) {
  const toml::node* n = t.get("prefixes");
  if (!n) return absl::OkStatus();
  const toml::array* arr = n->as_array();
  if (!arr) return Bad(origin, "prefixes", "must be an array of prefixes");
  for (const toml::node& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) return Bad(origin, "prefixes", "must be an array of prefixes");
    auto p = IpPrefix::Parse(*s);
    if (!p.ok()) return Bad(origin, "prefixes", std::string(p.status().message()));
    if (!HostBitsClear(*p)) {
      return Bad(origin, "prefixes", absl::StrCat(*s, " has host bits set"));
    }
    out->push_back(*p);
  }
  return absl::OkStatus();
}

absl::Status ReadNeighbor(const toml::table& t, const std::string& origin, RoutingNeighbor* nb) {
  if (!t.get("address")) return Bad(origin, "address", "is required");
  if (absl::Status st = ReadAddr(t, "address", origin, &nb->address); !st.ok()) return st;
  if (!t.get("as")) return Bad(origin, "as", "is required");
  if (absl::Status st = ReadUint32(t, "as", origin, 1, 4294967294u, &nb->as); !st.ok()) return st;
  if (absl::Status st = ReadAddr(t, "local", origin, &nb->local); !st.ok()) return st;
  if (!nb->local.is_zero() && nb->local.is_v4() != nb->address.is_v4()) {
    return Bad(origin, "local", "must be of the neighbour's address family");
  }
  return ReadString(t, "interface", origin, &nb->interface);
}

}  // namespace

absl::Status ParseRoutingConfig(const toml::table& root, const std::string& origin,
                                AccessMode* mode, RoutingConfig* r) {
  if (const toml::table* t = root["access"].as_table()) {
    std::string m = "l2";
    if (absl::Status st = ReadString(*t, "mode", origin + " [access]", &m); !st.ok()) return st;
    if (m != "l2" && m != "routed") {
      return Bad(origin + " [access]", "mode", "must be \"l2\" or \"routed\"");
    }
    *mode = m == "routed" ? AccessMode::kRouted : AccessMode::kL2;
  }
  const toml::table* t = root["routing"].as_table();
  if (!t) return absl::OkStatus();
  const std::string o = origin + " [routing]";
  absl::Status st;
  auto chain = [&](absl::Status s) {
    if (st.ok()) st = std::move(s);
  };
  chain(ReadString(*t, "daemon", o, &r->daemon));
  if (r->daemon != "bird") chain(Bad(o, "daemon", "must be \"bird\" (BIRD 2)"));
  chain(ReadString(*t, "control_socket", o, &r->control_socket));
  chain(ReadString(*t, "config_file", o, &r->config_file));
  chain(ReadString(*t, "include", o, &r->include));
  chain(ReadString(*t, "log", o, &r->log));
  chain(ReadUint32(*t, "local_as", o, 1, 4294967294u, &r->local_as));
  chain(ReadAddr(*t, "router_id", o, &r->router_id));
  if (!r->router_id.is_zero() && !r->router_id.is_v4()) {
    chain(Bad(o, "router_id", "must be an IPv4 address (BGP identifiers are 32 bits)"));
  }
  chain(ReadPrefixes(*t, o, &r->prefixes));
  std::string standby = "prepend";
  chain(ReadString(*t, "standby", o, &standby));
  if (standby == "prepend") {
    r->standby = StandbyPolicy::kPrepend;
  } else if (standby == "local_pref") {
    r->standby = StandbyPolicy::kLocalPref;
  } else if (standby == "withdraw") {
    r->standby = StandbyPolicy::kWithdraw;
  } else {
    chain(Bad(o, "standby", "must be \"prepend\", \"local_pref\" or \"withdraw\""));
  }
  chain(ReadUint32(*t, "prepend", o, 1, 16, &r->prepend));
  chain(ReadUint32(*t, "local_pref_active", o, 0, 4294967295u, &r->local_pref_active));
  chain(ReadUint32(*t, "local_pref_standby", o, 0, 4294967295u, &r->local_pref_standby));
  chain(ReadUint32(*t, "bfd_interval_ms", o, 1, 10000, &r->bfd_interval_ms));
  chain(ReadUint32(*t, "bfd_multiplier", o, 1, 255, &r->bfd_multiplier));
  chain(ReadUint32(*t, "hold_time_s", o, 3, 65535, &r->hold_time_s));
  chain(ReadUint32(*t, "connect_retry_s", o, 1, 65535, &r->connect_retry_s));
  std::string preferred = "any";
  chain(ReadString(*t, "preferred_dc", o, &preferred));
  if (preferred == "any") {
    r->preferred_dc = PreferredDc::kAny;
  } else if (preferred == "this") {
    r->preferred_dc = PreferredDc::kThis;
  } else if (preferred == "peer") {
    r->preferred_dc = PreferredDc::kPeer;
  } else {
    chain(Bad(o, "preferred_dc", "must be \"any\", \"this\" or \"peer\""));
  }
  if (const toml::node* n = t->get("neighbor")) {
    const toml::array* arr = n->as_array();
    if (!arr) chain(Bad(o, "neighbor", "must be an array of tables ([[routing.neighbor]])"));
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      const toml::table* nt = (*arr)[i].as_table();
      std::string no = absl::StrCat(o, " neighbor ", i + 1);
      if (!nt) {
        chain(Bad(no, "neighbor", "must be a table"));
        continue;
      }
      RoutingNeighbor nb;
      chain(ReadNeighbor(*nt, no, &nb));
      r->neighbors.push_back(nb);
    }
  }
  return st;
}

std::vector<IpPrefix> AnnouncedPrefixes(const RoutingConfig& r, const std::vector<IpAddr>& vips) {
  if (!r.prefixes.empty()) return r.prefixes;
  std::vector<IpPrefix> out;
  for (const IpAddr& v : vips) out.push_back(IpPrefix{v, v.is_v4() ? 32 : 128});
  return out;
}

absl::Status ValidateRoutingConfig(const RoutingConfig& r, const std::vector<IpAddr>& vips) {
  if (r.local_as == 0) return absl::InvalidArgumentError("[routing] local_as is required");
  if (r.router_id.is_zero()) return absl::InvalidArgumentError("[routing] router_id is required");
  if (r.neighbors.empty()) {
    return absl::InvalidArgumentError("[routing] needs at least one [[routing.neighbor]]");
  }
  if (r.control_socket.empty() || r.config_file.empty()) {
    return absl::InvalidArgumentError("[routing] control_socket and config_file must be set");
  }
  if (vips.empty()) {
    return absl::InvalidArgumentError("routed mode needs [access] vips to announce");
  }
  std::vector<IpPrefix> announced = AnnouncedPrefixes(r, vips);
  for (const IpAddr& v : vips) {
    bool covered = false;
    for (const IpPrefix& p : announced) covered |= p.Contains(v);
    if (!covered) {
      return absl::InvalidArgumentError(
          absl::StrCat("[routing] prefixes: VIP ", v.ToString(), " is in no announced prefix"));
    }
  }
  // A VIP family without a session of that family would never be announced.
  for (const IpPrefix& p : announced) {
    bool session = false;
    for (const RoutingNeighbor& n : r.neighbors) session |= n.address.is_v4() == p.addr.is_v4();
    if (!session) {
      return absl::InvalidArgumentError(
          absl::StrCat("[routing] ", p.ToString(), " has no neighbour of its address family"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::control
