// tandem-control: the control-plane daemon of one node. The single writer of
// the node's session tables; serves the gRPC API (tandemctl, meeting
// applications) and Prometheus metrics. See docs/control.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "control/api_access.h"
#include "control/api_roles.h"
#include "control/api_socket.h"
#include "control/config.h"
#include "common/log.h"
#include "common/sd_notify.h"
#include "common/tables/layout.h"
#include "common/version.h"
#include "control/core.h"
#include "control/fleet_node.h"
#include "control/notify.h"
#include "control/observer.h"
#include "control/ops_metrics.h"
#include "control/pair.h"
#include "control/routing.h"
#include "control/service.h"
#include "mirror/wire.h"

ABSL_FLAG(std::string, config, "", "TOML configuration file");
ABSL_FLAG(std::string, node, "", "node name (overrides the config)");
ABSL_FLAG(std::string, shm_dir, "", "directory of the region files (overrides the config)");
ABSL_FLAG(std::string, api, "",
          "API listen address, unix:PATH or HOST:PORT (overrides [api] listen)");
ABSL_FLAG(std::string, api_tcp, "",
          "extra TCP listener HOST:PORT, mutual TLS only (overrides [api] tcp)");
ABSL_FLAG(std::string, api_socket_mode, "",
          "octal mode of the API's Unix socket, e.g. 0660 (overrides [api] socket_mode)");
ABSL_FLAG(std::string, api_socket_group, "",
          "group of the API's Unix socket (overrides [api] socket_group)");
ABSL_FLAG(std::string, api_tls_cert, "",
          "PEM certificate (chain) of a TCP listener (overrides [api] tls_cert)");
ABSL_FLAG(std::string, api_tls_key, "", "PEM key of that certificate (overrides [api] tls_key)");
ABSL_FLAG(std::string, api_tls_ca, "",
          "PEM CA certificates that issue the clients' certificates (overrides [api] tls_ca)");
ABSL_FLAG(std::string, store, "", "SQLite store path (overrides [store] path)");
ABSL_FLAG(std::string, metrics, "", "metrics HTTP listen HOST:PORT, \"off\" to disable");
ABSL_FLAG(std::string, role, "", "active or standby (overrides role)");
ABSL_FLAG(uint32_t, legs, 0, "leg capacity when the tables are created (overrides [tables])");
ABSL_FLAG(uint32_t, meetings, 0, "meeting capacity when the tables are created");
ABSL_FLAG(std::string, log_level, "",
          "least important level logged: err, warning, notice, info, debug (overrides log_level)");
ABSL_FLAG(bool, check_config, false,
          "check the configuration and the flags, then exit: 0 when valid, 2 with the reason "
          "when not; starts nothing and creates nothing");

namespace tandem::control {
namespace {

void MakeParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  std::string dir = path.substr(0, slash);
  // mkdir -p
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0755);
  }
}

// Everything a configuration can get wrong, found before anything is made:
// a bad flag or key leaves no tables region, store, socket or directory.
struct Checked {
  ApiAccess access;
  RoleMap roles;
  std::string metrics_host;
  int metrics_port = 0;
};

absl::StatusOr<Checked> CheckBeforeStart(Config& config) {
  if (auto st = ValidateConfig(config); !st.ok()) return st;
  Checked c;
  auto access = LoadApiAccess(config);  // who may use the API
  if (!access.ok()) return access.status();
  c.access = *std::move(access);
  auto roles = RoleMap::Create(config.api_roles);
  if (!roles.ok()) return roles.status();
  c.roles = *std::move(roles);
  if (!config.shm_group.empty()) {
    if (auto g = LookupGroup(config.shm_group); !g.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("shm_group: ", g.status().message()));
    }
  }
  if (!config.metrics_listen.empty()) {  // ValidateConfig checked the form
    size_t colon = config.metrics_listen.rfind(':');
    c.metrics_host = config.metrics_listen.substr(0, colon);
    if (c.metrics_host.size() > 2 && c.metrics_host.front() == '[') {
      c.metrics_host = c.metrics_host.substr(1, c.metrics_host.size() - 2);
    }
    c.metrics_port = std::stoi(config.metrics_listen.substr(colon + 1));
  }
  return c;
}

