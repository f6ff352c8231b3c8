// The role state machine of one node of a pair: pure logic, no I/O, time
// injected by the caller, so every failure of the design table is a unit test.
//
// Inputs: the peer's heartbeats (per path), this node's own health, ticks,
// and the operator's switchover command. Output: role and epoch, a Decision
// (with its cause) at every role change, and alarms.
//
// Rules, in order:
//  1. A heartbeat with a higher epoch than ours: an active node demotes at once;
//     every node adopts the higher epoch (so its next takeover goes above it).
//  2. Two actives in one epoch: the higher node id demotes (both sides apply
//     the same rule, so exactly one stays).
//  3. A standby takes over (epoch = highest epoch seen + 1) when the peer is
//     lost on both paths, or an active peer reports its data plane dead or its
//     access link down, or asks for a handover (switchover), or both nodes are
//     standby in one epoch and this one is preferred (higher replication
//     position, then lower node id), or preemption is configured and this node has been
//     caught up with the active peer for preempt_hold. It takes over only if
//     its own data plane and access link are up (else alarm).
//  4. The peer lost on the backbone only (still heard on the access network):
//     no role change, alarm. Lost on the access path only: alarm.
//  5. An active node whose peer is lost on both paths stays active (alarm).
//  6. A node demoted from active holds changes the new active may lack (its
//     asynchronous tail): it takes over again only once it has resynced from
//     the new active (SetResynced), or after rejoin_hold if it never could
//     (the new active died at once). Without this, a pair flapping under CPU
//     starvation handed the active role back to a node that still held writes
//     the other had just reported lost, and lost the other's.
//  7. With etcd as the pair's witness (SetWitness; docs/fleet.md, rules W1-W8
//     of control/fleet/witness.h, W9 is rule 8), while the peer is lost on
//     both paths and rule 8 does not apply: an active node stays active
//     only until its hold on the pair's key ends (W3), then steps down; a standby whose takeover is due (rule 3) takes
//     over only while it holds the key, from takeover_from on (W5), at the
//     key's epoch, which must be above every epoch seen. With the peer heard
//     on either path the witness is not asked (W2, W6): an etcd outage takes
//     no pair down and delays no handover.
//  8. The peer's control daemon heard on the backbone (OnPeerControl: what
//     it says of itself on the replication connection, within
//     control_timeout) proves the peer alive, never its data plane nor
//     either path: it changes no alarm, no peer health, no detection. It
//     counts for rule 7 only, while it says the peer's switch is dead and
//     the peer is standby (for an active, in an epoch not above ours) or
//     active in an epoch below ours (the old active we took over from, W6,
//     before it hears us): then the silence on both paths is that dead
//     switch, not a partition, so the witness is not asked: an active stays
//     active without the key (no W3: etcd's quorum lost, the takeover goes
//     on), and a standby whose takeover is due takes over at once (no W5).
//     No split brain can come of it. A node cut off from us sends no such
//     report (a partition silences the backbone). A peer without its switch
//     serves nothing, and cannot take over (rule 3 wants its own health); an
//     old active hears our higher epoch at the first contact (rule 1, also
//     its switch). Its switch restarted, its next report says so (the
//     exemption ends at once); if that report is lost, the restarted
//     switch stays quiet for longer than control_timeout anyway: a standby's
//     node takes no role for its silence hold (1 s, control/pair.cc), a
//     switch whose tables say active holds until it hears the peer (300 ms,
//     switch/pair_link.h). A peer heard in a newer epoch than its report
//     (it took over since) voids the report.
// A report from an older epoch than the peer's last one (the two paths may
// deliver out of order) only shows the peer alive on its path. A report from
// any node but peer_node_id (another pair sharing the key) is ignored and
// counted (reports_ignored): it changes no role, epoch or alarm.
// The peer's clock differing from ours by more than max_clock_skew raises the
// alarm clock_skew; it never counts as a lost peer (heartbeats are judged
// without clocks, switch/heartbeat.h).
// A peer counts as lost on a path when nothing valid was heard on it for
// interval * multiplier (startup counts as "heard", so a node that starts
// alone waits one detection time before taking over), or for half of that
// (at least two intervals) while the peer's control daemon is known to have
// closed its backbone connection: its process died, and when the whole node
// died its switch's heartbeats stop too. A control daemon restarting alone
// does not stop them, so that costs no takeover. Silence is counted only
// over time this node's own switch was listening (SetListeningUntil; the
// switch also moves last_heard past its own stalls): on a loaded host a node
// starved of CPU must not read its own deafness as the peer's death.
//
// Threads: not thread-safe; the owner serialises calls (control/pair.cc, on
// its pair thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tandem::mirror {

