// tandem_client for a fleet: places a meeting on a pair through the directory
// in etcd (control/fleet/placer.h), then gives the PairClient of that pair,
// which sends every call for the meeting to the pair's active node and follows
// its takeovers (pair_client.h).
//
//   tandem::client::FleetOptions o;
//   o.etcd.endpoints = {"198.18.7.1:2379", "198.18.7.2:2379", "198.18.7.3:2379"};
//   auto fleet = tandem::client::FleetClient::Create(o);          // absl::StatusOr
//   absl::StatusOr<MeetingPlace> where = (*fleet)->Place("conf-2024-118");
//   absl::StatusOr<PairClient*> pair = (*fleet)->ForMeeting("conf-2024-118");
//   (*pair)->Call(&Stub::CreateMeeting, req, &resp);
//
// Thread-safe. The PairClients are owned by the FleetClient and live as long
// as it does.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/client/pair_client.h"
#include "control/fleet/etcd.h"
#include "control/fleet/placer.h"

namespace tandem::client {

struct FleetOptions {
  fleet::EtcdOptions etcd;
  std::string prefix = fleet::kDefaultPrefix;
  fleet::PlacementConfig placement;
  // For the pairs' clients: TLS and timeouts (addresses come from the
  // directory).
  PairOptions pair;
};

struct MeetingPlace {
  std::string meeting_id;
  std::string pair_id;
  bool placed_now = false;             // this call placed it; false: it was placed before
  std::string active_api;              // "" when the pair has no active node in the directory
  std::vector<std::string> node_apis;  // every node of the pair (node id order)
};

class FleetClient {
 public:
  // INVALID_ARGUMENT for a bad etcd endpoint.
  static absl::StatusOr<std::unique_ptr<FleetClient>> Create(const FleetOptions& options);

  // The meeting's pair: where it was placed before, else placed now.
  // UNAVAILABLE when etcd cannot be reached (naming its endpoints) or the
  // pair it is placed on has no node in the directory now;
  // RESOURCE_EXHAUSTED when no pair has room.
  absl::StatusOr<MeetingPlace> Place(absl::string_view meeting_id);
  // The client of the meeting's pair (placed before, else NOT_FOUND): every
  // call goes to the pair's active node, also after a takeover.
  absl::StatusOr<PairClient*> ForMeeting(absl::string_view meeting_id);
  // The meeting ended: it is no longer placed (its pair is free to forget it).
  absl::Status Release(absl::string_view meeting_id);

  fleet::Placer& placer() { return *placer_; }

 private:
  FleetClient() = default;
  static absl::StatusOr<MeetingPlace> ToPlace(const fleet::Placement& p);
  absl::StatusOr<PairClient*> ClientFor(const MeetingPlace& place);

  FleetOptions options_;
  std::unique_ptr<fleet::EtcdClient> etcd_;
  std::unique_ptr<fleet::Placer> placer_;
  std::mutex mu_;
  // By pair id, with the addresses it was made for.
  struct Entry {
    std::vector<std::string> addresses;
    std::unique_ptr<PairClient> client;
  };
  std::map<std::string, Entry> pairs_;           // guarded by mu_
  std::map<std::string, std::string> meetings_;  // meeting id -> pair id, guarded by mu_
  // Clients replaced after the pair's addresses changed; kept, as callers
  // may still hold them.
  std::vector<std::unique_ptr<PairClient>> retired_;  // guarded by mu_
};

}  // namespace tandem::client
