// A small streaming JSON writer for the tool's --json output: enough for
// objects, arrays, strings, integers, booleans and null, with commas placed
// automatically. Not a parser; the output is one line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace tandem::tables {

class JsonWriter {
 public:
  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  // The next value is the member `key` of the enclosing object.
  JsonWriter& Key(absl::string_view key) {
    Separate();
    AppendString(key);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

  JsonWriter& String(absl::string_view v) {
    Separate();
    AppendString(v);
    return *this;
  }
  JsonWriter& Uint(uint64_t v) {
    Separate();
    absl::StrAppend(&out_, v);
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    absl::StrAppend(&out_, v);
    return *this;
  }
  JsonWriter& Double(double v) {
    Separate();
    absl::StrAppend(&out_, absl::StrFormat("%.3f", v));
    return *this;
  }
  JsonWriter& Bool(bool v) {
    Separate();
    out_ += v ? "true" : "false";
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    out_ += "null";
    return *this;
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& Open(char c) {
    Separate();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& Close(char c) {
    out_ += c;
    first_.pop_back();
    return *this;
  }
  // A comma before every element but the first of its container; none after a key.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
  void AppendString(absl::string_view s) {
    out_ += '"';
    for (char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            absl::StrAppend(&out_, absl::StrFormat("\\u%04x", c));
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace tandem::tables
