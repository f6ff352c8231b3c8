#include "mirror/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "mirror/wire.h"

namespace tandem::mirror {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// What failed in a TLS call, from OpenSSL's error queue (or errno), coded
// as the refusal it is (mirror::ReasonOf): bytes that are not TLS at all are
// malformed, a handshake that fails is a peer without the key (its PSK
// binder is a MAC), and an end without close_notify is a closed connection.
absl::Status TlsError(ssl_st* ssl, absl::string_view what, int ssl_error) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) return Errno(what);
    return absl::UnavailableError("connection closed");
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  std::string text = absl::StrCat(what, ": ", buf);
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return absl::UnavailableError(text);
  switch (ERR_GET_REASON(e)) {
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return absl::UnavailableError("connection closed");
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(absl::StrCat("malformed (not TLS 1.3): ", text));
    default:
      break;
  }
  if (!SSL_is_init_finished(ssl)) return absl::UnauthenticatedError(text);
  return absl::UnavailableError(text);
}

}  // namespace

std::string Endpoint::ToString() const {
  if (ip.find(':') != std::string::npos) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text) {
  Endpoint e;
  absl::string_view port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("]:");
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("bad endpoint");
    e.ip = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return absl::InvalidArgumentError("bad endpoint");
    e.ip = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  uint32_t p = 0;
  if (!absl::SimpleAtoi(port, &p) || p > 65535) return absl::InvalidArgumentError("bad port");
  e.port = static_cast<uint16_t>(p);
  socklen_t len = 0;
  if (!ToSockaddr(e, &len).ok()) return absl::InvalidArgumentError("bad address");
  return e;
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
}

int Fd::release() {
  int f = fd_;
  fd_ = -1;
  return f;
}

absl::StatusOr<sockaddr_storage> ToSockaddr(const Endpoint& e, socklen_t* len) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, e.ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(e.port);
    *len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, e.ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(e.port);
    *len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not a numeric address: ", e.ip));
  }
  return ss;
}

void TuneTcp(int fd) {
  SetNonBlocking(fd);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

absl::StatusOr<Fd> TcpListen(const Endpoint& e) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> sa = ToSockaddr(e, &len);
  if (!sa.ok()) return sa.status();
  Fd fd(socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Errno("socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&*sa), len) != 0) {
    return Errno(absl::StrCat("bind ", e.ToString()));
  }
  if (listen(fd.get(), 1024) != 0) return Errno("listen");
  return fd;
}

absl::StatusOr<Fd> TcpConnect(const Endpoint& e, absl::Duration timeout) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> sa = ToSockaddr(e, &len);
  if (!sa.ok()) return sa.status();
  Fd fd(socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Errno("socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&*sa), len) != 0) {
    if (errno != EINPROGRESS) return Errno(absl::StrCat("connect ", e.ToString()));
    pollfd p{fd.get(), POLLOUT, 0};
    int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    if (n <= 0) return absl::UnavailableError(absl::StrCat("connect ", e.ToString(), ": timeout"));
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      errno = err;
      return Errno(absl::StrCat("connect ", e.ToString()));
    }
  }
  TuneTcp(fd.get());
  return fd;
}

uint16_t LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

absl::StatusOr<Fd> UdpBind(const Endpoint& local) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> sa = ToSockaddr(local, &len);
  if (!sa.ok()) return sa.status();
  Fd fd(socket(sa->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Errno("socket");
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&*sa), len) != 0) {
    return Errno(absl::StrCat("bind ", local.ToString()));
  }
  return fd;
}

Waker::Waker() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void Waker::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(fd_.get(), &one, sizeof(one));
}

void Waker::Drain() {
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(fd_.get(), &v, sizeof(v));
}

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void BlockSigpipeInThisThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void FramedConn::SslFree::operator()(ssl_st* ssl) const { SSL_free(ssl); }

absl::Status FramedConn::StartAcceptedTls() {
  constexpr uint8_t kHandshakeRecord = 0x16;
  uint8_t first = 0;
  ssize_t n = recv(fd_.get(), &first, 1, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return absl::OkStatus();
  }
  if (n < 0) return Errno("read");
  if (n == 0) return absl::UnavailableError("connection closed");
  if (first != kHandshakeRecord) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed (not TLS 1.3): first byte ", first));
  }
  ssl_.reset(SSL_new(accept_tls_->ctx()));
  if (ssl_ == nullptr) return absl::InternalError("TLS: SSL_new failed");
  SSL_set_fd(ssl_.get(), fd_.get());
  SSL_set_accept_state(ssl_.get());
  accept_tls_ = nullptr;
  return absl::OkStatus();
}

