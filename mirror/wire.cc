#include "mirror/wire.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <time.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::mirror {
namespace {

void PutU16(std::string* s, uint16_t v) {
  char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  s->append(b, 2);
}
void PutU32(std::string* s, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  s->append(b, 4);
}
void PutU64(std::string* s, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  s->append(b, 8);
}
uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// A bounds-checked reader over a body.
class Reader {
 public:
  explicit Reader(absl::string_view s) : s_(s) {}
  bool U8(uint8_t* v) { return Get(v, 1); }
  bool U32(uint32_t* v) { return Get(v, 4); }
  bool U64(uint64_t* v) { return Get(v, 8); }
  bool Bytes(size_t n, absl::string_view* out) {
    if (s_.size() - pos_ < n) return false;
    *out = s_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == s_.size(); }
  size_t remaining() const { return s_.size() - pos_; }

 private:
  template <typename T>
  bool Get(T* v, int n) {
    if (s_.size() - pos_ < static_cast<size_t>(n)) return false;
    *v = static_cast<T>(GetLE(s_.data() + pos_, n));
    pos_ += n;
    return true;
  }
  absl::string_view s_;
  size_t pos_ = 0;
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", std::string(what)));
}

std::atomic<uint64_t> g_version_refusals{0};
std::atomic<uint8_t> g_refused_version{0};
std::atomic<int64_t> g_refused_at{0};

// A frame of a release this build cannot read: said plainly, and recorded
// for the pair's alarm (a peer of another release is not an attacker).
absl::Status OtherVersion(uint8_t v) {
  g_refused_version.store(v, std::memory_order_relaxed);
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  g_refused_at.store(int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec, std::memory_order_relaxed);
  g_version_refusals.fetch_add(1, std::memory_order_relaxed);
  return absl::UnimplementedError(absl::StrCat(
      "wire format version ", v, ", this build reads only version ", kWireVersion,
      ": the peer runs a release this one cannot read"));
}

bool KnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(MsgType::kHello) &&
         t <= static_cast<uint8_t>(MsgType::kPairMessage);
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)) != 1) {
    // No entropy means no security: refuse to go on rather than use weak nonces.
    std::abort();
  }
  return s;
}

}  // namespace

const char* RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kMalformed:
      return "malformed";
    case RejectReason::kTruncated:
      return "truncated";
    case RejectReason::kBadMac:
      return "bad_mac";
    case RejectReason::kReplayed:
      return "replayed";
    case RejectReason::kUnexpected:
      return "unexpected";
    case RejectReason::kVersion:
      return "version";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

uint64_t RejectCounters::Total() const {
  uint64_t t = 0;
  for (const auto& n : n_) t += n.load(std::memory_order_relaxed);
  return t;
}

RejectReason ReasonOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOutOfRange:
      return RejectReason::kTruncated;
    case absl::StatusCode::kUnauthenticated:
      return RejectReason::kBadMac;
    case absl::StatusCode::kAlreadyExists:
      return RejectReason::kReplayed;
    case absl::StatusCode::kFailedPrecondition:
      return RejectReason::kUnexpected;
    case absl::StatusCode::kUnimplemented:
      return RejectReason::kVersion;
    default:
      return RejectReason::kMalformed;
  }
}

VersionRefusals WireVersionRefusals() {
  VersionRefusals r;
  r.count = g_version_refusals.load(std::memory_order_relaxed);
  r.last_version = g_refused_version.load(std::memory_order_relaxed);
  r.last_mono_ns = g_refused_at.load(std::memory_order_relaxed);
  return r;
}

bool PeerIncompatible() {
  int64_t at = g_refused_at.load(std::memory_order_relaxed);
  if (at == 0) return false;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec - at < int64_t{10} * 1000000000;
}

// ---- Hmac

struct Hmac::Ctx {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;  // initialised with the key; duplicated per use
  ~Ctx() {
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
  }
};

