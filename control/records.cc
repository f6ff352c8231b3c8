#include "control/records.h"

#include <algorithm>

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

void AddUsage(const v1::Usage& u, v1::Usage* acc) {
  acc->set_packets_in(acc->packets_in() + u.packets_in());
  acc->set_bytes_in(acc->bytes_in() + u.bytes_in());
  acc->set_packets_out(acc->packets_out() + u.packets_out());
  acc->set_bytes_out(acc->bytes_out() + u.bytes_out());
  acc->set_drop_not_allowed(acc->drop_not_allowed() + u.drop_not_allowed());
  acc->set_drop_policed(acc->drop_policed() + u.drop_policed());
  acc->set_drop_other(acc->drop_other() + u.drop_other());
  if (u.first_packet_unix_ns() &&
      (!acc->first_packet_unix_ns() || u.first_packet_unix_ns() < acc->first_packet_unix_ns())) {
    acc->set_first_packet_unix_ns(u.first_packet_unix_ns());
  }
  acc->set_last_packet_unix_ns(std::max(acc->last_packet_unix_ns(), u.last_packet_unix_ns()));
  acc->set_participant_minutes(acc->participant_minutes() + u.participant_minutes());
}

}  // namespace tandem::control
