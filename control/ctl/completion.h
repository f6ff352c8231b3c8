// Bash completion for tandemctl, generated from its command table
// (`tandemctl completion bash`; the package installs the output under
// /usr/share/bash-completion/completions/tandemctl), so a new command or
// option completes without anyone editing a script.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace tandem::control {

struct CompletionCommand {
  std::string name;               // "site create"
  std::set<std::string> options;  // take a value
  std::set<std::string> flags;    // boolean
};

// `global_options` take a value, `global_flags` do not (both without "--").
std::string BashCompletion(const std::vector<CompletionCommand>& commands,
                           const std::set<std::string>& global_options,
                           const std::set<std::string>& global_flags);

}  // namespace tandem::control
