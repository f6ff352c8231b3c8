#include "mirror/switch_feed.h"

#include "common/tables/tables.h"

namespace tandem::mirror {

bool ReadPeerPath(const tables::PeerPath& p, PeerReport* report, uint64_t* last_heard_ns,
                  uint64_t* frames_ok, int64_t* clock_skew_ns) {
  tables::PeerSnapshot s;
  if (!tables::ReadPeerPath(p, &s, 16)) return false;
  PeerReport r;
  r.node_id = s.node_id;
  r.epoch = s.epoch;
  r.position = s.position;
  r.role = s.flags & tables::kHbActive ? Role::kActive : Role::kStandby;
  r.data_plane_ok = s.flags & tables::kHbDataPlaneOk;
  r.access_link_up = s.flags & tables::kHbAccessLinkUp;
  r.handover = s.flags & tables::kHbHandover;
  *report = r;
  *last_heard_ns = s.last_heard_ns;
  *frames_ok = s.frames_ok;
  if (clock_skew_ns) *clock_skew_ns = s.clock_skew_ns;
  return true;
}

void SwitchHeartbeatFeed::Poll(const tables::StateHeader& state, const LocalHealth& local,
                               RoleMachine* machine, absl::Time now) {
  // The state region numbers paths 0 = access, 1 = backbone.
  constexpr Path kPathOf[2] = {Path::kAccess, Path::kBackbone};
  uint64_t latest = 0;
  for (int i = 0; i < 2; ++i) {
    PeerReport r;
    uint64_t heard = 0, ok = 0;
    int64_t skew = 0;
    if (!ReadPeerPath(state.peer[i], &r, &heard, &ok, &skew)) continue;
    // New on this path: a frame, or the switch moving last_heard past a
    // stall of its own (tandem-switch's ExcuseOwnStall), which the role
    // machine must see as well.
    if (heard == 0 || (ok == frames_ok_[i] && heard == heard_ns_[i])) continue;
    frames_ok_[i] = ok;
    heard_ns_[i] = heard;
    machine->OnHeartbeat(kPathOf[i], r, absl::FromUnixNanos(static_cast<int64_t>(heard)));
    if (heard >= latest) {
      latest = heard;
      machine->SetPeerClockSkew(absl::Nanoseconds(skew));
    }
  }
  machine->SetLocal(local, now);
  machine->Tick(now);
}

LocalHealth SwitchHeartbeatFeed::Local(const tables::StateHeader& state, bool switch_alive,
                                       uint64_t position) {
  uint32_t flags = state.local_flags.load(std::memory_order_relaxed);
  LocalHealth h;
  h.data_plane_ok = switch_alive && (flags & tables::kHbDataPlaneOk);
  h.access_link_up = flags & tables::kHbAccessLinkUp;
  h.position = position;
  return h;
}

}  // namespace tandem::mirror
