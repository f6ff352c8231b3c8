// A small client of etcd's v3 API (gRPC, generated from etcd's own .proto
// files; docs/fleet.md says why gRPC rather than the JSON gateway): the calls
// the fleet's directory and placement need, each retried across the cluster's
// endpoints with back-off while etcd cannot be reached.
//
//   tandem::fleet::EtcdOptions o;
//   o.endpoints = {"198.18.7.1:2379", "198.18.7.2:2379", "198.18.7.3:2379"};
//   auto etcd = tandem::fleet::EtcdClient::Create(o);        // absl::StatusOr
//   absl::StatusOr<std::optional<KeyValue>> kv = (*etcd)->Get("/tandem/fleet/...");
//
// Retry rules: an attempt goes to the endpoint that answered last (the first
// one at start). It moves on to the next endpoint when the attempt ends with
// UNAVAILABLE (no connection; or the member has no leader, or its request
// timed out inside etcd) or DEADLINE_EXCEEDED (call_timeout: a member cut off
// from its quorum may hold a linearizable request that long; etcd may also
// answer that as UNKNOWN "context deadline exceeded"). After a round
// over every endpoint it sleeps (backoff_initial, doubling to backoff_max, with
// jitter) and goes round again until retry_timeout has passed since the
// operation began: then UNAVAILABLE, naming each endpoint and its last error.
// No operation waits longer than retry_timeout (plus one call_timeout at
// most). Any other error (NOT_FOUND for an expired lease, INVALID_ARGUMENT,
// RESOURCE_EXHAUSTED when etcd's space quota is full) is returned at once, with
// the operation and the endpoint in its message. An endpoint that has answered
// none of its attempts for 2 s gets a new gRPC channel (docs/fleet.md: a
// channel that first met etcd while it was starting never connected).
//
// Every operation here may be sent twice (a reply lost after etcd applied it):
// each is safe to repeat. A Put writes the same value; a CompareAndPut that
// did apply fails on its repeat and returns the key as written (the caller's
// own value); a lease granted twice leaves an unused lease that expires.
//
// Thread-safe: any number of threads may call at once.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "etcd_rpc.grpc.pb.h"

namespace tandem::fleet {

struct EtcdOptions {
  // "HOST:PORT", "http://HOST:PORT" (plain gRPC) or, with tls_ca,
  // "https://HOST:PORT"; with tls_ca every endpoint is TLS.
  std::vector<std::string> endpoints;
  // PEM: the CA that issued etcd's server certificates (empty: plaintext),
  // and this client's certificate chain and key (both or neither) for an etcd
  // that asks for one (--client-cert-auth).
  std::string tls_ca, tls_cert, tls_key;
  std::chrono::milliseconds call_timeout{1000};   // one attempt on one endpoint
  std::chrono::milliseconds retry_timeout{5000};  // every attempt of one operation
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{1000};
};

// "a:2379,b:2379" (as tandemctl --etcd): the endpoints, trimmed, none empty.
absl::StatusOr<std::vector<std::string>> ParseEndpoints(absl::string_view list);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision the range was read at
};

struct CasResult {
  bool succeeded = false;
  // The key after the transaction: the value written when it succeeded, the
  // value found when it did not (nullopt: the key is absent).
  std::optional<KeyValue> current;
  int64_t revision = 0;
};

struct Lease {
  int64_t id = 0;
  int64_t ttl_s = 0;  // granted TTL
};

class EtcdClient {
 public:
  // INVALID_ARGUMENT for no endpoint or a malformed one; connects lazily.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const EtcdOptions& options);
  ~EtcdClient();

  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key);
  // Every key that starts with `prefix`, in key order.
  absl::StatusOr<RangeResult> GetPrefix(absl::string_view prefix);
  // Several reads at one revision, in one round trip: each a key, or every
  // key under a prefix.
  struct Read {
    std::string key;
    bool prefix = false;
  };
  absl::StatusOr<std::vector<RangeResult>> ReadAll(const std::vector<Read>& reads);
  // Returns the revision of the write. `lease` 0: no lease.
  absl::StatusOr<int64_t> Put(absl::string_view key, absl::string_view value, int64_t lease = 0);
  // Returns how many keys were deleted (0 or 1).
  absl::StatusOr<int64_t> Delete(absl::string_view key);
  // Puts `value` when the key's mod_revision is `expected_mod_revision`
  // (0: the key does not exist), in one transaction; else leaves it and
  // returns what is there.
  absl::StatusOr<CasResult> CompareAndPut(absl::string_view key, absl::string_view value,
                                          int64_t expected_mod_revision, int64_t lease = 0);

  // Any transaction (compares on several keys' value, version, revisions or
  // lease; puts with leases, deletes, ranges), under the retry rules. `what`
  // names it in errors. The caller makes it safe to send twice.
  absl::StatusOr<::etcdserverpb::TxnResponse> Txn(const std::string& what,
                                                  const ::etcdserverpb::TxnRequest& request);

  absl::StatusOr<Lease> GrantLease(int64_t ttl_s);
  // Renews the lease; returns its TTL as renewed. NOT_FOUND when it expired
  // (or was revoked): keys attached to it are gone.
  absl::StatusOr<int64_t> KeepAlive(int64_t lease_id);
  // Revokes the lease and deletes its keys; OK when it was already gone.
  absl::Status RevokeLease(int64_t lease_id);

  // Waits until `key` is deleted at a revision above `after_revision` (true)
  // or `timeout` passed (false): one watch on the endpoint that answered
  // last, not retried (the caller polls as before when it fails). A start
  // revision etcd compacted away counts as deleted: the caller reads again.
  absl::StatusOr<bool> WaitDeleted(absl::string_view key, int64_t after_revision,
                                   std::chrono::milliseconds timeout);

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // How many times an endpoint got a new channel after it answered nothing
  // for two seconds (etcd.cc, Note).
  uint64_t channel_renewals() const { return renewals_.load(std::memory_order_relaxed); }

 private:
  struct Endpoint;
  struct Member;
  using Attempt = std::function<grpc::Status(Endpoint&, grpc::ClientContext*)>;

  EtcdClient() = default;
  // Runs `attempt` under the retry rules; `what` names the operation in errors.
  absl::Status Run(const std::string& what, const Attempt& attempt);
  std::shared_ptr<Endpoint> Connect(const Member& m) const;
  std::shared_ptr<Endpoint> Current(Member& m) const;
  // After each attempt on `m`: whether etcd answered (any answer but the
  // retried errors). Renews the channel of a member that has not.
  void Note(Member& m, bool answered);

  EtcdOptions options_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::vector<std::string> endpoints_;  // as given, for messages
  std::vector<std::unique_ptr<Member>> members_;
  std::atomic<size_t> preferred_{0};  // the endpoint that answered last
  std::atomic<uint64_t> renewals_{0};
};

}  // namespace tandem::fleet
