// Socket helpers shared by replication and heartbeats (internal to mirror/).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mirror/tls.h"

struct ssl_st;

namespace tandem::mirror {

// An IP endpoint: numeric IPv4 or IPv6 address and a port.
struct Endpoint {
  std::string ip;
  uint16_t port = 0;
  std::string ToString() const;
};

// "198.18.0.1:7000" or "[2001:db8::1]:7000".
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text);

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  int release();
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

absl::StatusOr<sockaddr_storage> ToSockaddr(const Endpoint& e, socklen_t* len);
// Non-blocking listening TCP socket (SO_REUSEADDR), with a deep accept queue
// (a flood of connections must not make the kernel drop the real peer's).
absl::StatusOr<Fd> TcpListen(const Endpoint& e);
// Connects within `timeout`; the returned socket is non-blocking with TCP_NODELAY.
absl::StatusOr<Fd> TcpConnect(const Endpoint& e, absl::Duration timeout);
// Prepares an accepted socket: non-blocking, TCP_NODELAY, keepalive.
void TuneTcp(int fd);
uint16_t LocalPort(int fd);
// Non-blocking UDP socket bound to `local`.
absl::StatusOr<Fd> UdpBind(const Endpoint& local);

// An eventfd to wake a poll() loop from another thread.
class Waker {
 public:
  Waker();
  int fd() const { return fd_.get(); }
  void Wake();
  void Drain();

 private:
  Fd fd_;
};

// Monotonic clock in nanoseconds (CLOCK_MONOTONIC).
int64_t MonoNanos();
// The monotonic clock as absl::Time, for code that takes injected time.
inline absl::Time MonoNow() { return absl::FromUnixNanos(MonoNanos()); }

// Blocks SIGPIPE in the calling thread: TLS writes go through write(2),
// which would otherwise kill the process when the peer has gone. Called by
// the replication threads; the write then fails with EPIPE.
void BlockSigpipeInThisThread();

// Buffers of a non-blocking framed stream connection, in the clear or in
// TLS (mirror/tls.h).
class FramedConn {
 public:
  explicit FramedConn(Fd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }

  // Server side: from now on the stream is TLS; ReadSome drives the
  // handshake (a client that fails it is dropped by ReadSome's error). The
  // TLS state is made when the first byte shows a TLS handshake record: a
  // flood of silent or junk connections costs no TLS object (InvalidArgument
  // for a first byte that is not one).
  void AcceptTls(const TlsContext& tls) { accept_tls_ = &tls; }
  // Client side: the TLS handshake, blocking up to `timeout`.
  absl::Status ConnectTls(const TlsContext& tls, absl::Duration timeout);

  // Reads what the socket has. Unavailable on EOF or error; the caller then
  // checks partial() to count a truncated frame.
  absl::Status ReadSome();
  // The next complete frame in the input buffer, if any (valid until the next
  // ReadSome). InvalidArgument if the stream holds a malformed header.
  absl::StatusOr<std::optional<absl::string_view>> NextFrame();
  // True if a frame has started but not ended.
  bool partial() const { return in_.size() > in_off_; }
  // Frames longer than this are refused by NextFrame (InvalidArgument), and
  // ReadSome buffers little more: what a peer that has not authenticated yet
  // may make this side hold.
  void set_max_frame(size_t bytes) { max_frame_ = bytes; }

  void Queue(absl::string_view frame) { out_.append(frame.data(), frame.size()); }
  size_t queued() const { return out_.size() - out_off_; }
  // Writes what the socket takes. Unavailable on error.
  absl::Status Flush();

 private:
  absl::Status ReadTls();
  absl::Status FlushTls();
  absl::Status FlushPlain();
  struct SslFree {
    void operator()(ssl_st* ssl) const;
  };
  absl::Status StartAcceptedTls();
  Fd fd_;
  const TlsContext* accept_tls_ = nullptr;  // AcceptTls, until its first byte
  std::unique_ptr<ssl_st, SslFree> ssl_;
  std::string in_;
  size_t in_off_ = 0;
  size_t max_frame_ = SIZE_MAX;
  std::string out_;
  size_t out_off_ = 0;
};

}  // namespace tandem::mirror