absl::StatusOr<Config> ConfigFromFlags() {
  Config config;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    auto c = LoadConfig(absl::GetFlag(FLAGS_config));
    if (!c.ok()) return c.status();
    config = *c;
  }
  auto override_str = [](const absl::Flag<std::string>& f, std::string* out) {
    std::string v = absl::GetFlag(f);
    if (!v.empty()) *out = v;
  };
  override_str(FLAGS_node, &config.node);
  override_str(FLAGS_shm_dir, &config.shm_dir);
  override_str(FLAGS_api, &config.api_listen);
  override_str(FLAGS_api_tcp, &config.api_tcp);
  override_str(FLAGS_api_socket_mode, &config.api_socket_mode);
  override_str(FLAGS_api_socket_group, &config.api_socket_group);
  override_str(FLAGS_api_tls_cert, &config.api_tls_cert);
  override_str(FLAGS_api_tls_key, &config.api_tls_key);
  override_str(FLAGS_api_tls_ca, &config.api_tls_ca);
  override_str(FLAGS_store, &config.store_path);
  override_str(FLAGS_metrics, &config.metrics_listen);
  override_str(FLAGS_role, &config.role);
  if (std::string level = absl::GetFlag(FLAGS_log_level); !level.empty()) {
    if (!log::ParseLevel(level, &config.log_level)) {
      return absl::InvalidArgumentError(absl::StrCat("--log-level: unknown level \"", level, "\""));
    }
  }
  if (config.metrics_listen == "off") config.metrics_listen.clear();
  if (absl::GetFlag(FLAGS_legs)) config.capacity.legs = absl::GetFlag(FLAGS_legs);
  if (absl::GetFlag(FLAGS_meetings)) config.capacity.meetings = absl::GetFlag(FLAGS_meetings);
  return config;
}

int Fail(int code, const absl::Status& st) {
  log::Write(log::Level::kErr, st.message());
  return code;
}

std::string VersionText() {
  return absl::StrCat("tandem-control ", TANDEM_VERSION, " (commit ", TANDEM_COMMIT,
                      ")\nwire format ", mirror::kWireVersion, ", tables layout ",
                      tables::kTablesVersion, ", state layout ", tables::kStateVersion, "\n");
}

// --help: the flags defined in this file, spelled as operators type them.
void PrintHelp() {
  printf(
      "usage: tandem-control --config FILE [flags]\n"
      "The control-plane daemon of a Tandem node (docs/control.md). Flags override the\n"
      "file's keys; each is also accepted with underscores for its dashes.\n\n");
  std::vector<std::pair<std::string, std::string>> lines;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), "control/main.cc")) continue;
    std::string dashed = absl::StrReplaceAll(name, {{"_", "-"}});
    std::string def = flag->DefaultValue();
    std::string arg = flag->IsOfType<bool>() ? "" : " VALUE";
    lines.emplace_back(absl::StrCat("  --", dashed, arg),
                       absl::StrCat(flag->Help(), def.empty() || def == "0" || def == "false"
                                                      ? ""
                                                      : absl::StrCat(" (default ", def, ")")));
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& [flag, help] : lines) printf("%-26s %s\n", flag.c_str(), help.c_str());
  printf("  %-24s %s\n  %-24s %s\n", "--version", "print the version, the commit and the format versions",
         "--help", "print this help");
}

// "--shm-dir" and "--shm_dir" are one flag: every tool spells flags with
// dashes (docs/operations.md), absl names them with underscores.
std::vector<char*> DashedToAbsl(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (std::string& a : storage) {
    if (!absl::StartsWith(a, "--")) continue;
    size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<long>(end), '-', '_');
  }
  std::vector<char*> out;
  for (std::string& a : storage) out.push_back(a.data());
  return out;
}

