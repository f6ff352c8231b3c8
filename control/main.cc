// tandem-control: the control-plane daemon of one node. The single writer of
// the node's session tables; serves the gRPC API (tandemctl, meeting
// applications) and Prometheus metrics. See docs/control.md.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "control/api_access.h"
#include "control/api_roles.h"
#include "control/api_socket.h"
#include "control/config.h"
#include "control/core.h"
#include "control/pair.h"
#include "control/service.h"

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
  if (config.metrics_listen == "off") config.metrics_listen.clear();
  if (absl::GetFlag(FLAGS_legs)) config.capacity.legs = absl::GetFlag(FLAGS_legs);
  if (absl::GetFlag(FLAGS_meetings)) config.capacity.meetings = absl::GetFlag(FLAGS_meetings);
  return config;
}

int Fail(int code, const absl::Status& st) {
  fprintf(stderr, "tandem-control: %s\n", std::string(st.message()).c_str());
  return code;
}

int Run(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tandem-control --config FILE.toml [--node N] [--shm_dir DIR] [--api ADDR] ...\n"
      "The control-plane daemon of a Tandem node.");
  absl::ParseCommandLine(argc, argv);
  auto loaded = ConfigFromFlags();
  if (!loaded.ok()) return Fail(2, loaded.status());
  Config config = *std::move(loaded);
  auto checked = CheckBeforeStart(config);
  if (!checked.ok()) return Fail(2, checked.status());

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  MakeParentDir(config.store_path);
  auto core = Core::Start(config);
  if (!core.ok()) return Fail(1, core.status());
  std::unique_ptr<Pair> pair;
  if (config.pair.enabled) {
    auto p = Pair::Start(**core);
    if (!p.ok()) return Fail(1, p.status());
    pair = std::move(*p);
  }
  // The Unix socket is plain: its mode and group decide who connects, and
  // the caller's uid and groups its role. Any other listener is mutual TLS,
  // the client certificate deciding the role (docs/control.md).
  std::unique_ptr<UnixApiSocket> unix_socket;
  grpc::ServerBuilder builder;
  if (IsUnixAddress(config.api_listen)) {
    std::string path = config.api_listen.substr(5);
    MakeParentDir(path);
    auto bound = UnixApiSocket::Bind(path, checked->access);
    if (!bound.ok()) return Fail(1, bound.status());
    unix_socket = *std::move(bound);
  } else if (!config.api_listen.empty()) {
    builder.AddListeningPort(config.api_listen, MutualTlsCredentials(checked->access));
  }
  if (!config.api_tcp.empty()) {
    builder.AddListeningPort(config.api_tcp, MutualTlsCredentials(checked->access));
  }
  Service service(**core, pair.get(), std::move(checked->roles), unix_socket.get());
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    fprintf(stderr, "tandem-control: cannot listen on %s%s%s\n", config.api_listen.c_str(),
            config.api_tcp.empty() ? "" : " and ", config.api_tcp.c_str());
    return 1;
  }
  if (unix_socket) unix_socket->Serve(server.get());

  httplib::Server http;
  std::thread http_thread;
  if (!config.metrics_listen.empty()) {
    http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content((*core)->RenderMetrics() + (pair ? pair->Metrics() : std::string()) +
                          service.RenderMetrics(),
                      "text/plain; version=0.0.4");
    });
    if (!http.bind_to_port(checked->metrics_host, checked->metrics_port)) {
      fprintf(stderr, "tandem-control: cannot listen for metrics on %s\n",
              config.metrics_listen.c_str());
      return 1;
    }
    http_thread = std::thread([&] { http.listen_after_bind(); });
  }

  std::atomic<bool> stopping{false};
  std::thread upkeep([&] {
    while (!stopping.load()) {
      (*core)->Housekeeping();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  fprintf(stderr, "tandem-control: serving node %s on %s%s%s\n", config.node.c_str(),
          config.api_listen.c_str(), config.api_tcp.empty() ? "" : " and ", config.api_tcp.c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  fprintf(stderr, "tandem-control: stopping (signal %d)\n", sig);
  stopping = true;
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
