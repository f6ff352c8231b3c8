// tandem-routing: the routing driver of routed mode (control/routing.h) by
// hand, with tandem-control's configuration file (docs/routed.md).
//
//   tandem-routing --config control.toml print [active|standby|withdrawn]
//       prints the BIRD configuration Tandem generates
//   tandem-routing --config control.toml run [active|standby|withdrawn]
//       drives BIRD as tandem-control will: announces that (default: what
//       BIRD's configuration file already announces, else standby), gated by
//       the switch's health, and reads commands on stdin, one a line:
//         active | standby | withdrawn   announce that (answers "applied ...")
//         status                         one line of JSON (RoutingStatus)
//         quit                           exits, leaving BIRD as it is
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/config.h"
#include "common/version.h"
#include "control/routing.h"

namespace tandem::control {
namespace {

constexpr const char* kUsage =
    "usage: tandem-routing --config FILE print|run [active|standby|withdrawn]\n"
    "Drives the routing daemon of routed mode by hand (docs/routed.md).\n\n"
    "  --config FILE  tandem-control's configuration ([access] mode, [routing])\n"
    "  print          print the BIRD configuration the file gives\n"
    "  run            announce, then report the paths; Ctrl-C withdraws\n"
    "  --version      print the version and the commit\n"
    "  --help         print this help\n";

int Usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

bool ParseAnnouncement(const std::string& s, Announcement* a) {
  if (s == "active")
    *a = Announcement::kActive;
  else if (s == "standby")
    *a = Announcement::kStandby;
  else if (s == "withdrawn")
    *a = Announcement::kWithdrawn;
  else
    return false;
  return true;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string StatusJson(const RoutingStatus& s) {
  std::vector<std::string> paths;
  for (const CompetingPath& p : s.competing) {
    paths.push_back(absl::StrCat("{\"prefix\":", JsonString(p.prefix),
                                 ",\"session\":", JsonString(p.session),
                                 ",\"as_path\":", JsonString(p.as_path), "}"));
  }
  return absl::StrCat(
      "{\"wanted\":\"", AnnouncementName(s.wanted), "\",\"announced\":\"",
      AnnouncementName(s.announced), "\",\"applied\":", s.applied ? "true" : "false",
      ",\"data_plane_ok\":", s.data_plane_ok ? "true" : "false", ",\"error\":", JsonString(s.error),
      ",\"changes\":", s.changes,
      ",\"last_change_ms\":", absl::ToDoubleMilliseconds(s.last_change_took),
      ",\"sessions_up\":", s.sessions_up, ",\"sessions\":", s.sessions, ",\"path\":\"",
      PathStateName(s.path), "\",\"competing\":[", absl::StrJoin(paths, ","), "]}");
}

int Run(const Config& c, Announcement initial) {
  auto driver = RoutingDriver::Start(c.routing, c.access_vips, initial,
                                     SwitchHealth::Probe(c.shm_dir, c.node));
  if (!driver.ok()) {
    std::fprintf(stderr, "tandem-routing: %s\n", std::string(driver.status().message()).c_str());
    return 1;
  }
  std::string line;
  std::cout << "ready" << std::endl;
  while (std::getline(std::cin, line)) {
    Announcement a;
    if (line == "quit") break;
    if (line == "status") {
      std::cout << StatusJson((*driver)->status()) << std::endl;
    } else if (ParseAnnouncement(line, &a)) {
      (*driver)->Announce(a);
      bool done = (*driver)->WaitApplied(absl::Seconds(5));
      RoutingStatus s = (*driver)->status();
      std::cout << (done ? "applied " : "pending ") << AnnouncementName(s.announced) << " "
                << absl::ToDoubleMilliseconds(s.last_change_took) << " ms" << std::endl;
    } else {
      std::cout << "error: unknown command '" << line << "'" << std::endl;
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::string config, verb, what;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("tandem-routing %s (commit %s)\n", TANDEM_VERSION, TANDEM_COMMIT);
      return 0;
    }
    if (a == "--config" && i + 1 < argc)
      config = argv[++i];
    else if (a.rfind("--config=", 0) == 0)
      config = a.substr(9);
    else if (verb.empty())
      verb = a;
    else
      what = a;
  }
  Announcement initial = Announcement::kStandby;
  if (config.empty() || verb.empty() || (!what.empty() && !ParseAnnouncement(what, &initial))) {
    return Usage();
  }
  auto c = LoadConfig(config);
  absl::Status st = c.ok() ? ValidateConfig(*c) : c.status();
  if (st.ok() && c->access_mode != AccessMode::kRouted) {
    st = absl::FailedPreconditionError(absl::StrCat(config, ": [access] mode is not \"routed\""));
  }
  if (!st.ok()) {
    std::fprintf(stderr, "tandem-routing: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  if (verb == "print") {
    std::cout << GenerateBirdConfig(c->routing, c->access_vips, initial);
    return 0;
  }
  if (verb == "run") {
    if (what.empty()) initial = AnnouncementInFile(c->routing.config_file).value_or(initial);
    return Run(*c, initial);
  }
  return Usage();
}

}  // namespace
}  // namespace tandem::control

int main(int argc, char** argv) { return tandem::control::Main(argc, argv); }
