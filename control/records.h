// The records of the control plane as the API, the change log and the tables
// write them, defined once: the planners (sites.cc, meetings.cc,
// participants.cc), the model's one mutation path (model.cc) and the reads
// of the core use these. A second copy of any of these is how the two nodes
// of a pair came to hold different tables for the same changes.
//
// Pure functions; any thread.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/tables/tables.h"
#include "control.pb.h"

namespace tandem::control {

// A change record of `kind` about object `id`, its body still to fill.
v1::Change MakeChange(v1::Change::Kind kind, uint64_t id);

// The media channel of a leg: the API's enum and the tables' one.
// ChannelFromProto: InvalidArgument for CHANNEL_UNSPECIFIED or an unknown value
// (a request's or a replicated record's; neither is mapped to a default).
v1::Channel ChannelToProto(tables::Channel c);
absl::StatusOr<tables::Channel> ChannelFromProto(v1::Channel c);

// The flags a leg has in the tables (tables::kLeg*):
//  1. what was asked at join (`requested`, kLegSend|kLegRecv),
//  2. less kLegSend while `send_withheld` (an attendee of a presenter-only
//     meeting),
//  3. plus kLegMuted while `muted` (kLegSend is kept: unmuting gives it back).
uint32_t LegTableFlags(uint32_t requested, bool muted, bool send_withheld);

// Adds `u` to `acc`: counts add up, the first and last packet times widen.
void AddUsage(const v1::Usage& u, v1::Usage* acc);

}  // namespace tandem::control
