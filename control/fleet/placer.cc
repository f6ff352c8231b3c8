#include "control/fleet/placer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::fleet {

Placer::Placer(EtcdClient* etcd, Keys keys, PlacementConfig config)
    : etcd_(etcd), keys_(std::move(keys)), config_(config) {}

absl::StatusOr<Placement> Placer::FromKey(absl::string_view meeting_id, const KeyValue& kv,
                                          const FleetView& view) const {
  v1::PlacementRecord rec;
  if (!FromJson(kv.value, &rec).ok() || !CheckId("pair id", rec.pair_id()).ok()) {
    return absl::DataLossError(absl::StrCat("the placement of meeting ", meeting_id, " at ", kv.key,
                                            " cannot be read: '", kv.value, "'"));
  }
  Placement p;
  p.meeting_id = std::string(meeting_id);
  p.pair_id = rec.pair_id();
  p.placed_unix_ns = rec.placed_unix_ns();
  if (const PairView* pair = view.Find(p.pair_id)) p.pair = *pair;
  return p;
}

absl::StatusOr<Placement> Placer::Place(absl::string_view meeting_id) {
  if (absl::Status st = CheckId("meeting id", meeting_id); !st.ok()) return st;
  const std::string key = keys_.Meeting(meeting_id);
  absl::StatusOr<std::vector<RangeResult>> read =
      etcd_->ReadAll({{keys_.Pairs(), true}, {keys_.Drains(), true}, {key, false}});
  if (!read.ok()) return read.status();
  FleetView view = BuildFleet(keys_, (*read)[0], (*read)[1]);
  if (!(*read)[2].kvs.empty()) return FromKey(meeting_id, (*read)[2].kvs[0], view);

  absl::StatusOr<std::string> pair = ChoosePair(meeting_id, view.States(), config_);
  if (!pair.ok()) return pair.status();
  v1::PlacementRecord rec;
  rec.set_pair_id(*pair);
  rec.set_placed_unix_ns(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  absl::StatusOr<CasResult> cas = etcd_->CompareAndPut(key, ToJson(rec), 0);
  if (!cas.ok()) return cas.status();
  if (!cas->current) {
    // Placed and released again between the two round trips: rare; the
    // caller may simply place again.
    return absl::AbortedError(
        absl::StrCat("meeting ", meeting_id, " was placed and released meanwhile; place it again"));
  }
  absl::StatusOr<Placement> out = FromKey(meeting_id, *cas->current, view);
  if (out.ok()) out->placed_now = cas->succeeded;
  return out;
}

absl::StatusOr<std::optional<Placement>> Placer::Lookup(absl::string_view meeting_id) {
  if (absl::Status st = CheckId("meeting id", meeting_id); !st.ok()) return st;
  absl::StatusOr<std::vector<RangeResult>> read = etcd_->ReadAll(
      {{keys_.Pairs(), true}, {keys_.Drains(), true}, {keys_.Meeting(meeting_id), false}});
  if (!read.ok()) return read.status();
  if ((*read)[2].kvs.empty()) return std::optional<Placement>();
  FleetView view = BuildFleet(keys_, (*read)[0], (*read)[1]);
  absl::StatusOr<Placement> p = FromKey(meeting_id, (*read)[2].kvs[0], view);
  if (!p.ok()) return p.status();
  return std::optional<Placement>(*std::move(p));
}

absl::Status Placer::Release(absl::string_view meeting_id) {
  if (absl::Status st = CheckId("meeting id", meeting_id); !st.ok()) return st;
  absl::StatusOr<int64_t> n = etcd_->Delete(keys_.Meeting(meeting_id));
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::NotFoundError(absl::StrCat("meeting ", meeting_id, " is not placed"));
  return absl::OkStatus();
}

absl::Status Placer::Drain(absl::string_view pair_id, absl::string_view reason) {
  if (absl::Status st = CheckId("pair id", pair_id); !st.ok()) return st;
  v1::DrainRecord rec;
  rec.set_reason(std::string(reason));
  rec.set_since_unix_ns(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  // Only when not drained already: the first reason and time stay.
  absl::StatusOr<CasResult> cas = etcd_->CompareAndPut(keys_.Drain(pair_id), ToJson(rec), 0);
  return cas.status();
}

absl::Status Placer::Undrain(absl::string_view pair_id) {
  if (absl::Status st = CheckId("pair id", pair_id); !st.ok()) return st;
  absl::StatusOr<int64_t> n = etcd_->Delete(keys_.Drain(pair_id));
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::NotFoundError(absl::StrCat("pair ", pair_id, " is not drained"));
  return absl::OkStatus();
}

}  // namespace tandem::fleet
