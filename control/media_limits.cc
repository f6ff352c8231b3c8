#include "control/media_limits.h"

#include "control.pb.h"

namespace tandem::control {

ChannelLimits LegLimitsFor(const MediaLimits& node, const v1::Policy& policy,
                           tables::Channel channel) {
  const v1::LegLimits& site = channel == tables::Channel::kAudio   ? policy.audio()
                              : channel == tables::Channel::kVideo ? policy.video()
                                                                   : policy.share();
  ChannelLimits out = node.channel[static_cast<uint32_t>(channel) % tables::kChannels];
  if (site.has_pps()) {
    out.pps = site.pps();
  } else if (policy.has_leg_pps()) {
    out.pps = policy.leg_pps();
  }
  if (site.has_kbps()) {
    out.kbps = site.kbps();
  } else if (policy.has_leg_kbps()) {
    out.kbps = policy.leg_kbps();
  }
  return out;
}

uint32_t MeetingCopiesFor(const MediaLimits& node, const v1::Policy& policy) {
  return policy.has_meeting_copies_per_s() ? policy.meeting_copies_per_s()
                                           : node.meeting_copies_per_s;
}

}  // namespace tandem::control
