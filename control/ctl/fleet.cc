#include "control/ctl/fleet.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/ctl/output.h"
#include "control/fleet/directory.h"
#include "control/fleet/etcd.h"
#include "control/fleet/placer.h"

namespace tandem::control {
namespace {

namespace fl = ::tandem::fleet;

constexpr const char* kCommonUsage =
    "[--etcd HOST:PORT,...] [--prefix PREFIX] [--etcd-timeout SECONDS] "
    "[--etcd-ca FILE [--etcd-cert FILE --etcd-key FILE]]";
const std::set<std::string> kCommonOptions = {"etcd",    "prefix",    "etcd-timeout",
                                              "etcd-ca", "etcd-cert", "etcd-key"};

std::string Opt(const FleetArgs& a, const std::string& name, const std::string& fallback) {
  auto it = a.options.find(name);
  return it == a.options.end() ? fallback : it->second.back();
}

std::string Env(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v && *v ? v : fallback;
}

absl::Status Need(const FleetArgs& a, size_t n, const char* what) {
  if (a.positional.size() < n) return absl::InvalidArgumentError(absl::StrCat("missing ", what));
  if (a.positional.size() > n) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a.positional[n], "'"));
  }
  return absl::OkStatus();
}

// The PEM in the file named by --OPTION (else $ENV; neither: empty), or
// InvalidArgument naming the option, the file and why.
absl::Status ReadPem(const FleetArgs& a, const std::string& option, const char* env,
                     std::string* out) {
  const std::string path = Opt(a, option, Env(env, ""));
  out->clear();
  if (path.empty()) return absl::OkStatus();
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  if (!in.is_open() || out->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", option, ": cannot read ", path, in.is_open() ? " (empty)" : "",
                     in.is_open() ? "" : absl::StrCat(": ", strerror(errno))));
  }
  return absl::OkStatus();
}

// The etcd client and placer of one command.
struct Fleet {
  std::unique_ptr<fl::EtcdClient> etcd;
  std::unique_ptr<fl::Placer> placer;
};

absl::StatusOr<Fleet> Open(const FleetArgs& a) {
  absl::StatusOr<std::vector<std::string>> eps =
      fl::ParseEndpoints(Opt(a, "etcd", Env("TANDEM_ETCD", "127.0.0.1:2379")));
  if (!eps.ok()) return eps.status();
  fl::EtcdOptions o;
  o.endpoints = *eps;
  // TLS as the daemon's [fleet] tls_ca, tls_cert, tls_key (docs/fleet.md).
  for (auto [option, env, pem] : {std::tuple{"etcd-ca", "TANDEM_ETCD_CA", &o.tls_ca},
                                  std::tuple{"etcd-cert", "TANDEM_ETCD_CERT", &o.tls_cert},
                                  std::tuple{"etcd-key", "TANDEM_ETCD_KEY", &o.tls_key}}) {
    if (absl::Status st = ReadPem(a, option, env, pem); !st.ok()) return st;
  }
  uint32_t secs = 5;
  if (std::string t = Opt(a, "etcd-timeout", "");
      !t.empty() && (!absl::SimpleAtoi(t, &secs) || secs == 0)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --etcd-timeout '", t, "'"));
  }
  o.retry_timeout = std::chrono::seconds(secs);
  absl::StatusOr<std::unique_ptr<fl::EtcdClient>> etcd = fl::EtcdClient::Create(o);
  if (!etcd.ok()) return etcd.status();
  Fleet f;
  f.etcd = *std::move(etcd);
  f.placer = std::make_unique<fl::Placer>(
      f.etcd.get(), fl::Keys(Opt(a, "prefix", Env("TANDEM_FLEET_PREFIX", fl::kDefaultPrefix))));
  return f;
}