// The exit code when the command line says to stop (help, version, an
// unknown flag); the flags are parsed otherwise.
std::optional<int> ParseFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      PrintHelp();
      return 0;
    }
    if (a == "--version") {
      printf("%s", VersionText().c_str());
      return 0;
    }
  }
  absl::SetProgramUsageMessage("tandem-control --config FILE [flags] (see --help)");
  std::vector<std::string> storage;
  std::vector<char*> args = DashedToAbsl(argc, argv, storage);
  for (int i = 1; i < argc; ++i) {  // named as typed, not as absl spells it
    if (storage[i] == "--") break;   // the end of the flags
    if (!absl::StartsWith(storage[i], "--")) continue;  // a flag's value
    std::string name = storage[i].substr(2, storage[i].find('=') - 2);
    if (!absl::FindCommandLineFlag(name)) {
      fprintf(stderr, "tandem-control: unknown flag %s (see --help)\n",
              std::string(argv[i]).substr(0, std::string(argv[i]).find('=')).c_str());
      return 2;
    }
  }
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return std::nullopt;
}

// The configuration from the file and the flags, checked; the exit code when
// it is wrong or when only a check was asked for.
std::optional<int> LoadCheckedConfig(Config& config, Checked& checked) {
  auto loaded = ConfigFromFlags();
  if (!loaded.ok()) return Fail(2, loaded.status());
  config = *std::move(loaded);
  auto c = CheckBeforeStart(config);
  if (!c.ok()) return Fail(2, c.status());
  if (absl::GetFlag(FLAGS_check_config)) {
    printf("%s: ok\n", absl::GetFlag(FLAGS_config).empty() ? "flags"
                                                             : absl::GetFlag(FLAGS_config).c_str());
    return 0;
  }
  checked = *std::move(c);
  return std::nullopt;
}

// Signals are taken by sigwait; they are blocked before any thread starts.
sigset_t BlockStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  return stop;
}

// The pair, or on a node without one in routed mode, the routing driver.
absl::Status StartPairOrRouting(const Config& config, Core& core, std::unique_ptr<Pair>& pair,
                                std::unique_ptr<RoutingDriver>& routing) {
  if (config.pair.enabled) {
    auto p = Pair::Start(core);
    if (!p.ok()) return p.status();
    pair = std::move(*p);
  } else if (config.access_mode == AccessMode::kRouted) {
    auto r = RoutingDriver::Start(config.routing, config.access_vips,
                                  core.node_role() == tables::Role::kActive
                                      ? Announcement::kActive
                                      : Announcement::kStandby,
                                  SwitchHealth::Probe(config.shm_dir, config.node));
    if (!r.ok()) return r.status();
    routing = std::move(*r);
  }
  return absl::OkStatus();
}

// The Unix socket is plain: its mode and group decide who connects, and
// the caller's uid and groups its role. Any other listener is mutual TLS,
// the client certificate deciding the role (docs/control.md).
absl::Status AddApiListeners(const Config& config, const ApiAccess& access,
                             grpc::ServerBuilder& builder,
                             std::unique_ptr<UnixApiSocket>& unix_socket) {
  if (IsUnixAddress(config.api_listen)) {
    std::string path = config.api_listen.substr(5);
    MakeParentDir(path);
    auto bound = UnixApiSocket::Bind(path, access);
    if (!bound.ok()) return bound.status();
    unix_socket = *std::move(bound);
  } else if (!config.api_listen.empty()) {
    builder.AddListeningPort(config.api_listen, MutualTlsCredentials(access));
  }
  if (!config.api_tcp.empty()) {
    builder.AddListeningPort(config.api_tcp, MutualTlsCredentials(access));
  }
  return absl::OkStatus();
}

// The status of "" (the server) and of the API's service by name: gRPC's
// health service knows no service name it was not given one for.
std::function<void(bool)> HealthSetter(grpc::HealthCheckServiceInterface* health) {
  return [health](bool active) {
    health->SetServingStatus("", active);
    health->SetServingStatus(v1::Control::service_full_name(), active);
  };
}

// /metrics on its own thread; false when it cannot listen.
bool StartMetrics(const Config& config, const Checked& checked,
                  std::function<std::string()> render, httplib::Server& http,
                  std::thread& http_thread) {
  http.Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4");
  });
  if (!http.bind_to_port(checked.metrics_host, checked.metrics_port)) {
    log::Logf(log::Level::kErr, "cannot listen for metrics on %s", config.metrics_listen);
    return false;
  }
  http_thread = std::thread([&http] { http.listen_after_bind(); });
  return true;
}

