#include "control/ctl/command.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "control/client/json.h"

namespace tandem::control {

void Check(const grpc::Status& st) {
  if (!st.ok()) throw ApiError{st};
}

void Need(const Args& a, size_t n, size_t max, const char* what) {
  if (a.positional.size() < n) throw UsageError{absl::StrCat("missing ", what)};
  if (a.positional.size() > max) {
    throw UsageError{absl::StrCat("unexpected argument '", a.positional[max], "'")};
  }
}

uint64_t ParseId(const std::string& text, const std::string& what) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v))
    throw UsageError{absl::StrCat("invalid ", what, " '", text, "'")};
  return v;
}

uint32_t ParseU32(const std::string& text, const std::string& what) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(text, &v))
    throw UsageError{absl::StrCat("invalid ", what, " '", text, "'")};
  return v;
}

bool ParseBool(const std::string& text, const std::string& what) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  throw UsageError{absl::StrCat("invalid ", what, " '", text, "' (want true or false)")};
}

std::pair<std::string, std::string> ParseKeyValue(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError{absl::StrCat("want KEY=VALUE, not '", text, "'")};
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

bool PrintIfJson(const Context& c, const google::protobuf::Message& m) {
  if (c.json) printf("%s\n", ToJson(m).c_str());
  return c.json;
}

std::set<std::string> Merge(std::set<std::string> a, const std::set<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

}  // namespace tandem::control