std::string NodesText(const fl::PairView& p) {
  std::vector<std::string> parts;
  for (const auto& n : p.nodes) {
    parts.push_back(
        absl::StrCat(n.node_id(), "@", n.data_center(), " ", n.role(), " e", n.epoch()));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string StateText(const fl::PairView& p) {
  return fl::NoRoomName(fl::WhyNoRoom(p.State(), {}));
}

std::string PairJson(const fl::PairView& p, double share) {
  std::vector<std::string> nodes;
  for (const auto& n : p.nodes) nodes.push_back(fl::ToJson(n));
  const auto* a = p.active_node();
  return absl::StrCat("{\"pair_id\":\"", p.pair_id, "\",\"state\":\"", StateText(p),
                      "\",\"active\":\"", a ? a->node_id() : "",
                      "\",\"weight_share\":", absl::StrFormat("%.4f", share),
                      ",\"drained\":", p.drained ? "true" : "false",
                      p.drained ? absl::StrCat(",\"drain\":", fl::ToJson(p.drain)) : "",
                      ",\"nodes\":[", absl::StrJoin(nodes, ","), "]}");
}

absl::Status List(const FleetArgs& a) {
  if (absl::Status st = Need(a, 0, ""); !st.ok()) return st;
  absl::StatusOr<Fleet> f = Open(a);
  if (!f.ok()) return f.status();
  absl::StatusOr<fl::FleetView> view = f->placer->Fleet();
  if (!view.ok()) return view.status();
  double total = 0;
  for (const auto& p : view->pairs) total += fl::Weight(p.State(), {});
  auto share = [&](const fl::PairView& p) {
    return total > 0 ? fl::Weight(p.State(), {}) / total : 0;
  };
  if (a.json) {
    std::vector<std::string> pairs;
    for (const auto& p : view->pairs) pairs.push_back(PairJson(p, share(p)));
    printf("{\"revision\":%ld,\"pairs\":[%s],\"bad_keys\":%zu}\n",
           static_cast<long>(view->revision), absl::StrJoin(pairs, ",").c_str(),
           view->bad_keys.size());
    return absl::OkStatus();
  }
  Table t({"PAIR", "STATE", "SHARE", "ACTIVE", "LEGS", "MEETINGS", "PPS", "NODES"});
  for (const auto& p : view->pairs) {
    const auto* n = p.active_node();
    t.Add({p.pair_id, StateText(p), absl::StrFormat("%.1f%%", 100 * share(p)), n ? n->api() : "-",
           n ? absl::StrCat(n->load().legs(), "/", n->capacity().legs()) : "-",
           n ? absl::StrCat(n->load().meetings(), "/", n->capacity().meetings()) : "-",
           n ? absl::StrCat(n->load().packets_per_second()) : "-", NodesText(p)});
  }
  t.Print();
  for (const auto& k : view->bad_keys)
    fprintf(stderr, "tandemctl: unreadable record at %s\n", k.c_str());
  return absl::OkStatus();
}

absl::Status Show(const FleetArgs& a) {
  if (absl::Status st = Need(a, 1, "PAIR"); !st.ok()) return st;
  const std::string& id = a.positional[0];
  if (absl::Status st = fl::CheckId("pair id", id); !st.ok()) return st;
  absl::StatusOr<Fleet> f = Open(a);
  if (!f.ok()) return f.status();
  absl::StatusOr<fl::FleetView> view = f->placer->Fleet();
  if (!view.ok()) return view.status();
  const fl::PairView* p = view->Find(id);
  if (!p) return absl::NotFoundError(absl::StrCat("pair ", id, " is not in the directory"));
  // What a drained pair still carries: its active node's live meetings (its
  // record's load); the pair may be stopped once they reached 0.
  const auto* active = p->active_node();
  const uint64_t live = active ? active->load().meetings() : 0;
  if (a.json) {
    std::string j = PairJson(*p, 0);
    j.insert(j.size() - 1, absl::StrCat(",\"live_meetings\":", live));
    printf("%s\n", j.c_str());
    return absl::OkStatus();
  }
  printf("pair:     %s\nstate:    %s\n", p->pair_id.c_str(), StateText(*p).c_str());
  if (p->drained) {
    printf("drained:  %s; %lu live meeting(s) on its active node%s\n",
           p->drain.reason().empty() ? "yes" : p->drain.reason().c_str(),
           static_cast<unsigned long>(live), live == 0 ? ": it may be stopped" : "");
  }
  for (const auto& n : p->nodes) {
    printf(
        "node %s: dc %s, api %s, %s, epoch %lu, vips %s, legs %lu/%lu, meetings %lu/%lu, %lu "
        "pps%s\n",
        n.node_id().c_str(), n.data_center().c_str(), n.api().c_str(), n.role().c_str(),
        static_cast<unsigned long>(n.epoch()),
        n.vips().empty() ? "-" : absl::StrJoin(n.vips(), ",").c_str(),
        static_cast<unsigned long>(n.load().legs()),
        static_cast<unsigned long>(n.capacity().legs()),
        static_cast<unsigned long>(n.load().meetings()),
        static_cast<unsigned long>(n.capacity().meetings()),
        static_cast<unsigned long>(n.load().packets_per_second()),
        n.draining() ? ", draining" : "");
  }
  return absl::OkStatus();
}

absl::Status Place(const FleetArgs& a) {
  if (absl::Status st = Need(a, 1, "MEETING"); !st.ok()) return st;
  absl::StatusOr<Fleet> f = Open(a);
  if (!f.ok()) return f.status();
  absl::StatusOr<fl::Placement> p = f->placer->Place(a.positional[0]);
  if (!p.ok()) return p.status();
  const auto* active = p->pair ? p->pair->active_node() : nullptr;
  std::string api = active ? active->api() : "";
  if (a.json) {
    printf("{\"meeting_id\":\"%s\",\"pair_id\":\"%s\",\"placed_now\":%s,\"active_api\":\"%s\"}\n",
           p->meeting_id.c_str(), p->pair_id.c_str(), p->placed_now ? "true" : "false",
           api.c_str());
  } else {
    printf("meeting %s: pair %s (%s), active node %s\n", p->meeting_id.c_str(), p->pair_id.c_str(),
           p->placed_now ? "placed now" : "placed before", api.empty() ? "none" : api.c_str());
  }
  return absl::OkStatus();
}

absl::Status Release(const FleetArgs& a) {
  if (absl::Status st = Need(a, 1, "MEETING"); !st.ok()) return st;
  absl::StatusOr<Fleet> f = Open(a);
  if (!f.ok()) return f.status();
  return f->placer->Release(a.positional[0]);
}

absl::Status Drain(const FleetArgs& a) {
  if (absl::Status st = Need(a, 1, "PAIR"); !st.ok()) return st;
  absl::StatusOr<Fleet> f = Open(a);
  if (!f.ok()) return f.status();
  const std::string& id = a.positional[0];
  if (a.flags.contains("undo")) {
    absl::Status st = f->placer->Undrain(id);
    if (st.ok() && !a.json) printf("pair %s takes new meetings again\n", id.c_str());
    return st;
  }
  absl::Status st = f->placer->Drain(id, Opt(a, "reason", ""));
  if (st.ok() && !a.json) printf("pair %s drained: it takes no new meetings\n", id.c_str());
  return st;
}

std::set<std::string> With(std::set<std::string> extra) {
  extra.insert(kCommonOptions.begin(), kCommonOptions.end());
  return extra;
}

}  // namespace

std::vector<FleetCommand> FleetCommands() {
  const std::string etcd_help =
      "\n--etcd: the etcd cluster's client endpoints ($TANDEM_ETCD, default 127.0.0.1:2379);\n"
      "--prefix: the fleet's keys ($TANDEM_FLEET_PREFIX, default /tandem/fleet/);\n"
      "--etcd-timeout: how long to retry while etcd cannot be reached (default 5);\n"
      "--etcd-ca: the CA of etcd's server certificates: every endpoint is TLS ($TANDEM_ETCD_CA);\n"
      "--etcd-cert, --etcd-key: this client's certificate and key, for an etcd run with\n"
      "  --client-cert-auth ($TANDEM_ETCD_CERT, $TANDEM_ETCD_KEY).";
  return {
      {"fleet list",
       kCommonUsage,
       "The fleet's pairs: state (room, drained, full, no active node), share of new\n"
       "meetings, active node, load and nodes." +
           etcd_help,
       kCommonOptions,
       {},
       List},
      {"fleet show",
       absl::StrCat("PAIR ", kCommonUsage),
       "One pair and each of its nodes." + etcd_help,
       kCommonOptions,
       {},
       Show},
      {"fleet place",
       absl::StrCat("MEETING ", kCommonUsage),
       "The pair of a meeting: where it was placed, else placed now (rendezvous hashing\n"
       "weighted by free legs; every placer gets the same answer)." +
           etcd_help,
       kCommonOptions,
       {},
       Place},
      {"fleet release",
       absl::StrCat("MEETING ", kCommonUsage),
       "Forget a meeting's placement (the meeting ended)." + etcd_help,
       kCommonOptions,
       {},
       Release},
      {"fleet drain",
       absl::StrCat("PAIR [--reason TEXT] [--undo] ", kCommonUsage),
       "Take a pair out of placement: it takes no new meetings, its live ones go on.\n"
       "--undo puts it back." +
           etcd_help,
       With({"reason"}),
       {"undo"},
       Drain},
  };
}

}  // namespace tandem::control
