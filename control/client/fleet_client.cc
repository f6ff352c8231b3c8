#include "control/client/fleet_client.h"

#include "absl/strings/str_cat.h"

namespace tandem::client {

absl::StatusOr<std::unique_ptr<FleetClient>> FleetClient::Create(const FleetOptions& options) {
  absl::StatusOr<std::unique_ptr<fleet::EtcdClient>> etcd = fleet::EtcdClient::Create(options.etcd);
  if (!etcd.ok()) return etcd.status();
  std::unique_ptr<FleetClient> c(new FleetClient());
  c->options_ = options;
  c->etcd_ = *std::move(etcd);
  c->placer_ = std::make_unique<fleet::Placer>(c->etcd_.get(), fleet::Keys(options.prefix),
                                               options.placement);
  return c;
}

absl::StatusOr<MeetingPlace> FleetClient::ToPlace(const fleet::Placement& p) {
  MeetingPlace out;
  out.meeting_id = p.meeting_id;
  out.pair_id = p.pair_id;
  out.placed_now = p.placed_now;
  if (!p.pair || p.pair->nodes.empty()) {
    return absl::UnavailableError(absl::StrCat("meeting ", p.meeting_id, " is placed on pair ",
                                               p.pair_id,
                                               ", which has no node in the directory now"));
  }
  for (const auto& n : p.pair->nodes) out.node_apis.push_back(n.api());
  if (const auto* a = p.pair->active_node()) out.active_api = a->api();
  return out;
}

absl::StatusOr<MeetingPlace> FleetClient::Place(absl::string_view meeting_id) {
  absl::StatusOr<fleet::Placement> p = placer_->Place(meeting_id);
  if (!p.ok()) return p.status();
  return ToPlace(*p);
}

absl::StatusOr<PairClient*> FleetClient::ClientFor(const MeetingPlace& place) {
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = pairs_[place.pair_id];
  if (e.client && e.addresses == place.node_apis) return e.client.get();
  PairOptions o = options_.pair;
  o.addresses = place.node_apis;
  absl::StatusOr<std::unique_ptr<PairClient>> c = PairClient::Create(o);
  if (!c.ok()) {
    return absl::Status(c.status().code(),
                        absl::StrCat("pair ", place.pair_id, ": ", c.status().message()));
  }
  if (e.client) retired_.push_back(std::move(e.client));
  e.addresses = place.node_apis;
  e.client = *std::move(c);
  return e.client.get();
}

absl::StatusOr<PairClient*> FleetClient::ForMeeting(absl::string_view meeting_id) {
  {
    // A meeting never changes pairs: after the first look-up, no etcd.
    std::lock_guard<std::mutex> l(mu_);
    auto m = meetings_.find(std::string(meeting_id));
    if (m != meetings_.end()) {
      auto e = pairs_.find(m->second);
      if (e != pairs_.end() && e->second.client) return e->second.client.get();
    }
  }
  absl::StatusOr<std::optional<fleet::Placement>> p = placer_->Lookup(meeting_id);
  if (!p.ok()) return p.status();
  if (!*p) return absl::NotFoundError(absl::StrCat("meeting ", meeting_id, " is not placed"));
  absl::StatusOr<MeetingPlace> place = ToPlace(**p);
  if (!place.ok()) return place.status();
  absl::StatusOr<PairClient*> c = ClientFor(*place);
  if (c.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    meetings_[place->meeting_id] = place->pair_id;
  }
  return c;
}

absl::Status FleetClient::Release(absl::string_view meeting_id) {
  {
    std::lock_guard<std::mutex> l(mu_);
    meetings_.erase(std::string(meeting_id));
  }
  return placer_->Release(meeting_id);
}

}  // namespace tandem::client
