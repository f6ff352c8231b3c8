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
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/version.h"
#include "control/client/pair_client.h"
#include "control/ctl/command.h"
#include "control/ctl/completion.h"
#include "control/ctl/fleet.h"

namespace tandem::control {
namespace {

constexpr const char* kDefaultApi = "unix:/run/tandem/a.sock";

std::vector<Command> Commands();

void PrintCompletion(Context&, const Args& a) {
  Need(a, 0, 0, "");
  std::vector<CompletionCommand> list;
  for (const Command& cmd : Commands()) list.push_back({cmd.name, cmd.options, cmd.flags});
  fputs(BashCompletion(
            list, {"api", "pair", "timeout", "tls-cert", "tls-key", "tls-ca", "tls-server-name"},
            {"json", "help", "version"})
            .c_str(),
        stdout);
}

// tandemctl fleet ... (control/ctl/fleet.cc) talks to etcd, not to the node's
// API; its status maps to the same exit codes as a refused call.
Command FromFleet(const FleetCommand& f) {
  return {
      f.name, f.usage, f.help, f.options, f.flags, [run = f.run](Context& c, const Args& a) {
        absl::Status st = run({a.positional, a.options, a.flags, c.json});
        if (absl::IsInvalidArgument(st)) throw UsageError{std::string(st.message())};
        if (!st.ok()) {
          Check(grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message())));
        }
      }};
}

std::vector<Command> Commands() {
  std::vector<Command> cmds = {StatusCommand()};
  for (std::vector<Command> area : {PairCommands(), SiteCommands(), MeetingCommands(),
                                    ParticipantCommands(), SwitchCommands(), FollowCommands()}) {
    for (Command& cmd : area) cmds.push_back(std::move(cmd));
  }
  cmds.push_back({"completion bash",
                  "",
                  "Print the bash completion of tandemctl, generated from its commands\n"
                  "(installed as /usr/share/bash-completion/completions/tandemctl).",
                  {},
                  {},
                  PrintCompletion,
                  /*local=*/true});
  for (const FleetCommand& f : FleetCommands()) cmds.push_back(FromFleet(f));
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

// What precedes and surrounds the command: where to connect, how, and the
// command's words and arguments (`rest`).
struct Invocation {
  std::string api;
  std::vector<std::string> pair;
  client::TlsOptions tls;
  bool help = false;
  bool version = false;
  std::vector<std::string> rest;
};

std::string FromEnv(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

// The global options, wherever they stand; --json and --timeout go to `ctx`.
// Stops at --version.
Invocation ParseInvocation(int argc, char** argv, Context* ctx) {
  Invocation inv;
  const char* env = getenv("TANDEM_API");
  inv.api = env && *env ? env : kDefaultApi;
  client::TlsOptions& tls = inv.tls;
  tls.names = {"--tls-cert", "--tls-key", "--tls-ca", "--tls-server-name",
               "--tls-cert and --tls-key, or $TANDEM_TLS_CERT and $TANDEM_TLS_KEY"};
  tls.cert_file = FromEnv("TANDEM_TLS_CERT");
  tls.key_file = FromEnv("TANDEM_TLS_KEY");
  tls.ca_file = FromEnv("TANDEM_TLS_CA");
  tls.server_name = FromEnv("TANDEM_TLS_SERVER_NAME");
  // --name VALUE or --name=VALUE for the TLS options.
  const std::map<std::string, std::string*> tls_options = {{"--tls-cert", &tls.cert_file},
                                                           {"--tls-key", &tls.key_file},
                                                           {"--tls-ca", &tls.ca_file},
                                                           {"--tls-server-name", &tls.server_name}};
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw UsageError{absl::StrCat(name, " needs a value")};
      return argv[++i];
    };
    if (s == "--pair") {
      inv.pair = absl::StrSplit(value("--pair"), ',');
    } else if (absl::StartsWith(s, "--pair=")) {
      inv.pair = absl::StrSplit(s.substr(7), ',');
    } else if (s == "--api") {
      inv.api = value("--api");
    } else if (absl::StartsWith(s, "--api=")) {
      inv.api = s.substr(6);
    } else if (tls_options.contains(s)) {
      *tls_options.at(s) = value(s.c_str());
    } else if (size_t eq = s.find('=');
               eq != std::string::npos && tls_options.contains(s.substr(0, eq))) {
      *tls_options.at(s.substr(0, eq)) = s.substr(eq + 1);
    } else if (s == "--json") {
      ctx->json = true;
    } else if (s == "--timeout") {
      ctx->timeout_s = static_cast<int>(ParseU32(value("--timeout"), "--timeout"));
    } else if (s == "--help" || s == "-h") {
      inv.help = true;
    } else if (s == "--version") {
      inv.version = true;
      break;
    } else {
      inv.rest.push_back(s);
    }
  }
  return inv;
}

