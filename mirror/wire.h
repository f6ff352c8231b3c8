// The mirror's wire format: authenticated frames on the backbone (TCP, between
// the primary's ReplicationSource and the standby's ReplicationSink). The
// pair's heartbeats are the switches' own (switch/heartbeat.h); kHeartbeat
// here is the active's report on the replication connection (Notify()).
//
// Frame layout (integers little-endian):
//   0  u16  magic 0x4D54 ("TM")
//   2  u8   version (kWireVersion)
//   3  u8   type (MsgType)
//   4  u32  sender node id
//   8  u64  sender's epoch
//   16 u64  counter: exactly +1 per frame in each direction of a connection
//           (0 in the two handshake frames)
//   24 u32  body length (<= kMaxBody)
//   28 ...  body
//   28+len  32-byte HMAC-SHA256 over bytes [0, 28+len)
//
// Keys: the two handshake messages are MACed with the configured key, which
// tandem-control derives from the pair key (common/keys.h: the replication
// key, never the pair key itself). Everything after the handshake is MACed
// with per-connection keys derived from it and two nonces (one from each side),
// one key per direction, so a recorded session (or one direction of it) cannot
// be replayed into a new connection or reflected back.
//
// Threads: free functions are pure and thread-safe. Hmac is immutable after
// creation and safe to share. A Session belongs to one connection and one
// thread at a time; the RejectCounters it reports to are thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::mirror {

inline constexpr uint16_t kWireMagic = 0x4D54;
// The format version this build writes and reads. A frame of another version
// is refused (RejectReason::kVersion) with a message naming both versions:
// the peer runs a release this one cannot read (docs/operations.md, "Rolling
// upgrade"). Bump it with any change to a frame or a body below. The meson
// option wire_version overrides it only to build a second, incompatible build
// for the test of that refusal.
// 2: a snapshot is streamed in chunks (its records are read while changes go
// on) and ends at the sequence from which the standby's state is consistent.
#ifndef TANDEM_WIRE_VERSION
#define TANDEM_WIRE_VERSION 2
#endif
inline constexpr uint8_t kWireVersion = TANDEM_WIRE_VERSION;
inline constexpr size_t kHeaderSize = 28;
inline constexpr size_t kMacSize = 32;
inline constexpr size_t kMaxBody = 16u << 20;
// The largest record a kChanges or kSnapshotRecords frame carries: alone in
// its frame, after the body's u64 first seq, u32 count and u32 length. A
// larger one could never reach the standby (it would refuse the frame on
// every reconnect), so the source refuses it (ReplicationSource::Append).
inline constexpr size_t kMaxRecord = kMaxBody - 16;
inline constexpr size_t kNonceSize = 16;
// A key shorter than this is refused: it would be guessable.
inline constexpr size_t kMinKeySize = 16;

enum class MsgType : uint8_t {
  kHello = 1,          // client -> server: nonce_c (configured key)
  kHelloReply = 2,     // server -> client: nonce_c, nonce_s (configured key)
  kSubscribe = 3,      // sink -> source: where the standby stands
  kSnapshotBegin = 4,  // source -> sink: history, seq (the stream goes on after it), 0
  kSnapshotRecords = 5,
  kSnapshotEnd = 6,  // source -> sink: the seq from which the state is consistent (>= begin's)
  kChanges = 7,      // source -> sink: first seq and a batch of records
  kAck = 8,          // sink -> source: cumulative applied seq
  kHeartbeat = 9,
  kPairMessage = 10,  // either way: an opaque message of the layer above (control/pair.cc)
};

// Why a frame was refused; each refusal is counted by its reason.
enum class RejectReason : int {
  kMalformed = 0,  // bad magic, version, type, length or body layout
  kTruncated,      // shorter than its header says (or the stream ended mid-frame)
  kBadMac,         // wrong key or altered bytes
  kReplayed,       // counter not above the last accepted one
  kUnexpected,     // valid frame that this side does not accept at this point
  kVersion,        // another wire format version: the peer runs another release
  kCount,
};
const char* RejectReasonName(RejectReason r);

