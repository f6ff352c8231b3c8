// tandemctl: the operators' CLI over the control API of tandem-control.
// Readable tables by default, --json for scripts; exit 0 on success, 1 with a
// one-line reason on stderr when the API refuses, 2 on a usage error, 3 when
// the daemon cannot be reached (also when a TLS handshake fails).
// A Unix socket address is plain; a TCP address is always mutual TLS
// (--tls-cert, --tls-key, --tls-ca or $TANDEM_TLS_CERT, _KEY, _CA).
// Every call goes through the client library (control/client/pair_client.h):
// with --pair A,B to whichever node is active, following a takeover.
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control.grpc.pb.h"
#include "control/client/pair_client.h"
#include "common/keys.h"
#include "common/version.h"
#include "control/ctl/completion.h"
#include "control/ctl/fleet.h"
#include "control/client/json.h"
#include "control/ctl/top.h"

namespace tandem::control {
namespace {

constexpr const char* kDefaultApi = "unix:/run/tandem/a.sock";

// A usage error: printed with the command's usage, exit code 2.
struct UsageError {
  std::string message;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;  // --name value (repeatable)
  std::set<std::string> flags;                              // --name

  bool Has(const std::string& name) const { return options.contains(name) || flags.contains(name); }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second.back();
  }
  const std::vector<std::string>& All(const std::string& name) const {
    static const std::vector<std::string> kNone;
    auto it = options.find(name);
    return it == options.end() ? kNone : it->second;
  }
};

uint64_t ParseId(const std::string& text, const std::string& what) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v))
    throw UsageError{absl::StrCat("invalid ", what, " '", text, "'")};
  return v;
}

uint32_t ParseU32(const std::string& text, const std::string& what) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(text, &v))
    throw UsageError{absl::StrCat("invalid ", what, " '", text, "'")};
  return v;
}

bool ParseBool(const std::string& text, const std::string& what) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  throw UsageError{absl::StrCat("invalid ", what, " '", text, "' (want true or false)")};
}

std::pair<std::string, std::string> ParseKeyValue(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError{absl::StrCat("want KEY=VALUE, not '", text, "'")};
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

v1::ParticipantRole ParseRole(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "host") return v1::HOST;
  if (t == "presenter") return v1::PRESENTER;
  if (t == "attendee") return v1::ATTENDEE;
  throw UsageError{absl::StrCat("invalid role '", text, "' (want host, presenter or attendee)")};
}

v1::Channel ParseChannel(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "audio") return v1::AUDIO;
  if (t == "video") return v1::VIDEO;
  if (t == "share") return v1::SHARE;
  throw UsageError{absl::StrCat("invalid channel '", text, "' (want audio, video or share)")};
}

// --leg CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only]
v1::LegRequest ParseLeg(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts.size() < 2) {
    throw UsageError{absl::StrCat(
        "invalid leg '", text, "' (want CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only])")};
  }
  v1::LegRequest leg;
  leg.set_channel(ParseChannel(parts[0]));
  leg.set_remote(parts[1]);
  for (size_t i = 2; i < parts.size(); ++i) {
    if (absl::StartsWith(parts[i], "local=")) {
      leg.set_local(parts[i].substr(6));
    } else if (parts[i] == "recv-only") {
      leg.set_recv_only(true);
    } else if (parts[i] == "send-only") {
      leg.set_send_only(true);
    } else {
      throw UsageError{absl::StrCat("invalid leg option '", parts[i], "' in '", text, "'")};
    }
  }
  return leg;
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

