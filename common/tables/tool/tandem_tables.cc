// tandem-tables: a command-line writer and reader of a node's session tables
// and a reader of the switch's state region. Tests and operators use it to set
// up legs without the control plane; see usage() below and
// /work/notes/interfaces.md for the contract.
//
// `apply` is the only command that takes the writer lock; show, usage and stats
// map the regions and read them as any observer may, so they work while
// tandem-control holds the tables.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/version.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/net/addr.h"
#include "common/tables/layout.h"
#include "common/clock.h"
#include "common/tables/tables.h"
#include "common/tables/tool/json.h"

namespace tandem::tables {
namespace {

constexpr char kUsage[] =
    R"(usage: tandem-tables --shm-dir DIR --node NAME [--legs N] [--meetings N] COMMAND [--json]

Reads and writes the session tables <DIR>/tandem.<NAME>.tables and reads the
switch's state region <DIR>/tandem.<NAME>.state.

commands:
  apply [FILE|-]   apply changes, one a line (stdin if no FILE or -); creates the
                   tables with --legs/--meetings capacity if they do not exist
  show             role, epoch, VIPs, meetings and legs
  usage            per-leg usage summed over the switch's workers
  stats            switch counters: totals, workers, drops, ports, neighbours

options:
  --shm-dir DIR    directory of the region files (default /dev/shm/tandem)
  --node NAME      node name (required)
  --legs N         leg capacity when apply creates the tables (default 1048576)
  --meetings N     meeting capacity when apply creates the tables (default 262144)
  --json           print show, usage and stats as JSON
  --help           print this text
  --version        print the version, the commit and the layout versions

apply lines ('#' starts a comment):
  role active|standby EPOCH
  vip ADDR [ADDR...]                 (replaces the VIP list)
  meeting MEETING_ID SITE_ID [COPIES_PER_S]   (the meeting's output cap; 0 = none, the default)
  leg LEG_ID MEETING_ID CHANNEL REMOTE_ENDPOINT LOCAL_ENDPOINT [FLAGS] [PARTICIPANT_ID]
        CHANNEL audio|video|share; endpoints 198.18.0.10:5000 or [2001:db8::10]:5000;
        FLAGS a comma list of send,recv,muted or none (default send,recv)
  flags LEG_ID FLAGS
  limits LEG_ID PPS KBPS             (the leg's rate limits; 0 = unlimited, the default)
  remove-leg LEG_ID
  remove-meeting MEETING_ID
)";

struct Options {
  std::string shm_dir = "/dev/shm/tandem";
  std::string node;
  Capacity capacity;
  bool json = false;
  bool help = false;
  std::vector<std::string> args;  // the command and its operands
};

absl::Status ParseU32(absl::string_view flag, absl::string_view text, uint32_t* out) {
  if (!absl::SimpleAtoi(text, out) || *out == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " needs a positive number, not '", text, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Options> ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      o.args.push_back(arg);  // operands, including "-" for stdin
      continue;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (name == "--json" || name == "--help") {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
      (name == "--json" ? o.json : o.help) = true;
      continue;
    }
    if (name != "--shm-dir" && name != "--node" && name != "--legs" && name != "--meetings") {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", name, " (see --help)"));
    }
    if (!has_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      value = argv[++i];
    }
    if (name == "--shm-dir") {
      o.shm_dir = value;
    } else if (name == "--node") {
      o.node = value;
    } else if (name == "--legs") {
      if (auto st = ParseU32(name, value, &o.capacity.legs); !st.ok()) return st;
    } else {
      if (auto st = ParseU32(name, value, &o.capacity.meetings); !st.ok()) return st;
    }
  }
  if (o.help) return o;
  if (o.node.empty()) return absl::InvalidArgumentError("--node is required (see --help)");
  if (o.node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("--node must not contain '/'");
  }
  if (o.args.empty()) return absl::InvalidArgumentError("no command given (see --help)");
  return o;
}

const char* RoleName(Role r) { return r == Role::kActive ? "active" : "standby"; }

std::vector<std::string> FlagNames(uint32_t flags) {
  std::vector<std::string> out;
  if (flags & kLegSend) out.push_back("send");
  if (flags & kLegRecv) out.push_back("recv");
  if (flags & kLegMuted) out.push_back("muted");
  return out;
}

std::string FlagText(uint32_t flags) {
  auto names = FlagNames(flags);
  return names.empty() ? "none" : absl::StrJoin(names, ",");
}

std::string MacText(const uint8_t mac[6]) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                         mac[5]);
}

// ---- apply ----

absl::StatusOr<uint64_t> ParseId(absl::string_view what, absl::string_view text) {
  uint64_t v;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid ", what, " '", text, "'"));
  }
  return v;
}