// Thread-safe refusal counters, shared by every connection of one endpoint.
class RejectCounters {
 public:
  void Count(RejectReason r) { n_[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t Get(RejectReason r) const {
    return n_[static_cast<int>(r)].load(std::memory_order_relaxed);
  }
  uint64_t Total() const;

 private:
  std::array<std::atomic<uint64_t>, static_cast<int>(RejectReason::kCount)> n_{};
};

// Maps a status returned by Decode / Session::Open to its refusal reason.
RejectReason ReasonOf(const absl::Status& s);

// Frames of another wire version this process refused, over every
// connection: the pair's status raises the alarm `peer_incompatible` while
// they keep coming, and the control daemon logs them (control/ops_watch.cc).
struct VersionRefusals {
  uint64_t count = 0;
  uint8_t last_version = 0;     // the version the peer spoke
  int64_t last_mono_ns = 0;     // CLOCK_MONOTONIC of the last one
};
VersionRefusals WireVersionRefusals();
// True while such frames came in the last 10 s (a standby retries every few
// hundred milliseconds): the alarm `peer_incompatible`.
bool PeerIncompatible();

// What the active answers to a frame of another version before it drops the
// connection: a bare header carrying this build's magic and version (type 0,
// no body, no MAC), which the peer refuses in its turn, so the standby of
// another release raises `peer_incompatible` and logs both versions too
// instead of retrying in silence. Smaller than any frame it answers.
std::string VersionNotice();

using Mac = std::array<uint8_t, kMacSize>;

// HMAC-SHA256 with one key. Immutable; copies share the key context.
class Hmac {
 public:
  // InvalidArgument if the key is shorter than kMinKeySize.
  static absl::StatusOr<Hmac> Create(absl::string_view key);
  Mac Compute(absl::string_view a, absl::string_view b = {}, absl::string_view c = {}) const;
  // Constant-time comparison of Compute(data) with mac.
  bool Verify(absl::string_view data, absl::string_view mac) const;

 private:
  struct Ctx;
  std::shared_ptr<const Ctx> ctx_;
};

struct Message {
  MsgType type = MsgType::kHello;
  uint32_t sender = 0;
  uint64_t epoch = 0;
  uint64_t counter = 0;
  std::string body;
  Mac mac{};
};

// Frame length from its first bytes: 0 if fewer than kHeaderSize bytes are
// given, else the full frame size. InvalidArgument if the header is malformed
// (so a stream reader can drop the connection before buffering a bogus length).
absl::StatusOr<size_t> FrameSize(absl::string_view prefix);

// Parses exactly one frame (no MAC check). Never crashes on any input.
// Errors: OutOfRange = truncated, InvalidArgument = malformed (see ReasonOf).
absl::StatusOr<Message> Decode(absl::string_view frame);

// Builds a frame, MACed with `key`.
std::string Encode(const Hmac& key, MsgType type, uint32_t sender, uint64_t epoch, uint64_t counter,
                   absl::string_view body);

// Decode + MAC check (Unauthenticated on mismatch).
absl::StatusOr<Message> DecodeVerified(absl::string_view frame, const Hmac& key);

// ---- Bodies. Each Parse* is pure and refuses (InvalidArgument) any layout
// error, including trailing bytes.

struct SubscribeBody {
  uint64_t history = 0;       // source history the sink followed (0: none)
  uint64_t last_applied = 0;  // last sequence applied from that history
  bool consistent = false;    // false: the sink holds no complete state
};
std::string EncodeSubscribe(const SubscribeBody& b);
absl::StatusOr<SubscribeBody> ParseSubscribe(absl::string_view body);

struct SnapshotBeginBody {
  uint64_t history = 0;
  // The snapshot's records hold every change up to and including seq, and
  // may hold later ones: the stream after the snapshot starts at seq + 1.
  uint64_t seq = 0;
  uint64_t records = 0;  // 0: not known in advance (a streamed snapshot)
};
std::string EncodeSnapshotBegin(const SnapshotBeginBody& b);
absl::StatusOr<SnapshotBeginBody> ParseSnapshotBegin(absl::string_view body);

// A list of opaque records: u32 count, then per record u32 length and bytes.
// Parsed views point into `body`.
void AppendRecord(std::string* body, absl::string_view record);
absl::StatusOr<std::vector<absl::string_view>> ParseRecords(absl::string_view body);

// Changes: u64 first seq, then a record list.
absl::StatusOr<std::pair<uint64_t, std::vector<absl::string_view>>> ParseChanges(
    absl::string_view body);

std::string EncodeU64(uint64_t v);
absl::StatusOr<uint64_t> ParseU64(absl::string_view body);

enum class WireRole : uint8_t { kStandby = 0, kActive = 1 };
struct HeartbeatBody {
  WireRole role = WireRole::kStandby;
  bool data_plane_ok = false;
  bool access_link_up = false;
  bool handover = false;  // the active asks the standby to take over
  uint64_t position = 0;  // replication position (source: last seq; sink: applied)
};
std::string EncodeHeartbeat(const HeartbeatBody& b);
absl::StatusOr<HeartbeatBody> ParseHeartbeat(absl::string_view body);

// One authenticated connection: the handshake, then Seal/Open with the
// per-connection keys and counters. Not thread-safe; one per connection.
//
// Client                                  Server
//   StartHandshake() -> Hello(nc)  ---->    AcceptHello(frame) -> HelloReply(nc, ns)
//   FinishHandshake(reply)          <----
// Both then hold keys derived from (key, nc, ns). The server learns that the
// client holds the key from the first Open() that succeeds, so it must send
// nothing of value before it has opened one frame from the client.
class Session {
 public:
  enum class Side { kClient, kServer };
  // `counters` (may be null) outlives the session.
  Session(Hmac key, Side side, uint32_t node_id, RejectCounters* counters);

  std::string StartHandshake(uint64_t epoch);
  absl::StatusOr<std::string> AcceptHello(absl::string_view frame, uint64_t epoch);
  absl::Status FinishHandshake(absl::string_view frame);
  bool established() const { return established_; }

  // Both require established().
  std::string Seal(MsgType type, uint64_t epoch, absl::string_view body);
  // Checks structure, MAC, and that the counter is exactly the next one.
  // Every refusal is counted.
  absl::StatusOr<Message> Open(absl::string_view frame);

 private:
  absl::Status Refuse(absl::Status s);
  void DeriveKeys();

  Hmac key_;
  Side side_;
  uint32_t node_id_;
  RejectCounters* counters_;
  std::string nonce_c_, nonce_s_;
  bool established_ = false;
  std::unique_ptr<Hmac> send_key_, recv_key_;
  uint64_t send_counter_ = 0, recv_counter_ = 0;
};

}  // namespace tandem::mirror
