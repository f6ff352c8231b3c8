#include "common/toml_keys.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem {
namespace {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

class Walker {
 public:
  explicit Walker(const std::vector<absl::string_view>& known) : known_(known) {}

  // The first unknown key under `t`, whose path is `prefix` ("" at the root).
  std::optional<std::string> Walk(const toml::table& t, const std::string& prefix) const {
    // toml++ keeps keys sorted; report in file order so the first typo comes first.
    std::vector<std::pair<std::string, const toml::node*>> keys;
    for (const auto& [k, v] : t) keys.emplace_back(std::string(k.str()), &v);
    std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
      const auto& sa = a.second->source().begin;
      const auto& sb = b.second->source().begin;
      return sa.line != sb.line ? sa.line < sb.line : sa.column < sb.column;
    });
    for (const auto& [key, node] : keys) {
      std::string path = prefix.empty() ? key : absl::StrCat(prefix, ".", key);
      if (const toml::table* sub = node->as_table(); sub && HasChildren(path)) {
        if (auto bad = Walk(*sub, path)) return bad;
        continue;
      }
      if (HasChildren(path) && !node->is_table()) return path + "\x01";  // a table, given a value
      if (const toml::array* arr = node->as_array(); arr && HasChildren(path + "[]")) {
        for (const toml::node& e : *arr) {
          if (const toml::table* et = e.as_table()) {
            if (auto bad = Walk(*et, path + "[]")) return bad;
          }
        }
        continue;
      }
      if (!Known(path)) return path;
    }
    return std::nullopt;
  }

  // The nearest known key or table (two edits at most), as a hint.
  std::string Suggestion(const std::string& path) const {
    std::string best;
    size_t best_d = 3;
    auto consider = [&](absl::string_view k) {
      size_t d = EditDistance(path, k);
      if (d < best_d) {
        best_d = d;
        best = std::string(k);
      }
    };
    for (absl::string_view k : known_) {
      consider(k);
      for (size_t dot = k.find('.'); dot != absl::string_view::npos; dot = k.find('.', dot + 1)) {
        consider(k.substr(0, dot));  // the tables above it
      }
    }
    if (!best.empty()) return absl::StrCat(" (did you mean ", best, "?)");
    return Siblings(path);
  }

  // No near key: the keys of its table, when it is a table of a few.
  std::string Siblings(const std::string& path) const {
    size_t dot = path.rfind('.');
    if (dot == std::string::npos) return "";
    std::string table = path.substr(0, dot + 1);
    std::vector<std::string> keys;
    for (absl::string_view k : known_) {
      if (!absl::StartsWith(k, table)) continue;
      absl::string_view rest = k.substr(table.size());
      std::string key(rest.substr(0, rest.find('.')));
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    if (keys.empty() || keys.size() > 8) return "";
    std::string name = path.substr(0, dot);
    name = absl::EndsWith(name, "[]") ? absl::StrCat("[[", name.substr(0, name.size() - 2), "]]")
                                      : absl::StrCat("[", name, "]");
    return absl::StrCat(" (the keys of ", name, ": ", absl::StrJoin(keys, ", "), ")");
  }

 private:
  bool Known(const std::string& path) const {
    return std::find(known_.begin(), known_.end(), path) != known_.end();
  }
  bool HasChildren(const std::string& path) const {
    std::string p = path + ".";
    return std::any_of(known_.begin(), known_.end(),
                       [&](absl::string_view k) { return absl::StartsWith(k, p); });
  }

  const std::vector<absl::string_view>& known_;
};

}  // namespace

absl::Status CheckKnownKeys(const toml::table& root, const std::vector<absl::string_view>& known,
                            const std::string& origin) {
  Walker w(known);
  if (auto bad = w.Walk(root, "")) {
    if (!bad->empty() && bad->back() == '\x01') {
      std::string table = bad->substr(0, bad->size() - 1);
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", table, " must be a table ([", table, "])"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": unknown key '", *bad, "'", w.Suggestion(*bad)));
  }
  return absl::OkStatus();
}

}  // namespace tandem