absl::StatusOr<Channel> ParseChannel(absl::string_view text) {
  if (text == "audio") return Channel::kAudio;
  if (text == "video") return Channel::kVideo;
  if (text == "share") return Channel::kShare;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid channel '", text, "' (audio, video or share)"));
}

absl::StatusOr<uint32_t> ParseFlags(absl::string_view text) {
  if (text == "none") return 0u;
  uint32_t flags = 0;
  for (absl::string_view f : absl::StrSplit(text, ',')) {
    if (f == "send") {
      flags |= kLegSend;
    } else if (f == "recv") {
      flags |= kLegRecv;
    } else if (f == "muted") {
      flags |= kLegMuted;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid flag '", f, "' (send, recv, muted or none)"));
    }
  }
  return flags;
}

absl::Status WantArgs(const std::vector<absl::string_view>& t, size_t min, size_t max,
                      absl::string_view form) {
  if (t.size() < min || t.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat("expected '", form, "'"));
  }
  return absl::OkStatus();
}

// Parses and applies one change. `t` is the line split into words.
absl::Status ApplyWords(TablesWriter& w, const std::vector<absl::string_view>& t) {
  const absl::string_view verb = t[0];
  if (verb == "role") {
    if (auto st = WantArgs(t, 3, 3, "role active|standby EPOCH"); !st.ok()) return st;
    Role role;
    if (t[1] == "active") {
      role = Role::kActive;
    } else if (t[1] == "standby") {
      role = Role::kStandby;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("invalid role '", t[1], "'"));
    }
    auto epoch = ParseId("epoch", t[2]);
    if (!epoch.ok()) return epoch.status();
    w.SetRole(role, *epoch);
    return absl::OkStatus();
  }
  if (verb == "vip") {
    std::vector<IpAddr> vips;
    for (size_t i = 1; i < t.size(); ++i) {
      auto a = IpAddr::Parse(t[i]);
      if (!a.ok()) return a.status();
      vips.push_back(*a);
    }
    return w.SetVips(vips);
  }
  if (verb == "meeting") {
    if (auto st = WantArgs(t, 3, 4, "meeting MEETING_ID SITE_ID [COPIES_PER_S]"); !st.ok()) {
      return st;
    }
    auto meeting = ParseId("meeting id", t[1]);
    if (!meeting.ok()) return meeting.status();
    auto site = ParseId("site id", t[2]);
    if (!site.ok()) return site.status();
    uint32_t copies = 0;
    if (t.size() == 4 && !absl::SimpleAtoi(t[3], &copies)) {
      return absl::InvalidArgumentError(absl::StrCat("bad copies per second '", t[3], "'"));
    }
    return w.AddMeeting(*meeting, *site, 0, copies);
  }
  if (verb == "limits") {
    if (auto st = WantArgs(t, 4, 4, "limits LEG_ID PPS KBPS"); !st.ok()) return st;
    auto leg = ParseId("leg id", t[1]);
    if (!leg.ok()) return leg.status();
    uint32_t pps = 0, kbps = 0;
    if (!absl::SimpleAtoi(t[2], &pps) || !absl::SimpleAtoi(t[3], &kbps)) {
      return absl::InvalidArgumentError("limits need two numbers, PPS and KBPS (0 = unlimited)");
    }
    return w.SetLegLimits(*leg, pps, kbps);
  }
  if (verb == "leg") {
    if (auto st = WantArgs(t, 6, 8,
                           "leg LEG_ID MEETING_ID CHANNEL REMOTE LOCAL [FLAGS] [PARTICIPANT_ID]");
        !st.ok()) {
      return st;
    }
    LegSpec spec;
    auto leg = ParseId("leg id", t[1]);
    if (!leg.ok()) return leg.status();
    spec.leg_id = *leg;
    auto meeting = ParseId("meeting id", t[2]);
    if (!meeting.ok()) return meeting.status();
    spec.meeting_id = *meeting;
    auto channel = ParseChannel(t[3]);
    if (!channel.ok()) return channel.status();
    spec.channel = *channel;
    auto remote = ParseEndpoint(t[4]);
    if (!remote.ok()) return remote.status();
    auto local = ParseEndpoint(t[5]);
    if (!local.ok()) return local.status();
    spec.key.remote = remote->first;
    spec.key.remote_port = remote->second;
    spec.key.local = local->first;
    spec.key.local_port = local->second;
    // FLAGS and PARTICIPANT_ID are both optional; a number can only be the latter.
    size_t next = 6;
    uint64_t number;
    if (next < t.size() && !absl::SimpleAtoi(t[next], &number)) {
      auto flags = ParseFlags(t[next]);
      if (!flags.ok()) return flags.status();
      spec.flags = *flags;
      ++next;
    }
    if (next < t.size()) {
      auto participant = ParseId("participant id", t[next]);
      if (!participant.ok()) return participant.status();
      spec.participant_id = *participant;
      ++next;
    }
    if (next != t.size()) return absl::InvalidArgumentError("too many words");
    return w.AddLeg(spec);
  }
  if (verb == "flags") {
    if (auto st = WantArgs(t, 3, 3, "flags LEG_ID FLAGS"); !st.ok()) return st;
    auto leg = ParseId("leg id", t[1]);
    if (!leg.ok()) return leg.status();
    auto flags = ParseFlags(t[2]);
    if (!flags.ok()) return flags.status();
    return w.SetLegFlags(*leg, *flags);
  }
  if (verb == "remove-leg") {
    if (auto st = WantArgs(t, 2, 2, "remove-leg LEG_ID"); !st.ok()) return st;
    auto leg = ParseId("leg id", t[1]);
    if (!leg.ok()) return leg.status();
    return w.RemoveLeg(*leg);
  }
  if (verb == "remove-meeting") {
    if (auto st = WantArgs(t, 2, 2, "remove-meeting MEETING_ID"); !st.ok()) return st;
    auto meeting = ParseId("meeting id", t[1]);
    if (!meeting.ok()) return meeting.status();
    return w.RemoveMeeting(*meeting);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown change '", verb, "'"));
}