std::string FormatTime(uint64_t unix_ns) {
  if (unix_ns == 0) return "-";
  time_t t = static_cast<time_t>(unix_ns / 1000000000ull);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A plain text table with aligned columns.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

void PrintKeyValues(const std::vector<std::pair<std::string, std::string>>& kv) {
  size_t w = 0;
  for (const auto& [k, v] : kv) w = std::max(w, k.size());
  for (const auto& [k, v] : kv)
    printf("%-*s  %s\n", static_cast<int>(w + 1), (k + ":").c_str(), v.c_str());
}

std::string Join(const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(absl::StrCat(k, "=", v));
  std::sort(parts.begin(), parts.end());
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string Limit(uint32_t v) { return v == 0 ? "unlimited" : absl::StrCat(v); }
// A rate limit of a site's policy that may be left to the node's default.
std::string Rate(bool set, uint32_t v, const char* unit) {
  if (!set) return "node default";
  return v == 0 ? "unlimited" : absl::StrCat(v, unit);
}
std::string Rates(const v1::LegLimits& l) {
  return absl::StrCat(Rate(l.has_pps(), l.pps(), " pps"), ", ",
                      Rate(l.has_kbps(), l.kbps(), " kbit/s"));
}

using client::Stub;

struct Context {
  // Every call goes through the client library: with --pair to the pair's
  // active node (found by asking both, again after a takeover), else to the
  // one node of --api.
  std::unique_ptr<client::PairClient> client;
  bool json = false;
  int timeout_s = 30;

  template <class Req, class Resp>
  grpc::Status Run(client::Method<Req, Resp> method, const Req& req, Resp* resp) const {
    return client->Call(method, req, resp);
  }
};

// A refused call: its status, printed as one line.
struct ApiError {
  grpc::Status status;
};

void Check(const grpc::Status& st) {
  if (!st.ok()) throw ApiError{st};
}

// ---- output of the main objects ----

void PrintSite(const Context& c, const v1::Site& s) {
  if (c.json) {
    printf("%s\n", ToJson(s).c_str());
    return;
  }
  const v1::Policy& p = s.policy();
  PrintKeyValues(
      {{"site", absl::StrCat(s.site_id())},
       {"name", s.name()},
       {"look and feel", Join(s.look_and_feel())},
       {"preferences", Join(s.preferences())},
       {"live meetings", Limit(p.max_live_meetings())},
       {"participants per meeting", Limit(p.max_participants_per_meeting())},
       {"legs", Limit(p.max_legs())},
       {"leg packet rate", Rate(p.has_leg_pps(), p.leg_pps(), " pps")},
       {"leg bit rate", Rate(p.has_leg_kbps(), p.leg_kbps(), " kbit/s")},
       {"audio legs", Rates(p.audio())},
       {"video legs", Rates(p.video())},
       {"share legs", Rates(p.share())},
       {"meeting copies", Rate(p.has_meeting_copies_per_s(), p.meeting_copies_per_s(), "/s")},
       {"created", FormatTime(s.created_unix_ns())},
       {"updated", FormatTime(s.updated_unix_ns())}});
}

std::vector<std::pair<std::string, std::string>> UsageLines(const v1::Usage& u) {
  return {{"packets in", absl::StrCat(u.packets_in())},
          {"bytes in", absl::StrCat(u.bytes_in())},
          {"packets out", absl::StrCat(u.packets_out())},
          {"bytes out", absl::StrCat(u.bytes_out())},
          {"dropped (not allowed)", absl::StrCat(u.drop_not_allowed())},
          {"dropped (policed)", absl::StrCat(u.drop_policed())},
          {"dropped (other)", absl::StrCat(u.drop_other())},
          {"first packet", FormatTime(u.first_packet_unix_ns())},
          {"last packet", FormatTime(u.last_packet_unix_ns())},
          {"participant minutes", absl::StrFormat("%.2f", u.participant_minutes())}};
}

void PrintMeeting(const Context& c, const v1::Meeting& m) {
  if (c.json) {
    printf("%s\n", ToJson(m).c_str());
    return;
  }
  std::vector<std::pair<std::string, std::string>> kv = {
      {"meeting", absl::StrCat(m.meeting_id())},
      {"site", absl::StrCat(m.site_id())},
      {"title", m.title()},
      {"state", Lower(v1::MeetingState_Name(m.state()))},
      {"presenter only", m.presenter_only() ? "yes" : "no"},
      {"listed", m.listed() ? "yes" : "no"},
      {"scheduled start",
       m.scheduled_start_unix() ? FormatTime(m.scheduled_start_unix() * 1000000000ull) : "-"},
      {"duration", m.duration_minutes() ? absl::StrCat(m.duration_minutes(), " min") : "-"},
      {"started", FormatTime(m.started_unix_ns())},
      {"ended", FormatTime(m.ended_unix_ns())},
      {"participants", absl::StrCat(m.participants())},
      {"legs", absl::StrCat(m.legs())}};
  for (auto& line : UsageLines(m.usage())) kv.push_back(line);
  PrintKeyValues(kv);
}

std::string LegFlags(const v1::Leg& l) {
  std::vector<std::string> f;
  if (l.send()) f.push_back("send");
  if (l.recv()) f.push_back("recv");
  if (l.muted()) f.push_back("muted");
  return f.empty() ? "-" : absl::StrJoin(f, ",");
}

void PrintLegs(const std::vector<const v1::Leg*>& legs, bool usage) {
  std::vector<std::string> h = {"LEG",    "PARTICIPANT", "MEETING", "CHANNEL",
                                "REMOTE", "LOCAL",       "FLAGS",   "PPS/KBPS"};
  if (usage) {
    for (const char* s : {"PKTS_IN", "BYTES_IN", "PKTS_OUT", "BYTES_OUT", "DROPS"}) h.push_back(s);
  }
  Table t(h);
  for (const v1::Leg* l : legs) {
    std::vector<std::string> row = {absl::StrCat(l->leg_id()),
                                    absl::StrCat(l->participant_id()),
                                    absl::StrCat(l->meeting_id()),
                                    Lower(v1::Channel_Name(l->channel())),
                                    l->remote(),
                                    l->local(),
                                    LegFlags(*l),
                                    absl::StrCat(Limit(l->pps_limit()), "/",
                                                 Limit(l->kbps_limit()))};
    if (usage) {
      const v1::Usage& u = l->usage();
      row.push_back(absl::StrCat(u.packets_in()));
      row.push_back(absl::StrCat(u.bytes_in()));
      row.push_back(absl::StrCat(u.packets_out()));
      row.push_back(absl::StrCat(u.bytes_out()));
      row.push_back(absl::StrCat(u.drop_not_allowed() + u.drop_policed() + u.drop_other()));
    }
    t.Add(std::move(row));
  }
  t.Print();
}

void PrintParticipants(const Context& c, const google::protobuf::Message& whole,
                       const google::protobuf::RepeatedPtrField<v1::Participant>& ps) {
  if (c.json) {
    printf("%s\n", ToJson(whole).c_str());
    return;
  }
  Table t({"PARTICIPANT", "MEETING", "NAME", "ROLE", "MUTED", "LEGS", "JOINED", "LEFT", "PKTS_IN",
           "PKTS_OUT"});
  std::vector<const v1::Leg*> legs;
  for (const v1::Participant& p : ps) {
    t.Add({absl::StrCat(p.participant_id()), absl::StrCat(p.meeting_id()),
           p.name().empty() ? "-" : p.name(), Lower(v1::ParticipantRole_Name(p.role())),
           p.muted() ? "yes" : "no", absl::StrCat(p.legs_size()), FormatTime(p.joined_unix_ns()),
           FormatTime(p.left_unix_ns()), absl::StrCat(p.usage().packets_in()),
           absl::StrCat(p.usage().packets_out())});
    for (const v1::Leg& l : p.legs()) legs.push_back(&l);
  }
  t.Print();
  if (!legs.empty()) {
    printf("\n");
    PrintLegs(legs, false);
  }
}

// ---- commands ----

struct Command {
  std::string name;   // "site create"
  std::string usage;  // arguments
  std::string help;
  std::set<std::string> options;  // take a value
  std::set<std::string> flags;    // boolean
  std::function<void(Context&, const Args&)> run;
  bool local = false;  // runs here, without the API
};

void Need(const Args& a, size_t n, size_t max, const char* what) {
  if (a.positional.size() < n) throw UsageError{absl::StrCat("missing ", what)};
  if (a.positional.size() > max) {
    throw UsageError{absl::StrCat("unexpected argument '", a.positional[max], "'")};
  }
}

void SetPolicyFromArgs(const Args& a, v1::Policy* p) {
  if (a.Has("max-meetings"))
    p->set_max_live_meetings(ParseU32(a.Get("max-meetings"), "--max-meetings"));
  if (a.Has("max-participants")) {
    p->set_max_participants_per_meeting(ParseU32(a.Get("max-participants"), "--max-participants"));
  }
  if (a.Has("max-legs")) p->set_max_legs(ParseU32(a.Get("max-legs"), "--max-legs"));
  // Rate limits: a number (0 = unlimited) or "default" (the node's).
  auto rate = [&](const char* name, auto set, auto clear) {
    if (!a.Has(name)) return;
    if (a.Get(name) == "default") {
      clear();
    } else {
      set(ParseU32(a.Get(name), absl::StrCat("--", name)));
    }
  };
  rate("leg-pps", [&](uint32_t v) { p->set_leg_pps(v); }, [&] { p->clear_leg_pps(); });
  rate("leg-kbps", [&](uint32_t v) { p->set_leg_kbps(v); }, [&] { p->clear_leg_kbps(); });
  rate("meeting-copies", [&](uint32_t v) { p->set_meeting_copies_per_s(v); },
       [&] { p->clear_meeting_copies_per_s(); });
  for (const auto& channel : {std::pair{"audio", p->mutable_audio()},
                              {"video", p->mutable_video()}, {"share", p->mutable_share()}}) {
    // Named copies, not a structured binding: clang before 16 cannot capture
    // those in a lambda.
    const char* ch = channel.first;
    auto* l = channel.second;
    rate(absl::StrCat(ch, "-pps").c_str(), [&](uint32_t v) { l->set_pps(v); },
         [&] { l->clear_pps(); });
    rate(absl::StrCat(ch, "-kbps").c_str(), [&](uint32_t v) { l->set_kbps(v); },
         [&] { l->clear_kbps(); });
  }
}

const std::set<std::string> kPolicyOptions = {
    "max-meetings", "max-participants", "max-legs",  "leg-pps",   "leg-kbps",
    "audio-pps",    "audio-kbps",       "video-pps", "video-kbps", "share-pps",
    "share-kbps",   "meeting-copies"};
// The usage text of the policy options.
constexpr const char* kPolicyUsage =
    "    [--max-meetings N] [--max-participants N] [--max-legs N]\n"
    "    [--leg-pps R] [--leg-kbps R] [--audio-pps R] [--audio-kbps R] [--video-pps R]\n"
    "    [--video-kbps R] [--share-pps R] [--share-kbps R] [--meeting-copies R]";

std::set<std::string> Merge(std::set<std::string> a, const std::set<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

v1::MeetingState ParseState(const std::string& text) {
  std::string t = Lower(text);
  if (t == "scheduled") return v1::SCHEDULED;
  if (t == "live") return v1::LIVE;
  if (t == "ended") return v1::ENDED;
  throw UsageError{absl::StrCat("invalid state '", text, "' (want scheduled, live or ended)")};
}

void CmdStatus(Context& c, const Args& a, bool neighbours, bool ports_only) {
  Need(a, 0, 0, "");
  v1::GetStatusRequest req;
  req.set_include_neighbours(neighbours);
  v1::NodeStatus s;
  Check(c.Run(&Stub::GetStatus, req, &s));
  if (neighbours) {
    if (c.json) {
      printf("{\"neighbours\":[");
      for (int i = 0; i < s.neighbours_size(); ++i) {
        printf("%s%s", i ? "," : "", ToJson(s.neighbours(i)).c_str());
      }
      printf("]}\n");
      return;
    }
    Table t({"IP", "MAC", "STATE"});
    for (const auto& n : s.neighbours()) t.Add({n.ip(), n.mac(), n.state()});
    t.Print();
    return;
  }
  if (ports_only) {
    if (c.json) {
      printf("{\"ports\":[");
      for (int i = 0; i < s.ports_size(); ++i)
        printf("%s%s", i ? "," : "", ToJson(s.ports(i)).c_str());
      printf("]}\n");
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
    return;
  }
  if (c.json) {
    printf("%s\n", ToJson(s).c_str());
    return;
  }
  PrintKeyValues({{"node", s.node()},
                  {"role", s.role()},
                  {"epoch", absl::StrCat(s.epoch())},
                  {"vips", s.vips().empty() ? "-" : absl::StrJoin(s.vips(), " ")},
                  {"legs", absl::StrCat(s.legs(), " / ", s.leg_capacity())},
                  {"live meetings", absl::StrCat(s.meetings(), " / ", s.meeting_capacity())},
                  {"sites", absl::StrCat(s.sites())},
                  {"pool free", absl::StrCat(s.pool_free())},
                  {"switch", s.switch_running() ? absl::StrCat("running (pid ", s.switch_pid(), ")")
                                                : "not running"},
                  {"switch restarts", absl::StrCat(s.switch_restarts())},
                  {"rx packets", absl::StrCat(s.rx_packets())},
                  {"tx packets", absl::StrCat(s.tx_packets())},
                  {"changes", absl::StrCat(s.change_seq(), " (log ", s.log_id(), ")")},
                  {"alarms", s.alarms().empty() ? std::string("none") : s.alarms()},
                  {"neighbours",
                   absl::StrCat(s.neighbour_entries(), " entries, ", s.neighbour_conflicts(),
                                " conflicts",
                                s.last_neighbour_conflict().empty()
                                    ? std::string()
                                    : absl::StrCat(" (last: ", s.last_neighbour_conflict(), ")"))}});
  if (s.workers_size() > 0) {
    printf("\n");
    Table t({"WORKER", "LCORE", "HEALTH", "HEARTBEAT_AGE_MS", "SLEEPING", "RX_PKTS", "TX_PKTS",
             "DROPS"});
    for (const auto& w : s.workers()) {
      t.Add({absl::StrCat(w.index()), absl::StrCat(w.lcore()), w.healthy() ? "ok" : "STALLED",
             absl::StrCat(w.heartbeat_age_ms()), w.sleeping() ? "yes" : "no",
             absl::StrCat(w.rx_packets()), absl::StrCat(w.tx_packets()), absl::StrCat(w.drops())});
    }
    t.Print();
  }
  if (s.ports_size() > 0) {
    printf("\n");
    Table t({"PORT", "MAC", "LINK", "RX_PKTS", "TX_PKTS"});
    for (const auto& p : s.ports()) {
      t.Add({p.name(), p.mac(), p.link_up() ? "up" : "down", absl::StrCat(p.ipackets()),
             absl::StrCat(p.opackets())});
    }
    t.Print();
  }
  if (s.has_pair()) {
    const v1::PairStatus& p = s.pair();
    printf("\n");
    std::string takeover = "none";
    if (p.last_takeover_unix_ns()) {
      time_t t = static_cast<time_t>(p.last_takeover_unix_ns() / 1000000000);
      char when[64];
      strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
      takeover = absl::StrCat(when, ": ", p.last_takeover_cause());
    }
    PrintKeyValues(
        {{"pair", absl::StrCat("node ", p.node_id(), " with peer ", p.peer_node_id(), ", ",
                               p.mode(), " replication")},
         {"this node", absl::StrCat("data plane ", p.data_plane_ok() ? "ok" : "DOWN",
                                    ", access link ", p.access_link_up() ? "up" : "DOWN")},
         {"peer", p.peer_role().empty()
                      ? p.peer_state()
                      : absl::StrCat(p.peer_state(), ", ", p.peer_role(), ", epoch ",
                                     p.peer_epoch(), ", position ", p.peer_position(),
                                     ", data plane ", p.peer_data_plane_ok() ? "ok" : "DOWN",
                                     ", access link ", p.peer_access_link_up() ? "up" : "DOWN")},
         {"replication", absl::StrCat(p.replication(), ", position ", p.position(), ", applied ",
                                      p.acked_position(), ", lag ", p.lag_changes(),
                                      " changes / ", absl::StrFormat("%.1f", p.lag_ms()), " ms")},
         {"backlog", absl::StrCat(p.backlog_changes(), " changes, ",
                                  absl::StrFormat("%.1f", p.backlog_bytes() / 1048576.0),
                                  " MiB held, ",
                                  absl::StrFormat("%.1f", p.backlog_resident_bytes() / 1048576.0),
                                  " MiB resident")},
         {"alarms", p.alarms()},
         {"peer clock", absl::StrFormat("%+.1f ms from ours", p.peer_clock_skew_ms())},
         {"takeovers", absl::StrCat(p.takeovers())},
         {"taken over at", p.takeover_position()
                               ? absl::StrCat("change ", p.takeover_position(), " of log ",
                                              p.takeover_log_id(),
                                              " (later writes of the old active may be lost)")
                               : std::string("-")},
         {"last takeover", takeover},
         {"refused", [&] {
            std::vector<std::string> r;
            for (const auto& [what, n] : p.refused()) {
              if (n) r.push_back(absl::StrCat(what, " ", n));
            }
            std::sort(r.begin(), r.end());
            return r.empty() ? std::string("none") : absl::StrJoin(r, ", ");
          }()},
         {"lost writes", p.lost_writes().empty() || p.lost_writes() == "none"
                             ? std::string("-")
                             : p.lost_writes() == "listed"
                                 ? absl::StrCat(p.lost_changes(), " (tandemctl pair lost)")
                                 : p.lost_writes()},
         {"site data", p.compare_result().empty()
                           ? std::string("not compared yet")
                           : absl::StrCat(p.compare_result(), " at change ", p.compare_seq(),
                                          " (", p.drift_repairs(), " drift repairs)")}});
  }
  std::vector<std::pair<std::string, std::string>> drops;
  for (const auto& [k, v] : s.drops()) {
    if (v) drops.push_back({absl::StrCat("drops ", k), absl::StrCat(v)});
  }
  std::sort(drops.begin(), drops.end());
  if (!drops.empty()) {
    printf("\n");
    PrintKeyValues(drops);
  }
}

std::vector<Command> Commands() {
  std::vector<Command> cmds;
  cmds.push_back({"status",
                  "",
                  "Role, epoch, VIPs, table occupancy, switch workers and ports.",
                  {},
                  {},
                  [](Context& c, const Args& a) { CmdStatus(c, a, false, false); }});

  cmds.push_back({"pair compare",
                  "",
                  "Compare site data (sites, look-and-feel, preferences, meetings) with the\n"
                  "standby now, by digest; the standby repairs any drift by a full resync and\n"
                  "shows the result in its status. Run it on the active node.",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::ComparePairResponse r;
                    Check(c.Run(&Stub::ComparePair, v1::ComparePairRequest(), &r));
                    if (c.json) {
                      printf("%s\n", ToJson(r).c_str());
                    } else {
                      printf("digest %s at change %llu sent to the standby\n", r.digest().c_str(),
                             static_cast<unsigned long long>(r.position()));
                    }
                  }});
  cmds.push_back({"pair switchover",
                  "[--force]",
                  "Hand the active role to the other node (on the active node: once the standby\n"
                  "is caught up; on the standby: take it now). --force skips the checks.",
                  {},
                  {"force"},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::SwitchoverRequest req;
                    req.set_force(a.flags.contains("force"));
                    v1::SwitchoverResponse r;
                    Check(c.Run(&Stub::Switchover, req, &r));
                    if (c.json) {
                      printf("%s\n", ToJson(r).c_str());
                    } else {
                      printf("switchover requested: this node is %s, epoch %llu\n",
                             r.role().c_str(), static_cast<unsigned long long>(r.epoch()));
                    }
                  }});

  cmds.push_back({"pair keygen",
                  "FILE",
                  "Write a new random pair key (32 bytes, as 64 hex digits) to FILE, a new file\n"
                  "of mode 0600; never overwrites. Copy it to both nodes and name it in their\n"
                  "switch and control configurations as pair.key_file (docs/pair.md).",
                  {},
                  {},
                  [](Context&, const Args& a) {
                    Need(a, 1, 1, "FILE");
                    if (absl::Status st = keys::WriteNewPairKeyFile(a.positional[0]); !st.ok()) {
                      fprintf(stderr, "tandemctl: %s\n", std::string(st.message()).c_str());
                      std::exit(1);
                    }
                    printf("wrote a new pair key to %s (mode 0600)\n", a.positional[0].c_str());
                  },
                  /*local=*/true});
  cmds.push_back({"pair lost",
                  "",
                  "The writes lost at the last takeover (asynchronous mode): the changes the old\n"
                  "active acknowledged after the new one's takeover position, as the old active\n"
                  "handed them over when it returned as standby. Redo them. Ask the active node.",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::LostWritesResponse r;
                    Check(c.Run(&Stub::LostWrites, v1::LostWritesRequest(), &r));
                    if (c.json) {
                      printf("%s\n", ToJson(r).c_str());
                      return;
                    }
                    if (r.state() == "none") {
                      printf("no takeover from a peer\n");
                      return;
                    }
                    printf("taken over after change %llu of log %llu (the old active was heard at "
                           "%llu): %s\n",
                           static_cast<unsigned long long>(r.after_seq()),
                           static_cast<unsigned long long>(r.log_id()),
                           static_cast<unsigned long long>(r.last_heard_seq()),
                           r.state() == "pending"
                               ? "the old active has not returned yet"
                           : r.state() == "unknown"
                               ? "the old active returned without them (it had restarted)"
                               : absl::StrCat(r.changes_size(), " lost changes").c_str());
                    for (const v1::Change& ch : r.changes()) printf("%s\n", ToJson(ch).c_str());
                  }});

  cmds.push_back({"site create",
                  absl::StrCat(
                      "--name NAME [--id ID] [--look KEY=VALUE]... [--pref KEY=VALUE]...\n",
                      kPolicyUsage),
                  "Create a site (tenant). Limits of 0 mean unlimited; a rate R is a number\n"
                  "or \"default\" (the node's, the default; see docs/control.md).",
                  Merge({"name", "id", "look", "pref"}, kPolicyOptions),
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::CreateSiteRequest req;
                    v1::Site* s = req.mutable_site();
                    s->set_name(a.Get("name"));
                    if (a.Has("id")) s->set_site_id(ParseId(a.Get("id"), "site id"));
                    for (const auto& kv : a.All("look")) {
                      auto [k, v] = ParseKeyValue(kv);
                      (*s->mutable_look_and_feel())[k] = v;
                    }
                    for (const auto& kv : a.All("pref")) {
                      auto [k, v] = ParseKeyValue(kv);
                      (*s->mutable_preferences())[k] = v;
                    }
                    SetPolicyFromArgs(a, s->mutable_policy());
                    v1::Site out;
                    Check(c.Run(&Stub::CreateSite, req, &out));
                    PrintSite(c, out);
                  }});
  cmds.push_back({"site get", "SITE_ID", "Show a site.", {}, {}, [](Context& c, const Args& a) {
                    Need(a, 1, 1, "SITE_ID");
                    v1::GetSiteRequest req;
                    req.set_site_id(ParseId(a.positional[0], "site id"));
                    v1::Site out;
                    Check(c.Run(&Stub::GetSite, req, &out));
                    PrintSite(c, out);
                  }});
  cmds.push_back(
      {"site list", "", "List sites.", {}, {}, [](Context& c, const Args& a) {
         Need(a, 0, 0, "");
         v1::ListSitesResponse out;
         Check(c.Run(&Stub::ListSites, v1::ListSitesRequest(), &out));
         if (c.json) {
           printf("%s\n", ToJson(out).c_str());
           return;
         }
         Table t({"SITE", "NAME", "MEETINGS", "PARTICIPANTS", "LEGS", "LEG_PPS", "LEG_KBPS"});
         for (const auto& s : out.sites()) {
           const auto& p = s.policy();
           t.Add({absl::StrCat(s.site_id()), s.name(), Limit(p.max_live_meetings()),
                  Limit(p.max_participants_per_meeting()), Limit(p.max_legs()),
                  Rate(p.has_leg_pps(), p.leg_pps(), ""),
                  Rate(p.has_leg_kbps(), p.leg_kbps(), "")});
         }
         t.Print();
       }});
  cmds.push_back({"site update",
                  absl::StrCat("SITE_ID [--name NAME] [--look KEY=VALUE]... [--unset-look KEY]...\n"
                               "    [--pref KEY=VALUE]... [--unset-pref KEY]...\n",
                               kPolicyUsage),
                  "Change a site; limits not given keep their value.",
                  Merge({"name", "look", "unset-look", "pref", "unset-pref"}, kPolicyOptions),
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 1, 1, "SITE_ID");
                    v1::UpdateSiteRequest req;
                    req.set_site_id(ParseId(a.positional[0], "site id"));
                    if (a.Has("name")) req.set_name(a.Get("name"));
                    for (const auto& kv : a.All("look")) {
                      auto [k, v] = ParseKeyValue(kv);
                      (*req.mutable_set_look_and_feel())[k] = v;
                    }
                    for (const auto& k : a.All("unset-look")) req.add_remove_look_and_feel(k);
                    for (const auto& kv : a.All("pref")) {
                      auto [k, v] = ParseKeyValue(kv);
                      (*req.mutable_set_preferences())[k] = v;
                    }
                    for (const auto& k : a.All("unset-pref")) req.add_remove_preferences(k);
                    bool policy = false;
                    for (const auto& o : kPolicyOptions) policy |= a.Has(o);
                    if (policy) {
                      v1::GetSiteRequest g;
                      g.set_site_id(req.site_id());
                      v1::Site cur;
                      Check(c.Run(&Stub::GetSite, g, &cur));
                      *req.mutable_policy() = cur.policy();
                      SetPolicyFromArgs(a, req.mutable_policy());
                    }
                    v1::Site out;
                    Check(c.Run(&Stub::UpdateSite, req, &out));
                    PrintSite(c, out);
                  }});
  cmds.push_back({"site delete",
                  "SITE_ID",
                  "Delete a site and its meetings (none may be live).",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 1, 1, "SITE_ID");
                    v1::DeleteSiteRequest req;
                    req.set_site_id(ParseId(a.positional[0], "site id"));
                    v1::DeleteSiteResponse out;
                    Check(c.Run(&Stub::DeleteSite, req, &out));
                    if (c.json) {
                      printf("{\"deleted\":%lu}\n", static_cast<unsigned long>(req.site_id()));
                    } else {
                      printf("site %lu deleted\n", static_cast<unsigned long>(req.site_id()));
                    }
                  }});

  cmds.push_back({"meeting schedule",
                  "--site SITE_ID --title TITLE [--id ID] [--start UNIX_TIME]\n"
                  "    [--duration MINUTES] [--presenter-only] [--unlisted]",
                  "Schedule a meeting of a site.",
                  {"site", "title", "id", "start", "duration"},
                  {"presenter-only", "unlisted"},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    if (!a.Has("site")) throw UsageError{"missing --site"};
                    v1::ScheduleMeetingRequest req;
                    v1::Meeting* m = req.mutable_meeting();
                    m->set_site_id(ParseId(a.Get("site"), "site id"));
                    m->set_title(a.Get("title"));
                    if (a.Has("id")) m->set_meeting_id(ParseId(a.Get("id"), "meeting id"));
                    if (a.Has("start"))
                      m->set_scheduled_start_unix(ParseId(a.Get("start"), "start time"));
                    if (a.Has("duration"))
                      m->set_duration_minutes(ParseU32(a.Get("duration"), "duration"));
                    m->set_presenter_only(a.flags.contains("presenter-only"));
                    m->set_listed(!a.flags.contains("unlisted"));
                    v1::Meeting out;
                    Check(c.Run(&Stub::ScheduleMeeting, req, &out));
                    PrintMeeting(c, out);
                  }});
  auto meeting_call = [](const char* verb, const char* help,
                         client::Method<v1::StartMeetingRequest, v1::Meeting> call) {
    return Command{absl::StrCat("meeting ", verb),
                   "MEETING_ID",
                   help,
                   {},
                   {},
                   [call](Context& c, const Args& a) {
                     Need(a, 1, 1, "MEETING_ID");
                     v1::StartMeetingRequest req;
                     req.set_meeting_id(ParseId(a.positional[0], "meeting id"));
                     v1::Meeting out;
                     Check(c.Run(call, req, &out));
                     PrintMeeting(c, out);
                   }};
  };
  cmds.push_back(meeting_call("start", "Start a scheduled meeting: participants can join.",
                              &Stub::StartMeeting));
  cmds.push_back({"meeting end",
                  "MEETING_ID",
                  "End a meeting: every participant leaves; its usage is recorded.",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 1, 1, "MEETING_ID");
                    v1::EndMeetingRequest req;
                    req.set_meeting_id(ParseId(a.positional[0], "meeting id"));
                    v1::Meeting out;
                    Check(c.Run(&Stub::EndMeeting, req, &out));
                    PrintMeeting(c, out);
                  }});
  cmds.push_back({"meeting get",
                  "MEETING_ID",
                  "Show a meeting with its usage.",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 1, 1, "MEETING_ID");
                    v1::GetMeetingRequest req;
                    req.set_meeting_id(ParseId(a.positional[0], "meeting id"));
                    v1::Meeting out;
                    Check(c.Run(&Stub::GetMeeting, req, &out));
                    PrintMeeting(c, out);
                  }});
  cmds.push_back({"meeting list",
                  "[--site SITE_ID] [--state scheduled|live|ended] [--listed]",
                  "List meetings.",
                  {"site", "state"},
                  {"listed"},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::ListMeetingsRequest req;
                    if (a.Has("site")) req.set_site_id(ParseId(a.Get("site"), "site id"));
                    if (a.Has("state")) req.set_state(ParseState(a.Get("state")));
                    req.set_listed_only(a.flags.contains("listed"));
                    v1::ListMeetingsResponse out;
                    Check(c.Run(&Stub::ListMeetings, req, &out));
                    if (c.json) {
                      printf("%s\n", ToJson(out).c_str());
                      return;
                    }
                    Table t({"MEETING", "SITE", "STATE", "TITLE", "PARTICIPANTS", "LEGS",
                             "PRESENTER_ONLY", "STARTED"});
                    for (const auto& m : out.meetings()) {
                      t.Add({absl::StrCat(m.meeting_id()), absl::StrCat(m.site_id()),
                             Lower(v1::MeetingState_Name(m.state())), m.title(),
                             absl::StrCat(m.participants()), absl::StrCat(m.legs()),
                             m.presenter_only() ? "yes" : "no", FormatTime(m.started_unix_ns())});
                    }
                    t.Print();
                  }});
  cmds.push_back({"meeting update",
                  "MEETING_ID [--title T] [--presenter-only true|false]\n"
                  "    [--listed true|false] [--start UNIX_TIME] [--duration MINUTES]",
                  "Change a meeting's settings (presenter-only applies at once to live legs).",
                  {"title", "presenter-only", "listed", "start", "duration"},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 1, 1, "MEETING_ID");
                    v1::UpdateMeetingRequest req;
                    req.set_meeting_id(ParseId(a.positional[0], "meeting id"));
                    if (a.Has("title")) req.set_title(a.Get("title"));
                    if (a.Has("presenter-only")) {
                      req.set_presenter_only(
                          ParseBool(a.Get("presenter-only"), "--presenter-only"));
                    }
                    if (a.Has("listed")) req.set_listed(ParseBool(a.Get("listed"), "--listed"));
                    if (a.Has("start"))
                      req.set_scheduled_start_unix(ParseId(a.Get("start"), "start"));
                    if (a.Has("duration"))
                      req.set_duration_minutes(ParseU32(a.Get("duration"), "duration"));
                    v1::Meeting out;
                    Check(c.Run(&Stub::UpdateMeeting, req, &out));
                    PrintMeeting(c, out);
                  }});

  cmds.push_back(
      {"participant join",
       "--meeting MEETING_ID [--name NAME] [--role host|presenter|attendee]\n"
       "    [--participant ID] --leg CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only]...",
       "Join a participant with its legs (local addresses are allocated from the pool\n"
       "unless given). With --participant, adds legs to a present participant.\n"
       "Example: --leg audio,198.18.0.10:5000 --leg video,198.18.0.10:5002",
       {"meeting", "name", "role", "participant", "leg"},
       {},
       [](Context& c, const Args& a) {
         Need(a, 0, 0, "");
         if (!a.Has("meeting")) throw UsageError{"missing --meeting"};
         v1::JoinRequest req;
         v1::ParticipantJoin* pj = req.add_participants();
         pj->set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
         pj->set_name(a.Get("name"));
         if (a.Has("role")) pj->set_role(ParseRole(a.Get("role")));
         if (a.Has("participant"))
           pj->set_participant_id(ParseId(a.Get("participant"), "participant id"));
         for (const auto& l : a.All("leg")) *pj->add_legs() = ParseLeg(l);
         v1::JoinResponse out;
         Check(c.Run(&Stub::Join, req, &out));
         PrintParticipants(c, out, out.participants());
       }});
  cmds.push_back({"participant leave",
                  "[PARTICIPANT_ID...] [--leg LEG_ID]...",
                  "Participants leave (with all their legs), or just the given legs.",
                  {"leg"},
                  {},
                  [](Context& c, const Args& a) {
                    v1::LeaveRequest req;
                    for (const auto& p : a.positional)
                      req.add_participant_ids(ParseId(p, "participant id"));
                    for (const auto& l : a.All("leg")) req.add_leg_ids(ParseId(l, "leg id"));
                    if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
                      throw UsageError{"missing PARTICIPANT_ID or --leg"};
                    }
                    v1::LeaveResponse out;
                    Check(c.Run(&Stub::Leave, req, &out));
                    if (c.json) {
                      printf("%s\n", ToJson(out).c_str());
                    } else {
                      printf("%u participants left, %u legs removed\n", out.participants_left(),
                             out.legs_removed());
                    }
                  }});
  cmds.push_back({"participant role",
                  "PARTICIPANT_ID host|presenter|attendee",
                  "Change a participant's role.",
                  {},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 2, 2, "PARTICIPANT_ID and ROLE");
                    v1::SetRoleRequest req;
                    req.set_participant_id(ParseId(a.positional[0], "participant id"));
                    req.set_role(ParseRole(a.positional[1]));
                    v1::Participant out;
                    Check(c.Run(&Stub::SetRole, req, &out));
                    google::protobuf::RepeatedPtrField<v1::Participant> one;
                    *one.Add() = out;
                    PrintParticipants(c, out, one);
                  }});
  for (bool mute : {true, false}) {
    cmds.push_back({mute ? "participant mute" : "participant unmute",
                    "[PARTICIPANT_ID...] [--leg LEG_ID]...",
                    mute ? "Stop forwarding the packets of participants (all their legs) or legs;\n"
                           "they still receive."
                         : "Forward their packets again.",
                    {"leg"},
                    {},
                    [mute](Context& c, const Args& a) {
                      v1::SetMuteRequest req;
                      req.set_muted(mute);
                      for (const auto& p : a.positional)
                        req.add_participant_ids(ParseId(p, "participant id"));
                      for (const auto& l : a.All("leg")) req.add_leg_ids(ParseId(l, "leg id"));
                      if (req.participant_ids_size() == 0 && req.leg_ids_size() == 0) {
                        throw UsageError{"missing PARTICIPANT_ID or --leg"};
                      }
                      v1::SetMuteResponse out;
                      Check(c.Run(&Stub::SetMute, req, &out));
                      if (c.json) {
                        printf("%s\n", ToJson(out).c_str());
                      } else {
                        printf("%u legs %s\n", out.legs_changed(), mute ? "muted" : "unmuted");
                      }
                    }});
  }
  cmds.push_back({"participant list",
                  "--meeting MEETING_ID [--all]",
                  "List a meeting's participants (--all: also those who left).",
                  {"meeting"},
                  {"all"},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    if (!a.Has("meeting")) throw UsageError{"missing --meeting"};
                    v1::ListParticipantsRequest req;
                    req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
                    req.set_include_left(a.flags.contains("all"));
                    v1::ListParticipantsResponse out;
                    Check(c.Run(&Stub::ListParticipants, req, &out));
                    PrintParticipants(c, out, out.participants());
                  }});

  auto show_legs = [](Context& c, const Args& a, bool usage) {
    Need(a, 0, 0, "");
    v1::ListLegsRequest req;
    if (a.Has("meeting")) req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
    if (a.Has("participant"))
      req.set_participant_id(ParseId(a.Get("participant"), "participant id"));
    req.set_with_usage(usage);
    v1::ListLegsResponse out;
    Check(c.Run(&Stub::ListLegs, req, &out));
    if (c.json) {
      printf("%s\n", ToJson(out).c_str());
      return;
    }
    std::vector<const v1::Leg*> legs;
    for (const auto& l : out.legs()) legs.push_back(&l);
    PrintLegs(legs, usage);
  };
  cmds.push_back(
      {"show legs",
       "[--meeting MEETING_ID] [--participant PARTICIPANT_ID] [--usage]",
       "List live legs.",
       {"meeting", "participant"},
       {"usage"},
       [show_legs](Context& c, const Args& a) { show_legs(c, a, a.flags.contains("usage")); }});
  cmds.push_back({"show usage",
                  "[--site ID | --meeting ID | --participant ID | --leg ID]",
                  "Usage of a site, meeting (live or ended), participant or leg; without a scope,\n"
                  "every live leg with its usage.",
                  {"site", "meeting", "participant", "leg"},
                  {},
                  [show_legs](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    v1::GetUsageRequest req;
                    int scopes = 0;
                    if (a.Has("site")) req.set_site_id(ParseId(a.Get("site"), "site id")), ++scopes;
                    if (a.Has("meeting"))
                      req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id")), ++scopes;
                    if (a.Has("participant")) {
                      req.set_participant_id(ParseId(a.Get("participant"), "participant id"));
                      ++scopes;
                    }
                    if (a.Has("leg")) req.set_leg_id(ParseId(a.Get("leg"), "leg id")), ++scopes;
                    if (scopes > 1)
                      throw UsageError{"give one of --site, --meeting, --participant, --leg"};
                    if (scopes == 0) {
                      show_legs(c, a, true);
                      return;
                    }
                    v1::GetUsageResponse out;
                    Check(c.Run(&Stub::GetUsage, req, &out));
                    if (c.json) {
                      printf("%s\n", ToJson(out.usage()).c_str());
                    } else {
                      PrintKeyValues(UsageLines(out.usage()));
                    }
                  }});
  cmds.push_back({"show neighbours",
                  "",
                  "The switch's neighbour cache (IP to MAC).",
                  {},
                  {},
                  [](Context& c, const Args& a) { CmdStatus(c, a, true, false); }});
  cmds.push_back({"show ports",
                  "",
                  "The switch's ports, link state and counters.",
                  {},
                  {},
                  [](Context& c, const Args& a) { CmdStatus(c, a, false, true); }});
  cmds.push_back({"watch",
                  "[--from SEQ] [--log LOG_ID] [--count N]",
                  "Follow the change log: one JSON object per change. --from resumes at a\n"
                  "sequence number (of --log, default the current log); --count stops after N.",
                  {"from", "log", "count"},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    uint64_t from = a.Has("from") ? ParseId(a.Get("from"), "sequence number") : 0;
                    uint64_t log = a.Has("log") ? ParseId(a.Get("log"), "log id") : 0;
                    uint64_t count = a.Has("count") ? ParseId(a.Get("count"), "count") : 0;
                    uint64_t n = 0;
                    // With --pair the library resumes the watch on the new
                    // active node after a takeover, from the change after the
                    // last one printed: the log continues there with the same
                    // id and numbers.
                    Check(c.client->Watch(log, from, [&](const v1::Change& change) {
                      printf("%s\n", ToJson(change).c_str());
                      fflush(stdout);
                      return !(count && ++n >= count);
                    }));
                  }});
  cmds.push_back({"top",
                  "[--interval SECONDS] [--iterations N] [--meetings N]",
                  "A live view of the node, refreshed every --interval (1 s): ports, workers,\n"
                  "live meetings with packets per second in and out, drops by reason, the\n"
                  "pair's role and lag. q or Ctrl-C quits; --iterations N prints N screens.",
                  {"interval", "iterations", "meetings"},
                  {},
                  [](Context& c, const Args& a) {
                    Need(a, 0, 0, "");
                    TopOptions o;
                    if (a.Has("interval")) {
                      o.interval_s = ParseU32(a.Get("interval"), "--interval");
                      if (o.interval_s < 1) throw UsageError{"--interval must be at least 1"};
                    }
                    if (a.Has("iterations")) {
                      o.iterations = static_cast<int>(ParseU32(a.Get("iterations"), "--iterations"));
                    }
                    if (a.Has("meetings")) {
                      o.meetings = static_cast<int>(ParseU32(a.Get("meetings"), "--meetings"));
                    }
                    if (int rc = RunTop(*c.client, o); rc != 0) exit(rc);
                  }});
  cmds.push_back({"completion bash", "",
                  "Print the bash completion of tandemctl, generated from its commands\n"
                  "(installed as /usr/share/bash-completion/completions/tandemctl).",
                  {}, {},
                  [](Context&, const Args& a) {
                    Need(a, 0, 0, "");
                    std::vector<CompletionCommand> list;
                    for (const Command& cmd : Commands()) {
                      list.push_back({cmd.name, cmd.options, cmd.flags});
                    }
                    fputs(BashCompletion(list,
                                         {"api", "pair", "timeout", "tls-cert", "tls-key",
                                          "tls-ca", "tls-server-name"},
                                         {"json", "help", "version"})
                              .c_str(),
                          stdout);
                  },
                  true});
  // tandemctl fleet ... (control/ctl/fleet.cc): etcd, not the node's API.
  for (FleetCommand& f : FleetCommands()) {
    cmds.push_back({f.name, f.usage, f.help, f.options, f.flags,
                    [run = f.run](Context& c, const Args& a) {
                      absl::Status st = run({a.positional, a.options, a.flags, c.json});
                      if (absl::IsInvalidArgument(st)) throw UsageError{std::string(st.message())};
                      if (!st.ok()) {
                        Check(grpc::Status(static_cast<grpc::StatusCode>(st.code()),
                                           std::string(st.message())));
                      }
                    }});
  }
  return cmds;
}

