// tandem-churn: the churn driver of scripts/soak.sh. It joins participants
// (`--legs-per-participant` legs each) at `--rate` legs per second into a few
// live churn meetings and makes each leave again `--life` seconds later, with
// batch Join and Leave calls to whichever node of the pair is active, as a
// meeting application would. Churn meetings are rotated: each takes joins for
// `--meeting-life` seconds, then drains and is ended once empty, and a new
// one is started in its place.
//
// It follows takeovers: a thread asks both nodes for their status every
// `--poll-ms`; calls go to the active node of the highest epoch. When that
// node changes, or a call ends without a clear answer (the node died, the
// deadline passed), it reconciles before writing again: it lists the churn
// legs on the (new) active node and finds the point of its own history of
// acknowledged writes that they match (the writes are serial, so the node
// must hold a prefix of them). Writes after that point were lost with the
// old active (an asynchronous pair may lose the last ones); they are counted,
// reported and dropped from what the driver believes. A node state that is
// no prefix of the writes (a leg lost from the middle, a leg nobody joined,
// half a batch) is reported as INCONSISTENT. The churn legs' remotes are
// 198.18.0.<remote-first>.. (hosts that do not exist; the legs carry no
// media).
//
// Output, one JSON object per line on stdout:
//   {"ev":"stats",...}       every --stats-s: calls and legs done, failed, believed
//   {"ev":"reconcile",...}   after a node change or an unclear call
//   {"ev":"error",...}       a refused call (the first ones of each kind)
//   {"ev":"final",...}       at the end (SIGTERM/SIGINT), after a last check
// --final FILE gets the legs the driver believes are joined at the end.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "control.grpc.pb.h"
#include "control/client/pair_client.h"

ABSL_FLAG(std::string, pair, "", "API addresses of the two nodes: A,B");
ABSL_FLAG(std::string, names, "a,b", "names of the two nodes, for the output");
ABSL_FLAG(uint64_t, site, 0, "site of the churn meetings (required)");
ABSL_FLAG(double, rate, 1000, "legs joined per second (as many leave)");
ABSL_FLAG(double, life, 5, "seconds a churn participant stays");
ABSL_FLAG(uint32_t, legs_per_participant, 2, "legs of each churn participant (1-3)");
ABSL_FLAG(uint32_t, meetings, 4, "churn meetings taking joins at once");
ABSL_FLAG(double, meeting_life, 60, "seconds a churn meeting takes joins, then it drains and ends");
ABSL_FLAG(uint32_t, tick_ms, 200, "one join and one leave call per tick (more if behind)");
ABSL_FLAG(uint32_t, max_batch, 1000, "at most this many legs per call");
ABSL_FLAG(uint32_t, poll_ms, 50, "status poll of both nodes");
ABSL_FLAG(uint32_t, timeout_s, 10, "deadline of each call");
ABSL_FLAG(std::string, remote_net, "198.18.0.", "churn remotes: this prefix ...");
ABSL_FLAG(uint32_t, remote_first, 200, "... and host numbers from this one ...");
ABSL_FLAG(uint32_t, remote_hosts, 20, "... this many of them, each with ports 1024-65023");
ABSL_FLAG(double, stats_s, 1.0, "seconds between stats lines");
ABSL_FLAG(double, history_s, 120, "acknowledged writes kept for reconciliation (seconds)");
ABSL_FLAG(std::string, final, "", "write the legs believed joined at the end here (JSON)");

namespace v1 = tandem::control::v1;
using tandem::client::CodeName;

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

double Now() { return static_cast<double>(tandem::UnixNs()) / 1e9; }

std::string Q(const std::string& s) {  // a JSON string (our strings need no escapes but quotes)
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

void Emit(const std::string& json) {
  fprintf(stdout, "%s\n", json.c_str());
  fflush(stdout);
}

// A call that may or may not have been applied: the node went away or the
// deadline passed while it worked.
bool Unclear(const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
      return true;
    default:
      return false;
  }
}

bool Standby(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
         st.error_message().find("is standby") != std::string::npos;
}

struct LegT {
  uint64_t leg_id = 0, participant_id = 0, meeting_id = 0;
  std::string remote, local;
  bool operator==(const LegT&) const = default;
  std::string Json() const {
    return absl::StrCat("{\"leg_id\":", leg_id, ",\"participant_id\":", participant_id,
                        ",\"meeting_id\":", meeting_id, ",\"remote\":", Q(remote),
                        ",\"local\":", Q(local), "}");
  }
};

LegT FromProto(const v1::Leg& l) {
  return LegT{l.leg_id(), l.participant_id(), l.meeting_id(), l.remote(), l.local()};
}

struct Part {
  uint64_t id = 0, meeting = 0;
  std::vector<LegT> legs;
  double deadline = 0;
};

// One acknowledged write, with what it changed in the set of churn legs.
struct Write {
  uint64_t n = 0;
  char kind = 'J';  // J join, L leave, M meeting
  std::vector<Part> added, removed;
  double acked = 0;
  int node = -1;
  uint64_t epoch = 0;
};

