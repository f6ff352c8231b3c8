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
  out[4] = 1;  // version: the echo fills bytes that version 1 left zero
  out[5] = m.path;
  Put32(out + 8, m.node_id);
  Put32(out + 12, m.flags);
  Put64(out + 16, m.epoch);
  Put64(out + 24, m.position);
  Put64(out + 32, m.boot_id);
  Put64(out + 40, m.counter);
  Put64(out + 48, m.unix_ns);
  Put32(out + 56, m.echo_boot);
  Put32(out + 60, m.echo_counter);
  Mac(key, out, out + kHeartbeatBodyLen);
}

absl::StatusOr<HeartbeatMsg> ParseHeartbeat(const uint8_t* p, size_t len) {
  if (len < kHeartbeatLen) return absl::InvalidArgumentError("heartbeat too short");
  if (Get32(p) != kHeartbeatMagic || p[4] != 1) {
    return absl::InvalidArgumentError("not a heartbeat of this version");
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
  m.echo_boot = Get32(p + 56);
  m.echo_counter = Get32(p + 60);
  return m;
}

absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(const uint8_t* p, size_t len,
                                             const std::string& key) {
  auto m = ParseHeartbeat(p, len);
  if (!m.ok()) return m;
  uint8_t mac[32];
  Mac(key, p, mac);
  if (CRYPTO_memcmp(mac, p + kHeartbeatBodyLen, 32) != 0) {
    return absl::PermissionDeniedError("heartbeat HMAC does not match the pair key");
  }
  return m;
}

void SentLog::Record(uint64_t counter, uint64_t mono_ns) {
  slots_[counter % kSize] = Slot{counter, mono_ns};
}

std::optional<uint64_t> SentLog::SentAt(uint32_t counter32) const {
  const Slot& s = slots_[counter32 % kSize];
  if (s.mono_ns == 0 || static_cast<uint32_t>(s.counter) != counter32) return std::nullopt;
  return s.mono_ns;
}

bool ReplayGuard::IsNew(const HeartbeatMsg& m) const {
  return m.boot_id != boot_id_ || m.counter > counter_;
}

ReplayGuard::Result ReplayGuard::Accept(const HeartbeatMsg& m, uint64_t our_boot,
                                        const SentLog& sent, uint64_t now_mono_ns,
                                        uint64_t now_unix_ns) {
  Result r = Result::kAccepted;
  if (!IsNew(m)) {
    r = Result::kReplayed;
  } else if (m.echo_boot != 0 || m.echo_counter != 0) {
    std::optional<uint64_t> at = sent.SentAt(m.echo_counter);
    if (m.echo_boot != static_cast<uint32_t>(our_boot) || !at || now_mono_ns < *at ||
        now_mono_ns - *at > kMaxAgeNs) {
      r = Result::kStale;
    }
  } else {
    // Nothing echoed: the former rule, by the wall clocks.
    uint64_t skew = m.unix_ns > now_unix_ns ? m.unix_ns - now_unix_ns : now_unix_ns - m.unix_ns;
    if (skew > kMaxSkewNs || (m.boot_id != boot_id_ && boot_id_ != 0 && m.unix_ns <= boot_ns_)) {
      r = Result::kStale;  // too old, or an older boot's message replayed after a newer one's
    }
  }
  // Echo what was accepted; until something is (a peer that has not heard
  // us yet, or one we refuse), the latest authenticated heartbeat, so that
  // the two nodes can start to echo each other.
  bool recent = accepted_mono_ != 0 && now_mono_ns - accepted_mono_ <= kMaxAgeNs;
  if (r == Result::kAccepted || !recent) {
    echo_boot_ = static_cast<uint32_t>(m.boot_id);
    echo_counter_ = static_cast<uint32_t>(m.counter);
  }
  if (r != Result::kAccepted) return r;
  if (m.boot_id != boot_id_) {
    boot_id_ = m.boot_id;
    boot_ns_ = m.unix_ns;
  }
  counter_ = m.counter;
  accepted_mono_ = now_mono_ns;
  return r;
}

}  // namespace tandem::sw
