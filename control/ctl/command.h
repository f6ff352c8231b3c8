// The frame of tandemctl's commands: the parsed arguments, the connection,
// the table entry of a command, and the two errors that end one (a usage
// error: exit 2; a refused call: exit 1, or 3 when the node cannot be
// reached). Each area's commands are in a file of their own; tandemctl.cc
// assembles them into one table, in the order `tandemctl --help` lists them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control.grpc.pb.h"
#include "control/client/pair_client.h"

namespace tandem::control {

// A usage error: printed with the command's usage, exit code 2.
struct UsageError {
  std::string message;
};

// A refused call: its status, printed as one line.
struct ApiError {
  grpc::Status status;
};

// Throws ApiError unless `st` is OK.
void Check(const grpc::Status& st);

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

struct Command {
  std::string name;   // "site create"
  std::string usage;  // arguments
  std::string help;
  std::set<std::string> options;  // take a value
  std::set<std::string> flags;    // boolean
  std::function<void(Context&, const Args&)> run;
  bool local = false;  // runs here, without the API
};

// At least `n` and at most `max` positional arguments; `what` names the
// missing ones.
void Need(const Args& a, size_t n, size_t max, const char* what);

// Parsers of argument values; each throws UsageError naming `what`.
uint64_t ParseId(const std::string& text, const std::string& what);
uint32_t ParseU32(const std::string& text, const std::string& what);
bool ParseBool(const std::string& text, const std::string& what);
std::pair<std::string, std::string> ParseKeyValue(const std::string& text);

// With --json: prints `m` as one JSON line, and true.
bool PrintIfJson(const Context& c, const google::protobuf::Message& m);

std::set<std::string> Merge(std::set<std::string> a, const std::set<std::string>& b);

// The areas, in the order of the help. status_commands.cc:
Command StatusCommand();
std::vector<Command> SwitchCommands();  // show neighbours, show ports
std::vector<Command> FollowCommands();  // watch, top
// pair_commands.cc, site_commands.cc, meeting_commands.cc:
std::vector<Command> PairCommands();
std::vector<Command> SiteCommands();
std::vector<Command> MeetingCommands();
// participant_commands.cc: participants, and their legs and usage (show legs,
// show usage).
std::vector<Command> ParticipantCommands();

}  // namespace tandem::control