struct Meet {
  uint64_t id = 0;
  enum State { kLive, kDraining, kEnded, kGone } state = kLive;
  double accept_until = 0;
  double ended_at = 0;
};

struct NodeView {
  bool ok = false;
  std::string role;
  uint64_t epoch = 0;
  uint64_t takeover_ns = 0;
  uint64_t legs = 0;
};

class Driver {
 public:
  Driver(std::vector<std::string> addrs, std::vector<std::string> names)
      : addrs_(std::move(addrs)), names_(std::move(names)) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    // A restarted node is reachable again within half a second.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    for (const auto& a : addrs_) {
      stubs_.push_back(v1::Control::NewStub(
          grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args)));
      poll_stubs_.push_back(v1::Control::NewStub(
          grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args)));
    }
    views_.resize(addrs_.size());
    rate_ = absl::GetFlag(FLAGS_rate);
    life_ = absl::GetFlag(FLAGS_life);
    lpp_ = std::clamp(absl::GetFlag(FLAGS_legs_per_participant), 1u, 3u);
    timeout_s_ = absl::GetFlag(FLAGS_timeout_s);
    max_batch_ = std::max(1u, absl::GetFlag(FLAGS_max_batch));
    remote_net_ = absl::GetFlag(FLAGS_remote_net);
    remote_first_ = absl::GetFlag(FLAGS_remote_first);
    remote_hosts_ = std::max(1u, absl::GetFlag(FLAGS_remote_hosts));
  }

  int Run();

 private:
  std::unique_ptr<grpc::ClientContext> Ctx(double seconds = 0) const {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(
                        1000 * (seconds > 0 ? seconds : static_cast<double>(timeout_s_)))));
    return c;
  }

  void PollLoop();
  int BestActive(NodeView* view);
  bool WaitForActive(double seconds);
  bool Reconcile(const char* why, const Write* unclear);
  void FixMeetings();
  bool ListChurnLegs(int node, absl::flat_hash_map<uint64_t, LegT>* out, std::string* dups);
  bool IsChurnRemote(const std::string& remote) const;
  std::string NextRemote();
  void Adopt(const Write& w, bool undo);
  void Record(Write w);
  void MaintainMeetings(double now);
  bool NewMeeting(double accept_until);
  grpc::Status EndMeeting(Meet& m);
  void DoJoins(double now);
  void DoLeaves(double now);
  // Handles a failed call: true if the caller should stop this tick.
  bool Failed(const char* what, const grpc::Status& st, const Write* unclear);
  void Stats(bool final_line);
  void ReportError(const char* what, const grpc::Status& st);
  void WriteFinal();

  std::vector<std::string> addrs_, names_;
  std::vector<std::unique_ptr<v1::Control::Stub>> stubs_, poll_stubs_;
  absl::Mutex mu_;
  std::vector<NodeView> views_ ABSL_GUARDED_BY(mu_);
  std::thread poller_;
  std::atomic<bool> poll_stop_{false};

  double rate_, life_;
  uint32_t lpp_, timeout_s_, max_batch_;
  std::string remote_net_;
  uint32_t remote_first_, remote_hosts_;
  uint64_t next_remote_ = 0;

  int cur_ = -1;  // node the writes go to
  uint64_t cur_epoch_ = 0;
  absl::flat_hash_map<uint64_t, Part> parts_;  // believed present, by participant id
  absl::flat_hash_set<std::string> remotes_in_use_;
  std::deque<std::pair<double, uint64_t>> leave_queue_;  // (deadline, participant)
  std::vector<Meet> meetings_;
  std::deque<Write> history_;
  uint64_t writes_ = 0;
  double legs_asked_ = 0;  // legs the schedule has asked to join so far
  double t_start_ = 0;

  // Counters.
  uint64_t join_calls_ = 0, join_legs_ = 0, leave_calls_ = 0, leave_legs_ = 0;
  uint64_t meeting_calls_ = 0, failed_calls_ = 0, refused_standby_ = 0, unclear_calls_ = 0;
  uint64_t reconciles_ = 0, node_changes_ = 0, lost_writes_ = 0, lost_join_legs_ = 0;
  uint64_t lost_leave_legs_ = 0, lost_after_takeover_ = 0, inconsistent_ = 0;
  uint64_t unclear_applied_ = 0, unclear_not_applied_ = 0, meeting_fixups_ = 0;
  uint64_t leave_mismatch_ = 0, duplicates_seen_ = 0;
  absl::flat_hash_map<std::string, uint64_t> errors_;
  std::vector<std::string> reconcile_lines_;
  double next_stats_ = 0;
};

void Driver::PollLoop() {
  const auto period = std::chrono::milliseconds(absl::GetFlag(FLAGS_poll_ms));
  while (!poll_stop_) {
    for (size_t i = 0; i < poll_stubs_.size(); ++i) {
      v1::NodeStatus s;
      auto ctx = Ctx(1.0);
      grpc::Status st = poll_stubs_[i]->GetStatus(ctx.get(), v1::GetStatusRequest(), &s);
      NodeView v;
      if (st.ok()) {
        v.ok = true;
        v.role = s.role();
        v.epoch = s.epoch();
        v.takeover_ns = s.pair().last_takeover_unix_ns();
        v.legs = s.legs();
      }
      absl::MutexLock lock(&mu_);
      views_[i] = v;
    }
    std::this_thread::sleep_for(period);
  }
}

