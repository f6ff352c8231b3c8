// TLS 1.3 on the backbone (issue 17: the pair's replication crosses data
// centers). The stream between a ReplicationSink and its ReplicationSource
// is carried in TLS 1.3 records, authenticated both ways by an external
// pre-shared key derived from the backbone key (HKDF, its own label), with
// an ephemeral (EC)DHE exchange on top (psk_dhe_ke: a key recovered later
// does not open a recorded session). No certificates: the pair already shares
// a secret, and anyone without it fails the handshake's binder check before
// the server does any key exchange. The wire format's HMAC framing stays
// inside, unchanged (mirror/wire.h). docs/pair.md, "The backbone in TLS".
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct ssl_ctx_st;

namespace tandem::mirror {

class TlsContext {
 public:
  enum class Side { kClient, kServer };
  // `backbone_key` is the replication key (SourceOptions::key); the PSK is
  // derived from it.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Create(Side side,
                                                                 absl::string_view backbone_key);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }
  Side side() const { return side_; }
  const std::string& psk() const { return psk_; }

 private:
  TlsContext(Side side, std::string psk) : side_(side), psk_(std::move(psk)) {}
  Side side_;
  std::string psk_;
  ssl_ctx_st* ctx_ = nullptr;
};

}  // namespace tandem::mirror
