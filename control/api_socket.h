// The API's Unix socket, served by gRPC over connections this class accepts
// itself, so that each call can be tied to the credentials the kernel took
// from the connecting process (SO_PEERCRED, SO_PEERGROUPS): gRPC's own Unix
// listener does not expose them. Each accepted connection is handed to the
// server with AddInsecureChannelFromFd, whose calls then report the peer
// "fd:N"; Identify() maps that back to the credentials recorded at accept.
#pragma once

#include <grpcpp/server.h>
#include <grpcpp/server_context.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "control/api_access.h"
#include "control/api_roles.h"

namespace tandem::control {

class UnixApiSocket {
 public:
  // Binds and listens on `path` (an existing socket file is replaced),
  // created owner-only and then given [api] socket_mode and socket_group.
  static absl::StatusOr<std::unique_ptr<UnixApiSocket>> Bind(const std::string& path,
                                                             const ApiAccess& access);
  ~UnixApiSocket();  // stops accepting; connections already handed over stay

  // Starts the accept thread; `server` must have been started and outlive this.
  void Serve(grpc::Server* server);

  // Stops the accept thread (before the server shuts down).
  void StopAccepting();

  // The credentials of a call that came in over this socket, by its peer
  // ("fd:N"); false for any other call.
  bool Lookup(const std::string& peer, Caller* out) const;

 private:
  UnixApiSocket(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void AcceptLoop(grpc::Server* server);

  int fd_;
  std::string path_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int, Caller> peers_ ABSL_GUARDED_BY(mu_);  // by connection fd
};

// The caller of a call: its certificate on a TLS connection, its process's
// credentials on the Unix socket (`unix_socket` may be null), else nobody.
Caller IdentifyCaller(const grpc::ServerContext& ctx, const UnixApiSocket* unix_socket);

}  // namespace tandem::control
