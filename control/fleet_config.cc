#include "control/fleet_config.h"

#include <string.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"

namespace tandem::control {
namespace {

absl::Status Bad(const std::string& origin, const char* key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(origin, " [fleet]: ", key, ": ", why));
}

// The whole file, or InvalidArgument naming the key, the file and why.
absl::Status ReadPem(const char* key, const std::string& path, std::string* out) {
  out->clear();
  if (path.empty()) return absl::OkStatus();
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[fleet] ", key, ": cannot read ", path, ": ", strerror(errno)));
  }
  *out = ss.str();
  if (out->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[fleet] ", key, ": cannot read ", path, " (missing or empty)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseFleetConfig(const toml::table& root, const std::string& origin,
                              FleetConfig* out) {
  const toml::node* n = root.get("fleet");
  if (!n) return absl::OkStatus();
  const toml::table* t = n->as_table();
  if (!t) return absl::InvalidArgumentError(absl::StrCat(origin, ": fleet: must be a table"));
  out->enabled = true;
  for (const char* key :
       {"prefix", "pair_id", "node_id", "data_center", "api", "tls_ca", "tls_cert", "tls_key"}) {
    const toml::node* v = t->get(key);
    if (!v) continue;
    auto s = v->value<std::string>();
    if (!s) return Bad(origin, key, "must be a string");
    std::string* dst = std::string(key) == "prefix"    ? &out->prefix
                       : std::string(key) == "pair_id" ? &out->pair_id
                       : std::string(key) == "node_id" ? &out->node_id
                       : std::string(key) == "api"     ? &out->api
                       : std::string(key) == "tls_ca"  ? &out->tls_ca
                       : std::string(key) == "tls_cert" ? &out->tls_cert
                       : std::string(key) == "tls_key"  ? &out->tls_key
                                                       : &out->data_center;
    *dst = *s;
  }
  if (const toml::node* v = t->get("etcd")) {
    const toml::array* arr = v->as_array();
    if (!arr) return Bad(origin, "etcd", "must be an array of \"HOST:PORT\" strings");
    for (const toml::node& e : *arr) {
      auto s = e.value<std::string>();
      if (!s) return Bad(origin, "etcd", "must be an array of \"HOST:PORT\" strings");
      out->etcd.push_back(*s);
    }
  }
  if (const toml::node* v = t->get("witness")) {
    auto b = v->is_boolean() ? v->value<bool>() : std::nullopt;
    if (!b) return Bad(origin, "witness", "must be true or false");
    out->witness = *b;
  }
  struct Num {
    const char* key;
    uint64_t max;
    uint64_t* dst;
  };
  for (const Num& k : {Num{"legs", 1u << 26, &out->legs}, Num{"meetings", 1u << 24, &out->meetings},
                       Num{"lease_ttl_s", 3600, &out->lease_ttl_s},
                       Num{"refresh_ms", 60000, &out->refresh_ms},
                       Num{"witness_ttl_s", 3600, &out->witness_ttl_s},
                       Num{"witness_renew_ms", 3600000, &out->witness_renew_ms},
                       Num{"witness_margin_ms", 3600000, &out->witness_margin_ms},
                       Num{"witness_guard_ms", 60000, &out->witness_guard_ms}}) {
    const toml::node* v = t->get(k.key);
    if (!v) continue;
    auto i = v->is_integer() ? v->value<int64_t>() : std::nullopt;
    if (!i || *i < 0 || static_cast<uint64_t>(*i) > k.max) {
      return Bad(origin, k.key, absl::StrCat("must be an integer 0..", k.max));
    }
    *k.dst = static_cast<uint64_t>(*i);
  }
  return absl::OkStatus();
}

absl::Status ValidateFleetConfig(FleetConfig& f, const std::string& node,
                                 const std::string& api_default, uint64_t legs,
                                 uint64_t meetings) {
  if (!f.enabled) return absl::OkStatus();
  if (f.node_id.empty()) f.node_id = node;
  if (f.api.empty()) f.api = api_default;
  if (f.legs == 0) f.legs = legs;
  if (f.meetings == 0) f.meetings = meetings;
  auto bad = [](const absl::Status& st) {
    return absl::InvalidArgumentError(absl::StrCat("[fleet] ", st.message()));
  };
  if (f.etcd.empty()) return bad(absl::InvalidArgumentError("etcd: at least one endpoint needed"));
  for (auto [key, path, pem] : {std::tuple{"tls_ca", &f.tls_ca, &f.tls_ca_pem},
                                std::tuple{"tls_cert", &f.tls_cert, &f.tls_cert_pem},
                                std::tuple{"tls_key", &f.tls_key, &f.tls_key_pem}}) {
    if (auto st = ReadPem(key, *path, pem); !st.ok()) return st;
  }
  // The endpoints' form and the TLS files' combination, checked without
  // connecting (channels connect lazily).
  fleet::EtcdOptions eo;
  eo.endpoints = f.etcd;
  eo.tls_ca = f.tls_ca_pem;
  eo.tls_cert = f.tls_cert_pem;
  eo.tls_key = f.tls_key_pem;
  if (auto c = fleet::EtcdClient::Create(eo); !c.ok()) return bad(c.status());
  if (auto st = fleet::CheckId("pair id", f.pair_id); !st.ok()) return bad(st);
  if (auto st = fleet::CheckId("node id", f.node_id); !st.ok()) return bad(st);
  if (f.data_center.empty()) return bad(absl::InvalidArgumentError("data_center is required"));
  if (f.prefix.empty() || f.prefix.front() != '/') {
    return bad(absl::InvalidArgumentError(
        absl::StrCat("prefix: \"", f.prefix, "\" must start with '/'")));
  }
  if (f.lease_ttl_s < 2 || f.refresh_ms == 0 || f.refresh_ms >= f.lease_ttl_s * 1000) {
    return bad(absl::InvalidArgumentError(
        "lease_ttl_s must be >= 2 and 0 < refresh_ms < lease_ttl_s * 1000"));
  }
  if (f.witness) {
    if (auto st = fleet::CheckWitnessConfig(WitnessTiming(f)); !st.ok()) return bad(st);
  }
  return absl::OkStatus();
}

fleet::WitnessConfig WitnessTiming(const FleetConfig& f) {
  fleet::WitnessConfig w;
  w.ttl = absl::Seconds(static_cast<int64_t>(f.witness_ttl_s));
  w.renew_interval = absl::Milliseconds(static_cast<int64_t>(f.witness_renew_ms));
  w.margin = absl::Milliseconds(static_cast<int64_t>(f.witness_margin_ms));
  w.guard = absl::Milliseconds(static_cast<int64_t>(f.witness_guard_ms));
  return w;
}

}  // namespace tandem::control
