// Unknown keys in a TOML configuration are errors that name the key: a typo
// (`idle_sleep_ms` for `idle_sleep_us`) must not silently leave a default in
// force. Each parser lists the keys it reads, beside the code that reads them.
//
// A key is written as its dotted path: "node", "switch.burst",
// "api.roles.admin"; "[]" stands for every element of an array of tables:
// "port[].devargs", "routing.neighbor[].as". A table is known when a key
// under it is.
#pragma once

#include <toml++/toml.h>

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace tandem {

// OkStatus when every key of `root` is in `known`; else InvalidArgument
// "ORIGIN: unknown key 'switch.bursts' (did you mean switch.burst?)", for the
// first unknown key in file order.
absl::Status CheckKnownKeys(const toml::table& root, const std::vector<absl::string_view>& known,
                            const std::string& origin);

}  // namespace tandem
