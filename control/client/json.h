// JSON for tandemctl --json: every field of a message (defaults included),
// field names as in the .proto, 64-bit integers as JSON numbers (not strings
// as in the proto3 JSON mapping, so jq and scripts compare them directly),
// enums as lower-case names, maps as objects.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace tandem::control {

std::string ToJson(const google::protobuf::Message& msg);

}  // namespace tandem::control