int Driver::BestActive(NodeView* view) {
  absl::MutexLock lock(&mu_);
  int best = -1;
  for (size_t i = 0; i < views_.size(); ++i) {
    const NodeView& v = views_[i];
    if (!v.ok || v.role != "active") continue;
    if (best < 0 || v.epoch > views_[best].epoch) best = static_cast<int>(i);
  }
  if (best >= 0 && view) *view = views_[best];
  return best;
}

bool Driver::WaitForActive(double seconds) {
  double until = Now() + seconds;
  while (Now() < until && !g_stop) {
    NodeView v;
    if (BestActive(&v) >= 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return BestActive(nullptr) >= 0;
}

bool Driver::IsChurnRemote(const std::string& remote) const {
  if (remote.rfind(remote_net_, 0) != 0) return false;
  std::string rest = remote.substr(remote_net_.size());
  size_t colon = rest.find(':');
  if (colon == std::string::npos) return false;
  uint32_t host = 0;
  for (char c : rest.substr(0, colon)) {
    if (c < '0' || c > '9') return false;
    host = host * 10 + static_cast<uint32_t>(c - '0');
  }
  return host >= remote_first_ && host < remote_first_ + remote_hosts_;
}

std::string Driver::NextRemote() {
  const uint64_t ports = 64000;
  for (;;) {
    uint64_t n = next_remote_++ % (ports * remote_hosts_);
    std::string r =
        absl::StrCat(remote_net_, remote_first_ + n % remote_hosts_, ":", 1024 + n / remote_hosts_);
    if (!remotes_in_use_.contains(r)) return r;
  }
}

bool Driver::ListChurnLegs(int node, absl::flat_hash_map<uint64_t, LegT>* out, std::string* dups) {
  v1::ListLegsRequest req;
  v1::ListLegsResponse resp;
  auto ctx = Ctx(30);
  grpc::Status st = stubs_[node]->ListLegs(ctx.get(), req, &resp);
  if (!st.ok()) {
    ReportError("list legs", st);
    return false;
  }
  absl::flat_hash_set<std::string> remotes;
  for (const v1::Leg& l : resp.legs()) {
    if (!IsChurnRemote(l.remote())) continue;
    LegT t = FromProto(l);
    if (!out->emplace(t.leg_id, t).second) {
      absl::StrAppend(dups, dups->empty() ? "" : ",", "\"leg id ", t.leg_id, " listed twice\"");
    }
    if (!remotes.insert(absl::StrCat(t.remote, "|", t.local)).second) {
      absl::StrAppend(dups, dups->empty() ? "" : ",", "\"remote ", t.remote, " twice\"");
    }
  }
  return true;
}

// Applies (or undoes) a write's changes to the parts believed present.
void Driver::Adopt(const Write& w, bool undo) {
  const std::vector<Part>& add = undo ? w.removed : w.added;
  const std::vector<Part>& del = undo ? w.added : w.removed;
  for (const Part& p : del) {
    auto it = parts_.find(p.id);
    if (it == parts_.end()) continue;
    for (const LegT& l : it->second.legs) remotes_in_use_.erase(l.remote);
    parts_.erase(it);
  }
  double now = Now();
  for (Part p : add) {
    // A leave undone: the participant is back; it leaves again later.
    if (undo) p.deadline = now + life_;
    for (const LegT& l : p.legs) remotes_in_use_.insert(l.remote);
    leave_queue_.emplace_back(p.deadline, p.id);
    parts_[p.id] = std::move(p);
  }
}

void Driver::Record(Write w) {
  w.n = ++writes_;
  w.acked = Now();
  w.node = cur_;
  w.epoch = cur_epoch_;
  Adopt(w, false);
  history_.push_back(std::move(w));
  double keep = absl::GetFlag(FLAGS_history_s);
  while (!history_.empty() && history_.front().acked < Now() - keep) history_.pop_front();
}

// The node `cur_` must hold a prefix of the acknowledged writes (plus, maybe,
// the unclear one). Finds it, reports what was lost, adopts it.
bool Driver::Reconcile(const char* why, const Write* unclear) {
  reconciles_++;
  NodeView view;
  {
    absl::MutexLock lock(&mu_);
    view = views_[cur_];
  }
  {
    // Fresh: the poller's view may predate the takeover it reports.
    v1::NodeStatus s;
    auto ctx = Ctx();
    if (stubs_[cur_]->GetStatus(ctx.get(), v1::GetStatusRequest(), &s).ok()) {
      view.epoch = s.epoch();
      view.takeover_ns = s.pair().last_takeover_unix_ns();
    }
  }
  absl::flat_hash_map<uint64_t, LegT> S;
  std::string dups;
  if (!ListChurnLegs(cur_, &S, &dups)) return false;
  if (!dups.empty()) duplicates_seen_++;

  // Believed legs by id.
  absl::flat_hash_map<uint64_t, LegT> B;
  for (const auto& [pid, p] : parts_) {
    for (const LegT& l : p.legs) B[l.leg_id] = l;
  }
  std::string unclear_result = "none";
  // The unclear call, if any: applied entirely, not at all, or partly (bad).
  if (unclear && unclear->kind == 'J') {
    // Its leg ids are unknown: find its remotes among the node's legs.
    absl::flat_hash_map<std::string, const Part*> want;
    for (const Part& p : unclear->added) {
      for (const LegT& l : p.legs) want[l.remote] = &p;
    }
    size_t found = 0;
    absl::flat_hash_map<uint64_t, Part> got;
    for (const auto& [id, l] : S) {
      if (!want.contains(l.remote) || B.contains(id)) continue;
      found++;
      Part& p = got[l.participant_id];
      p.id = l.participant_id;
      p.meeting = l.meeting_id;
      p.deadline = Now() + life_;
      p.legs.push_back(l);
    }
    if (found == 0) {
      unclear_result = "not applied";
      unclear_not_applied_++;
    } else {
      unclear_result = found == want.size() ? "applied" : "PARTLY applied";
      if (found == want.size()) unclear_applied_++;
      Write w;
      w.kind = 'J';
      for (auto& [pid, p] : got) w.added.push_back(std::move(p));
      join_calls_++;
      join_legs_ += found;
      Record(std::move(w));
      for (const auto& [pid, p] : parts_) {
        for (const LegT& l : p.legs) B[l.leg_id] = l;
      }
    }
  } else if (unclear && unclear->kind == 'L') {
    size_t gone = 0, total = 0;
    for (const Part& p : unclear->removed) {
      for (const LegT& l : p.legs) {
        total++;
        if (!S.contains(l.leg_id)) gone++;
      }
    }
    if (gone == 0) {
      unclear_result = "not applied";
      unclear_not_applied_++;
    } else {
      unclear_result = gone == total ? "applied" : "PARTLY applied";
      if (gone == total) unclear_applied_++;
      Write w = *unclear;
      leave_calls_++;
      leave_legs_ += gone;
      Record(std::move(w));
      B.clear();
      for (const auto& [pid, p] : parts_) {
        for (const LegT& l : p.legs) B[l.leg_id] = l;
      }
    }
  }

  // extra: on the node, not believed; missing: believed, not on the node.
  absl::flat_hash_set<uint64_t> extra, missing;
  auto same = [&](uint64_t id) {
    auto s = S.find(id);
    auto b = B.find(id);
    return s != S.end() && b != B.end() && s->second == b->second;
  };
  for (const auto& [id, l] : S) {
    if (!same(id)) extra.insert(id);
  }
  for (const auto& [id, l] : B) {
    if (!same(id)) missing.insert(id);
  }
  // Walk back through the history: B_{k-1} = B_k - added_k + removed_k.
  size_t best_back = 0, best_diff = extra.size() + missing.size();
  size_t back = 0;
  bool found = extra.empty() && missing.empty();
  size_t undo = 0;
  if (!found) {
    // Working copy of B as id -> leg, updated as we go back.
    for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
      back++;
      const Write& w = *it;
      for (const Part& p : w.added) {
        for (const LegT& l : p.legs) {
          B.erase(l.leg_id);
          missing.erase(l.leg_id);
          if (S.contains(l.leg_id)) extra.insert(l.leg_id);
        }
      }
      for (const Part& p : w.removed) {
        for (const LegT& l : p.legs) {
          B[l.leg_id] = l;
          if (same(l.leg_id)) {
            extra.erase(l.leg_id);
            missing.erase(l.leg_id);
          } else {
            missing.insert(l.leg_id);
            if (S.contains(l.leg_id)) extra.insert(l.leg_id);
          }
        }
      }
      size_t diff = extra.size() + missing.size();
      if (diff < best_diff) {
        best_diff = diff;
        best_back = back;
      }
      if (diff == 0) {
        found = true;
        undo = back;
        break;
      }
    }
  }
  double takeover_s = static_cast<double>(view.takeover_ns) / 1e9;
  uint64_t lost_j = 0, lost_l = 0, after = 0;
  std::string lost_list;
  std::vector<uint64_t> lost_join_ids, lost_leave_ids;
  if (found) {
    // Undo the lost writes, newest first.
    for (size_t i = 0; i < undo; ++i) {
      const Write& w = history_.back();
      for (const Part& p : w.added) {
        lost_j += p.legs.size();
        for (const LegT& l : p.legs) lost_join_ids.push_back(l.leg_id);
      }
      for (const Part& p : w.removed) {
        lost_l += p.legs.size();
        for (const LegT& l : p.legs) lost_leave_ids.push_back(l.leg_id);
      }
      bool late = w.epoch < view.epoch && w.acked > takeover_s;
      after += late;
      absl::StrAppend(
          &lost_list, lost_list.empty() ? "" : ",", "{\"kind\":\"", std::string(1, w.kind),
          "\",\"legs\":",
          [&] {
            size_t n = 0;
            for (const Part& p : w.added) n += p.legs.size();
            for (const Part& p : w.removed) n += p.legs.size();
            return n;
          }(),
          ",\"acked_before_takeover_ms\":",
          static_cast<int64_t>(std::llround((takeover_s - w.acked) * 1000)),
          ",\"node\":", Q(w.node >= 0 ? names_[w.node] : "?"), ",\"epoch\":", w.epoch, "}");
      Adopt(w, true);
      history_.pop_back();
    }
    lost_writes_ += undo;
    lost_join_legs_ += lost_j;
    lost_leave_legs_ += lost_l;
    lost_after_takeover_ += after;
  } else {
    inconsistent_++;
  }
  std::string sample;
  if (!found) {
    // Show the closest prefix's differences, then adopt the node's state so
    // that the run goes on (the final check counts this as a failure).
    std::vector<std::string> ex, mi;
    for (uint64_t id : extra) {
      if (ex.size() < 10) ex.push_back(S.contains(id) ? S[id].Json() : absl::StrCat(id));
    }
    for (uint64_t id : missing) {
      if (mi.size() < 10) mi.push_back(B.contains(id) ? B[id].Json() : absl::StrCat(id));
    }
    sample = absl::StrCat(",\"closest_back\":", best_back, ",\"closest_diff\":", best_diff,
                          ",\"extra_sample\":[", absl::StrJoin(ex, ","), "],\"missing_sample\":[",
                          absl::StrJoin(mi, ","), "]");
    for (const auto& [pid, p] : parts_) {
      for (const LegT& l : p.legs) remotes_in_use_.erase(l.remote);
    }
    absl::flat_hash_map<uint64_t, Part> old = std::move(parts_);
    parts_.clear();
    for (const auto& [id, l] : S) {
      Part& p = parts_[l.participant_id];
      p.id = l.participant_id;
      p.meeting = l.meeting_id;
      auto o = old.find(p.id);
      p.deadline = o != old.end() ? o->second.deadline : Now() + life_;
      p.legs.push_back(l);
      remotes_in_use_.insert(l.remote);
    }
    leave_queue_.clear();
    for (auto& [pid, p] : parts_) leave_queue_.emplace_back(p.deadline, pid);
    std::sort(leave_queue_.begin(), leave_queue_.end());
  }
  history_.clear();  // the node's state is known from here on
  std::string line = absl::StrCat(
      "{\"ev\":\"reconcile\",\"t\":", absl::StrFormat("%.3f", Now()), ",\"why\":", Q(why),
      ",\"node\":", Q(names_[cur_]), ",\"epoch\":", view.epoch,
      ",\"takeover_unix\":", absl::StrFormat("%.3f", takeover_s),
      ",\"consistent\":", found ? "true" : "false", ",\"unclear_call\":", Q(unclear_result),
      ",\"lost_writes\":", undo, ",\"lost_join_legs\":", lost_j, ",\"lost_leave_legs\":", lost_l,
      ",\"lost_acked_after_takeover\":", after, ",\"legs_on_node\":", S.size(), ",\"duplicates\":[",
      dups, "],\"lost\":[", lost_list, "],\"lost_join_ids\":[", absl::StrJoin(lost_join_ids, ","),
      "],\"lost_leave_ids\":[", absl::StrJoin(lost_leave_ids, ","), "]", sample, "}");
  Emit(line);
  reconcile_lines_.push_back(line);
  FixMeetings();
  return true;
}

// After a reconciliation: the churn meetings' states on the node agree with
// the driver's, or are made to.
void Driver::FixMeetings() {
  double now = Now();
  for (Meet& m : meetings_) {
    if (m.state == Meet::kGone) continue;
    if (m.state == Meet::kEnded && now - m.ended_at > 120) continue;
    v1::GetMeetingRequest req;
    req.set_meeting_id(m.id);
    v1::Meeting out;
    auto ctx = Ctx();
    grpc::Status st = stubs_[cur_]->GetMeeting(ctx.get(), req, &out);
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      // Its scheduling was lost: so were joins into it (by the prefix rule).
      meeting_fixups_++;
      m.state = Meet::kGone;
      continue;
    }
    if (!st.ok()) continue;
    bool live_here = out.state() == v1::LIVE;
    if (m.state == Meet::kEnded && live_here) {
      meeting_fixups_++;
      m.state = Meet::kDraining;  // ended again below once empty
    } else if (m.state != Meet::kEnded && out.state() == v1::SCHEDULED) {
      meeting_fixups_++;
      v1::StartMeetingRequest sr;
      sr.set_meeting_id(m.id);
      v1::Meeting o2;
      auto c2 = Ctx();
      if (!stubs_[cur_]->StartMeeting(c2.get(), sr, &o2).ok()) m.state = Meet::kGone;
    } else if (m.state != Meet::kEnded && out.state() == v1::ENDED) {
      meeting_fixups_++;
      m.state = Meet::kEnded;
      m.ended_at = now;
    }
  }
  // Participants of meetings that are gone cannot be on the node.
  for (auto it = parts_.begin(); it != parts_.end();) {
    bool gone = false;
    for (const Meet& m : meetings_) gone |= m.id == it->second.meeting && m.state == Meet::kGone;
    if (gone) {
      for (const LegT& l : it->second.legs) remotes_in_use_.erase(l.remote);
      parts_.erase(it++);
    } else {
      ++it;
    }
  }
}

