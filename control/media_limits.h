// The rate limits a leg and a meeting get when they join and start: the
// site's policy where it says, the node's defaults otherwise (docs/control.md,
// "Media limits"). Pure functions, called by the core under its lock.
//
// Per field (pps, kbps), the first set of:
//   1. the site's limits for the leg's channel (Policy.audio/video/share),
//   2. the site's limit for every channel (Policy.leg_pps / leg_kbps),
//   3. the node's default for the channel (MediaLimits, [limits] in the
//      control file).
// A meeting's cap: Policy.meeting_copies_per_s if set, else the node's.
// 0 means unlimited at every level.
#pragma once

#include <cstdint>

#include "common/tables/layout.h"

namespace tandem::control {

namespace v1 {
class Policy;  // control.pb.h: this header is also the config's, which knows no protobuf
}

struct ChannelLimits {
  uint32_t pps = 0;
  uint32_t kbps = 0;
};

// The node's defaults, sized for real media (the figures and the reasons
// are in docs/control.md): a leg sends at most this, and a meeting's switch
// sends at most meeting_copies_per_s copies.
struct MediaLimits {
  ChannelLimits channel[tables::kChannels] = {
      {200, 640},     // audio: Opus at 10 ms frames (100 pps) twice over, 510 kbit/s + headers
      {2000, 10000},  // video: 1080p60 or simulcast (~6 Mbit/s) with RTX/FEC, ~1,100-byte packets
      {2000, 10000},  // share: as video; slide changes come as bursts
  };
  uint32_t meeting_copies_per_s = 500000;
};

ChannelLimits LegLimitsFor(const MediaLimits& node, const v1::Policy& policy,
                           tables::Channel channel);
uint32_t MeetingCopiesFor(const MediaLimits& node, const v1::Policy& policy);

}  // namespace tandem::control