enum class Role { kStandby = 0, kActive = 1 };
enum class Path { kBackbone = 0, kAccess = 1 };
const char* RoleName(Role r);
const char* PathName(Path p);

// What the peer's control daemon says of itself on the replication
// connection (rule 8): it is alive, its role and epoch, whether its switch
// runs (a standby's report, or an active's word that its switch is dead).
// Not a heartbeat: it proves neither path, and is never the peer's health.
struct PeerControlReport {
  uint32_t node_id = 0;
  Role role = Role::kStandby;
  uint64_t epoch = 0;
  bool data_plane_ok = true;
};

// One heartbeat of the peer, as received and authenticated.
struct PeerReport {
  uint32_t node_id = 0;
  Role role = Role::kStandby;
  uint64_t epoch = 0;
  uint64_t position = 0;  // replication position (active: last seq; standby: applied)
  bool data_plane_ok = true;
  bool access_link_up = true;
  bool handover = false;  // an active peer asks us to take over
};

// This node's own health, supplied by the caller (switch worker heartbeats,
// access port link state, replication position).
struct LocalHealth {
  bool data_plane_ok = true;
  bool access_link_up = true;
  uint64_t position = 0;
};

struct RoleConfig {
  uint32_t node_id = 0;
  uint32_t peer_node_id = 0;  // reports of any other node are ignored (0: any)
  absl::Duration max_clock_skew = absl::Seconds(2);
  absl::Duration interval = absl::Milliseconds(10);
  int multiplier = 3;
  // Take the active role back from a healthy active peer once caught up for
  // preempt_hold. Set it on the preferred node only (else the pair flaps).
  bool preempt = false;
  absl::Duration preempt_hold = absl::Seconds(1);
  absl::Duration rejoin_hold = absl::Seconds(1);  // rule 6
  // Routed mode: the nodes' access links are in different networks (data
  // centers), so no heartbeat can cross between them there; the backbone is
  // the only path, and its silence alone is the peer's.
  bool backbone_only = false;
  // Rule 8: how long a report of the peer's control daemon counts. Keep it
  // below the holds after a switch's (re)start (control/pair.cc, HoldDown;
  // switch/pair_link.cc, HoldNs).
  absl::Duration control_timeout = absl::Milliseconds(150);
};

// What the owner's fleet::Witness says now (rule 7).
struct WitnessInput {
  bool enabled = false;  // etcd is this pair's witness
  absl::Time hold_until = absl::InfinitePast();  // this node holds the pair's key until then
  absl::Time takeover_from = absl::InfiniteFuture();  // the acquisition plus the guard (W5)
  uint64_t key_epoch = 0;  // the epoch the key was taken at
};

struct Decision {
  absl::Time at;
  Role role = Role::kStandby;  // the new role
  uint64_t epoch = 0;          // the epoch after the decision
  std::string cause;
  // Rule 7 (W3): stepped down because the pair's key was not held while the
  // peer was silent (routed mode withdraws the VIPs then, docs/routed.md).
  bool for_witness = false;
};

struct Alarms {
  bool peer_lost = false;         // not heard on either path
  bool backbone_down = false;     // not heard on the backbone, heard on access
  bool access_path_down = false;  // not heard on access, heard on the backbone
  bool peer_unhealthy = false;    // peer reports data plane or access link down
  bool cannot_take_over = false;  // a takeover was due but this node is unhealthy,
                                  // or not resynced since its demotion (rule 6)
  bool two_actives = false;       // a peer active in our epoch was seen
  bool clock_skew = false;        // the peer's wall clock is off ours by more than allowed
  bool any() const {
    return peer_lost || backbone_down || access_path_down || peer_unhealthy || cannot_take_over ||
           two_actives || clock_skew;
  }
  // Every alarm by name with its state, in a fixed order (metrics label each).
  std::vector<std::pair<const char*, bool>> List() const;
  std::string ToString() const;  // e.g. "backbone_down,peer_unhealthy" or "none"
};

class RoleMachine {
 public:
  // `role` and `epoch` as adopted (e.g. from the tables after a control
  // restart, which therefore causes no role change).
  RoleMachine(RoleConfig config, Role role, uint64_t epoch, absl::Time now);

