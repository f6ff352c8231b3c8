// Helpers shared by the tables tests: a private directory on tmpfs for region
// files, legs whose identity is derived from their key (so a reader can tell a
// torn or reused entry from a sound one), and a structural check of a region.
#pragma once

#include <arpa/inet.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/net/addr.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"
#include "gtest/gtest.h"

namespace tandem::tables::testing {

// A fresh directory under /dev/shm (tmpfs, like production), removed with
// everything in it when the test ends.
class TempDir {
 public:
  explicit TempDir(const std::string& parent = "/dev/shm") {
    std::string tmpl = parent + "/tandem-tables-test.XXXXXX";
    const char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp: " << strerror(errno);
    path_ = made ? made : "/nonexistent";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string tables() const { return TablesPath(path_, "t"); }
  std::string state() const { return StatePath(path_, "t"); }

 private:
  std::string path_;
};

// Each leg id has its own key: remote 198.18.0.0/15 host and port from the id,
// to one VIP and port. The participant id is derived from the leg id too.
inline constexpr uint64_t kPortsPerHost = 65535;

inline LegKey KeyOfLeg(uint64_t leg_id) {
  LegKey k;
  const uint32_t host = static_cast<uint32_t>(leg_id / kPortsPerHost) & 0x1ffff;
  k.remote = IpAddr::FromV4(htonl((198u << 24 | 18u << 16) + host));
  k.remote_port = static_cast<uint16_t>(1 + leg_id % kPortsPerHost);
  k.local = IpAddr::FromV4(htonl(198u << 24 | 19u << 16 | 255u << 8 | 1u));
  k.local_port = 40000;
  return k;
}

// The leg id a key was made from, or ~0 if the key is not one of ours.
inline uint64_t LegOfKey(const LegKey& k) {
  if (!k.remote.is_v4() || k.remote_port == 0) return ~uint64_t{0};
  const uint32_t host = ntohl(k.remote.v4()) - (198u << 24 | 18u << 16);
  return uint64_t{host} * kPortsPerHost + k.remote_port - 1;
}

inline uint64_t ParticipantOfLeg(uint64_t leg_id) { return leg_id * 3 + 1; }

inline LegSpec MakeLeg(uint64_t leg_id, uint64_t meeting_id,
                       Channel channel = Channel::kAudio) {
  LegSpec s;
  s.leg_id = leg_id;
  s.participant_id = ParticipantOfLeg(leg_id);
  s.meeting_id = meeting_id;
  s.channel = channel;
  s.key = KeyOfLeg(leg_id);
  return s;
}

// Checks what every reader relies on: lookup chains and fan-out lists end,
// hold only live legs in their right place, and agree with the writer's
// view. Returns a description of the first problem, or "" if sound.
inline std::string CheckRegion(const TablesView& v, const TablesWriter& w) {
  const TablesHeader& h = v.header();
  absl::flat_hash_set<uint32_t> hashed;
  for (uint64_t b = 0; b < h.bucket_count; ++b) {
    uint32_t steps = 0;
    for (uint32_t i = v.bucket(b).load(); i != kNil; i = v.leg(i).hash_next.load()) {
      if (i >= v.leg_capacity()) return absl::StrCat("bucket ", b, " links to slot ", i);
      if (++steps > v.leg_capacity()) return absl::StrCat("bucket ", b, " has a cycle");
      const LegEntry& e = v.leg(i);
      if (e.state.load() != uint8_t(EntryState::kLive)) {
        return absl::StrCat("bucket ", b, " holds slot ", i, " in state ", int(e.state.load()));
      }
      if ((HashLegKey(e.key) & (h.bucket_count - 1)) != b) {
        return absl::StrCat("slot ", i, " is in the wrong bucket");
      }
      if (!hashed.insert(i).second) return absl::StrCat("slot ", i, " is hashed twice");
    }
  }
  absl::flat_hash_set<uint32_t> listed;
  for (uint32_t m = 0; m < v.meeting_capacity(); ++m) {
    const MeetingEntry& me = v.meeting(m);
    if (me.state.load() != uint8_t(EntryState::kLive)) continue;
    for (uint32_t c = 0; c < kChannels; ++c) {
      uint32_t steps = 0;
      for (uint32_t i = me.head[c].load(); i != kNil; i = v.leg(i).group_next.load()) {
        if (i >= v.leg_capacity()) return absl::StrCat("meeting list links to slot ", i);
        if (++steps > v.leg_capacity()) return absl::StrCat("meeting ", me.meeting_id, " cycles");
        const LegEntry& e = v.leg(i);
        if (e.state.load() != uint8_t(EntryState::kLive) || e.meeting != m || e.channel != c) {
          return absl::StrCat("slot ", i, " is misplaced in meeting ", me.meeting_id);
        }
        if (!listed.insert(i).second) return absl::StrCat("slot ", i, " is listed twice");
      }
    }
  }
  if (hashed != listed) return "the lookup chains and the fan-out lists hold different legs";
  if (hashed.size() != w.leg_count()) {
    return absl::StrCat(hashed.size(), " legs reachable, writer counts ", w.leg_count());
  }
  if (h.leg_count.load() != w.leg_count()) return "header leg_count disagrees with the writer";
  for (uint32_t i : hashed) {
    const LegEntry& e = v.leg(i);
    auto info = w.GetLeg(e.leg_id);
    if (!info.ok() || info->slot != i) return absl::StrCat("writer lost leg ", e.leg_id);
    if (v.Find(e.key) != i) return absl::StrCat("leg ", e.leg_id, " cannot be found");
    if (e.sums != SumEndpoints(e.key)) {
      return absl::StrCat("leg ", e.leg_id, "'s checksum sums are not its key's");
    }
  }
  return "";
}

}  // namespace tandem::tables::testing
