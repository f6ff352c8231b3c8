// Readers of one key of a TOML table, shared by the configuration parsers of
// tandem-control (control/config.cc, control/routing_config.cc): an absent
// key leaves *out as it was; a key of the wrong type is an InvalidArgument
// error "ORIGIN: KEY: why".
#pragma once

#include <toml++/toml.h>

#include <string>

#include "absl/status/status.h"

namespace tandem::control::toml_read {

absl::Status Bad(const std::string& origin, const std::string& key, const std::string& why);
absl::Status ReadString(const toml::table& t, const char* key, const std::string& origin,
                        std::string* out);

}  // namespace tandem::control::toml_read
