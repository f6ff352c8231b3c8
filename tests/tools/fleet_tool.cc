// tandem-fleet-tool: drives the fleet's directory for tests/integration/
// test_fleet.py and scripts/bench_fleet.sh, in place of tandem-control
// (which will publish its pair's registration itself later).
//
//   tandem-fleet-tool register --etcd E [--prefix P] [--ttl S] PAIR=FREE_LEGS ...
//       Registers two nodes per pair (a in dc1, active; b in dc2, standby;
//       capacity 10,000 legs, 1,000 meetings; FREE_LEGS free) through
//       fleet::Registration, prints "ready" once every record is in etcd, then
//       reads commands on stdin, one a line:
//         load PAIR LEGS_IN_USE      publish a new load on both nodes
//         role PAIR NODE ROLE EPOCH  publish a node's role and epoch
//         status                     print one JSON line of counters per node
//       and at end of input revokes the leases (the records go at once).
//         api PAIR NODE ADDRESS      publish a node's control API address
//   tandem-fleet-tool client --etcd E [--prefix P]
//       A meeting application on tandem_client's FleetClient, commands on
//       stdin, one JSON line back each:
//         place MEETING              FleetClient::Place
//         site MEETING NAME          CreateSite through ForMeeting(MEETING):
//                                    the pair's active node, across takeovers
//   tandem-fleet-tool place --etcd E [--prefix P] --from N --count K
//                    [--threads T] [--reverse] [--out FILE]
//       Places meetings m-N .. m-(N+K-1) with T threads, writes "MEETING PAIR"
//       per line to FILE in meeting order, prints one JSON summary line.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control/client/fleet_client.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"
#include "control/fleet/placer.h"

namespace tandem::fleet {
namespace {

struct Flags {
  std::map<std::string, std::string> named;
  std::vector<std::string> rest;
  bool Has(const std::string& k) const { return named.contains(k); }
  std::string Get(const std::string& k, const std::string& d = "") const {
    auto it = named.find(k);
    return it == named.end() ? d : it->second;
  }
  long Int(const std::string& k, long d) const {
    long v = d;
    if (Has(k) && !absl::SimpleAtoi(Get(k), &v)) {
      fprintf(stderr, "fleet-tool: bad --%s\n", k.c_str());
      exit(2);
    }
    return v;
  }
};

Flags Parse(int argc, char** argv) {
  Flags f;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--reverse") {
      // Not `= "1"`: GCC 12 at -O3 reports a false -Wrestrict overlap there.
      f.named.insert_or_assign("reverse", std::string("1"));
    } else if (s.rfind("--", 0) == 0 && i + 1 < argc) {
      f.named.insert_or_assign(s.substr(2), std::string(argv[++i]));
    } else {
      f.rest.push_back(s);
    }
  }
  return f;
}

std::unique_ptr<EtcdClient> Connect(const Flags& f, std::chrono::milliseconds retry) {
  absl::StatusOr<std::vector<std::string>> eps = ParseEndpoints(f.Get("etcd", "127.0.0.1:2379"));
  EtcdOptions o;
  if (eps.ok()) o.endpoints = *eps;
  o.retry_timeout = retry;
  absl::StatusOr<std::unique_ptr<EtcdClient>> c = EtcdClient::Create(o);
  if (!c.ok()) {
    fprintf(stderr, "fleet-tool: %s\n", std::string(c.status().message()).c_str());
    exit(2);
  }
  return *std::move(c);
}

v1::NodeRecord Node(const std::string& pair, bool a, uint64_t free_legs) {
  v1::NodeRecord r;
  r.set_pair_id(pair);
  r.set_node_id(a ? "a" : "b");
  r.set_data_center(a ? "dc1" : "dc2");
  r.set_api(absl::StrCat("unix:/run/tandem/", pair, "-", a ? "a" : "b", ".sock"));
  r.set_role(a ? "active" : "standby");
  r.set_epoch(1);
  r.add_vips("198.18.0.100");
  r.mutable_capacity()->set_legs(10000);
  r.mutable_capacity()->set_meetings(1000);
  r.mutable_load()->set_legs(10000 - free_legs);
  return r;
}

