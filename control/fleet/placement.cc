#include "control/fleet/placement.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::fleet {

const char* NoRoomName(NoRoom r) {
  switch (r) {
    case NoRoom::kNone:
      return "room";
    case NoRoom::kDrained:
      return "drained";
    case NoRoom::kNoActive:
      return "no active node";
    case NoRoom::kFull:
      return "full";
  }
  return "?";
}

NoRoom WhyNoRoom(const PairState& p, const PlacementConfig& config) {
  if (p.drained) return NoRoom::kDrained;
  if (!p.has_active) return NoRoom::kNoActive;
  if (p.node_draining) return NoRoom::kDrained;
  if (p.load_meetings >= p.capacity_meetings) return NoRoom::kFull;
  if (p.load_legs >= p.capacity_legs ||
      p.capacity_legs - p.load_legs < std::max<uint64_t>(config.min_free_legs, 1)) {
    return NoRoom::kFull;
  }
  return NoRoom::kNone;
}

double Weight(const PairState& p, const PlacementConfig& config) {
  if (WhyNoRoom(p, config) != NoRoom::kNone) return 0;
  return static_cast<double>(p.capacity_legs - p.load_legs);
}

double HashUnit(absl::string_view meeting_id, absl::string_view pair_id) {
  std::string input = absl::StrCat(meeting_id, absl::string_view("\0", 1), pair_id);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h = (h << 8) | digest[i];
  // (h + 0.5) / 2^64 in long double: the top and bottom values of h stay
  // strictly inside (0, 1) after rounding to double.
  long double u = (static_cast<long double>(h) + 0.5L) / 18446744073709551616.0L;
  double d = static_cast<double>(u);
  if (d >= 1.0) d = std::nextafter(1.0, 0.0);
  if (d <= 0.0) d = std::numeric_limits<double>::denorm_min();
  return d;
}

double Score(absl::string_view meeting_id, absl::string_view pair_id, double weight) {
  if (!(weight > 0)) return -std::numeric_limits<double>::infinity();
  return -weight / std::log(HashUnit(meeting_id, pair_id));
}

int Highest(const std::vector<Scored>& scored) {
  int best = -1;
  for (size_t i = 0; i < scored.size(); ++i) {
    if (best < 0 || scored[i].score > scored[best].score ||
        (scored[i].score == scored[best].score && scored[i].pair_id < scored[best].pair_id)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

absl::StatusOr<std::string> ChoosePair(absl::string_view meeting_id,
                                       const std::vector<PairState>& pairs,
                                       const PlacementConfig& config) {
  std::vector<Scored> scored;
  int drained = 0, no_active = 0, full = 0;
  for (const PairState& p : pairs) {
    switch (WhyNoRoom(p, config)) {
      case NoRoom::kNone:
        scored.push_back({p.pair_id, Score(meeting_id, p.pair_id, Weight(p, config))});
        break;
      case NoRoom::kDrained:
        ++drained;
        break;
      case NoRoom::kNoActive:
        ++no_active;
        break;
      case NoRoom::kFull:
        ++full;
        break;
    }
  }
  int best = Highest(scored);
  if (best < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no pair has room for meeting ", meeting_id, " (", pairs.size(),
                     " pairs in the directory: ", drained, " drained, ", no_active,
                     " without an active node, ", full, " full)"));
  }
  return scored[best].pair_id;
}

}  // namespace tandem::fleet
