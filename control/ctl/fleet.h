// tandemctl fleet list|show|place|release|drain: the fleet's directory in
// etcd (docs/fleet.md). Kept apart from tandemctl.cc, which registers these
// commands in its table and maps the returned status to its exit codes
// (INVALID_ARGUMENT: a usage error, 2; UNAVAILABLE: 3; any other: 1).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::control {

struct FleetArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;
  std::set<std::string> flags;
  bool json = false;
};

struct FleetCommand {
  std::string name;  // "fleet list"
  std::string usage;
  std::string help;
  std::set<std::string> options;
  std::set<std::string> flags;
  std::function<absl::Status(const FleetArgs&)> run;
};

std::vector<FleetCommand> FleetCommands();

}  // namespace tandem::control