// The longest command whose words open `rest`; `*words` is their number.
const Command* FindCommand(const std::vector<Command>& cmds, const std::vector<std::string>& rest,
                           size_t* words) {
  const Command* cmd = nullptr;
  *words = 0;
  for (const Command& c : cmds) {
    std::vector<std::string> w = absl::StrSplit(c.name, ' ');
    if (w.size() > rest.size() || w.size() <= *words) continue;
    if (std::equal(w.begin(), w.end(), rest.begin())) {
      cmd = &c;
      *words = w.size();
    }
  }
  return cmd;
}

// The command's own arguments: those of `rest` after its `words`.
Args ParseArgs(const Command& cmd, const std::vector<std::string>& rest, size_t words) {
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
    if (cmd.options.contains(name)) {
      if (!inline_val) {
        if (i + 1 >= rest.size()) throw UsageError{absl::StrCat("--", name, " needs a value")};
        val = rest[++i];
      }
      args.options[name].push_back(val);
    } else if (cmd.flags.contains(name) && !inline_val) {
      args.flags.insert(name);
    } else {
      throw UsageError{absl::StrCat("unknown option --", name, " for '", cmd.name, "'")};
    }
  }
  return args;
}

// Runs `step` of `cmd`; its errors become the exit code.
int Guarded(const Command& cmd, const std::function<void()>& step) {
  try {
    step();
  } catch (const UsageError& e) {
    fprintf(stderr, "tandemctl: %s (see tandemctl %s --help)\n", e.message.c_str(),
            cmd.name.c_str());
    return 2;
  } catch (const ApiError& e) {
    // The library says why in one line (which node, TLS, no active node).
    if (e.status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      fprintf(stderr, "tandemctl: UNAVAILABLE: %s\n", e.status.error_message().c_str());
      return 3;
    }
    fprintf(stderr, "tandemctl: %s: %s\n", client::CodeName(e.status.error_code()),
            e.status.error_message().c_str());
    return 1;
  }
  return 0;
}

// The client of --pair or --api. The TLS files are read (and a bad one
// reported) here, before any call.
absl::StatusOr<std::unique_ptr<client::PairClient>> Connect(const Invocation& inv,
                                                            const Context& ctx) {
  client::PairOptions opts;
  opts.addresses = inv.pair.empty() ? std::vector<std::string>{inv.api} : inv.pair;
  opts.tls = inv.tls;
  opts.call_timeout = std::chrono::seconds(ctx.timeout_s);
  opts.failover_timeout = std::chrono::seconds(ctx.timeout_s);
  return client::PairClient::Create(opts);
}

int Main(int argc, char** argv) {
  // A failed call is reported by its status, as one line; gRPC's own log
  // (a failed TLS handshake, say) only when asked for with $GRPC_VERBOSITY.
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_function([](gpr_log_func_args*) {});
  const std::vector<Command> cmds = Commands();
  Context ctx;
  const Invocation inv = ParseInvocation(argc, argv, &ctx);
  if (inv.version) {
    printf("tandemctl %s (commit %s)\n", TANDEM_VERSION, TANDEM_COMMIT);
    return 0;
  }
  size_t words = 0;
  const Command* cmd = FindCommand(cmds, inv.rest, &words);
  if (!cmd) {
    if (inv.help || inv.rest.empty()) {
      PrintHelp(cmds, inv.rest.empty() ? "" : inv.rest[0]);
      return inv.rest.empty() && !inv.help ? 2 : 0;
    }
    fprintf(stderr, "tandemctl: unknown command '%s' (see tandemctl --help)\n",
            absl::StrJoin(inv.rest, " ").c_str());
    return 2;
  }
  if (inv.help) {
    PrintCommandHelp(*cmd);
    return 0;
  }
  Args args;
  if (int rc = Guarded(*cmd, [&] { args = ParseArgs(*cmd, inv.rest, words); }); rc != 0) return rc;
  if (!cmd->local) {
    absl::StatusOr<std::unique_ptr<client::PairClient>> made = Connect(inv, ctx);
    if (!made.ok()) {
      fprintf(stderr, "tandemctl: %s\n", std::string(made.status().message()).c_str());
      return 2;
    }
    ctx.client = *std::move(made);
  }
  return Guarded(*cmd, [&] { cmd->run(ctx, args); });
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
