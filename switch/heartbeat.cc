#include "switch/heartbeat.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace tandem::sw {
namespace {

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = v & 0xff;
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = v & 0xff;
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

void Mac(const std::string& key, const uint8_t* body, uint8_t out[32]) {
  unsigned len = 32;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), body, kHeartbeatBodyLen, out,
       &len);
}

}  // namespace

void EncodeHeartbeat(const HeartbeatMsg& m, const std::string& key, uint8_t out[kHeartbeatLen]) {
  std::memset(out, 0, kHeartbeatLen);
  Put32(out, kHeartbeatMagic);
  out[4] = 1;  // version
  out[5] = m.path;
  Put32(out + 8, m.node_id);
  Put32(out + 12, m.flags);
  Put64(out + 16, m.epoch);
  Put64(out + 24, m.position);
  Put64(out + 32, m.boot_id);
  Put64(out + 40, m.counter);
  Put64(out + 48, m.unix_ns);
  Mac(key, out, out + kHeartbeatBodyLen);
}

absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(const uint8_t* p, size_t len,
                                             const std::string& key) {
  if (len < kHeartbeatLen) return absl::InvalidArgumentError("heartbeat too short");
  if (Get32(p) != kHeartbeatMagic || p[4] != 1) {
    return absl::InvalidArgumentError("not a heartbeat of this version");
  }
  uint8_t mac[32];
  Mac(key, p, mac);
  if (CRYPTO_memcmp(mac, p + kHeartbeatBodyLen, 32) != 0) {
    return absl::PermissionDeniedError("heartbeat HMAC does not match the pair key");
  }
  HeartbeatMsg m;
  m.path = p[5];
  m.node_id = Get32(p + 8);
  m.flags = Get32(p + 12);
  m.epoch = Get64(p + 16);
  m.position = Get64(p + 24);
  m.boot_id = Get64(p + 32);
  m.counter = Get64(p + 40);
  m.unix_ns = Get64(p + 48);
  return m;
}

bool ReplayGuard::Accept(const HeartbeatMsg& m, uint64_t now) {
  uint64_t skew = m.unix_ns > now ? m.unix_ns - now : now - m.unix_ns;
  if (skew > kMaxSkewNs) return false;
  if (m.boot_id == boot_id_) {
    if (m.counter <= counter_) return false;
  } else if (boot_id_ != 0 && m.unix_ns <= boot_ns_) {
    return false;  // an older boot's message replayed after a newer one
  } else {
    boot_id_ = m.boot_id;
    boot_ns_ = m.unix_ns;
  }
  counter_ = m.counter;
  return true;
}

}  // namespace tandem::sw