void PrintCommandHelp(const Command& cmd) {
  printf("usage: tandemctl [--api ADDR] [TLS options] [--json] %s%s%s\n\n%s\n", cmd.name.c_str(),
         cmd.usage.empty() ? "" : " ", cmd.usage.c_str(), cmd.help.c_str());
}

void PrintHelp(const std::vector<Command>& cmds, const std::string& prefix) {
  printf(
      "usage: tandemctl [--api ADDR | --pair ADDR,ADDR] [--json] [--timeout SECONDS]\n"
      "                 [--tls-cert FILE --tls-key FILE] [--tls-ca FILE] [--tls-server-name NAME]\n"
      "                 COMMAND [ARGS]\n"
      "       tandemctl --version\n\n"
      "Operates a Tandem node through its control API (default %s,\n"
      "or $TANDEM_API). With --pair, every call goes to whichever node of the pair is active,\n"
      "also after a takeover. Every command takes --help.\n\n"
      "ADDR is a Unix socket (unix:PATH or a path) or HOST:PORT. HOST:PORT is always mutual\n"
      "TLS: --tls-cert/--tls-key are this client's certificate and key, --tls-ca the CA of the\n"
      "server's certificate, --tls-server-name the name it was issued to when that is not\n"
      "HOST ($TANDEM_TLS_CERT, $TANDEM_TLS_KEY, $TANDEM_TLS_CA, $TANDEM_TLS_SERVER_NAME).\n\n"
      "commands:\n",
      kDefaultApi);
  for (const Command& c : cmds) {
    if (!prefix.empty() && !absl::StartsWith(c.name, prefix)) continue;
    std::string first_line = c.help.substr(0, c.help.find('\n'));
    printf("  %-22s %s\n", c.name.c_str(), first_line.c_str());
  }
}

