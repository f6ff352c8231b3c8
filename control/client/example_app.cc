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
#include "control/client/pair_client.h"
#include "control/client/json.h"

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

int Run(int argc, char** argv) {
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_function([](gpr_log_func_args*) {});
  tandem::client::PairOptions opts;
  std::string addresses;
  opts.tls.names = {"--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name",
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
      opts.tls.cert_file = value();
    } else if (a == "--tls-key") {
      opts.tls.key_file = value();
    } else if (a == "--tls-ca") {
      opts.tls.ca_file = value();
    } else if (a == "--tls-server-name") {
      opts.tls.server_name = value();
    } else if (a == "--timeout") {
      int s = 0;
      if (!absl::SimpleAtoi(value(), &s) || s <= 0) {
        fprintf(stderr, "tandem-app-example: --timeout wants seconds\n");
        return 2;
      }
      opts.failover_timeout = std::chrono::seconds(s);
    } else {
      fprintf(stderr,
              "usage: tandem-app-example --pair A,B [--tls-cert F --tls-key F] [--tls-ca F]\n"
              "       [--tls-server-name N] [--timeout SECONDS] < commands\n");
      return 2;
    }
  }
  for (absl::string_view a : absl::StrSplit(addresses, ',')) opts.addresses.emplace_back(a);
  auto created = PairClient::Create(opts);
  if (!created.ok()) {
    fprintf(stderr, "tandem-app-example: %s\n", std::string(created.status().message()).c_str());
    return 2;
  }
  PairClient& client = **created;

  tandem::client::WatchStop stop;
  std::thread watcher;
  uint64_t watched = 0;

  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (w.empty()) continue;
    const std::string& op = w[0];
    auto t0 = std::chrono::steady_clock::now();
    if (op == "quit") break;
    if (op == "watch" && !watcher.joinable()) {
      // Where the log is now (a read: the active node answers), then follow
      // it from there; a Watch with from_seq 0 would do the same by itself.
      v1::NodeStatus s;
      grpc::Status st = client.Call(&Stub::GetStatus, v1::GetStatusRequest(), &s);
      Emit(Result(op, st,
                  absl::StrCat(",\"log_id\":", s.log_id(), ",\"from\":", s.change_seq() + 1),
                  client, t0));
      if (!st.ok()) continue;
      watcher =
          std::thread([&client, &stop, &watched, log = s.log_id(), from = s.change_seq() + 1] {
            grpc::Status end = client.Watch(
                log, from,
                [&](const v1::Change& c) {
                  ++watched;
                  Emit(absl::StrCat("{\"change\":", tandem::control::ToJson(c), "}"));
                  return true;
                },
                &stop);
            Emit(absl::StrCat(
                "{\"watch_end\":true,\"code\":", Quote(tandem::client::CodeName(end.error_code())),
                ",\"error\":", Quote(end.error_message()), ",\"changes\":", watched, "}"));
          });
    } else if (op == "unwatch" && watcher.joinable()) {
      stop.Stop();
      watcher.join();
      Emit(Result(op, grpc::Status::OK, "", client, t0));
    } else if (op == "site" && w.size() == 2) {
      v1::CreateSiteRequest req;
      req.mutable_site()->set_name(w[1]);
      v1::Site site;
      grpc::Status st = client.Call(&Stub::CreateSite, req, &site);
      Emit(Result(op, st,
                  absl::StrCat(",\"id\":", site.site_id(), ",\"name\":", Quote(site.name())),
                  client, t0));
    } else if (op == "burst" && w.size() == 3) {
      int n = 0;
      (void)absl::SimpleAtoi(w[2], &n);
      for (int i = 0; i < n; ++i) {
        auto t1 = std::chrono::steady_clock::now();
        v1::CreateSiteRequest req;
        req.mutable_site()->set_name(absl::StrCat(w[1], "-", i));
        v1::Site site;
        grpc::Status st = client.Call(&Stub::CreateSite, req, &site);
        Emit(Result(op, st, absl::StrCat(",\"id\":", site.site_id()), client, t1,
                    absl::StrCat(",\"name\":", Quote(req.site().name()))));
      }
    } else if (op == "meeting" && w.size() >= 3) {
      v1::ScheduleMeetingRequest req;
      uint64_t site = 0;
      (void)absl::SimpleAtoi(w[1], &site);
      req.mutable_meeting()->set_site_id(site);
      req.mutable_meeting()->set_title(w[2]);
      req.mutable_meeting()->set_listed(true);
      v1::Meeting m;
      grpc::Status st = client.Call(&Stub::ScheduleMeeting, req, &m);
      Emit(Result(op, st, absl::StrCat(",\"id\":", m.meeting_id()), client, t0));
    } else if (op == "start" && w.size() == 2) {
      v1::StartMeetingRequest req;
      uint64_t id = 0;
      (void)absl::SimpleAtoi(w[1], &id);
      req.set_meeting_id(id);
      v1::Meeting m;
      grpc::Status st = client.Call(&Stub::StartMeeting, req, &m);
      Emit(Result(op, st, absl::StrCat(",\"id\":", m.meeting_id()), client, t0));
    } else if (op == "list") {
      v1::ListSitesResponse r;
      std::string by;
      grpc::Status st = client.ReadAny(&Stub::ListSites, v1::ListSitesRequest(), &r, &by);
      std::string names;
      for (const v1::Site& s : r.sites())
        absl::StrAppend(&names, names.empty() ? "" : ",", Quote(s.name()));
      Emit(Result(op, st, absl::StrCat(",\"answered_by\":", Quote(by), ",\"sites\":[", names, "]"),
                  client, t0));
    } else {
      Emit(absl::StrCat("{\"op\":", Quote(op), ",\"ok\":false,\"error\":\"unknown command\"}"));
    }
  }
  if (watcher.joinable()) {
    stop.Stop();
    watcher.join();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
