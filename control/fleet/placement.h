// Choosing the pair of a new meeting: pure logic, no I/O (the etcd part that
// makes every placer agree is in placer.h). docs/fleet.md, "Placement".
//
// Rules, in order:
//  1. A pair has room when the operator did not drain it, it has an active
//     node, that node does not ask to be drained, and the node's switch has
//     at least one meeting and `min_free_legs` legs free (capacity - load).
//  2. Its weight is its free legs (capacity.legs - load.legs of the active
//     node): a pair twice as free takes twice as many new meetings.
//  3. Each pair with room gets a score for the meeting, score = -weight / ln(u),
//     where u in (0, 1) comes from SHA-256(meeting id, 0x00, pair id): the first
//     8 bytes, big-endian, h; u = (h + 0.5) / 2^64. The highest score wins
//     (weighted rendezvous hashing: pair i wins with probability
//     weight_i / sum of weights, and adding or removing a pair moves only the
//     meetings that it wins or had won).
//  4. Equal scores: the lower pair id (byte order), so that the choice never
//     depends on the order the pairs were listed in.
//  5. No pair with room: RESOURCE_EXHAUSTED, saying how many pairs were
//     drained, without an active node, or full.
// Any program that follows these rules (in any language) chooses the same
// pair from the same directory; placer.h makes the first choice written win
// when two placers saw different directories.
//
// Threads: pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::fleet {

// What placement needs to know of one pair (from its active node's record).
struct PairState {
  std::string pair_id;
  bool drained = false;        // by the operator (PREFIX/drain/PAIR)
  bool has_active = false;     // a node of the pair reports itself active
  bool node_draining = false;  // the active node asks for no new meetings
  uint64_t capacity_legs = 0;
  uint64_t capacity_meetings = 0;
  uint64_t load_legs = 0;
  uint64_t load_meetings = 0;
};

struct PlacementConfig {
  uint64_t min_free_legs = 1;  // rule 1
};

enum class NoRoom { kNone, kDrained, kNoActive, kFull };
const char* NoRoomName(NoRoom r);

// Rule 1: why the pair has no room (kNone: it has room).
NoRoom WhyNoRoom(const PairState& pair, const PlacementConfig& config);
// Rule 2: the pair's weight; 0 when it has no room.
double Weight(const PairState& pair, const PlacementConfig& config);
// Rule 3: u for (meeting, pair), in (0, 1).
double HashUnit(absl::string_view meeting_id, absl::string_view pair_id);
// Rule 3: the score; -infinity for weight 0.
double Score(absl::string_view meeting_id, absl::string_view pair_id, double weight);

struct Scored {
  std::string pair_id;
  double score = 0;
};
// Rule 4: the index of the highest score, ties to the lower pair id; -1 when
// `scored` is empty.
int Highest(const std::vector<Scored>& scored);

// Rules 1-5: the pair for a new meeting.
absl::StatusOr<std::string> ChoosePair(absl::string_view meeting_id,
                                       const std::vector<PairState>& pairs,
                                       const PlacementConfig& config = {});

}  // namespace tandem::fleet
