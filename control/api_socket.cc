#include "control/api_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::control {
namespace {

// What the kernel recorded about the process at the other end when it connected.
bool PeerCredentials(int fd, Caller* c) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  c->unix_socket = true;
  c->uid = cred.uid;
  c->gid = cred.gid;
  std::vector<gid_t> groups(64);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0 && errno == ERANGE) {
    groups.resize(len / sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) len = 0;
  }
  groups.resize(len / sizeof(gid_t));
  c->groups = std::move(groups);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UnixApiSocket>> UnixApiSocket::Bind(const std::string& path,
                                                                   const ApiAccess& access) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("API socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  unlink(path.c_str());  // we hold the tables' writer lock: no live daemon owns it
  // Owner-only until opened to its configured mode and group: no one else
  // can connect in between.
  bool secure = access.socket_mode || access.socket_group;
  mode_t old_umask = secure ? umask(0177) : 0;
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  if (secure) umask(old_umask);
  if (rc != 0 || listen(fd, 128) != 0) {
    if (rc == 0) err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", path, ": ", strerror(err)));
  }
  std::unique_ptr<UnixApiSocket> s(new UnixApiSocket(fd, path));
  if (secure) {
    if (auto st = SecureSocket(path, access); !st.ok()) return st;
  }
  return s;
}

UnixApiSocket::~UnixApiSocket() {
  StopAccepting();
  close(fd_);
}

void UnixApiSocket::StopAccepting() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void UnixApiSocket::Serve(grpc::Server* server) {
  thread_ = std::thread([this, server] { AcceptLoop(server); });
}

void UnixApiSocket::AcceptLoop(grpc::Server* server) {
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) continue;
    Caller c;
    if (!PeerCredentials(conn, &c)) {
      close(conn);
      continue;
    }
    {
      // Recorded before gRPC sees the connection: a call on it can only
      // come after. A number reused by a later connection is overwritten
      // here before that connection is handed over too.
      absl::MutexLock lock(&mu_);
      peers_[conn] = std::move(c);
    }
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

bool UnixApiSocket::Lookup(const std::string& peer, Caller* out) const {
  int fd = -1;
  if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) return false;
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(fd);
  if (it == peers_.end()) return false;
  *out = it->second;
  return true;
}

Caller IdentifyCaller(const grpc::ServerContext& ctx, const UnixApiSocket* unix_socket) {
  Caller c;
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth && auth->IsPeerAuthenticated()) {
    // Only a TLS listener authenticates peers: the client's certificate,
    // verified against [api] tls_ca.
    c.certificate = true;
    for (const auto& v : auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
      c.subject = std::string(v.data(), v.size());
    }
    for (const char* prop : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
      for (const auto& v : auth->FindPropertyValues(prop)) c.names.emplace_back(v.data(), v.size());
    }
    return c;
  }
  if (unix_socket) unix_socket->Lookup(ctx.peer(), &c);
  return c;
}

}  // namespace tandem::control
