// tandem-app-example: a meeting application in miniature on tandem_client.
// It is given the API addresses of both nodes of a pair and never asks which
// one is active: the PairClient sends each call to the active node, follows
// a takeover, and resumes its Watch on the new active node.
//
//   tandem-app-example --pair A,B [--tls-cert F --tls-key F] [--tls-ca F]
//                      [--tls-server-name N] [--timeout SECONDS]
//
// Commands on stdin, one a line; one JSON line on stdout for each, and one
// for each change the watch delivers ({"change": {...}}):
//   watch                  follow the change log from now (in a thread)
//   site NAME              create a site
//   burst PREFIX N         create N sites PREFIX-0 ... back to back (a line each)
//   meeting SITE_ID TITLE  schedule a meeting
//   start MEETING_ID       start a meeting
//   list                   the sites' names, from any node that answers
//   unwatch                stop the watch
//   quit                   (or end of input)
#include <grpc/support/log.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control/client/json.h"
#include "control/client/pair_client.h"

namespace {

using tandem::client::PairClient;
using tandem::client::Stub;
namespace v1 = tandem::client::v1;

std::mutex out_mu;

void Emit(const std::string& line) {
  std::lock_guard<std::mutex> lock(out_mu);
  fputs(line.c_str(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// {"op":..,"ok":..,...} for one command.
// `fields` when it succeeded, `always` either way.
std::string Result(const std::string& op, const grpc::Status& st, const std::string& fields,
                   const PairClient& client, std::chrono::steady_clock::time_point t0,
                   const std::string& always = "") {
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::string s = absl::StrCat("{\"op\":", Quote(op), ",\"ok\":", st.ok() ? "true" : "false",
                               ",\"ms\":", static_cast<int64_t>(ms),
                               ",\"node\":", Quote(client.active_address()), always);
  if (st.ok()) {
    absl::StrAppend(&s, fields);
  } else {
    absl::StrAppend(&s, ",\"code\":", Quote(tandem::client::CodeName(st.error_code())),
                    ",\"error\":", Quote(st.error_message()));
  }
  return s + "}";
}

// --pair/--api and the TLS options into `opts`; false (having said why) on a
// usage error.
bool ParseOptions(int argc, char** argv, tandem::client::PairOptions* opts) {
  std::string addresses;
  opts->tls.names = {"--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name",
                     "--tls-cert and --tls-key"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "tandem-app-example: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--pair" || a == "--api") {
      addresses = value();
    } else if (a == "--tls-cert") {
      opts->tls.cert_file = value();
    } else if (a == "--tls-key") {
      opts->tls.key_file = value();
    } else if (a == "--tls-ca") {
      opts->tls.ca_file = value();
    } else if (a == "--tls-server-name") {
      opts->tls.server_name = value();
    } else if (a == "--timeout") {
      int s = 0;
      if (!absl::SimpleAtoi(value(), &s) || s <= 0) {
        fprintf(stderr, "tandem-app-example: --timeout wants seconds\n");
        return false;
      }
      opts->failover_timeout = std::chrono::seconds(s);
    } else {
      fprintf(stderr,
              "usage: tandem-app-example --pair A,B [--tls-cert F --tls-key F] [--tls-ca F]\n"
              "       [--tls-server-name N] [--timeout SECONDS] < commands\n");
      return false;
    }
  }
  for (absl::string_view a : absl::StrSplit(addresses, ',')) opts->addresses.emplace_back(a);
  return true;
}

using Clock = std::chrono::steady_clock;

// The commands of stdin, each answered by one JSON line (burst: one a site).
class App {
 public:
  explicit App(PairClient& client) : client_(client) {}
  ~App() { StopWatch(); }

  // One command line, split into words; false for quit.
  bool Do(const std::vector<std::string>& w) {
    const std::string& op = w[0];
    const Clock::time_point t0 = Clock::now();
    if (op == "quit") return false;
    if (op == "watch" && !watcher_.joinable()) {
      Watch(t0);
    } else if (op == "unwatch" && watcher_.joinable()) {
      StopWatch();
      Emit(Result(op, grpc::Status::OK, "", client_, t0));
    } else if (op == "site" && w.size() == 2) {
      v1::Site site;
      grpc::Status st = CreateSite(w[1], &site);
      Emit(Result(op, st,
                  absl::StrCat(",\"id\":", site.site_id(), ",\"name\":", Quote(site.name())),
                  client_, t0));
    } else if (op == "burst" && w.size() == 3) {
      Burst(w[1], w[2]);
    } else if (op == "meeting" && w.size() >= 3) {
      ScheduleMeeting(w[1], w[2], t0);
    } else if (op == "start" && w.size() == 2) {
      StartMeeting(w[1], t0);
    } else if (op == "list") {
      List(t0);
    } else {
      Emit(absl::StrCat("{\"op\":", Quote(op), ",\"ok\":false,\"error\":\"unknown command\"}"));
    }
    return true;
  }

 private:
  void StopWatch() {
    if (!watcher_.joinable()) return;
    stop_.Stop();
    watcher_.join();
  }

  void Watch(Clock::time_point t0) {
    // Where the log is now (a read: the active node answers), then follow it
    // from there; a Watch with from_seq 0 would do the same by itself.
    v1::NodeStatus s;
    grpc::Status st = client_.Call(&Stub::GetStatus, v1::GetStatusRequest(), &s);
    Emit(Result("watch", st,
                absl::StrCat(",\"log_id\":", s.log_id(), ",\"from\":", s.change_seq() + 1), client_,
                t0));
    if (!st.ok()) return;
    watcher_ = std::thread([this, log = s.log_id(), from = s.change_seq() + 1] {
      grpc::Status end = client_.Watch(
          log, from,
          [&](const v1::Change& c) {
            ++watched_;
            Emit(absl::StrCat("{\"change\":", tandem::control::ToJson(c), "}"));
            return true;
          },
          &stop_);
      Emit(absl::StrCat(
          "{\"watch_end\":true,\"code\":", Quote(tandem::client::CodeName(end.error_code())),
          ",\"error\":", Quote(end.error_message()), ",\"changes\":", watched_, "}"));
    });
  }

  grpc::Status CreateSite(const std::string& name, v1::Site* site) {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name(name);
    return client_.Call(&Stub::CreateSite, req, site);
  }

  // N sites PREFIX-0 ... back to back, each timed on its own.
  void Burst(const std::string& prefix, const std::string& count) {
    int n = 0;
    (void)absl::SimpleAtoi(count, &n);
    for (int i = 0; i < n; ++i) {
      const Clock::time_point t1 = Clock::now();
      const std::string name = absl::StrCat(prefix, "-", i);
      v1::Site site;
      grpc::Status st = CreateSite(name, &site);
      Emit(Result("burst", st, absl::StrCat(",\"id\":", site.site_id()), client_, t1,
                  absl::StrCat(",\"name\":", Quote(name))));
    }
  }

  void ScheduleMeeting(const std::string& site_id, const std::string& title, Clock::time_point t0) {
    v1::ScheduleMeetingRequest req;
    uint64_t site = 0;
    (void)absl::SimpleAtoi(site_id, &site);
    req.mutable_meeting()->set_site_id(site);
    req.mutable_meeting()->set_title(title);
    req.mutable_meeting()->set_listed(true);
    v1::Meeting m;
    grpc::Status st = client_.Call(&Stub::ScheduleMeeting, req, &m);
    Emit(Result("meeting", st, absl::StrCat(",\"id\":", m.meeting_id()), client_, t0));
  }

  void StartMeeting(const std::string& meeting_id, Clock::time_point t0) {
    v1::StartMeetingRequest req;
    uint64_t id = 0;
    (void)absl::SimpleAtoi(meeting_id, &id);
    req.set_meeting_id(id);
    v1::Meeting m;
    grpc::Status st = client_.Call(&Stub::StartMeeting, req, &m);
    Emit(Result("start", st, absl::StrCat(",\"id\":", m.meeting_id()), client_, t0));
  }

  // From any node that answers, the standby too: a read may go anywhere.
  void List(Clock::time_point t0) {
    v1::ListSitesResponse r;
    std::string by;
    grpc::Status st = client_.ReadAny(&Stub::ListSites, v1::ListSitesRequest(), &r, &by);
    std::string names;
    for (const v1::Site& s : r.sites())
      absl::StrAppend(&names, names.empty() ? "" : ",", Quote(s.name()));
    Emit(Result("list", st,
                absl::StrCat(",\"answered_by\":", Quote(by), ",\"sites\":[", names, "]"), client_,
                t0));
  }

  PairClient& client_;
  tandem::client::WatchStop stop_;
  std::thread watcher_;
  uint64_t watched_ = 0;  // written by watcher_ only
};

int Run(int argc, char** argv) {
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_function([](gpr_log_func_args*) {});
  tandem::client::PairOptions opts;
  if (!ParseOptions(argc, argv, &opts)) return 2;
  auto created = PairClient::Create(opts);
  if (!created.ok()) {
    fprintf(stderr, "tandem-app-example: %s\n", std::string(created.status().message()).c_str());
    return 2;
  }
  App app(**created);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!w.empty() && !app.Do(w)) break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
