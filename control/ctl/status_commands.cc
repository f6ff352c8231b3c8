// tandemctl status, show neighbours, show ports (one GetStatus each), and
// the two that follow the node: watch (the change log) and top (a live view).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/client/json.h"
#include "control/ctl/command.h"
#include "control/ctl/output.h"
#include "control/ctl/top.h"

namespace tandem::control {
namespace {

v1::NodeStatus GetStatus(Context& c, const Args& a, bool neighbours) {
  Need(a, 0, 0, "");
  v1::GetStatusRequest req;
  req.set_include_neighbours(neighbours);
  v1::NodeStatus s;
  Check(c.Run(&Stub::GetStatus, req, &s));
  return s;
}

// {"NAME":[...]}: the --json of a list that is one field of the status.
template <class T>
void PrintJsonList(const char* name, const google::protobuf::RepeatedPtrField<T>& items) {
  printf("{\"%s\":[", name);
  for (int i = 0; i < items.size(); ++i) printf("%s%s", i ? "," : "", ToJson(items[i]).c_str());
  printf("]}\n");
}

void ShowNeighbours(Context& c, const Args& a) {
  v1::NodeStatus s = GetStatus(c, a, true);
  if (c.json) {
    PrintJsonList("neighbours", s.neighbours());
    return;
  }
  Table t({"IP", "MAC", "STATE"});
  for (const auto& n : s.neighbours()) t.Add({n.ip(), n.mac(), n.state()});
  t.Print();
}

void ShowPorts(Context& c, const Args& a) {
  v1::NodeStatus s = GetStatus(c, a, false);
  if (c.json) {
    PrintJsonList("ports", s.ports());
    return;
  }
  Table t({"PORT", "MAC", "LINK", "RX_PKTS", "TX_PKTS", "RX_MISSED", "RX_ERR", "TX_ERR", "XDP",
           "DEVARGS"});
  for (const auto& p : s.ports()) {
    t.Add({p.name(), p.mac(), p.link_up() ? "up" : "down", absl::StrCat(p.ipackets()),
           absl::StrCat(p.opackets()), absl::StrCat(p.imissed()), absl::StrCat(p.ierrors()),
           absl::StrCat(p.oerrors()), p.xdp_mode().empty() ? "-" : p.xdp_mode(), p.devargs()});
  }
  t.Print();
}

void PrintNode(const v1::NodeStatus& s) {
  PrintKeyValues(
      {{"node", s.node()},
       {"role", s.role()},
       {"epoch", absl::StrCat(s.epoch())},
       {"vips", s.vips().empty() ? "-" : absl::StrJoin(s.vips(), " ")},
       {"legs", absl::StrCat(s.legs(), " / ", s.leg_capacity())},
       {"live meetings", absl::StrCat(s.meetings(), " / ", s.meeting_capacity())},
       {"sites", absl::StrCat(s.sites())},
       {"pool free", absl::StrCat(s.pool_free())},
       {"switch",
        s.switch_running() ? absl::StrCat("running (pid ", s.switch_pid(), ")") : "not running"},
       {"switch restarts", absl::StrCat(s.switch_restarts())},
       {"rx packets", absl::StrCat(s.rx_packets())},
       {"tx packets", absl::StrCat(s.tx_packets())},
       {"changes", absl::StrCat(s.change_seq(), " (log ", s.log_id(), ")")},
       {"alarms", s.alarms().empty() ? std::string("none") : s.alarms()},
       {"neighbours",
        absl::StrCat(s.neighbour_entries(), " entries, ", s.neighbour_conflicts(), " conflicts",
                     s.last_neighbour_conflict().empty()
                         ? std::string()
                         : absl::StrCat(" (last: ", s.last_neighbour_conflict(), ")"))}});
}

void PrintWorkers(const v1::NodeStatus& s) {
  if (s.workers_size() == 0) return;
  printf("\n");
  Table t(
      {"WORKER", "LCORE", "HEALTH", "HEARTBEAT_AGE_MS", "SLEEPING", "RX_PKTS", "TX_PKTS", "DROPS"});
  for (const auto& w : s.workers()) {
    t.Add({absl::StrCat(w.index()), absl::StrCat(w.lcore()), w.healthy() ? "ok" : "STALLED",
           absl::StrCat(w.heartbeat_age_ms()), w.sleeping() ? "yes" : "no",
           absl::StrCat(w.rx_packets()), absl::StrCat(w.tx_packets()), absl::StrCat(w.drops())});
  }
  t.Print();
}

void PrintPortSummary(const v1::NodeStatus& s) {
  if (s.ports_size() == 0) return;
  printf("\n");
  Table t({"PORT", "MAC", "LINK", "RX_PKTS", "TX_PKTS"});
  for (const auto& p : s.ports()) {
    t.Add({p.name(), p.mac(), p.link_up() ? "up" : "down", absl::StrCat(p.ipackets()),
           absl::StrCat(p.opackets())});
  }
  t.Print();
}

std::string LastTakeover(const v1::PairStatus& p) {
  if (!p.last_takeover_unix_ns()) return "none";
  time_t t = static_cast<time_t>(p.last_takeover_unix_ns() / 1000000000);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
  return absl::StrCat(when, ": ", p.last_takeover_cause());
}

std::string Refused(const v1::PairStatus& p) {
  std::vector<std::string> r;
  for (const auto& [what, n] : p.refused()) {
    if (n) r.push_back(absl::StrCat(what, " ", n));
  }
  std::sort(r.begin(), r.end());
  return r.empty() ? std::string("none") : absl::StrJoin(r, ", ");
}

std::string LostWrites(const v1::PairStatus& p) {
  if (p.lost_writes().empty() || p.lost_writes() == "none") return "-";
  if (p.lost_writes() == "listed") return absl::StrCat(p.lost_changes(), " (tandemctl pair lost)");
  return p.lost_writes();
}

std::string UpOrDown(bool up) { return up ? "up" : "DOWN"; }
std::string OkOrDown(bool ok) { return ok ? "ok" : "DOWN"; }

std::string Peer(const v1::PairStatus& p) {
  if (p.peer_role().empty()) return p.peer_state();
  return absl::StrCat(p.peer_state(), ", ", p.peer_role(), ", epoch ", p.peer_epoch(),
                      ", position ", p.peer_position(), ", data plane ",
                      OkOrDown(p.peer_data_plane_ok()), ", access link ",
                      UpOrDown(p.peer_access_link_up()));
}

std::string MiB(uint64_t bytes) { return absl::StrFormat("%.1f", bytes / 1048576.0); }

void PrintPair(const v1::PairStatus& p) {
  printf("\n");
  PrintKeyValues(
      {{"pair", absl::StrCat("node ", p.node_id(), " with peer ", p.peer_node_id(), ", ", p.mode(),
                             " replication")},
       {"this node", absl::StrCat("data plane ", OkOrDown(p.data_plane_ok()), ", access link ",
                                  UpOrDown(p.access_link_up()))},
       {"peer", Peer(p)},
       {"replication", absl::StrCat(p.replication(), ", position ", p.position(), ", applied ",
                                    p.acked_position(), ", lag ", p.lag_changes(), " changes / ",
                                    absl::StrFormat("%.1f", p.lag_ms()), " ms")},
       {"backlog", absl::StrCat(p.backlog_changes(), " changes, ", MiB(p.backlog_bytes()),
                                " MiB held, ", MiB(p.backlog_resident_bytes()), " MiB resident")},
       {"alarms", p.alarms()},
       {"peer clock", absl::StrFormat("%+.1f ms from ours", p.peer_clock_skew_ms())},
       {"takeovers", absl::StrCat(p.takeovers())},
       {"taken over at",
        p.takeover_position()
            ? absl::StrCat("change ", p.takeover_position(), " of log ", p.takeover_log_id(),
                           " (later writes of the old active may be lost)")
            : std::string("-")},
       {"last takeover", LastTakeover(p)},
       {"refused", Refused(p)},
       {"lost writes", LostWrites(p)},
       {"site data", p.compare_result().empty()
                         ? std::string("not compared yet")
                         : absl::StrCat(p.compare_result(), " at change ", p.compare_seq(), " (",
                                        p.drift_repairs(), " drift repairs)")}});
}

void PrintDrops(const v1::NodeStatus& s) {
  KeyValues drops;
  for (const auto& [k, v] : s.drops()) {
    if (v) drops.push_back({absl::StrCat("drops ", k), absl::StrCat(v)});
  }
  std::sort(drops.begin(), drops.end());
  if (drops.empty()) return;
  printf("\n");
  PrintKeyValues(drops);
}

void ShowStatus(Context& c, const Args& a) {
  v1::NodeStatus s = GetStatus(c, a, false);
  if (PrintIfJson(c, s)) return;
  PrintNode(s);
  PrintWorkers(s);
  PrintPortSummary(s);
  if (s.has_pair()) PrintPair(s.pair());
  PrintDrops(s);
}

void Watch(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  uint64_t from = a.Has("from") ? ParseId(a.Get("from"), "sequence number") : 0;
  uint64_t log = a.Has("log") ? ParseId(a.Get("log"), "log id") : 0;
  uint64_t count = a.Has("count") ? ParseId(a.Get("count"), "count") : 0;
  uint64_t n = 0;
  // With --pair the library resumes the watch on the new active node after a
  // takeover, from the change after the last one printed: the log continues
  // there with the same id and numbers.
  Check(c.client->Watch(log, from, [&](const v1::Change& change) {
    printf("%s\n", ToJson(change).c_str());
    fflush(stdout);
    return !(count && ++n >= count);
  }));
}

void Top(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  TopOptions o;
  if (a.Has("interval")) {
    o.interval_s = ParseU32(a.Get("interval"), "--interval");
    if (o.interval_s < 1) throw UsageError{"--interval must be at least 1"};
  }
  if (a.Has("iterations")) {
    o.iterations = static_cast<int>(ParseU32(a.Get("iterations"), "--iterations"));
  }
  if (a.Has("meetings")) o.meetings = static_cast<int>(ParseU32(a.Get("meetings"), "--meetings"));
  if (int rc = RunTop(*c.client, o); rc != 0) exit(rc);
}

}  // namespace

Command StatusCommand() {
  return {"status", "", "Role, epoch, VIPs, table occupancy, switch workers and ports.",
          {},       {}, ShowStatus};
}

std::vector<Command> SwitchCommands() {
  return {
      {"show neighbours", "", "The switch's neighbour cache (IP to MAC).", {}, {}, ShowNeighbours},
      {"show ports", "", "The switch's ports, link state and counters.", {}, {}, ShowPorts},
  };
}

std::vector<Command> FollowCommands() {
  return {
      {"watch",
       "[--from SEQ] [--log LOG_ID] [--count N]",
       "Follow the change log: one JSON object per change. --from resumes at a\n"
       "sequence number (of --log, default the current log); --count stops after N.",
       {"from", "log", "count"},
       {},
       Watch},
      {"top",
       "[--interval SECONDS] [--iterations N] [--meetings N]",
       "A live view of the node, refreshed every --interval (1 s): ports, workers,\n"
       "live meetings with packets per second in and out, drops by reason, the\n"
       "pair's role and lag. q or Ctrl-C quits; --iterations N prints N screens.",
       {"interval", "iterations", "meetings"},
       {},
       Top},
  };
}

}  // namespace tandem::control