void Driver::ReportError(const char* what, const grpc::Status& st) {
  std::string key = absl::StrCat(what, " ", CodeName(st.error_code()));
  if (++errors_[key] <= 3) {
    Emit(absl::StrCat("{\"ev\":\"error\",\"t\":", absl::StrFormat("%.3f", Now()),
                      ",\"call\":", Q(what), ",\"node\":", Q(cur_ >= 0 ? names_[cur_] : "?"),
                      ",\"code\":", Q(CodeName(st.error_code())),
                      ",\"message\":", Q(st.error_message()), "}"));
  }
}

bool Driver::Failed(const char* what, const grpc::Status& st, const Write* unclear) {
  ReportError(what, st);
  if (Standby(st)) {
    // Nothing applied: find the active node and go on.
    refused_standby_++;
    WaitForActive(10);
    return true;
  }
  if (Unclear(st)) {
    unclear_calls_++;
    // The node may still be applying it (deadline) or be gone: wait for
    // the pair to settle, then look at what the active node holds.
    std::this_thread::sleep_for(std::chrono::milliseconds(
        st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? 1000 : 200));
    if (!WaitForActive(30)) return true;
    NodeView v;
    int best = BestActive(&v);
    if (best != cur_ || v.epoch != cur_epoch_) node_changes_++;
    cur_ = best;
    cur_epoch_ = v.epoch;
    Reconcile(absl::StrCat("unclear ", what, " (", CodeName(st.error_code()), ")").c_str(),
              unclear);
    return true;
  }
  failed_calls_++;
  if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
      st.error_code() == grpc::StatusCode::ALREADY_EXISTS ||
      st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    // The node and the driver disagree: look.
    leave_mismatch_++;
    Reconcile(absl::StrCat("refused ", what, " (", CodeName(st.error_code()), ")").c_str(),
              nullptr);
  }
  return true;
}