absl::StatusOr<Hmac> Hmac::Create(absl::string_view key) {
  if (key.size() < kMinKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("backbone key must be at least ", kMinKeySize, " bytes"));
  }
  auto ctx = std::make_shared<Ctx>();
  ctx->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (ctx->mac == nullptr) return absl::InternalError("OpenSSL has no HMAC");
  ctx->keyed = EVP_MAC_CTX_new(ctx->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (ctx->keyed == nullptr ||
      EVP_MAC_init(ctx->keyed, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    return absl::InternalError("HMAC init failed");
  }
  Hmac h;
  h.ctx_ = std::move(ctx);
  return h;
}

Mac Hmac::Compute(absl::string_view a, absl::string_view b, absl::string_view c) const {
  Mac out{};
  EVP_MAC_CTX* c2 = EVP_MAC_CTX_dup(ctx_->keyed);
  if (c2 == nullptr) std::abort();  // out of memory
  for (absl::string_view part : {a, b, c}) {
    if (!part.empty()) {
      EVP_MAC_update(c2, reinterpret_cast<const unsigned char*>(part.data()), part.size());
    }
  }
  size_t len = 0;
  EVP_MAC_final(c2, out.data(), &len, out.size());
  EVP_MAC_CTX_free(c2);
  return out;
}

bool Hmac::Verify(absl::string_view data, absl::string_view mac) const {
  if (mac.size() != kMacSize) return false;
  Mac m = Compute(data);
  return CRYPTO_memcmp(m.data(), mac.data(), kMacSize) == 0;
}

// ---- Frames

absl::StatusOr<size_t> FrameSize(absl::string_view prefix) {
  if (prefix.size() < kHeaderSize) return 0;
  if (GetLE(prefix.data(), 2) != kWireMagic) return Malformed("magic");
  if (uint8_t v = static_cast<uint8_t>(prefix[2]); v != kWireVersion) return OtherVersion(v);
  if (!KnownType(static_cast<uint8_t>(prefix[3]))) return Malformed("type");
  uint64_t len = GetLE(prefix.data() + 24, 4);
  if (len > kMaxBody) return Malformed("length");
  return kHeaderSize + len + kMacSize;
}

absl::StatusOr<Message> Decode(absl::string_view frame) {
  if (frame.size() < kHeaderSize) return absl::OutOfRangeError("truncated header");
  absl::StatusOr<size_t> size = FrameSize(frame);
  if (!size.ok()) return size.status();
  if (frame.size() < *size) return absl::OutOfRangeError("truncated frame");
  if (frame.size() > *size) return Malformed("trailing bytes");
  Message m;
  m.type = static_cast<MsgType>(frame[3]);
  m.sender = static_cast<uint32_t>(GetLE(frame.data() + 4, 4));
  m.epoch = GetLE(frame.data() + 8, 8);
  m.counter = GetLE(frame.data() + 16, 8);
  size_t len = *size - kHeaderSize - kMacSize;
  m.body.assign(frame.data() + kHeaderSize, len);
  std::memcpy(m.mac.data(), frame.data() + kHeaderSize + len, kMacSize);
  return m;
}

std::string VersionNotice() {
  std::string f;
  f.reserve(kHeaderSize);
  PutU16(&f, kWireMagic);
  f.push_back(static_cast<char>(kWireVersion));
  f.resize(kHeaderSize, '\0');
  return f;
}

std::string Encode(const Hmac& key, MsgType type, uint32_t sender, uint64_t epoch, uint64_t counter,
                   absl::string_view body) {
  std::string f;
  f.reserve(kHeaderSize + body.size() + kMacSize);
  PutU16(&f, kWireMagic);
  f.push_back(static_cast<char>(kWireVersion));
  f.push_back(static_cast<char>(type));
  PutU32(&f, sender);
  PutU64(&f, epoch);
  PutU64(&f, counter);
  PutU32(&f, static_cast<uint32_t>(body.size()));
  f.append(body.data(), body.size());
  Mac mac = key.Compute(f);
  f.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  return f;
}

absl::StatusOr<Message> DecodeVerified(absl::string_view frame, const Hmac& key) {
  absl::StatusOr<Message> m = Decode(frame);
  if (!m.ok()) return m;
  size_t signed_len = frame.size() - kMacSize;
  if (!key.Verify(frame.substr(0, signed_len), frame.substr(signed_len))) {
    return absl::UnauthenticatedError("bad MAC");
  }
  return m;
}

// ---- Bodies

std::string EncodeSubscribe(const SubscribeBody& b) {
  std::string s;
  PutU64(&s, b.history);
  PutU64(&s, b.last_applied);
  s.push_back(b.consistent ? 1 : 0);
  return s;
}

absl::StatusOr<SubscribeBody> ParseSubscribe(absl::string_view body) {
  Reader r(body);
  SubscribeBody b;
  uint8_t c = 0;
  if (!r.U64(&b.history) || !r.U64(&b.last_applied) || !r.U8(&c) || c > 1 || !r.done()) {
    return Malformed("subscribe");
  }
  b.consistent = c == 1;
  return b;
}

std::string EncodeSnapshotBegin(const SnapshotBeginBody& b) {
  std::string s;
  PutU64(&s, b.history);
  PutU64(&s, b.seq);
  PutU64(&s, b.records);
  return s;
}

absl::StatusOr<SnapshotBeginBody> ParseSnapshotBegin(absl::string_view body) {
  Reader r(body);
  SnapshotBeginBody b;
  if (!r.U64(&b.history) || !r.U64(&b.seq) || !r.U64(&b.records) || !r.done()) {
    return Malformed("snapshot begin");
  }
  return b;
}

void AppendRecord(std::string* body, absl::string_view record) {
  PutU32(body, static_cast<uint32_t>(record.size()));
  body->append(record.data(), record.size());
}

namespace {
absl::Status ParseRecordList(Reader* r, std::vector<absl::string_view>* out) {
  uint32_t n = 0;
  if (!r->U32(&n)) return Malformed("record count");
  // Each record takes at least 4 bytes: bound the reservation by what is left.
  out->reserve(std::min<size_t>(n, r->remaining() / 4));
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len = 0;
    absl::string_view rec;
    if (!r->U32(&len) || !r->Bytes(len, &rec)) return Malformed("record");
    out->push_back(rec);
  }
  if (!r->done()) return Malformed("trailing bytes in record list");
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::vector<absl::string_view>> ParseRecords(absl::string_view body) {
  Reader r(body);
  std::vector<absl::string_view> out;
  if (absl::Status s = ParseRecordList(&r, &out); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::pair<uint64_t, std::vector<absl::string_view>>> ParseChanges(
    absl::string_view body) {
  Reader r(body);
  uint64_t first = 0;
  if (!r.U64(&first)) return Malformed("changes");
  std::vector<absl::string_view> out;
  if (absl::Status s = ParseRecordList(&r, &out); !s.ok()) return s;
  if (first == 0) return Malformed("changes: sequence 0");
  return std::make_pair(first, std::move(out));
}

std::string EncodeU64(uint64_t v) {
  std::string s;
  PutU64(&s, v);
  return s;
}

absl::StatusOr<uint64_t> ParseU64(absl::string_view body) {
  Reader r(body);
  uint64_t v = 0;
  if (!r.U64(&v) || !r.done()) return Malformed("u64 body");
  return v;
}

std::string EncodeHeartbeat(const HeartbeatBody& b) {
  std::string s;
  s.push_back(static_cast<char>(b.role));
  s.push_back(static_cast<char>((b.data_plane_ok ? 1 : 0) | (b.access_link_up ? 2 : 0) |
                                (b.handover ? 4 : 0)));
  PutU64(&s, b.position);
  return s;
}

absl::StatusOr<HeartbeatBody> ParseHeartbeat(absl::string_view body) {
  Reader r(body);
  uint8_t role = 0, flags = 0;
  HeartbeatBody b;
  if (!r.U8(&role) || !r.U8(&flags) || !r.U64(&b.position) || !r.done() || role > 1 ||
      (flags & ~7u) != 0) {
    return Malformed("heartbeat");
  }
  b.role = static_cast<WireRole>(role);
  b.data_plane_ok = flags & 1;
  b.access_link_up = flags & 2;
  b.handover = flags & 4;
  return b;
}

// ---- Session

Session::Session(Hmac key, Side side, uint32_t node_id, RejectCounters* counters)
    : key_(std::move(key)), side_(side), node_id_(node_id), counters_(counters) {}

absl::Status Session::Refuse(absl::Status s) {
  if (counters_ != nullptr) counters_->Count(ReasonOf(s));
  return s;
}

std::string Session::StartHandshake(uint64_t epoch) {
  nonce_c_ = RandomBytes(kNonceSize);
  return Encode(key_, MsgType::kHello, node_id_, epoch, 0, nonce_c_);
}

absl::StatusOr<std::string> Session::AcceptHello(absl::string_view frame, uint64_t epoch) {
  if (side_ != Side::kServer || established_) {
    return Refuse(absl::FailedPreconditionError("unexpected hello"));
  }
  absl::StatusOr<Message> m = DecodeVerified(frame, key_);
  if (!m.ok()) return Refuse(m.status());
  if (m->type != MsgType::kHello) return Refuse(absl::FailedPreconditionError("expected hello"));
  if (m->body.size() != kNonceSize) return Refuse(Malformed("hello"));
  nonce_c_ = m->body;
  nonce_s_ = RandomBytes(kNonceSize);
  DeriveKeys();
  return Encode(key_, MsgType::kHelloReply, node_id_, epoch, 0, nonce_c_ + nonce_s_);
}

absl::Status Session::FinishHandshake(absl::string_view frame) {
  if (side_ != Side::kClient || established_ || nonce_c_.empty()) {
    return Refuse(absl::FailedPreconditionError("unexpected hello reply"));
  }
  absl::StatusOr<Message> m = DecodeVerified(frame, key_);
  if (!m.ok()) return Refuse(m.status());
  if (m->type != MsgType::kHelloReply) {
    return Refuse(absl::FailedPreconditionError("expected hello reply"));
  }
  if (m->body.size() != 2 * kNonceSize) return Refuse(Malformed("hello reply"));
  // A reply recorded from another connection echoes another client nonce.
  if (CRYPTO_memcmp(m->body.data(), nonce_c_.data(), kNonceSize) != 0) {
    return Refuse(absl::AlreadyExistsError("hello reply for another connection"));
  }
  nonce_s_ = m->body.substr(kNonceSize);
  DeriveKeys();
  return absl::OkStatus();
}

void Session::DeriveKeys() {
  // One key per direction: frames of one direction cannot be reflected back.
  Mac c2s = key_.Compute("tandem-mirror c2s", nonce_c_, nonce_s_);
  Mac s2c = key_.Compute("tandem-mirror s2c", nonce_c_, nonce_s_);
  absl::string_view c2s_v(reinterpret_cast<const char*>(c2s.data()), c2s.size());
  absl::string_view s2c_v(reinterpret_cast<const char*>(s2c.data()), s2c.size());
  bool client = side_ == Side::kClient;
  send_key_ = std::make_unique<Hmac>(*Hmac::Create(client ? c2s_v : s2c_v));
  recv_key_ = std::make_unique<Hmac>(*Hmac::Create(client ? s2c_v : c2s_v));
  send_counter_ = recv_counter_ = 0;
  established_ = true;
}

std::string Session::Seal(MsgType type, uint64_t epoch, absl::string_view body) {
  return Encode(*send_key_, type, node_id_, epoch, ++send_counter_, body);
}

absl::StatusOr<Message> Session::Open(absl::string_view frame) {
  if (!established_) return Refuse(absl::FailedPreconditionError("no session"));
  absl::StatusOr<Message> m = DecodeVerified(frame, *recv_key_);
  if (!m.ok()) return Refuse(m.status());
  if (m->counter <= recv_counter_) return Refuse(absl::AlreadyExistsError("replayed frame"));
  // TCP keeps order: a skipped counter means a frame was removed from the stream.
  if (m->counter != recv_counter_ + 1) return Refuse(Malformed("counter gap"));
  recv_counter_ = m->counter;
  return m;
}

}  // namespace tandem::mirror
