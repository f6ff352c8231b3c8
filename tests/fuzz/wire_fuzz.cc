// Fuzz target: the mirror's replication stream decoder (mirror/wire.h).
//
// Input byte 0 picks the mode:
//  - bit 0 clear: the rest is a frame as received from the backbone;
//  - bit 0 set: the rest is a frame whose MAC the harness replaces with a
//    valid one for the configured key, so that the body parsers behind the
//    MAC check are reached with any body.
// Checked: FrameSize agrees with Decode; every error maps to a refusal reason;
// a decoded frame re-encodes to the same bytes; each body parser either
// refuses or yields a value that re-encodes to the same body; a server
// session given the frame as its Hello neither crashes nor establishes
// itself from a frame it did not MAC.
#include <cstdint>
#include <string>

#include "mirror/wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using tandem::mirror::Decode;
using tandem::mirror::DecodeVerified;
using tandem::mirror::Hmac;
using tandem::mirror::kHeaderSize;
using tandem::mirror::kMacSize;
using tandem::mirror::MsgType;

const Hmac& Key() {
  static const Hmac* key = new Hmac(*Hmac::Create("fuzz-backbone-key-0123456789"));
  return *key;
}

void CheckBodies(const std::string& body) {
  if (auto b = tandem::mirror::ParseSubscribe(body); b.ok()) {
    FUZZ_CHECK(tandem::mirror::EncodeSubscribe(*b) == body, "subscribe round trip");
  }
  if (auto b = tandem::mirror::ParseSnapshotBegin(body); b.ok()) {
    FUZZ_CHECK(tandem::mirror::EncodeSnapshotBegin(*b) == body, "snapshot begin round trip");
  }
  if (auto recs = tandem::mirror::ParseRecords(body); recs.ok()) {
    std::string rebuilt = tandem::mirror::EncodeU64(recs->size()).substr(0, 4);  // u32 LE count
    for (auto r : *recs) {
      FUZZ_CHECK(r.data() >= body.data() && r.data() + r.size() <= body.data() + body.size(),
                 "record view outside the body");
      tandem::mirror::AppendRecord(&rebuilt, r);
    }
    FUZZ_CHECK(rebuilt == body, "records round trip");
  }
  if (auto ch = tandem::mirror::ParseChanges(body); ch.ok()) {
    FUZZ_CHECK(body.size() >= 12, "changes body too short to hold seq and count");
  }
  if (auto v = tandem::mirror::ParseU64(body); v.ok()) {
    FUZZ_CHECK(tandem::mirror::EncodeU64(*v) == body, "u64 round trip");
  }
  if (auto hb = tandem::mirror::ParseHeartbeat(body); hb.ok()) {
    FUZZ_CHECK(tandem::mirror::EncodeHeartbeat(*hb) == body, "heartbeat round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string frame(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) && frame.size() >= kHeaderSize + kMacSize) {
    tandem::mirror::Mac mac = Key().Compute(
        absl::string_view(frame).substr(0, frame.size() - kMacSize));
    frame.replace(frame.size() - kMacSize, kMacSize,
                  std::string(reinterpret_cast<const char*>(mac.data()), kMacSize));
  }

  auto fs = tandem::mirror::FrameSize(frame);
  auto m = Decode(frame);
  if (!m.ok()) {
    auto reason = tandem::mirror::ReasonOf(m.status());
    FUZZ_CHECK(reason == tandem::mirror::RejectReason::kMalformed ||
                   reason == tandem::mirror::RejectReason::kTruncated ||
                   reason == tandem::mirror::RejectReason::kVersion,
               "decode error %s maps to reason %d", m.status().ToString().c_str(),
               static_cast<int>(reason));
    FUZZ_CHECK(tandem::mirror::RejectReasonName(reason) != nullptr, "reason name");
  } else {
    FUZZ_CHECK(fs.ok() && *fs == frame.size(), "FrameSize disagrees with Decode");
    FUZZ_CHECK(m->body.size() + kHeaderSize + kMacSize == frame.size(), "body size");
    auto verified = DecodeVerified(frame, Key());
    if (verified.ok()) {
      std::string again = tandem::mirror::Encode(Key(), m->type, m->sender, m->epoch,
                                                 m->counter, m->body);
      FUZZ_CHECK(again == frame, "a verified frame re-encodes to other bytes");
    } else {
      FUZZ_CHECK(absl::IsUnauthenticated(verified.status()), "verify error %s",
                 verified.status().ToString().c_str());
      FUZZ_CHECK(!(data[0] & 1), "a frame MACed with the key was refused");
    }
    CheckBodies(m->body);
  }

  // A server facing this frame as the first thing on a connection.
  tandem::mirror::RejectCounters counters;
  tandem::mirror::Session server(Key(), tandem::mirror::Session::Side::kServer, 2, &counters);
  auto reply = server.AcceptHello(frame, 1);
  if (!reply.ok()) {
    FUZZ_CHECK(!server.established(), "established after a refused hello");
  }
  // Nothing may be opened before the handshake finished on both sides with
  // this connection's nonces: a fuzzed frame is never accepted here.
  if (server.established()) {
    auto opened = server.Open(frame);
    FUZZ_CHECK(!opened.ok(), "a frame from before the handshake opened");
  }
  return 0;
}
