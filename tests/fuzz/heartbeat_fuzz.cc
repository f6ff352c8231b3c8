// Fuzz target: the switch's pair heartbeat decoder (switch/heartbeat.h).
//
// Input byte 0 picks the mode:
//  - even: the rest is a received frame payload as is (almost always refused
//    by the HMAC, which must never crash);
//  - odd: the rest is a message body that the harness signs with the pair's
//    key, so that the decoder's field checks behind the HMAC are reached.
// Whatever decodes must re-encode to a message that decodes to the same
// fields (ParseHeartbeat agreeing), and the replay guard must refuse the same
// message twice and never accept one that echoes a heartbeat we did not send.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <openssl/hmac.h>

#include "switch/heartbeat.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
const std::string kKey = "fuzz-pair-key-0123456789abcdef";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool sign = data[0] & 1;
  std::vector<uint8_t> msg(data + 1, data + size);
  if (sign) {
    // Body (padded to its length), then its HMAC-SHA256, as the sender does.
    msg.resize(tandem::sw::kHeartbeatLen, 0);
    unsigned mac_len = 32;
    HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()), msg.data(),
         tandem::sw::kHeartbeatBodyLen, msg.data() + tandem::sw::kHeartbeatBodyLen, &mac_len);
  }
  auto m = tandem::sw::DecodeHeartbeat(msg.data(), msg.size(), kKey);
  if (!m.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(m.status()) || absl::IsPermissionDenied(m.status()),
               "unexpected error code: %s", m.status().ToString().c_str());
    return 0;
  }
  uint8_t again[tandem::sw::kHeartbeatLen];
  tandem::sw::EncodeHeartbeat(*m, kKey, again);
  auto m2 = tandem::sw::DecodeHeartbeat(again, sizeof(again), kKey);
  FUZZ_CHECK(m2.ok(), "re-encoded heartbeat refused: %s", m2.status().ToString().c_str());
  FUZZ_CHECK(m2->node_id == m->node_id && m2->path == m->path && m2->flags == m->flags &&
                 m2->epoch == m->epoch && m2->position == m->position &&
                 m2->boot_id == m->boot_id && m2->counter == m->counter &&
                 m2->unix_ns == m->unix_ns && m2->echo_boot == m->echo_boot &&
                 m2->echo_counter == m->echo_counter,
             "re-encoded heartbeat decodes differently");
  auto parsed = tandem::sw::ParseHeartbeat(msg.data(), msg.size());
  FUZZ_CHECK(parsed.ok() && parsed->counter == m->counter && parsed->echo_counter == m->echo_counter,
             "ParseHeartbeat disagrees with DecodeHeartbeat");
  // A wrong key never accepts it.
  auto wrong = tandem::sw::DecodeHeartbeat(msg.data(), msg.size(), kKey + "x");
  FUZZ_CHECK(!wrong.ok(), "accepted under a wrong key");
  using R = tandem::sw::ReplayGuard::Result;
  const uint64_t sent_at = 1'000'000'000, now = sent_at + 1'000'000;
  {
    // We sent what it echoes 1 ms ago: fresh once, then a replay.
    tandem::sw::SentLog sent;
    sent.Record(m->echo_counter, sent_at);
    tandem::sw::ReplayGuard guard;
    if (guard.Accept(*m, m->echo_boot, sent, now, m->unix_ns) == R::kAccepted) {
      FUZZ_CHECK(!guard.IsNew(*m), "accepted, yet still new");
      FUZZ_CHECK(guard.Accept(*m, m->echo_boot, sent, now, m->unix_ns) == R::kReplayed,
                 "the same heartbeat accepted twice");
    }
  }
  if (m->echo_boot != 0 || m->echo_counter != 0) {
    // An echo of a boot that is not ours, or of nothing we sent: never fresh.
    tandem::sw::SentLog none;
    tandem::sw::ReplayGuard guard;
    // Refused as stale, or as not new (boot id and counter 0 are what a
    // fresh guard has already "seen"): never accepted.
    FUZZ_CHECK(guard.Accept(*m, m->echo_boot, none, now, m->unix_ns) != R::kAccepted,
               "accepted an echo of a heartbeat never sent");
    tandem::sw::SentLog sent;
    sent.Record(m->echo_counter, sent_at);
    FUZZ_CHECK(guard.Accept(*m, uint64_t(m->echo_boot) + 1, sent, now, m->unix_ns) != R::kAccepted,
               "accepted an echo of another boot");
  }
  return 0;
}