absl::Status FramedConn::ConnectTls(const TlsContext& tls, absl::Duration timeout) {
  ssl_.reset(SSL_new(tls.ctx()));
  if (ssl_ == nullptr) return absl::InternalError("TLS: SSL_new failed");
  SSL_set_fd(ssl_.get(), fd_.get());
  SSL_set_connect_state(ssl_.get());
  const int64_t deadline = MonoNanos() + absl::ToInt64Nanoseconds(timeout);
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return absl::OkStatus();
    int e = SSL_get_error(ssl_.get(), r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return TlsError(ssl_.get(), "TLS handshake", e);
    int64_t left_ms = (deadline - MonoNanos()) / 1000000;
    if (left_ms <= 0) return absl::DeadlineExceededError("TLS handshake: timed out");
    pollfd p{fd_.get(), static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
    poll(&p, 1, static_cast<int>(left_ms));
  }
}

absl::Status FramedConn::ReadSome() {
  // Compact before reading so the buffer does not grow without bound.
  if (in_off_ > 0 && in_off_ >= in_.size() / 2) {
    in_.erase(0, in_off_);
    in_off_ = 0;
  }
  if (accept_tls_ != nullptr) {
    absl::Status st = StartAcceptedTls();
    if (!st.ok() || accept_tls_ != nullptr) return st;  // refused, or nothing came yet
  }
  if (ssl_ != nullptr) return ReadTls();
  for (int i = 0; i < 16 && in_.size() - in_off_ <= max_frame_; ++i) {
    size_t old = in_.size();
    in_.resize(old + 65536);
    ssize_t n = read(fd_.get(), in_.data() + old, 65536);
    if (n > 0) {
      in_.resize(old + n);
      if (n < 65536) return absl::OkStatus();
      continue;
    }
    in_.resize(old);
    if (n == 0) return absl::UnavailableError("connection closed");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
    if (errno == EINTR) continue;
    return Errno("read");
  }
  return absl::OkStatus();
}

// One SSL_read returns at most one record (16 KiB) and, without read-ahead,
// leaves nothing buffered inside OpenSSL that poll() would not see.
absl::Status FramedConn::ReadTls() {
  for (int i = 0; i < 64 && in_.size() - in_off_ <= max_frame_; ++i) {
    size_t old = in_.size();
    in_.resize(old + 65536);
    ERR_clear_error();
    int n = SSL_read(ssl_.get(), in_.data() + old, 65536);
    in_.resize(old + std::max(n, 0));
    if (n > 0) continue;
    int e = SSL_get_error(ssl_.get(), n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return absl::OkStatus();
    if (e == SSL_ERROR_ZERO_RETURN) return absl::UnavailableError("connection closed");
    return TlsError(ssl_.get(), "TLS read", e);
  }
  return absl::OkStatus();
}

absl::Status FramedConn::FlushTls() {
  while (out_off_ < out_.size()) {
    ERR_clear_error();
    size_t len = std::min<size_t>(out_.size() - out_off_, 1u << 30);
    int n = SSL_write(ssl_.get(), out_.data() + out_off_, static_cast<int>(len));
    if (n > 0) {
      out_off_ += n;
      continue;
    }
    int e = SSL_get_error(ssl_.get(), n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
    return TlsError(ssl_.get(), "TLS write", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<absl::string_view>> FramedConn::NextFrame() {
  absl::string_view rest(in_.data() + in_off_, in_.size() - in_off_);
  absl::StatusOr<size_t> size = FrameSize(rest);
  if (!size.ok()) return size.status();
  if (*size > max_frame_) return absl::InvalidArgumentError("malformed frame: too long here");
  if (*size == 0 || rest.size() < *size) return std::nullopt;
  in_off_ += *size;
  return rest.substr(0, *size);
}

absl::Status FramedConn::FlushPlain() {
  while (out_off_ < out_.size()) {
    ssize_t n = send(fd_.get(), out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    return Errno("send");
  }
  return absl::OkStatus();
}

absl::Status FramedConn::Flush() {
  if (accept_tls_ != nullptr) return absl::OkStatus();  // nothing may go out before TLS
  absl::Status st = ssl_ != nullptr ? FlushTls() : FlushPlain();
  if (!st.ok()) return st;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > (1u << 20)) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  return absl::OkStatus();
}

}  // namespace tandem::mirror
