#include "mirror/wire.h"

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::mirror {
namespace {

const char kKey[] = "0123456789abcdef-test-key";

Hmac Key(const std::string& k = kKey) { return *Hmac::Create(k); }

TEST(Wire, EncodeDecodeRoundTrip) {
  std::string f = Encode(Key(), MsgType::kAck, 7, 42, 3, EncodeU64(99));
  ASSERT_EQ(f.size(), kHeaderSize + 8 + kMacSize);
  EXPECT_EQ(*FrameSize(f), f.size());
  absl::StatusOr<Message> m = DecodeVerified(f, Key());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type, MsgType::kAck);
  EXPECT_EQ(m->sender, 7u);
  EXPECT_EQ(m->epoch, 42u);
  EXPECT_EQ(m->counter, 3u);
  EXPECT_EQ(*ParseU64(m->body), 99u);
}

TEST(Wire, ShortKeyRefused) {
  EXPECT_EQ(Hmac::Create("short").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Wire, EveryTruncationIsRefusedAsTruncated) {
  std::string f = Encode(Key(), MsgType::kHeartbeat, 1, 1, 1, EncodeHeartbeat({}));
  for (size_t n = 0; n < f.size(); ++n) {
    absl::StatusOr<Message> m = Decode(f.substr(0, n));
    ASSERT_FALSE(m.ok()) << n;
    EXPECT_EQ(ReasonOf(m.status()), RejectReason::kTruncated) << n;
  }
  EXPECT_EQ(ReasonOf(Decode(f + "x").status()), RejectReason::kMalformed);
}

TEST(Wire, MalformedHeadersRefused) {
  std::string f = Encode(Key(), MsgType::kAck, 1, 1, 1, EncodeU64(1));
  for (int at : {0, 1, 3}) {
    std::string bad = f;
    bad[at] = static_cast<char>(0xEE);
    EXPECT_EQ(ReasonOf(Decode(bad).status()), RejectReason::kMalformed) << at;
  }
  // Another version is no forgery: its own reason, both versions named, and
  // recorded for the pair's peer_incompatible alarm.
  std::string other = f;
  other[2] = static_cast<char>(kWireVersion + 1);
  uint64_t before = WireVersionRefusals().count;
  absl::Status st = Decode(other).status();
  EXPECT_EQ(ReasonOf(st), RejectReason::kVersion);
  EXPECT_EQ(st.message(), absl::StrCat("wire format version ", kWireVersion + 1,
                                       ", this build reads only version ", kWireVersion,
                                       ": the peer runs a release this one cannot read"));
  EXPECT_EQ(WireVersionRefusals().count, before + 1);
  EXPECT_EQ(WireVersionRefusals().last_version, kWireVersion + 1);
  std::string huge = f;
  huge[27] = 0x7f;  // body length far above kMaxBody
  EXPECT_EQ(ReasonOf(FrameSize(huge).status()), RejectReason::kMalformed);
}

// The answer to a frame of another version: the peer of that other release
// refuses it for its version (so it raises the alarm too); a peer of this
// release could never take it for a message (no type, no MAC).
TEST(Wire, VersionNoticeIsRefusedForItsVersionOnly) {
  std::string notice = VersionNotice();
  ASSERT_EQ(notice.size(), kHeaderSize);
  EXPECT_EQ(ReasonOf(FrameSize(notice).status()), RejectReason::kMalformed);
  std::string from_other_release = notice;
  from_other_release[2] = static_cast<char>(kWireVersion + 1);
  uint64_t before = WireVersionRefusals().count;
  EXPECT_EQ(ReasonOf(FrameSize(from_other_release).status()), RejectReason::kVersion);
  EXPECT_EQ(WireVersionRefusals().count, before + 1);
}

TEST(Wire, AnyAlteredByteFailsTheMac) {
  std::string f = Encode(Key(), MsgType::kAck, 1, 1, 1, EncodeU64(5));
  for (size_t i = 0; i < f.size(); ++i) {
    std::string bad = f;
    bad[i] ^= 0x01;
    absl::StatusOr<Message> m = DecodeVerified(bad, Key());
    EXPECT_FALSE(m.ok()) << i;
  }
  EXPECT_EQ(ReasonOf(DecodeVerified(f, Key("another-key-0123456789")).status()),
            RejectReason::kBadMac);
}

TEST(Wire, DecoderSurvivesRandomInput) {
  std::mt19937 rng(1);
  std::string valid = Encode(Key(), MsgType::kChanges, 1, 1, 1, [] {
    std::string b = EncodeU64(1);
    b.append(4, '\0');
    return b;
  }());
  for (int i = 0; i < 20000; ++i) {
    std::string buf;
    if (i % 2) {
      buf.resize(rng() % 128);
      for (char& c : buf) c = static_cast<char>(rng());
    } else {
      buf = valid;  // mutate a valid frame so parsing goes deep
      for (int k = 0; k < 3; ++k) buf[rng() % buf.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<Message> m = Decode(buf);
    if (m.ok()) {
      (void)ParseChanges(m->body);
      (void)ParseRecords(m->body);
      (void)ParseSubscribe(m->body);
      (void)ParseSnapshotBegin(m->body);
      (void)ParseHeartbeat(m->body);
    }
  }
}

TEST(Wire, BodiesRoundTripAndRefuseBadLayouts) {
  SubscribeBody s{11, 22, true};
  absl::StatusOr<SubscribeBody> s2 = ParseSubscribe(EncodeSubscribe(s));
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->history, 11u);
  EXPECT_EQ(s2->last_applied, 22u);
  EXPECT_TRUE(s2->consistent);
  EXPECT_FALSE(ParseSubscribe(EncodeSubscribe(s) + "x").ok());

  std::string changes = EncodeU64(5);
  changes.append(4, '\0');
  changes[8] = 2;
  AppendRecord(&changes, "one");
  AppendRecord(&changes, "");
  auto c = ParseChanges(changes);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->first, 5u);
  ASSERT_EQ(c->second.size(), 2u);
  EXPECT_EQ(c->second[0], "one");
  EXPECT_EQ(c->second[1], "");
  changes[8] = 3;  // claims a third record that is not there
  EXPECT_FALSE(ParseChanges(changes).ok());
  std::string lying(4, '\xff');  // 4 billion records in 4 bytes
  EXPECT_FALSE(ParseRecords(lying).ok());

  HeartbeatBody h{WireRole::kActive, true, false, true, 77};
  absl::StatusOr<HeartbeatBody> h2 = ParseHeartbeat(EncodeHeartbeat(h));
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(h2->role, WireRole::kActive);
  EXPECT_TRUE(h2->data_plane_ok);
  EXPECT_FALSE(h2->access_link_up);
  EXPECT_TRUE(h2->handover);
  EXPECT_EQ(h2->position, 77u);
}

// A client and a server session after a completed handshake.
struct Pair {
  RejectCounters client_rejects, server_rejects;
  Session client{Key(), Session::Side::kClient, 2, &client_rejects};
  Session server{Key(), Session::Side::kServer, 1, &server_rejects};
  std::string hello, reply;
  Pair() {
    hello = client.StartHandshake(0);
    reply = *server.AcceptHello(hello, 0);
    EXPECT_TRUE(client.FinishHandshake(reply).ok());
  }
};

TEST(Session, HandshakeThenBothDirections) {
  Pair p;
  ASSERT_TRUE(p.client.established());
  ASSERT_TRUE(p.server.established());
  absl::StatusOr<Message> m = p.server.Open(p.client.Seal(MsgType::kAck, 3, EncodeU64(10)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->counter, 1u);
  EXPECT_EQ(m->epoch, 3u);
  m = p.client.Open(p.server.Seal(MsgType::kChanges, 3, "x"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->body, "x");
  EXPECT_EQ(p.client_rejects.Total() + p.server_rejects.Total(), 0u);
}

TEST(Session, PeerWithoutTheKeyIsRefusedAndCounted) {
  RejectCounters rejects;
  Session server(Key(), Session::Side::kServer, 1, &rejects);
  Session intruder(Key("not-the-backbone-key!"), Session::Side::kClient, 9, nullptr);
  EXPECT_FALSE(server.AcceptHello(intruder.StartHandshake(0), 0).ok());
  EXPECT_EQ(rejects.Get(RejectReason::kBadMac), 1u);
  EXPECT_FALSE(server.established());
}

TEST(Session, ForgedReplayedTruncatedAreRefusedAndCounted) {
  Pair p;
  std::string f = p.client.Seal(MsgType::kAck, 0, EncodeU64(1));
  std::string forged = f;
  forged[kHeaderSize] ^= 1;  // alter the body
  EXPECT_FALSE(p.server.Open(forged).ok());
  EXPECT_EQ(p.server_rejects.Get(RejectReason::kBadMac), 1u);

  EXPECT_FALSE(p.server.Open(f.substr(0, f.size() - 1)).ok());
  EXPECT_EQ(p.server_rejects.Get(RejectReason::kTruncated), 1u);

  ASSERT_TRUE(p.server.Open(f).ok());
  EXPECT_FALSE(p.server.Open(f).ok());  // the same frame again
  EXPECT_EQ(p.server_rejects.Get(RejectReason::kReplayed), 1u);

  // A frame removed from the stream shows as a counter gap.
  p.client.Seal(MsgType::kAck, 0, EncodeU64(2));
  EXPECT_FALSE(p.server.Open(p.client.Seal(MsgType::kAck, 0, EncodeU64(3))).ok());
  EXPECT_EQ(p.server_rejects.Get(RejectReason::kMalformed), 1u);
}

TEST(Session, FramesCannotBeReflected) {
  Pair p;
  // The server's own frame sent back to it uses the other direction's key.
  EXPECT_FALSE(p.server.Open(p.server.Seal(MsgType::kAck, 0, EncodeU64(1))).ok());
  EXPECT_EQ(p.server_rejects.Get(RejectReason::kBadMac), 1u);
}

TEST(Session, RecordedSessionCannotBeReplayedIntoANewConnection) {
  Pair recorded;
  std::string sub = recorded.client.Seal(MsgType::kSubscribe, 0, EncodeSubscribe({}));
  ASSERT_TRUE(recorded.server.Open(sub).ok());

  // An attacker replays the recorded client bytes to a fresh server.
  RejectCounters rejects;
  Session server(Key(), Session::Side::kServer, 1, &rejects);
  ASSERT_TRUE(server.AcceptHello(recorded.hello, 0).ok());  // new nonce_s
  EXPECT_FALSE(server.Open(sub).ok());
  EXPECT_EQ(rejects.Get(RejectReason::kBadMac), 1u);

  // A recorded reply fed to a fresh client echoes another client nonce.
  RejectCounters crejects;
  Session client(Key(), Session::Side::kClient, 2, &crejects);
  client.StartHandshake(0);
  EXPECT_FALSE(client.FinishHandshake(recorded.reply).ok());
  EXPECT_EQ(crejects.Get(RejectReason::kReplayed), 1u);
}

}  // namespace
}  // namespace tandem::mirror