using client::CodeName;

int Main(int argc, char** argv) {
  // A failed call is reported by its status, as one line; gRPC's own log
  // (a failed TLS handshake, say) only when asked for with $GRPC_VERBOSITY.
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_function([](gpr_log_func_args*) {});
  std::vector<Command> cmds = Commands();
  const char* env = getenv("TANDEM_API");
  std::string api = env && *env ? env : kDefaultApi;
  Context ctx;
  client::TlsOptions tls;
  tls.names = {"--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name",
               "--tls-cert and --tls-key, or $TANDEM_TLS_CERT and $TANDEM_TLS_KEY"};
  auto from_env = [](const char* name) -> std::string {
    const char* v = getenv(name);
    return v ? v : "";
  };
  tls.cert_file = from_env("TANDEM_TLS_CERT");
  tls.key_file = from_env("TANDEM_TLS_KEY");
  tls.ca_file = from_env("TANDEM_TLS_CA");
  tls.server_name = from_env("TANDEM_TLS_SERVER_NAME");
  // --name VALUE or --name=VALUE for the TLS options.
  const std::map<std::string, std::string*> tls_options = {
      {"--tls-cert", &tls.cert_file},
      {"--tls-key", &tls.key_file},
      {"--tls-ca", &tls.ca_file},
      {"--tls-server-name", &tls.server_name}};
  std::vector<std::string> pair;
  bool help = false;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw UsageError{absl::StrCat(name, " needs a value")};
      return argv[++i];
    };
    if (s == "--pair") {
      pair = absl::StrSplit(value("--pair"), ',');
    } else if (absl::StartsWith(s, "--pair=")) {
      pair = absl::StrSplit(s.substr(7), ',');
    } else if (s == "--api") {
      api = value("--api");
    } else if (absl::StartsWith(s, "--api=")) {
      api = s.substr(6);
    } else if (tls_options.contains(s)) {
      *tls_options.at(s) = value(s.c_str());
    } else if (size_t eq = s.find('=');
               eq != std::string::npos && tls_options.contains(s.substr(0, eq))) {
      *tls_options.at(s.substr(0, eq)) = s.substr(eq + 1);
    } else if (s == "--json") {
      ctx.json = true;
    } else if (s == "--timeout") {
      ctx.timeout_s = static_cast<int>(ParseU32(value("--timeout"), "--timeout"));
    } else if (s == "--help" || s == "-h") {
      help = true;
    } else if (s == "--version") {
      printf("tandemctl %s (commit %s)\n", TANDEM_VERSION, TANDEM_COMMIT);
      return 0;
    } else {
      rest.push_back(s);
    }
  }
  // Longest command whose words open the argument list.
  const Command* cmd = nullptr;
  size_t words = 0;
  for (const Command& c : cmds) {
    std::vector<std::string> w = absl::StrSplit(c.name, ' ');
    if (w.size() > rest.size() || w.size() <= words) continue;
    if (std::equal(w.begin(), w.end(), rest.begin())) {
      cmd = &c;
      words = w.size();
    }
  }
  if (!cmd) {
    if (help || rest.empty()) {
      PrintHelp(cmds, rest.empty() ? "" : rest[0]);
      return rest.empty() && !help ? 2 : 0;
    }
    fprintf(stderr, "tandemctl: unknown command '%s' (see tandemctl --help)\n",
            absl::StrJoin(rest, " ").c_str());
    return 2;
  }
  if (help) {
    PrintCommandHelp(*cmd);
    return 0;
  }
  Args args;
  for (size_t i = words; i < rest.size(); ++i) {
    const std::string& s = rest[i];
    if (!absl::StartsWith(s, "--")) {
      args.positional.push_back(s);
      continue;
    }
    std::string name = s.substr(2), val;
    bool inline_val = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      val = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_val = true;
    }
    if (cmd->options.contains(name)) {
      if (!inline_val) {
        if (i + 1 >= rest.size()) {
          fprintf(stderr, "tandemctl: --%s needs a value (see tandemctl %s --help)\n", name.c_str(),
                  cmd->name.c_str());
          return 2;
        }
        val = rest[++i];
      }
      args.options[name].push_back(val);
    } else if (cmd->flags.contains(name) && !inline_val) {
      args.flags.insert(name);
    } else {
      fprintf(stderr, "tandemctl: unknown option --%s for '%s' (see tandemctl %s --help)\n",
              name.c_str(), cmd->name.c_str(), cmd->name.c_str());
      return 2;
    }
  }
  if (cmd->local) {
    try {
      cmd->run(ctx, args);
    } catch (const UsageError& e) {
      fprintf(stderr, "tandemctl: %s (see tandemctl %s --help)\n", e.message.c_str(),
              cmd->name.c_str());
      return 2;
    }
    return 0;
  }
  // The TLS files are read (and a bad one reported) before any call.
  client::PairOptions opts;
  opts.addresses = pair.empty() ? std::vector<std::string>{api} : pair;
  opts.tls = tls;
  opts.call_timeout = std::chrono::seconds(ctx.timeout_s);
  opts.failover_timeout = std::chrono::seconds(ctx.timeout_s);
  absl::StatusOr<std::unique_ptr<client::PairClient>> made = client::PairClient::Create(opts);
  if (!made.ok()) {
    fprintf(stderr, "tandemctl: %s\n", std::string(made.status().message()).c_str());
    return 2;
  }
  ctx.client = *std::move(made);
  try {
    cmd->run(ctx, args);
  } catch (const UsageError& e) {
    fprintf(stderr, "tandemctl: %s (see tandemctl %s --help)\n", e.message.c_str(),
            cmd->name.c_str());
    return 2;
  } catch (const ApiError& e) {
    // The library says why in one line (which node, TLS, no active node).
    if (e.status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      fprintf(stderr, "tandemctl: UNAVAILABLE: %s\n", e.status.error_message().c_str());
      return 3;
    }
    fprintf(stderr, "tandemctl: %s: %s\n", CodeName(e.status.error_code()),
            e.status.error_message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace tandem::control

int main(int argc, char** argv) {
  try {
    return tandem::control::Main(argc, argv);
  } catch (const tandem::control::UsageError& e) {
    fprintf(stderr, "tandemctl: %s\n", e.message.c_str());
    return 2;
  }
}