// The API's gRPC server; null when it cannot listen (logged).
std::unique_ptr<grpc::Server> StartServer(const Config& config, Service& service,
                                          grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    log::Logf(log::Level::kErr, "cannot listen on %s%s%s", config.api_listen,
              config.api_tcp.empty() ? "" : " and ", config.api_tcp);
  }
  return server;
}

std::thread StartHousekeeping(Core& core, const std::atomic<bool>& stopping) {
  return std::thread([&core, &stopping] {
    while (!stopping.load()) {
      core.Housekeeping();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

int Run(int argc, char** argv) {
  log::Init("tandem-control");
  if (std::optional<int> exit_code = ParseFlags(argc, argv)) return *exit_code;
  Config config;
  Checked checked;
  if (std::optional<int> exit_code = LoadCheckedConfig(config, checked)) return *exit_code;
  log::Init("tandem-control", config.log_level);
  sigset_t stop = BlockStopSignals();

  MakeParentDir(config.store_path);
  auto core = Core::Start(config);
  if (!core.ok()) return Fail(1, core.status());
  std::unique_ptr<Pair> pair;
  std::unique_ptr<RoutingDriver> routing;
  if (absl::Status st = StartPairOrRouting(config, **core, pair, routing); !st.ok()) {
    return Fail(1, st);
  }
  std::unique_ptr<UnixApiSocket> unix_socket;
  // grpc.health.v1 (SERVING on the active node only, set by the Observer)
  // and server reflection (grpcurl and grpc_cli need no .proto); neither needs
  // a role: they say nothing a connected client could not learn from status.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (absl::Status st = AddApiListeners(config, checked.access, builder, unix_socket); !st.ok()) {
    return Fail(1, st);
  }
  Service service(**core, pair.get(), std::move(checked.roles), unix_socket.get());
  std::unique_ptr<grpc::Server> server = StartServer(config, service, builder);
  if (!server) return 1;
  auto serving = HealthSetter(server->GetHealthCheckService());
  serving((*core)->node_role() == tables::Role::kActive);
  std::unique_ptr<Notifier> notifier =
      config.notify_command.empty()
          ? nullptr
          : std::make_unique<Notifier>(config.notify_command, config.notify_timeout_s);
  auto observer = std::make_unique<Observer>(**core, pair.get(), notifier.get(), serving);
  observer->Start();
  if (unix_socket) unix_socket->Serve(server.get());
  OpsMetrics ops_metrics(config.shm_dir, config.node);
  // The fleet's directory: registration only; no decision here waits on etcd.
  absl::StatusOr<std::unique_ptr<FleetNode>> fleet =
      config.fleet.enabled ? FleetNode::Start(**core) : nullptr;
  if (!fleet.ok()) return Fail(1, fleet.status());

  httplib::Server http;
  std::thread http_thread;
  auto render_metrics = [&] {
    return (*core)->RenderMetrics() + (pair ? pair->Metrics() : std::string()) +
           service.RenderMetrics() + ops_metrics.Render();
  };
  if (!config.metrics_listen.empty() &&
      !StartMetrics(config, checked, render_metrics, http, http_thread)) {
    return 1;
  }
  std::atomic<bool> stopping{false};
  std::thread upkeep = StartHousekeeping(**core, stopping);

  log::Logf(log::Level::kNotice, "serving node %s on %s%s%s", config.node, config.api_listen,
            config.api_tcp.empty() ? "" : " and ", config.api_tcp);
  sd::Ready(absl::StrCat("serving node ", config.node, " on ", config.api_listen));
  int sig = 0;
  sigwait(&stop, &sig);
  log::Logf(log::Level::kNotice, "stopping (signal %d)", sig);
  sd::Stopping();
  // Out of the directory first: no application is sent here while it stops.
  if (*fleet) (*fleet)->Stop(/*leave=*/true);
  stopping = true;
  observer.reset();  // it reads the pair and the core, which stop below
  (*core)->changes().Close();
  if (unix_socket) unix_socket->StopAccepting();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (http_thread.joinable()) {
    http.stop();
    http_thread.join();
  }
  upkeep.join();
  pair.reset();
  return 0;
}

}  // namespace
}  // namespace tandem::control

int main(int argc, char** argv) { return tandem::control::Run(argc, argv); }