bool Driver::NewMeeting(double accept_until) {
  v1::ScheduleMeetingRequest sreq;
  sreq.mutable_meeting()->set_site_id(absl::GetFlag(FLAGS_site));
  sreq.mutable_meeting()->set_title("churn");
  v1::Meeting m;
  auto c1 = Ctx();
  grpc::Status st = stubs_[cur_]->ScheduleMeeting(c1.get(), sreq, &m);
  meeting_calls_++;
  if (!st.ok()) {
    Failed("schedule meeting", st, nullptr);
    return false;
  }
  Meet mt;
  mt.id = m.meeting_id();
  mt.accept_until = accept_until;
  mt.state = Meet::kLive;
  meetings_.push_back(mt);
  Write w;
  w.kind = 'M';
  Record(std::move(w));
  v1::StartMeetingRequest start;
  start.set_meeting_id(mt.id);
  auto c2 = Ctx();
  st = stubs_[cur_]->StartMeeting(c2.get(), start, &m);
  meeting_calls_++;
  if (!st.ok()) {
    // FixMeetings starts it if it is still scheduled after a reconciliation.
    Failed("start meeting", st, nullptr);
    return false;
  }
  Write w2;
  w2.kind = 'M';
  Record(std::move(w2));
  return true;
}

grpc::Status Driver::EndMeeting(Meet& m) {
  v1::EndMeetingRequest req;
  req.set_meeting_id(m.id);
  v1::Meeting out;
  auto ctx = Ctx();
  grpc::Status st = stubs_[cur_]->EndMeeting(ctx.get(), req, &out);
  meeting_calls_++;
  if (st.ok()) {
    m.state = Meet::kEnded;
    m.ended_at = Now();
    Write w;
    w.kind = 'M';
    // Anyone still believed in it left with it (normally nobody: it drained).
    for (auto it = parts_.begin(); it != parts_.end(); ++it) {
      if (it->second.meeting == m.id) w.removed.push_back(it->second);
    }
    Record(std::move(w));
  } else if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !Standby(st)) {
    m.state = Meet::kEnded;  // already ended
    m.ended_at = Now();
  } else {
    Failed("end meeting", st, nullptr);
  }
  return st;
}

