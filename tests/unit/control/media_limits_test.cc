// Which rate limits a leg and a meeting get: the site's policy per channel,
// then for every channel, then the node's defaults (control/media_limits.h).
#include "control/media_limits.h"

#include <gtest/gtest.h>

#include "control.pb.h"

namespace tandem::control {
namespace {

using tables::Channel;

struct Case {
  const char* name;
  void (*policy)(v1::Policy&);
  Channel channel;
  uint32_t pps, kbps;
};

const MediaLimits kNode;  // the shipped defaults

TEST(MediaLimits, FirstSetRuleWinsPerField) {
  const Case cases[] = {
      {"no policy: the node's audio", [](v1::Policy&) {}, Channel::kAudio, 200, 640},
      {"no policy: the node's video", [](v1::Policy&) {}, Channel::kVideo, 2000, 10000},
      {"no policy: the node's share", [](v1::Policy&) {}, Channel::kShare, 2000, 10000},
      {"site-wide pps, node kbps", [](v1::Policy& p) { p.set_leg_pps(300); }, Channel::kVideo, 300,
       10000},
      {"site-wide 0 is unlimited",
       [](v1::Policy& p) {
         p.set_leg_pps(0);
         p.set_leg_kbps(0);
       },
       Channel::kAudio, 0, 0},
      {"channel over site-wide",
       [](v1::Policy& p) {
         p.set_leg_pps(300);
         p.mutable_share()->set_pps(5000);
       },
       Channel::kShare, 5000, 10000},
      {"channel rule of another channel does not apply",
       [](v1::Policy& p) { p.mutable_share()->set_kbps(1); }, Channel::kAudio, 200, 640},
      {"channel 0 is unlimited though site-wide is set",
       [](v1::Policy& p) {
         p.set_leg_kbps(64);
         p.mutable_audio()->set_kbps(0);
       },
       Channel::kAudio, 200, 0},
      {"other limits of the policy play no part",
       [](v1::Policy& p) {
         p.set_max_legs(1);
         p.set_max_live_meetings(1);
       },
       Channel::kAudio, 200, 640},
  };
  for (const Case& c : cases) {
    v1::Policy p;
    c.policy(p);
    ChannelLimits l = LegLimitsFor(kNode, p, c.channel);
    EXPECT_EQ(l.pps, c.pps) << c.name;
    EXPECT_EQ(l.kbps, c.kbps) << c.name;
  }
}

TEST(MediaLimits, NodeDefaultsAreTheConfigured) {
  MediaLimits node;
  node.channel[1] = {77, 88};
  node.meeting_copies_per_s = 9;
  v1::Policy p;
  ChannelLimits l = LegLimitsFor(node, p, Channel::kVideo);
  EXPECT_EQ(l.pps, 77u);
  EXPECT_EQ(l.kbps, 88u);
  EXPECT_EQ(MeetingCopiesFor(node, p), 9u);
  p.set_meeting_copies_per_s(0);
  EXPECT_EQ(MeetingCopiesFor(node, p), 0u) << "0 in the policy: unlimited";
  p.set_meeting_copies_per_s(1000);
  EXPECT_EQ(MeetingCopiesFor(node, p), 1000u);
}

// A site stored before these fields were optional had leg_pps = 0 ("unlimited")
// left out of its encoding, as proto3 does with zeros: it reads as unset now,
// so such sites get the node's defaults, which is what shipping them means.
TEST(MediaLimits, AnOldSiteWithoutLimitsGetsTheDefaults) {
  v1::Policy old;
  old.set_max_legs(10);
  std::string wire = old.SerializeAsString();
  v1::Policy read;
  ASSERT_TRUE(read.ParseFromString(wire));
  EXPECT_FALSE(read.has_leg_pps());
  EXPECT_EQ(LegLimitsFor(kNode, read, Channel::kAudio).pps, 200u);
}

}  // namespace
}  // namespace tandem::control
