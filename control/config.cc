#include "control/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::control {
namespace {

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

absl::Status ReadUint(const toml::table& t, const char* key, const std::string& origin,
                      uint64_t max, uint64_t* out) {
  const toml::node* n = t.get(key);
  if (!n) return absl::OkStatus();
  auto v = n->value<int64_t>();
  if (!v || *v < 0 || static_cast<uint64_t>(*v) > max) {
    return Bad(origin, key, absl::StrCat("must be an integer 0..", max));
  }
  *out = static_cast<uint64_t>(*v);
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
  absl::Status st;
  auto chain = [&](absl::Status s) {
    if (st.ok()) st = std::move(s);
  };
  chain(ReadString(root, "node", origin, &c.node));
  chain(ReadString(root, "shm_dir", origin, &c.shm_dir));
  chain(ReadString(root, "role", origin, &c.role));
  if (const toml::table* t = root["tables"].as_table()) {
    uint64_t legs = c.capacity.legs, meetings = c.capacity.meetings;
    chain(ReadUint(*t, "legs", origin + " [tables]", 1u << 26, &legs));
    chain(ReadUint(*t, "meetings", origin + " [tables]", 1u << 24, &meetings));
    c.capacity.legs = static_cast<uint32_t>(legs);
    c.capacity.meetings = static_cast<uint32_t>(meetings);
  }
  if (const toml::table* t = root["api"].as_table()) {
    chain(ReadString(*t, "listen", origin + " [api]", &c.api_listen));
    chain(ReadString(*t, "tcp", origin + " [api]", &c.api_tcp));
  }
  if (const toml::table* t = root["store"].as_table()) {
    chain(ReadString(*t, "path", origin + " [store]", &c.store_path));
  }
  if (const toml::table* t = root["metrics"].as_table()) {
    chain(ReadString(*t, "listen", origin + " [metrics]", &c.metrics_listen));
  }
  if (const toml::table* t = root["access"].as_table()) {
    chain(ReadAddrs(*t, "vips", origin + " [access]", &c.access_vips));
  }
  if (const toml::table* t = root["pool"].as_table()) {
    chain(ReadAddrs(*t, "vips", origin + " [pool]", &c.pool_vips));
    std::string ports;
    chain(ReadString(*t, "ports", origin + " [pool]", &ports));
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
  if (const toml::table* t = root["watch"].as_table()) {
    uint64_t h = c.watch_history;
    chain(ReadUint(*t, "history", origin + " [watch]", 1u << 24, &h));
    c.watch_history = h;
  }
  if (!st.ok()) return st;
  return c;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

absl::Status ValidateConfig(Config& c) {
  if (c.node.empty()) return absl::InvalidArgumentError("node must not be empty");
  if (c.role != "active" && c.role != "standby") {
    return absl::InvalidArgumentError(
        absl::StrCat("role must be \"active\" or \"standby\", not \"", c.role, "\""));
  }
  if (c.capacity.legs == 0 || c.capacity.meetings == 0) {
    return absl::InvalidArgumentError("[tables] legs and meetings must be positive");
  }
  if (c.pool_vips.empty()) c.pool_vips = c.access_vips;
  for (const IpAddr& p : c.pool_vips) {
    bool found = false;
    for (const IpAddr& a : c.access_vips) found |= (a == p);
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("[pool] vip ", p.ToString(), " is not one of the [access] vips"));
    }
  }
  if (c.api_listen.empty() && c.api_tcp.empty()) {
    return absl::InvalidArgumentError("[api] needs listen or tcp");
  }
  return absl::OkStatus();
}

}  // namespace tandem::control
