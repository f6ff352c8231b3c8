// Who may use the control API (docs/control.md, "API security"): the Unix
// socket's mode and group, and mutual TLS on every TCP listener.
#pragma once

#include <grpcpp/security/server_credentials.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/secure_file.h"
#include "control/config.h"

namespace tandem::control {

// What the daemon needs to serve its API, checked before anything starts.
struct ApiAccess {
  std::optional<uint32_t> socket_mode;  // [api] socket_mode
  std::optional<gid_t> socket_group;    // [api] socket_group, resolved
  // PEM contents of [api] tls_cert, tls_key, tls_ca; empty without a TCP listener.
  std::string tls_cert, tls_key, tls_ca;
};

// Resolves the socket group and reads and checks the TLS files (the
// certificate and key parse and match, the CA file holds certificates).
// InvalidArgument naming the key and file otherwise. Call after ValidateConfig.
absl::StatusOr<ApiAccess> LoadApiAccess(const Config& config);

using ::tandem::LookupGroup;

// The credentials of a TCP listener: TLS with the server's certificate, and
// a client certificate issued by the CA required and verified.
std::shared_ptr<grpc::ServerCredentials> MutualTlsCredentials(const ApiAccess& access);

// Applies the socket's group (chown) and mode (chmod) to the bound socket.
absl::Status SecureSocket(const std::string& path, const ApiAccess& access);

}  // namespace tandem::control