void Driver::MaintainMeetings(double now) {
  uint32_t want = std::max(1u, absl::GetFlag(FLAGS_meetings));
  double mlife = absl::GetFlag(FLAGS_meeting_life);
  uint32_t accepting = 0;
  for (Meet& m : meetings_) {
    if (m.state == Meet::kLive && now >= m.accept_until) m.state = Meet::kDraining;
    if (m.state == Meet::kLive) accepting++;
  }
  for (Meet& m : meetings_) {
    if (m.state != Meet::kDraining) continue;
    bool empty = true;
    for (const auto& [pid, p] : parts_) empty &= p.meeting != m.id;
    if (empty) {
      if (!EndMeeting(m).ok()) return;
    }
  }
  bool first = meetings_.empty();
  while (accepting < want && !g_stop) {
    // The first ones are staggered so that they do not all drain at once.
    double until = first ? now + mlife * (accepting + 1) / want : now + mlife;
    if (!NewMeeting(until)) return;
    accepting++;
  }
  // Forget meetings ended long ago.
  meetings_.erase(std::remove_if(meetings_.begin(), meetings_.end(),
                                 [&](const Meet& m) {
                                   return m.state == Meet::kGone ||
                                          (m.state == Meet::kEnded && now - m.ended_at > 300);
                                 }),
                  meetings_.end());
}

