#include "mirror/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/keys.h"

namespace tandem::mirror {
namespace {

constexpr char kIdentity[] = "tandem-backbone";
constexpr absl::string_view kPskInfo = "tandem backbone tls1.3 psk";

const TlsContext* ContextOf(SSL* ssl) {
  return static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

// The legacy PSK callbacks serve TLS 1.3 too (with a SHA-256 suite, hence
// the suites below); they are the shortest way to an external PSK.
unsigned int ClientPsk(SSL* ssl, const char* /*hint*/, char* identity, unsigned int max_identity,
                       unsigned char* psk, unsigned int max_psk) {
  const std::string& key = ContextOf(ssl)->psk();
  if (max_identity < sizeof(kIdentity) || max_psk < key.size()) return 0;
  std::memcpy(identity, kIdentity, sizeof(kIdentity));
  std::memcpy(psk, key.data(), key.size());
  return static_cast<unsigned int>(key.size());
}

unsigned int ServerPsk(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_psk) {
  const std::string& key = ContextOf(ssl)->psk();
  if (identity == nullptr || std::strcmp(identity, kIdentity) != 0 || max_psk < key.size()) {
    return 0;
  }
  std::memcpy(psk, key.data(), key.size());
  return static_cast<unsigned int>(key.size());
}

absl::Status TlsSetupError(absl::string_view what) {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return absl::InternalError(absl::StrCat("TLS setup: ", what, ": ", buf));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Create(
    Side side, absl::string_view backbone_key) {
  absl::StatusOr<std::string> psk = keys::Hkdf(backbone_key, "", kPskInfo, 32);
  if (!psk.ok()) return psk.status();
  std::shared_ptr<TlsContext> t(new TlsContext(side, std::move(*psk)));
  t->ctx_ = SSL_CTX_new(side == Side::kServer ? TLS_server_method() : TLS_client_method());
  if (t->ctx_ == nullptr) return TlsSetupError("SSL_CTX_new");
  SSL_CTX* c = t->ctx_;
  if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1) {
    return TlsSetupError("TLS 1.3 only");
  }
  if (SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") != 1) {
    return TlsSetupError("cipher suites");
  }
  // FramedConn retries a write from a buffer that may have moved (appended to).
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_num_tickets(c, 0);  // no resumption: every connection does its key exchange
  SSL_CTX_set_app_data(c, t.get());
  if (side == Side::kServer) {
    SSL_CTX_set_psk_server_callback(c, ServerPsk);
  } else {
    SSL_CTX_set_psk_client_callback(c, ClientPsk);
  }
  return std::shared_ptr<const TlsContext>(std::move(t));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

}  // namespace tandem::mirror
