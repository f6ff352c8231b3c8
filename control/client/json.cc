#include "control/client/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tandem::control {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void AppendString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\r':
        *out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendMessage(const Message& msg, std::string* out);

std::string EnumName(const google::protobuf::EnumValueDescriptor* v) {
  return absl::AsciiStrToLower(v->name());
}

// One value of a field (element `index` of a repeated field, or -1).
void AppendValue(const Message& msg, const FieldDescriptor* f, int index, std::string* out) {
  const Reflection* r = msg.GetReflection();
  bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(msg, f, index) : r->GetInt32(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, rep ? r->GetRepeatedInt64(msg, f, index) : r->GetInt64(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(msg, f, index) : r->GetUInt32(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt64(msg, f, index) : r->GetUInt64(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double d = rep ? r->GetRepeatedDouble(msg, f, index) : r->GetDouble(msg, f);
      if (!std::isfinite(d)) d = 0;
      char buf[32];
      snprintf(buf, sizeof buf, "%.6g", d);
      *out += buf;
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float d = rep ? r->GetRepeatedFloat(msg, f, index) : r->GetFloat(msg, f);
      if (!std::isfinite(d)) d = 0;
      char buf[32];
      snprintf(buf, sizeof buf, "%.6g", double(d));
      *out += buf;
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      *out += (rep ? r->GetRepeatedBool(msg, f, index) : r->GetBool(msg, f)) ? "true" : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      AppendString(EnumName(rep ? r->GetRepeatedEnum(msg, f, index) : r->GetEnum(msg, f)), out);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      AppendString(rep ? r->GetRepeatedString(msg, f, index) : r->GetString(msg, f), out);
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(msg, f, index) : r->GetMessage(msg, f), out);
      break;
  }
}

// A map field's entries ordered by key. Protobuf iterates a map in hash
// order, which differs from one message to the next: sorted, the same content
// always prints the same text (outputs can be compared and diffed).
std::vector<const Message*> SortedMapEntries(const Message& msg, const FieldDescriptor* f) {
  const Reflection* r = msg.GetReflection();
  std::vector<const Message*> entries;
  for (int j = 0, n = r->FieldSize(msg, f); j < n; ++j) {
    entries.push_back(&r->GetRepeatedMessage(msg, f, j));
  }
  const FieldDescriptor* key = f->message_type()->map_key();
  auto less = [key](const Message* a, const Message* b) {
    const Reflection* ra = a->GetReflection();
    const Reflection* rb = b->GetReflection();
    switch (key->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return ra->GetInt32(*a, key) < rb->GetInt32(*b, key);
      case FieldDescriptor::CPPTYPE_INT64:
        return ra->GetInt64(*a, key) < rb->GetInt64(*b, key);
      case FieldDescriptor::CPPTYPE_UINT32:
        return ra->GetUInt32(*a, key) < rb->GetUInt32(*b, key);
      case FieldDescriptor::CPPTYPE_UINT64:
        return ra->GetUInt64(*a, key) < rb->GetUInt64(*b, key);
      case FieldDescriptor::CPPTYPE_BOOL:
        return ra->GetBool(*a, key) < rb->GetBool(*b, key);
      default:  // string: the only other type a map key may have
        return ra->GetString(*a, key) < rb->GetString(*b, key);
    }
  };
  std::sort(entries.begin(), entries.end(), less);
  return entries;
}

void AppendMessage(const Message& msg, std::string* out) {
  const auto* d = msg.GetDescriptor();
  const Reflection* r = msg.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    // An unset optional scalar or oneof member means "not given": omit it.
    if (f->has_presence() && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE &&
        !f->is_repeated() && !r->HasField(msg, f)) {
      continue;
    }
    if (f->containing_oneof() && !r->HasField(msg, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendString(f->name(), out);
    out->push_back(':');
    if (f->is_map()) {
      out->push_back('{');
      std::vector<const Message*> entries = SortedMapEntries(msg, f);
      for (size_t j = 0; j < entries.size(); ++j) {
        const Message& entry = *entries[j];
        const auto* ed = entry.GetDescriptor();
        if (j) out->push_back(',');
        std::string key;
        AppendValue(entry, ed->field(0), -1, &key);
        if (key.empty() || key[0] != '"') key = absl::StrCat("\"", key, "\"");
        *out += key;
        out->push_back(':');
        AppendValue(entry, ed->field(1), -1, out);
      }
      out->push_back('}');
    } else if (f->is_repeated()) {
      out->push_back('[');
      int n = r->FieldSize(msg, f);
      for (int j = 0; j < n; ++j) {
        if (j) out->push_back(',');
        AppendValue(msg, f, j, out);
      }
      out->push_back(']');
    } else {
      AppendValue(msg, f, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  AppendMessage(msg, &out);
  return out;
}

}  // namespace tandem::control