absl::Status Apply(const Options& o, const std::string& path) {
  const std::string source = o.args.size() > 1 ? o.args[1] : "-";
  if (o.args.size() > 2) return absl::InvalidArgumentError("apply takes at most one FILE");
  std::ifstream file;
  std::istream* in = &std::cin;
  if (source != "-") {
    file.open(source);
    if (!file) {
      return absl::NotFoundError(absl::StrCat("cannot read ", source, ": ", strerror(errno)));
    }
    in = &file;
  }
  auto writer = TablesWriter::Open(path, o.capacity);
  if (!writer.ok()) return writer.status();
  const std::string name = source == "-" ? "stdin" : source;
  std::string line;
  for (int number = 1; std::getline(*in, line); ++number) {
    absl::string_view text = line;
    if (size_t hash = text.find('#'); hash != absl::string_view::npos) text = text.substr(0, hash);
    std::vector<absl::string_view> words =
        absl::StrSplit(text, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    if (auto st = ApplyWords(**writer, words); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat(name, ":", number, ": ", st.message()));
    }
  }
  if (in->bad()) return absl::DataLossError(absl::StrCat("error reading ", name));
  return absl::OkStatus();
}

// ---- reading the tables without the writer lock ----

struct MeetingRow {
  uint64_t meeting_id, site_id;
  uint32_t flags;
  uint32_t copies_limit;
  std::vector<uint64_t> legs;
};

struct LegRow {
  LegSpec spec;
  uint32_t slot, gen;
};

struct TablesSnapshot {
  Role role;
  uint64_t epoch, change_count;
  int32_t writer_pid;
  uint32_t leg_capacity, meeting_capacity;
  std::vector<IpAddr> vips;
  std::vector<MeetingRow> meetings;  // by meeting id
  std::vector<LegRow> legs;          // by leg id
};

// The tool is not a registered QSBR reader (slots belong to switch workers),
// so an entry may be freed and reused while it is copied: a copy counts only
// if the entry was live with the same generation before and after it.
TablesSnapshot Snapshot(const TablesView& v) {
  TablesSnapshot s;
  const TablesHeader& h = v.header();
  s.role = v.role();
  s.epoch = v.epoch();
  s.change_count = h.change_count.load();
  s.writer_pid = h.writer_pid.load();
  s.leg_capacity = v.leg_capacity();
  s.meeting_capacity = v.meeting_capacity();
  s.vips = v.Vips();
  std::map<uint32_t, size_t> meeting_of_slot;
  for (uint32_t m = 0; m < v.meeting_capacity(); ++m) {
    const MeetingEntry& e = v.meeting(m);
    if (e.state.load(std::memory_order_acquire) != uint8_t(EntryState::kLive)) continue;
    meeting_of_slot[m] = s.meetings.size();
    s.meetings.push_back(
        MeetingRow{e.meeting_id, e.site_id, e.flags.load(), e.copies_limit.load(), {}});
  }
  for (uint32_t i = 0; i < v.leg_capacity(); ++i) {
    const LegEntry& e = v.leg(i);
    if (e.state.load(std::memory_order_acquire) != uint8_t(EntryState::kLive)) continue;
    uint32_t gen = e.gen.load(std::memory_order_acquire);
    LegRow row;
    row.slot = i;
    row.gen = gen;
    row.spec.leg_id = e.leg_id;
    row.spec.participant_id = e.participant_id;
    row.spec.channel = static_cast<Channel>(e.channel);
    row.spec.key = e.key;
    row.spec.flags = e.flags.load();
    row.spec.pps_limit = e.pps_limit.load();
    row.spec.kbps_limit = e.kbps_limit.load();
    uint32_t meeting_slot = e.meeting;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.state.load() != uint8_t(EntryState::kLive) || e.gen.load() != gen) continue;
    auto it = meeting_of_slot.find(meeting_slot);
    if (it == meeting_of_slot.end()) continue;  // its meeting went away meanwhile
    MeetingRow& m = s.meetings[it->second];
    row.spec.meeting_id = m.meeting_id;
    m.legs.push_back(row.spec.leg_id);
    s.legs.push_back(row);
  }
  std::sort(s.meetings.begin(), s.meetings.end(),
            [](const MeetingRow& a, const MeetingRow& b) { return a.meeting_id < b.meeting_id; });
  for (MeetingRow& m : s.meetings) std::sort(m.legs.begin(), m.legs.end());
  std::sort(s.legs.begin(), s.legs.end(),
            [](const LegRow& a, const LegRow& b) { return a.spec.leg_id < b.spec.leg_id; });
  return s;
}