void Driver::DoJoins(double now) {
  legs_asked_ =
      std::max(legs_asked_, rate_ * (now - t_start_) - 2 * rate_);  // 2 s of backlog at most
  double due = rate_ * (now - t_start_) - legs_asked_;
  std::vector<uint64_t> open;
  for (const Meet& m : meetings_) {
    if (m.state == Meet::kLive) open.push_back(m.id);
  }
  if (open.empty()) return;
  size_t rr = 0;
  while (due >= lpp_ && !g_stop) {
    uint32_t n = std::min<uint32_t>(max_batch_, static_cast<uint32_t>(due));
    uint32_t participants = n / lpp_;
    if (participants == 0) return;
    v1::JoinRequest req;
    Write w;
    w.kind = 'J';
    for (uint32_t i = 0; i < participants; ++i) {
      v1::ParticipantJoin* pj = req.add_participants();
      uint64_t meeting = open[rr++ % open.size()];
      pj->set_meeting_id(meeting);
      pj->set_name("churn");
      Part p;
      p.meeting = meeting;
      for (uint32_t c = 0; c < lpp_; ++c) {
        v1::LegRequest* l = pj->add_legs();
        l->set_channel(static_cast<v1::Channel>(c + 1));
        std::string r = NextRemote();
        remotes_in_use_.insert(r);  // reserved until the call's outcome is known
        l->set_remote(r);
        LegT t;
        t.remote = r;
        t.meeting_id = meeting;
        p.legs.push_back(t);
      }
      w.added.push_back(std::move(p));
    }
    legs_asked_ += participants * lpp_;
    due -= participants * lpp_;
    v1::JoinResponse resp;
    auto ctx = Ctx();
    grpc::Status st = stubs_[cur_]->Join(ctx.get(), req, &resp);
    for (const Part& p : w.added) {
      for (const LegT& l : p.legs) remotes_in_use_.erase(l.remote);
    }
    if (!st.ok()) {
      Failed("join", st, &w);
      return;
    }
    Write done;
    done.kind = 'J';
    double deadline = Now() + life_;
    for (const v1::Participant& rp : resp.participants()) {
      Part p;
      p.id = rp.participant_id();
      p.meeting = rp.meeting_id();
      p.deadline = deadline;
      for (const v1::Leg& l : rp.legs()) p.legs.push_back(FromProto(l));
      join_legs_ += p.legs.size();
      done.added.push_back(std::move(p));
    }
    join_calls_++;
    Record(std::move(done));
  }
}

void Driver::DoLeaves(double now) {
  while (!g_stop) {
    v1::LeaveRequest req;
    Write w;
    w.kind = 'L';
    uint32_t legs = 0;
    while (!leave_queue_.empty() && leave_queue_.front().first <= now && legs < max_batch_) {
      uint64_t pid = leave_queue_.front().second;
      double deadline = leave_queue_.front().first;
      leave_queue_.pop_front();
      auto it = parts_.find(pid);
      if (it == parts_.end() || it->second.deadline != deadline) continue;  // stale entry
      req.add_participant_ids(pid);
      legs += it->second.legs.size();
      w.removed.push_back(it->second);
    }
    if (req.participant_ids_size() == 0) return;
    v1::LeaveResponse resp;
    auto ctx = Ctx();
    grpc::Status st = stubs_[cur_]->Leave(ctx.get(), req, &resp);
    if (!st.ok()) {
      // Back in the queue (at the front: they are due); a reconciliation
      // may have removed or re-queued some, which the stale check skips.
      for (auto it = w.removed.rbegin(); it != w.removed.rend(); ++it) {
        auto p = parts_.find(it->id);
        if (p != parts_.end()) leave_queue_.emplace_front(p->second.deadline, it->id);
      }
      Failed("leave", st, &w);
      return;
    }
    if (resp.legs_removed() != legs || resp.participants_left() != w.removed.size()) {
      leave_mismatch_++;
      Emit(absl::StrCat("{\"ev\":\"error\",\"t\":", absl::StrFormat("%.3f", Now()),
                        ",\"call\":\"leave\",\"code\":\"MISMATCH\",\"message\":\"asked ",
                        w.removed.size(), " participants with ", legs, " legs, node removed ",
                        resp.participants_left(), " and ", resp.legs_removed(), "\"}"));
    }
    leave_calls_++;
    leave_legs_ += legs;
    Record(std::move(w));
  }
}

