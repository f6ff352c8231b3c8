#include "control/records.h"

namespace tandem::control {

v1::Change MakeChange(v1::Change::Kind kind, uint64_t id) {
  v1::Change c;
  c.set_kind(kind);
  c.set_id(id);
  return c;
}

v1::Channel ChannelToProto(tables::Channel c) {
  switch (c) {
    case tables::Channel::kAudio:
      return v1::AUDIO;
    case tables::Channel::kVideo:
      return v1::VIDEO;
    case tables::Channel::kShare:
      return v1::SHARE;
  }
  return v1::CHANNEL_UNSPECIFIED;
}

absl::StatusOr<tables::Channel> ChannelFromProto(v1::Channel c) {
  switch (c) {
    case v1::AUDIO:
      return tables::Channel::kAudio;
    case v1::VIDEO:
      return tables::Channel::kVideo;
    case v1::SHARE:
      return tables::Channel::kShare;
    default:
      return absl::InvalidArgumentError("channel must be audio, video or share");
  }
}

uint32_t LegTableFlags(uint32_t requested, bool muted, bool send_withheld) {
  uint32_t f = requested & (tables::kLegSend | tables::kLegRecv);
  if (send_withheld) f &= ~tables::kLegSend;
  if (muted) f |= tables::kLegMuted;
  return f;
}

}  // namespace tandem::control