  void OnHeartbeat(Path path, const PeerReport& report, absl::Time now);
  // Rule 8: the peer's control daemon reported on the backbone.
  void OnPeerControl(const PeerControlReport& report, absl::Time now);
  // Rule 8: until when the peer's control daemon counts as heard saying its
  // switch is dead (InfinitePast: it does not). While active, a hold like
  // the key's (the owner gives it to its switch).
  absl::Time peer_switch_dead_until() const;
  // The peer's wall clock minus ours, as last measured (alarm clock_skew).
  void SetPeerClockSkew(absl::Duration skew) { clock_skew_ = skew; }
  absl::Duration peer_clock_skew() const { return clock_skew_; }
  // Reports of a node that is not peer_node_id, ignored.
  uint64_t reports_ignored() const { return reports_ignored_; }
  void SetLocal(const LocalHealth& health, absl::Time now);
  // The hint above: set when the peer's control daemon closed or reset the
  // backbone connection, cleared when it is connected again.
  void SetPeerControlClosed(bool closed) { peer_control_closed_ = closed; }
  // While set, the peer's silence is no reason to take over: this node's
  // switch has just (re)started and has not heard the peer yet (as at start).
  void SetSilenceHold(bool hold) { silence_hold_ = hold; }
  // The time up to which this node's own switch surely looked at what
  // arrived (the last tick of its slowest thread). The peer's silence is
  // judged there, not at `now`: a node whose switch was starved of CPU (a
  // loaded host) has not heard silence, it has not listened.
  void SetListeningUntil(absl::Time t) { listening_until_ = t; }
  // Rule 6: set once this node, standby, holds a full copy of the active
  // peer's state (its replication resync is done).
  void SetResynced(bool resynced) {
    if (resynced) demoted_at_.reset();
  }
  // Rule 7: the witness as it stands; set before each Tick while configured.
  void SetWitness(const WitnessInput& w) { witness_ = w; }
  // A standby's takeover is due (rule 3, peer lost on both paths) and waits
  // for the witness: the owner acquires the pair's key (W7).
  bool waiting_for_witness() const { return waiting_for_witness_; }
  // Re-evaluates timeouts; call at least every interval.
  void Tick(absl::Time now);

  // Operator switchover. On the active node: asks the peer to take over
  // (carried by our heartbeats as the handover flag); we demote when we see its
  // higher epoch. On the standby: takes over now. Unless `force`, refused
  // (FailedPrecondition) when the peer is not heard on the backbone, or the
  // node to become active is unhealthy or not caught up.
  absl::Status RequestSwitchover(absl::Time now, bool force = false);

  Role role() const { return role_; }
  uint64_t epoch() const { return epoch_; }
  bool handover_requested() const { return handover_; }
  const Alarms& alarms() const { return alarms_; }
  // Peer as last heard (nullopt before the first heartbeat).
  const std::optional<PeerReport>& peer() const { return peer_; }
  // Not known silent: heard within a detection time of the moment this
  // node's switch last listened (SetListeningUntil).
  bool peer_heard(Path p, absl::Time now) const;
  // Heard within a detection time of `now` on a path that counts: positive
  // evidence, whether or not this node's switch listened all along (rule 7,
  // and the end of a witness withdrawal).
  bool PeerHeardBy(absl::Time now) const;
  // The most recent decision that made this node active.
  const std::optional<Decision>& last_takeover() const { return last_takeover_; }
  // Decisions since the previous call, oldest first.
  std::vector<Decision> TakeDecisions();

 private:
  void Evaluate(absl::Time now);
  // Evaluate's parts: the alarms and rules 1-2; an active's rules; a
  // standby's reason to take over (rule 3, empty: none).
  void PeerRules(bool heard, absl::Time now);
  void ActiveRules(bool heard, absl::Time now);
  std::string TakeoverCause(bool heard, bool heard_bb, absl::Time now);
  void Become(Role role, uint64_t epoch, absl::Time now, std::string cause);
  bool PreferredOverPeer() const;
  absl::Duration DetectionTime() const;

  RoleConfig config_;
  Role role_;
  uint64_t epoch_;
  uint64_t max_epoch_seen_;
  LocalHealth local_;
  std::optional<PeerReport> peer_;
  std::optional<PeerControlReport> peer_control_;  // rule 8
  absl::Time peer_control_at_;
  absl::Time last_heard_[2];
  bool ever_heard_[2] = {false, false};
  std::optional<absl::Time> caught_up_since_;
  bool handover_ = false;
  bool peer_control_closed_ = false;
  bool silence_hold_ = false;
  absl::Time listening_until_ = absl::InfiniteFuture();
  std::optional<absl::Time> demoted_at_;  // rule 6: demoted, not resynced since
  absl::Duration clock_skew_ = absl::ZeroDuration();
  uint64_t reports_ignored_ = 0;
  WitnessInput witness_;
  bool waiting_for_witness_ = false;
  Alarms alarms_;
  std::optional<Decision> last_takeover_;
  std::vector<Decision> decisions_;
};

}  // namespace tandem::mirror