using Registrations = std::map<std::string, std::unique_ptr<Registration>>;
using Records = std::map<std::string, v1::NodeRecord>;

// One stdin command of `register` (see the header); false for a bad one.
bool Apply(const std::vector<std::string>& w, Registrations& regs, Records& records) {
  auto publish = [&](const std::string& id) { return regs[id]->Publish(records[id]).ok(); };
  if (w[0] == "status" && w.size() == 1) {
    for (auto& [id, reg] : regs) {
      Registration::Status s = reg->status();
      printf(
          "{\"node\":\"%s\",\"registered\":%s,\"grants\":%lu,\"writes\":%lu,\"keepalives\":%lu,"
          "\"errors\":%lu}\n",
          id.c_str(), s.registered ? "true" : "false", s.grants, s.writes, s.keepalives, s.errors);
    }
    return true;
  }
  if (w[0] == "load" && w.size() == 3) {
    uint64_t legs = 0;
    if (!absl::SimpleAtoi(w[2], &legs) || !regs.contains(w[1] + "/a")) return false;
    for (const char* n : {"/a", "/b"}) {
      records[w[1] + n].mutable_load()->set_legs(legs);
      if (!publish(w[1] + n)) return false;
    }
    return true;
  }
  const std::string id = w.size() > 2 ? absl::StrCat(w[1], "/", w[2]) : "";
  if (!regs.contains(id)) return false;
  if (w[0] == "api" && w.size() == 4) {
    records[id].set_api(w[3]);
    return publish(id);
  }
  uint64_t epoch = 0;
  if (w[0] == "role" && w.size() == 5 && absl::SimpleAtoi(w[4], &epoch)) {
    records[id].set_role(w[3]);
    records[id].set_epoch(epoch);
    return publish(id);
  }
  return false;
}

int Register(const Flags& f) {
  // Steps wait at most 2 s for etcd: under the lease's TTL.
  std::unique_ptr<EtcdClient> etcd = Connect(f, std::chrono::milliseconds(2000));
  RegistrationOptions ro;
  ro.lease_ttl_s = f.Int("ttl", ro.lease_ttl_s);
  ro.keepalive = std::chrono::milliseconds(ro.lease_ttl_s * 1000 / 3);
  Keys keys(f.Get("prefix", kDefaultPrefix));
  Records records;  // by "pair/node"
  Registrations regs;
  for (const std::string& spec : f.rest) {
    std::vector<std::string> kv = absl::StrSplit(spec, '=');
    uint64_t free_legs = 0;
    if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &free_legs) || free_legs > 10000) {
      fprintf(stderr, "fleet-tool: want PAIR=FREE_LEGS (at most 10000), not '%s'\n", spec.c_str());
      return 2;
    }
    for (bool a : {true, false}) {
      v1::NodeRecord r = Node(kv[0], a, free_legs);
      std::string id = absl::StrCat(r.pair_id(), "/", r.node_id());
      auto reg = std::make_unique<Registration>(etcd.get(), keys, ro);
      if (absl::Status st = reg->Start(r); !st.ok()) {
        fprintf(stderr, "fleet-tool: %s\n", std::string(st.message()).c_str());
        return 2;
      }
      records[id] = r;
      regs[id] = std::move(reg);
    }
  }
  for (;;) {
    bool all = true;
    for (auto& [id, reg] : regs) all = all && reg->status().registered;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  printf("ready\n");
  fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (w.empty()) continue;
    // Every command gets "ok" or "error ...": the test never waits in vain.
    printf("%s\n", Apply(w, regs, records) ? "ok" : absl::StrCat("error: '", line, "'").c_str());
    fflush(stdout);
  }
  for (auto& [id, reg] : regs) reg->Stop(true);
  return 0;
}

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) out += (c == '"' || c == '\\' || c == '\n') ? ' ' : c;
  return out + "\"";
}

