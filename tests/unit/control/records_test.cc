// The records both paths of the model share (control/records.h), case by case.
#include "control/records.h"

#include <gtest/gtest.h>

namespace tandem::control {
namespace {

using tables::kLegMuted;
using tables::kLegRecv;
using tables::kLegSend;

TEST(RecordsTest, LegTableFlagsFollowTheRulesInOrder) {
  struct Case {
    uint32_t requested;
    bool muted, withheld;
    uint32_t want;
  } cases[] = {
      {kLegSend | kLegRecv, false, false, kLegSend | kLegRecv},              // rule 1
      {kLegRecv, false, false, kLegRecv},                                    // recv only
      {kLegSend, false, false, kLegSend},                                    // send only
      {kLegSend | kLegRecv, false, true, kLegRecv},                          // rule 2
      {kLegSend | kLegRecv, true, false, kLegSend | kLegRecv | kLegMuted},  // rule 3 keeps send
      {kLegSend | kLegRecv, true, true, kLegRecv | kLegMuted},               // 2 and 3
      {kLegSend | kLegRecv | kLegMuted, false, false, kLegSend | kLegRecv},  // only what was asked
  };
  for (const Case& c : cases) {
    EXPECT_EQ(LegTableFlags(c.requested, c.muted, c.withheld), c.want)
        << "requested " << c.requested << " muted " << c.muted << " withheld " << c.withheld;
  }
}

TEST(RecordsTest, ChannelsRoundTripAndUnspecifiedIsRefused) {
  for (v1::Channel c : {v1::AUDIO, v1::VIDEO, v1::SHARE}) {
    auto t = ChannelFromProto(c);
    ASSERT_TRUE(t.ok()) << c;
    EXPECT_EQ(ChannelToProto(*t), c);
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ChannelFromProto(v1::CHANNEL_UNSPECIFIED).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ChannelFromProto(static_cast<v1::Channel>(99)).status()));
}

TEST(RecordsTest, MakeChangeNamesKindAndIdOnly) {
  v1::Change c = MakeChange(v1::Change::LEG_REMOVED, 7);
  EXPECT_EQ(c.kind(), v1::Change::LEG_REMOVED);
  EXPECT_EQ(c.id(), 7u);
  EXPECT_EQ(c.seq(), 0u);
  EXPECT_FALSE(c.has_leg());
}

}  // namespace
}  // namespace tandem::control