void Driver::Stats(bool final_line) {
  size_t legs = 0;
  for (const auto& [pid, p] : parts_) legs += p.legs.size();
  uint32_t live = 0;
  for (const Meet& m : meetings_) live += m.state == Meet::kLive || m.state == Meet::kDraining;
  std::string errs;
  for (const auto& [k, v] : errors_) absl::StrAppend(&errs, errs.empty() ? "" : ",", Q(k), ":", v);
  Emit(absl::StrCat(
      "{\"ev\":\"", final_line ? "final" : "stats", "\",\"t\":", absl::StrFormat("%.3f", Now()),
      ",\"node\":", Q(cur_ >= 0 ? names_[cur_] : ""), ",\"epoch\":", cur_epoch_, ",\"join_calls\":",
      join_calls_, ",\"join_legs\":", join_legs_, ",\"leave_calls\":", leave_calls_,
      ",\"leave_legs\":", leave_legs_, ",\"meeting_calls\":", meeting_calls_,
      ",\"failed_calls\":", failed_calls_, ",\"refused_standby\":", refused_standby_,
      ",\"unclear_calls\":", unclear_calls_, ",\"unclear_applied\":", unclear_applied_,
      ",\"unclear_not_applied\":", unclear_not_applied_, ",\"reconciles\":", reconciles_,
      ",\"node_changes\":", node_changes_, ",\"lost_writes\":", lost_writes_,
      ",\"lost_join_legs\":", lost_join_legs_, ",\"lost_leave_legs\":", lost_leave_legs_,
      ",\"lost_acked_after_takeover\":", lost_after_takeover_, ",\"inconsistent\":", inconsistent_,
      ",\"meeting_fixups\":", meeting_fixups_, ",\"leave_mismatch\":", leave_mismatch_,
      ",\"duplicates_seen\":", duplicates_seen_, ",\"legs\":", legs, ",\"participants\":",
      parts_.size(), ",\"churn_meetings\":", live, ",\"errors\":{", errs, "}}"));
}

void Driver::WriteFinal() {
  std::string path = absl::GetFlag(FLAGS_final);
  if (path.empty()) return;
  FILE* f = fopen(path.c_str(), "w");
  if (!f) {
    perror(path.c_str());
    return;
  }
  std::vector<std::string> legs, meetings;
  for (const auto& [pid, p] : parts_) {
    for (const LegT& l : p.legs) legs.push_back(l.Json());
  }
  for (const Meet& m : meetings_) {
    const char* s = m.state == Meet::kEnded ? "ended" : m.state == Meet::kGone ? "gone" : "live";
    meetings.push_back(absl::StrCat("{\"meeting_id\":", m.id, ",\"state\":\"", s, "\"}"));
  }
  fprintf(f, "{\"legs\":[%s],\"meetings\":[%s],\"reconciles\":[%s]}\n",
          absl::StrJoin(legs, ",\n").c_str(), absl::StrJoin(meetings, ",").c_str(),
          absl::StrJoin(reconcile_lines_, ",\n").c_str());
  fclose(f);
}

int Driver::Run() {
  poller_ = std::thread([this] { PollLoop(); });
  if (!WaitForActive(60)) {
    fprintf(stderr, "tandem-churn: no active node among %s\n", absl::StrJoin(addrs_, ",").c_str());
    poll_stop_ = true;
    poller_.join();
    return 3;
  }
  NodeView v;
  cur_ = BestActive(&v);
  cur_epoch_ = v.epoch;
  Reconcile("start", nullptr);
  t_start_ = Now();
  next_stats_ = t_start_;
  const double tick = absl::GetFlag(FLAGS_tick_ms) / 1000.0;
  const double stats_s = absl::GetFlag(FLAGS_stats_s);
  double next_tick = t_start_;
  while (!g_stop) {
    double now = Now();
    int best = BestActive(&v);
    if (best >= 0 && (best != cur_ || v.epoch > cur_epoch_)) {
      // A takeover: the new active may lack the last writes of the old one.
      node_changes_++;
      cur_ = best;
      cur_epoch_ = v.epoch;
      Reconcile("active node changed", nullptr);
      continue;
    }
    if (now >= next_stats_) {
      Stats(false);
      next_stats_ += stats_s;
      if (next_stats_ < now) next_stats_ = now + stats_s;
    }
    if (now < next_tick) {
      std::this_thread::sleep_for(
          std::chrono::microseconds(static_cast<int64_t>(std::min(next_tick - now, 0.02) * 1e6)));
      continue;
    }
    next_tick += tick;
    if (next_tick < now) next_tick = now + tick;
    MaintainMeetings(now);
    DoJoins(now);
    DoLeaves(Now());
  }
  // Stopped: one last look at the active node (nothing may be lost now).
  if (WaitForActive(30)) {
    int best = BestActive(&v);
    if (best != cur_ || v.epoch > cur_epoch_) node_changes_++;
    cur_ = best;
    cur_epoch_ = v.epoch;
    Reconcile("end", nullptr);
  }
  poll_stop_ = true;
  poller_.join();
  WriteFinal();
  Stats(true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<std::string> addrs = absl::StrSplit(absl::GetFlag(FLAGS_pair), ',');
  std::vector<std::string> names = absl::StrSplit(absl::GetFlag(FLAGS_names), ',');
  if (addrs.size() != 2 || names.size() != 2 || absl::GetFlag(FLAGS_site) == 0) {
    fprintf(stderr, "usage: tandem-churn --pair A,B [--names a,b] --site ID [--rate N] ...\n");
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  Driver d(std::move(addrs), std::move(names));
  return d.Run();
}
