// The pair key (docs/pair.md, "The pair key"). Both nodes of a pair, their
// switches and their control daemons, read the same secret of at least 32
// bytes from a file only its owner can read, and derive from it with HKDF
// (RFC 5869, SHA-256) one key per use: the heartbeats' HMAC key and the
// backbone replication key. The secret itself keys nothing, and a key
// recovered from one use says nothing about the other.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::keys {

// A shorter secret is refused: heartbeats are broadcast on the access
// network every 10 ms, so anyone there can try guesses offline.
inline constexpr size_t kMinPairKeyBytes = 32;

struct PairKeys {
  std::string heartbeat;    // HMAC-SHA256 key of the switches' heartbeats
  std::string replication;  // key of the control daemons' backbone sessions
};

// HKDF-SHA256 of `secret` with `salt` and `info`, `length` bytes.
absl::StatusOr<std::string> Hkdf(absl::string_view secret, absl::string_view salt,
                                 absl::string_view info, size_t length);

// Both keys from a secret of at least kMinPairKeyBytes.
absl::StatusOr<PairKeys> DerivePairKeys(absl::string_view secret);

// The secret in a key file, trailing newlines removed. Refuses a file that
// group or others may read or write, or that someone other than root or
// this user owns (PermissionDenied naming the file and its mode), and a
// secret shorter than kMinPairKeyBytes (InvalidArgument).
absl::StatusOr<std::string> ReadPairKeyFile(const std::string& path);

// The secret from a configuration: `key_file` if given, else the inline
// `key`, which works but prints a warning (anyone who reads the
// configuration holds the key). `origin` names the configuration in messages.
absl::StatusOr<std::string> LoadPairSecret(const std::string& key, const std::string& key_file,
                                           const std::string& origin);

// Writes a new random secret (32 bytes as 64 hex digits and a newline) to a
// new file of mode 0600; AlreadyExists if the path exists.
absl::Status WriteNewPairKeyFile(const std::string& path);

}  // namespace tandem::keys