void LegJson(JsonWriter& j, const LegSpec& l) {
  j.Key("leg_id").Uint(l.leg_id);
  j.Key("meeting_id").Uint(l.meeting_id);
  j.Key("participant_id").Uint(l.participant_id);
  j.Key("channel").String(ChannelName(l.channel));
  j.Key("remote").String(FormatEndpoint(l.key.remote, l.key.remote_port));
  j.Key("local").String(FormatEndpoint(l.key.local, l.key.local_port));
  j.Key("flags").BeginArray();
  for (const auto& f : FlagNames(l.flags)) j.String(f);
  j.EndArray();
}

absl::Status Show(const Options& o, const std::string& path) {
  auto tables = AttachTables(path);
  if (!tables.ok()) return tables.status();
  TablesSnapshot s = Snapshot(tables->second);
  if (o.json) {
    JsonWriter j;
    j.BeginObject();
    j.Key("role").String(RoleName(s.role));
    j.Key("epoch").Uint(s.epoch);
    j.Key("change_count").Uint(s.change_count);
    j.Key("writer_pid").Int(s.writer_pid);
    j.Key("leg_capacity").Uint(s.leg_capacity);
    j.Key("meeting_capacity").Uint(s.meeting_capacity);
    j.Key("vips").BeginArray();
    for (const IpAddr& a : s.vips) j.String(a.ToString());
    j.EndArray();
    j.Key("meetings").BeginArray();
    for (const MeetingRow& m : s.meetings) {
      j.BeginObject();
      j.Key("meeting_id").Uint(m.meeting_id);
      j.Key("site_id").Uint(m.site_id);
      j.Key("flags").Uint(m.flags);
      j.Key("copies_limit").Uint(m.copies_limit);
      j.Key("legs").BeginArray();
      for (uint64_t l : m.legs) j.Uint(l);
      j.EndArray();
      j.EndObject();
    }
    j.EndArray();
    j.Key("legs").BeginArray();
    for (const LegRow& l : s.legs) {
      j.BeginObject();
      LegJson(j, l.spec);
      j.Key("pps_limit").Uint(l.spec.pps_limit);
      j.Key("kbps_limit").Uint(l.spec.kbps_limit);
      j.Key("slot").Uint(l.slot);
      j.Key("gen").Uint(l.gen);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    std::cout << j.str() << "\n";
    return absl::OkStatus();
  }
  std::cout << "role " << RoleName(s.role) << " epoch " << s.epoch << "\n";
  std::vector<std::string> vips;
  for (const IpAddr& a : s.vips) vips.push_back(a.ToString());
  std::cout << "vips " << (vips.empty() ? "none" : absl::StrJoin(vips, " ")) << "\n";
  std::cout << "meetings " << s.meetings.size() << "/" << s.meeting_capacity << " legs "
            << s.legs.size() << "/" << s.leg_capacity << " changes " << s.change_count
            << " writer_pid " << s.writer_pid << "\n";
  for (const MeetingRow& m : s.meetings) {
    std::cout << "meeting " << m.meeting_id << " site " << m.site_id << " legs " << m.legs.size()
              << " copies_limit " << m.copies_limit << "\n";
  }
  for (const LegRow& r : s.legs) {
    const LegSpec& l = r.spec;
    std::cout << "leg " << l.leg_id << " meeting " << l.meeting_id << " "
              << ChannelName(l.channel) << " " << FormatEndpoint(l.key.remote, l.key.remote_port)
              << " -> " << FormatEndpoint(l.key.local, l.key.local_port) << " "
              << FlagText(l.flags) << " participant " << l.participant_id << "\n";
  }
  return absl::OkStatus();
}

absl::Status Usage(const Options& o, const std::string& tables_path,
                   const std::string& state_path) {
  auto tables = AttachTables(tables_path);
  if (!tables.ok()) return tables.status();
  auto state = AttachState(state_path);
  if (!state.ok()) return state.status();
  TablesSnapshot s = Snapshot(tables->second);
  JsonWriter j;
  if (o.json) j.BeginObject().Key("legs").BeginArray();
  for (const LegRow& r : s.legs) {
    LegUsage u = SumLegUsage(state->second, r.slot, r.gen);
    if (o.json) {
      j.BeginObject();
      LegJson(j, r.spec);
      j.Key("packets_in").Uint(u.packets_in);
      j.Key("bytes_in").Uint(u.bytes_in);
      j.Key("packets_out").Uint(u.packets_out);
      j.Key("bytes_out").Uint(u.bytes_out);
      j.Key("drop_not_allowed").Uint(u.drop_not_allowed);
      j.Key("drop_policed").Uint(u.drop_policed);
      j.Key("drop_other").Uint(u.drop_other);
      j.Key("first_unix_ns").Uint(u.first_unix_ns);
      j.Key("last_unix_ns").Uint(u.last_unix_ns);
      j.EndObject();
    } else {
      std::cout << absl::StrFormat(
          "leg %d meeting %d %s in %d pkts %d bytes out %d pkts %d bytes drops not_allowed %d "
          "policed %d other %d\n",
          r.spec.leg_id, r.spec.meeting_id, ChannelName(r.spec.channel), u.packets_in,
          u.bytes_in, u.packets_out, u.bytes_out, u.drop_not_allowed, u.drop_policed,
          u.drop_other);
    }
  }
  if (o.json) {
    j.EndArray().EndObject();
    std::cout << j.str() << "\n";
  }
  return absl::OkStatus();
}

// ---- stats ----

// Percentiles of a worker's latency histogram (RX burst to TX burst). Bucket
// b holds times t with floor(4*log2(t cycles)) == b; a percentile is reported
// as the upper edge of its bucket, so it errs by at most a quarter octave.
struct Latency {
  uint64_t samples = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

std::optional<Latency> LatencyOf(const WorkerCounters& c, uint64_t tsc_hz) {
  Latency l;
  for (uint32_t b = 0; b < kLatencyBuckets; ++b) l.samples += c.latency_hist[b];
  if (tsc_hz == 0 || l.samples == 0) return std::nullopt;
  auto upper_us = [&](uint32_t b) {
    const uint32_t octave = b / 4, quarter = b % 4;
    const double cycles = std::ldexp(double(5 + quarter) / 4.0, octave);
    return cycles / double(tsc_hz) * 1e6;
  };
  auto at = [&](double q) {
    const double want = q * double(l.samples);
    uint64_t sum = 0;
    for (uint32_t b = 0; b < kLatencyBuckets; ++b) {
      sum += c.latency_hist[b];
      if (double(sum) >= want) return upper_us(b);
    }
    return upper_us(kLatencyBuckets - 1);
  };
  l.p50_us = at(0.5);
  l.p99_us = at(0.99);
  l.p999_us = at(0.999);
  return l;
}

void LatencyJson(JsonWriter& j, const WorkerCounters& c, uint64_t tsc_hz) {
  j.Key("latency_us");
  auto l = LatencyOf(c, tsc_hz);
  if (!l) {
    j.Null();
    return;
  }
  j.BeginObject();
  j.Key("samples").Uint(l->samples);
  j.Key("p50").Double(l->p50_us);
  j.Key("p99").Double(l->p99_us);
  j.Key("p999").Double(l->p999_us);
  j.EndObject();
}

void CountersJson(JsonWriter& j, const WorkerCounters& c) {
  j.Key("rx_packets").Uint(c.rx_packets);
  j.Key("rx_bytes").Uint(c.rx_bytes);
  j.Key("tx_packets").Uint(c.tx_packets);
  j.Key("tx_bytes").Uint(c.tx_bytes);
  j.Key("forwarded_in").Uint(c.forwarded_in);
  j.Key("slow_path").Uint(c.slow_path);
  j.Key("csum_completed").Uint(c.csum_completed);
  j.Key("drops").BeginObject();
  for (uint32_t d = 0; d < kDropCount; ++d) j.Key(DropName(Drop(d))).Uint(c.drops[d]);
  j.EndObject();
  j.Key("loops").Uint(c.loops);
  j.Key("idle_sleeps").Uint(c.idle_sleeps);
}

std::string CountersText(const WorkerCounters& c) {
  std::string s = absl::StrFormat(
      "rx %d pkts %d bytes, tx %d pkts %d bytes, forwarded_in %d, slow_path %d, "
      "csum_completed %d, loops %d, idle_sleeps %d\n    drops:",
      c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.forwarded_in, c.slow_path,
      c.csum_completed, c.loops, c.idle_sleeps);
  for (uint32_t d = 0; d < kDropCount; ++d) absl::StrAppend(&s, " ", DropName(Drop(d)), "=", c.drops[d]);
  return s;
}

const char* NeighStateName(uint8_t s) {
  switch (NeighState(s)) {
    case NeighState::kFree: return "free";
    case NeighState::kIncomplete: return "incomplete";
    case NeighState::kReachable: return "reachable";
    case NeighState::kStale: return "stale";
    case NeighState::kEvicted: return "evicted";
  }
  return "?";
}

struct NeighRow {
  IpAddr ip;
  uint8_t mac[6];
  uint8_t state;
  uint64_t updated_ns;
};

// Copies the in-use neighbour entries, each under its sequence lock.
std::vector<NeighRow> Neighbours(const StateView& v) {
  std::vector<NeighRow> out;
  const uint32_t capacity = std::min(v.header().neigh_capacity, kNeighCapacity);
  for (uint32_t i = 0; i < capacity; ++i) {
    const NeighEntry& e = v.neigh(i);
    for (int attempt = 0; attempt < 100; ++attempt) {
      uint32_t s1 = e.seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      NeighRow r;
      r.state = e.state.load(std::memory_order_relaxed);
      std::memcpy(r.mac, e.mac, 6);
      r.ip = e.ip;
      r.updated_ns = e.updated_ns;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (e.seq.load(std::memory_order_relaxed) != s1) continue;
      if (r.state != uint8_t(NeighState::kFree) && r.state != uint8_t(NeighState::kEvicted)) {
        out.push_back(r);
      }
      break;
    }
  }
  return out;
}

absl::Status Stats(const Options& o, const std::string& path) {
  auto state = AttachState(path);
  if (!state.ok()) return state.status();
  const StateView& v = state->second;
  const StateHeader& h = v.header();
  const int32_t pid = h.switch_pid.load();
  const bool alive = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
  const uint32_t workers = std::min(h.n_workers.load(), v.max_workers());
  const bool has_main = workers < v.max_workers();
  const uint32_t ports = std::min(h.n_ports.load(), kMaxPorts);
  const uint64_t now = MonotonicNs();
  const WorkerCounters totals = SumWorkerCounters(v);
  const uint64_t tsc_hz = h.tsc_hz.load();
  const std::vector<NeighRow> neighbours = Neighbours(v);
  // Age of a worker's last heartbeat; nullopt if it never beat.
  auto heartbeat_age_ms = [&](uint32_t w) -> std::optional<double> {
    uint64_t beat = v.health(w).heartbeat_ns.load(std::memory_order_acquire);
    if (beat == 0) return std::nullopt;
    return beat >= now ? 0.0 : double(now - beat) / 1e6;
  };

  if (o.json) {
    JsonWriter j;
    j.BeginObject();
    j.Key("switch_pid").Int(pid);
    j.Key("switch_alive").Bool(alive);
    j.Key("started_unix_ns").Uint(h.started_unix_ns.load());
    j.Key("restarts").Uint(h.restarts.load());
    j.Key("totals").BeginObject();
    CountersJson(j, totals);
    LatencyJson(j, totals, tsc_hz);
    j.EndObject();
    auto block = [&](uint32_t w) {
      j.BeginObject();
      j.Key("worker").Uint(w);
      j.Key("lcore").Uint(v.health(w).lcore.load());
      CountersJson(j, v.worker_counters(w));
      LatencyJson(j, v.worker_counters(w), tsc_hz);
      j.Key("heartbeat_age_ms");
      if (auto age = heartbeat_age_ms(w)) {
        j.Double(*age);
      } else {
        j.Null();
      }
      j.Key("sleeping").Bool(v.health(w).sleeping.load() != 0);
      j.EndObject();
    };
    j.Key("workers").BeginArray();
    for (uint32_t w = 0; w < workers; ++w) block(w);
    j.EndArray();
    // The switch's main thread (slow path) has the block after the workers.
    j.Key("main");
    if (has_main) {
      block(workers);
    } else {
      j.Null();
    }
    j.Key("ports").BeginArray();
    for (uint32_t p = 0; p < ports; ++p) {
      const PortState& s = v.port(p);
      if (!s.present) continue;
      j.BeginObject();
      j.Key("port").Uint(p);
      j.Key("name").String(std::string(s.name, strnlen(s.name, sizeof(s.name))));
      j.Key("devargs").String(std::string(s.devargs, strnlen(s.devargs, sizeof(s.devargs))));
      j.Key("mac").String(MacText(s.mac));
      j.Key("link_up").Bool(s.link_up != 0);
      j.Key("speed_mbps").Uint(s.speed_mbps);
      j.Key("rx_queues").Uint(s.rx_queues);
      j.Key("tx_queues").Uint(s.tx_queues);
      j.Key("ipackets").Uint(s.ipackets);
      j.Key("opackets").Uint(s.opackets);
      j.Key("ibytes").Uint(s.ibytes);
      j.Key("obytes").Uint(s.obytes);
      j.Key("imissed").Uint(s.imissed);
      j.Key("ierrors").Uint(s.ierrors);
      j.Key("oerrors").Uint(s.oerrors);
      j.Key("rx_nombuf").Uint(s.rx_nombuf);
      j.Key("xdp_mode").String(std::string(s.xdp_mode, strnlen(s.xdp_mode, sizeof(s.xdp_mode))));
      j.EndObject();
    }
    j.EndArray();
    j.Key("pair").BeginObject();
    j.Key("node_id").Uint(h.heartbeat_node_id.load());
    j.Key("heartbeats_sent").Uint(h.heartbeats_sent.load());
    j.Key("data_plane_ok").Bool(h.local_flags.load() & kHbDataPlaneOk);
    j.Key("access_link_up").Bool(h.local_flags.load() & kHbAccessLinkUp);
    // Why a switch whose tables say active does not serve (empty: it serves).
    j.Key("quiet").BeginArray();
    if (h.quiet.load() & kQuietPeerActive) j.String("peer_active");
    if (h.quiet.load() & kQuietWitness) j.String("witness_expired");
    j.EndArray();
    j.Key("peer").BeginArray();
    for (uint32_t path = 0; path < 2; ++path) {
      PeerSnapshot p = ReadPeer(v, path);
      j.BeginObject();
      j.Key("path").String(path == 0 ? "access" : "backbone");
      j.Key("node_id").Uint(p.node_id);
      j.Key("heard_ms_ago");
      if (p.last_heard_ns) {
        j.Double(p.last_heard_ns < now ? double(now - p.last_heard_ns) / 1e6 : 0.0);
      } else {
        j.Null();
      }
      j.Key("epoch").Uint(p.epoch);
      j.Key("position").Uint(p.position);
      j.Key("active").Bool(p.flags & kHbActive);
      j.Key("data_plane_ok").Bool(p.flags & kHbDataPlaneOk);
      j.Key("access_link_up").Bool(p.flags & kHbAccessLinkUp);
      j.Key("frames_ok").Uint(p.frames_ok);
      j.Key("frames_refused").Uint(p.frames_refused);
      j.Key("frames_other").Uint(p.frames_other);
      j.Key("clock_skew_ms").Double(double(p.clock_skew_ns) / 1e6);
      j.Key("mac").String(MacText(p.mac));
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    const NeighStatsSnapshot ns = ReadNeighStats(v);
    j.Key("neighbour_table").BeginObject();
    j.Key("entries").Uint(ns.entries);
    j.Key("conflicts").Uint(ns.conflicts);
    j.Key("moves").Uint(ns.moves);
    j.Key("evictions").Uint(ns.evictions);
    j.Key("refused").Uint(ns.refused);
    j.Key("last_conflict_ip").String(ns.last_conflict_ns ? ns.last_conflict_ip.ToString() : "");
    j.Key("last_conflict_mac").String(MacText(ns.last_conflict_mac));
    j.Key("last_conflict_owner").String(MacText(ns.last_conflict_owner));
    j.Key("last_conflict_ms_ago");
    if (ns.last_conflict_ns) {
      j.Double(ns.last_conflict_ns < now ? double(now - ns.last_conflict_ns) / 1e6 : 0.0);
    } else {
      j.Null();
    }
    j.EndObject();
    j.Key("neighbours").BeginArray();
    for (const NeighRow& n : neighbours) {
      j.BeginObject();
      j.Key("ip").String(n.ip.ToString());
      j.Key("mac").String(MacText(n.mac));
      j.Key("state").String(NeighStateName(n.state));
      j.Key("age_ms").Double(n.updated_ns && n.updated_ns < now ? double(now - n.updated_ns) / 1e6
                                                                : 0.0);
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    std::cout << j.str() << "\n";
    return absl::OkStatus();
  }

  std::cout << "switch pid " << pid << (alive ? " (running)" : " (not running)") << ", "
            << workers << " workers, restarts " << h.restarts.load() << "\n";
  std::cout << "totals: " << CountersText(totals) << "\n";
  if (auto l = LatencyOf(totals, tsc_hz)) {
    std::cout << absl::StrFormat("latency: %d samples, p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
                                 l->samples, l->p50_us, l->p99_us, l->p999_us);
  }
  for (uint32_t w = 0; w < workers + (has_main ? 1 : 0); ++w) {
    auto age = heartbeat_age_ms(w);
    std::cout << (w < workers ? absl::StrCat("worker ", w) : std::string("main")) << " lcore " << v.health(w).lcore.load() << " heartbeat "
              << (age ? absl::StrFormat("%.1f ms ago", *age) : std::string("never"))
              << (v.health(w).sleeping.load() ? " sleeping" : "") << "\n  "
              << CountersText(v.worker_counters(w)) << "\n";
  }
  for (uint32_t p = 0; p < ports; ++p) {
    const PortState& s = v.port(p);
    if (!s.present) continue;
    std::cout << absl::StrFormat(
        "port %d %s %s link %s rx %d pkts %d bytes tx %d pkts %d bytes missed %d errors %d/%d "
        "nombuf %d\n",
        p, std::string(s.name, strnlen(s.name, sizeof(s.name))), MacText(s.mac),
        s.link_up ? "up" : "down", s.ipackets, s.ibytes, s.opackets, s.obytes, s.imissed,
        s.ierrors, s.oerrors, s.rx_nombuf);
  }
  if (h.heartbeat_node_id.load()) {
    std::cout << "pair: node " << h.heartbeat_node_id.load() << ", heartbeats sent "
              << h.heartbeats_sent.load() << ", data plane "
              << ((h.local_flags.load() & kHbDataPlaneOk) ? "ok" : "DOWN") << ", access link "
              << ((h.local_flags.load() & kHbAccessLinkUp) ? "up" : "DOWN")
              << ((h.quiet.load() & kQuietPeerActive) ? ", quiet: the peer is active" : "")
              << ((h.quiet.load() & kQuietWitness) ? ", quiet: the witness's hold ended" : "")
              << "\n";
    for (uint32_t path = 0; path < 2; ++path) {
      PeerSnapshot p = ReadPeer(v, path);
      std::cout << "  peer on " << (path == 0 ? "access" : "backbone") << ": ";
      if (!p.last_heard_ns) {
        std::cout << "never heard";
      } else {
        std::cout << absl::StrFormat(
            "node %d heard %.1f ms ago, %s, epoch %d, position %d, data plane %s, access %s",
            p.node_id, p.last_heard_ns < now ? double(now - p.last_heard_ns) / 1e6 : 0.0,
            (p.flags & kHbActive) ? "active" : "standby", p.epoch, p.position,
            (p.flags & kHbDataPlaneOk) ? "ok" : "DOWN",
            (p.flags & kHbAccessLinkUp) ? "up" : "DOWN");
      }
      std::cout << absl::StrFormat(" (%d ok, %d refused, %d of another node or path), clock "
                                   "skew %.1f ms\n",
                                   p.frames_ok, p.frames_refused, p.frames_other,
                                   double(p.clock_skew_ns) / 1e6);
    }
  }
  const NeighStatsSnapshot ns = ReadNeighStats(v);
  std::cout << absl::StrFormat(
      "neighbour table: %d entries, %d conflicts, %d moves, %d evictions, %d refused\n",
      ns.entries, ns.conflicts, ns.moves, ns.evictions, ns.refused);
  if (ns.last_conflict_ns) {
    std::cout << "  last conflict: " << ns.last_conflict_ip.ToString() << " claimed by "
              << MacText(ns.last_conflict_mac) << ", kept " << MacText(ns.last_conflict_owner)
              << absl::StrFormat(", %.1f s ago\n",
                                 ns.last_conflict_ns < now ? double(now - ns.last_conflict_ns) / 1e9
                                                           : 0.0);
  }
  for (const NeighRow& n : neighbours) {
    std::cout << "neighbour " << n.ip.ToString() << " " << MacText(n.mac) << " "
              << NeighStateName(n.state) << "\n";
  }
  return absl::OkStatus();
}

absl::Status Run(const Options& o) {
  const std::string tables = TablesPath(o.shm_dir, o.node);
  const std::string state = StatePath(o.shm_dir, o.node);
  const std::string& command = o.args[0];
  if (command == "apply") return Apply(o, tables);
  if (o.args.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(command, " takes no operands"));
  }
  if (command == "show") return Show(o, tables);
  if (command == "usage") return Usage(o, tables, state);
  if (command == "stats") return Stats(o, state);
  return absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "' (see --help)"));
}

}  // namespace
}  // namespace tandem::tables

int main(int argc, char** argv) {
  using namespace tandem::tables;
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::cout << "tandem-tables " << TANDEM_VERSION << " (commit " << TANDEM_COMMIT
              << ")\ntables layout " << kTablesVersion << ", state layout " << kStateVersion
              << "\n";
    return 0;
  }
  auto options = ParseArgs(argc, argv);
  if (!options.ok()) {
    std::cerr << "tandem-tables: " << options.status().message() << "\n";
    return 1;
  }
  if (options->help) {
    std::cout << kUsage;
    return 0;
  }
  if (auto st = Run(*options); !st.ok()) {
    std::cerr << "tandem-tables: " << st.message() << "\n";
    return 1;
  }
  return 0;
}