int Client(const Flags& f) {
  client::FleetOptions o;
  absl::StatusOr<std::vector<std::string>> eps = ParseEndpoints(f.Get("etcd", "127.0.0.1:2379"));
  if (eps.ok()) o.etcd.endpoints = *eps;
  o.prefix = f.Get("prefix", kDefaultPrefix);
  o.pair.failover_timeout = std::chrono::seconds(10);
  absl::StatusOr<std::unique_ptr<client::FleetClient>> fleet = client::FleetClient::Create(o);
  if (!fleet.ok()) {
    fprintf(stderr, "fleet-tool: %s\n", std::string(fleet.status().message()).c_str());
    return 2;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (w.size() == 2 && w[0] == "place") {
      absl::StatusOr<client::MeetingPlace> p = (*fleet)->Place(w[1]);
      if (p.ok()) {
        printf("{\"pair_id\":%s,\"placed_now\":%s,\"active_api\":%s}\n", Quote(p->pair_id).c_str(),
               p->placed_now ? "true" : "false", Quote(p->active_api).c_str());
      } else {
        printf("{\"error\":%s}\n", Quote(p.status().ToString()).c_str());
      }
    } else if (w.size() == 3 && w[0] == "site") {
      absl::StatusOr<client::PairClient*> pair = (*fleet)->ForMeeting(w[1]);
      if (!pair.ok()) {
        printf("{\"error\":%s}\n", Quote(pair.status().ToString()).c_str());
      } else {
        client::v1::CreateSiteRequest req;
        req.mutable_site()->set_name(w[2]);
        client::v1::Site site;
        grpc::Status st = (*pair)->Call(&client::Stub::CreateSite, req, &site);
        if (st.ok()) {
          printf("{\"site_id\":%lu,\"answered_by\":%s}\n",
                 static_cast<unsigned long>(site.site_id()),
                 Quote((*pair)->active_address()).c_str());
        } else {
          printf("{\"error\":%s}\n", Quote(st.error_message()).c_str());
        }
      }
    } else {
      printf("{\"error\":\"unknown command\"}\n");
    }
    fflush(stdout);
  }
  return 0;
}

int Place(const Flags& f) {
  std::unique_ptr<EtcdClient> etcd =
      Connect(f, std::chrono::milliseconds(f.Int("timeout-ms", 5000)));
  Placer placer(etcd.get(), Keys(f.Get("prefix", kDefaultPrefix)));
  const long from = f.Int("from", 0), count = f.Int("count", 1000);
  const int threads = static_cast<int>(f.Int("threads", 1));
  const bool reverse = f.Has("reverse");
  std::vector<std::string> pair(count);
  std::mutex mu;
  long next = 0, placed_now = 0, errors = 0;
  std::string first_error;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        long k;
        {
          std::lock_guard<std::mutex> l(mu);
          if (next >= count) return;
          k = next++;
        }
        long i = reverse ? count - 1 - k : k;
        absl::StatusOr<Placement> p = placer.Place(absl::StrCat("m-", from + i));
        std::lock_guard<std::mutex> l(mu);
        if (p.ok()) {
          pair[i] = p->pair_id;
          placed_now += p->placed_now;
        } else {
          ++errors;
          if (first_error.empty()) first_error = p.status().ToString();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (f.Has("out")) {
    std::ofstream out(f.Get("out"));
    for (long i = 0; i < count; ++i)
      out << "m-" << from + i << " " << (pair[i].empty() ? "-" : pair[i]) << "\n";
  }
  std::string err;
  for (char c : first_error) err += (c == '"' || c == '\\') ? ' ' : c;
  printf(
      "{\"placed\":%ld,\"placed_now\":%ld,\"errors\":%ld,\"first_error\":\"%s\",\"seconds\":%.3f,"
      "\"per_second\":%.1f}\n",
      count - errors, placed_now, errors, err.c_str(), secs,
      secs > 0 ? (count - errors) / secs : 0);
  return errors ? 1 : 0;
}

}  // namespace
}  // namespace tandem::fleet

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: tandem-fleet-tool register|place ... (see the source's header)\n");
    return 2;
  }
  tandem::fleet::Flags f = tandem::fleet::Parse(argc, argv);
  std::string cmd = argv[1];
  if (cmd == "register") return tandem::fleet::Register(f);
  if (cmd == "place") return tandem::fleet::Place(f);
  if (cmd == "client") return tandem::fleet::Client(f);
  fprintf(stderr, "tandem-fleet-tool: unknown command '%s'\n", cmd.c_str());
  return 2;
}
