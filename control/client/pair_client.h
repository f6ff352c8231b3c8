// tandem_client: the control API of a Tandem pair for meeting applications
// (and tandemctl). A PairClient is given the API addresses of both nodes; it
// finds the active one by itself (GetStatus on both), sends every call there,
// follows a takeover, and resumes a Watch on the new active from the last
// change it delivered, with nothing missed or repeated.
//
//   tandem::client::PairOptions o;
//   o.addresses = {"unix:/run/tandem/a.sock", "unix:/run/tandem/b.sock"};
//   auto c = tandem::client::PairClient::Create(o);   // absl::StatusOr
//   v1::CreateSiteRequest req; req.mutable_site()->set_name("acme");
//   v1::Site site;
//   grpc::Status st = (*c)->Call(&Stub::CreateSite, req, &site);
//
// Retry rules (docs/pair.md, "Clients"): a call is sent again to the active
// node, within PairOptions::failover_timeout, only when it certainly did not
// take effect: the node refused it as standby, or the call never left (the
// node could not be connected to). A read (Get*, List*, GetUsage, GetStatus,
// LostWrites) is also sent again after it was cut off (UNAVAILABLE, CANCELLED,
// DEADLINE_EXCEEDED): reading twice is harmless. A write cut off after it
// was sent may have been applied before the node died: it is not repeated
// (unless CallOptions::idempotent says the caller allows it); the caller gets
// UNAVAILABLE saying so, and the next call goes to the active node. A write
// after a pause (PairOptions::recheck_after) first checks that the node's
// connection still reaches a live node, so a node that died while the
// application was idle costs a look for the active one, not an error.
//
// With one address the client talks to that node only: no discovery, no
// retry (a node on its own, or a tool that wants this very node).
// Thread-safe: calls and watches may run from several threads at once.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control.grpc.pb.h"

namespace tandem::client {

namespace v1 = ::tandem::control::v1;
using Stub = v1::Control::Stub;

// A unary method of the API, e.g. &Stub::CreateSite.
template <class Req, class Resp>
using Method = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&, Resp*);

// "UNAVAILABLE", "NOT_FOUND", ...: the canonical name of a status code.
const char* CodeName(grpc::StatusCode code);

// ---- addresses ----

// An API address: "unix:PATH", "unix-abstract:NAME", a path ("/run/a.sock",
// "./a.sock", "../a.sock") — a Unix socket, plain gRPC — or HOST:PORT
// ("192.0.2.10:7443", "[2001:db8::1]:7443", "node-a.example:7443", or a gRPC
// target "dns:///...", "ipv4:...", "ipv6:..."): TCP, always mutual TLS.
struct Address {
  std::string text;    // as given
  std::string target;  // for gRPC
  bool unix_socket = false;
};
absl::StatusOr<Address> ParseAddress(absl::string_view text);
// "A,B" (as tandemctl --pair): one or two addresses.
absl::StatusOr<std::vector<Address>> ParseAddresses(absl::string_view list);

// ---- TLS (TCP addresses only; ignored for Unix sockets) ----

struct TlsOptions {
  std::string cert_file;    // this client's certificate (chain), PEM
  std::string key_file;     // its key, PEM; both or neither
  std::string ca_file;      // the CA of the nodes' certificates; empty: the system's CAs
  std::string server_name;  // the name their certificates are issued to, when not HOST
  // How messages name these settings (tandemctl: "--tls-cert", ...).
  struct Names {
    std::string cert = "tls cert_file", key = "tls key_file", ca = "tls ca_file",
                server_name = "tls server_name";
    std::string give_cert = "tls cert_file and key_file";  // how to give a client certificate
  } names;
};

// ---- choosing the active node (pure, for tests) ----

// What one node answered to GetStatus.
struct Probe {
  bool answered = false;
  v1::NodeStatus status;
};
// The node to send calls to: among those that answered with role "active",
// the highest epoch; two actives in one epoch (a healing partition): the
// lower pair node id, since the higher one demotes. -1 when none is active.
int ChooseActive(const std::vector<Probe>& probes);

// A standby's refusal of a write: FAILED_PRECONDITION "... is standby ...".
bool IsStandbyRefusal(const grpc::Status& st);
// UNAVAILABLE from gRPC before any connection carried the call (connection
// refused, no socket, TLS handshake failed): the call did not reach a node.
bool NeverSent(const grpc::Status& st);

// Where a watch that is at `next_seq` of `log_id` (the caller holds the
// changes up to `have_seq`, 0: none of this log) resumes on a node whose
// status is `node`, when `moved` (another node than the one that streamed
// the changes so far). OK with `*next_seq` possibly lowered (changes of the
// old active after the new one's takeover position that were never
// delivered: the new active numbers its own changes from there); or
// OUT_OF_RANGE when the caller already holds changes the new active does not
// have (writes lost at the takeover, asynchronous mode): resync with the List
// calls and see LostWrites.
grpc::Status CheckResume(uint64_t log_id, uint64_t have_seq, bool moved, const v1::NodeStatus& node,
                         uint64_t* next_seq);

// ---- the client ----

struct PairOptions {
  std::vector<std::string> addresses;  // one or two API addresses (see Address)
  TlsOptions tls;
  // One attempt of one call (its gRPC deadline).
  std::chrono::milliseconds call_timeout{std::chrono::seconds(10)};
  // Finding the active node and sending a call again, in all, per call; and
  // the time a broken Watch has to find the active node again.
  std::chrono::milliseconds failover_timeout{std::chrono::seconds(20)};
  // GetStatus of one node while looking for the active one, and the pause
  // between two rounds of looking.
  std::chrono::milliseconds probe_timeout{std::chrono::seconds(1)};
  std::chrono::milliseconds probe_interval{std::chrono::milliseconds(100)};
  // While a Watch streams from a node, how often it asks the other node
  // whether it became active in a higher epoch (a node that hangs, or is cut
  // off, may keep a stream open without sending anything); 0: never.
  std::chrono::milliseconds watch_check_interval{std::chrono::seconds(1)};
  // A write to a node that has not answered for this long first checks the
  // connection with a GetStatus: gRPC notices a node that died (kill -9, a
  // crash) only when it next reads the socket, so a write on that
  // connection would come back "cut off, may have been applied" although it
  // never reached a live node. With the check it goes to the new active.
  // 0: check before every write.
  std::chrono::milliseconds recheck_after{std::chrono::milliseconds(50)};
};

struct CallOptions {
  std::chrono::milliseconds timeout{0};  // 0: PairOptions::call_timeout
  // The caller allows a write cut off after it was sent to be sent again to
  // the active node (e.g. it gives the new object's id, so a repeat fails
  // with ALREADY_EXISTS instead of creating a second one).
  bool idempotent = false;
};

// Requests of the calls that change nothing (sent again after a cut-off).
template <class Req>
inline constexpr bool kIsRead =
    std::is_same_v<Req, v1::GetStatusRequest> || std::is_same_v<Req, v1::GetSiteRequest> ||
    std::is_same_v<Req, v1::ListSitesRequest> || std::is_same_v<Req, v1::GetMeetingRequest> ||
    std::is_same_v<Req, v1::ListMeetingsRequest> ||
    std::is_same_v<Req, v1::ListParticipantsRequest> || std::is_same_v<Req, v1::ListLegsRequest> ||
    std::is_same_v<Req, v1::GetUsageRequest> || std::is_same_v<Req, v1::LostWritesRequest>;

// Stops a Watch from another thread.
class WatchStop {
 public:
  void Stop();
  bool stopped() const;

 private:
  friend class PairClient;
  bool Attach(grpc::ClientContext* ctx);  // false when already stopped
  void Detach();
  mutable std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  bool stopped_ = false;
};

class PairClient {
 public:
  // Reads and checks the TLS files when an address is TCP; connects lazily.
  // INVALID_ARGUMENT for a bad address or TLS file.
  static absl::StatusOr<std::unique_ptr<PairClient>> Create(const PairOptions& options);
  ~PairClient();

  // Runs `method` on the active node (with one address: on that node), under
  // the retry rules above. An UNAVAILABLE status says in one line why (no
  // active node, which node could not be reached, a failed TLS handshake, a
  // write cut off).
  template <class Req, class Resp>
  grpc::Status Call(Method<Req, Resp> method, const Req& req, Resp* resp,
                    const CallOptions& opts = {}) {
    return Run(kIsRead<Req>, opts, [&](Stub* stub, grpc::ClientContext* ctx) {
      resp->Clear();
      return (stub->*method)(ctx, req, resp);
    });
  }

  // A read answered by any node: the active one when it answers, else the
  // other (a standby answers reads, possibly a little behind the active).
  // `answered_by` (optional) gets the address of the node that answered.
  template <class Req, class Resp>
  grpc::Status ReadAny(Method<Req, Resp> method, const Req& req, Resp* resp,
                       std::string* answered_by = nullptr) {
    static_assert(kIsRead<Req>, "ReadAny is for reads; writes go to the active node (Call)");
    return RunAny(
        [&](Stub* stub, grpc::ClientContext* ctx) {
          resp->Clear();
          return (stub->*method)(ctx, req, resp);
        },
        answered_by);
  }

  // Follows the change log from (log_id, from_seq) as WatchRequest does
  // (from_seq 0: the changes after now; log_id 0: the current log), calling
  // `on_change` for each change in order, until it returns false or `stop`
  // is stopped (then OK). With two addresses it follows the active node: when
  // the stream breaks (the node died, or it stopped), the watch resumes on
  // the active node from the change after the last one delivered, within
  // failover_timeout; nothing is missed or repeated. OUT_OF_RANGE: resync
  // (the log is gone, or changes delivered from the old active were lost at
  // the takeover); UNAVAILABLE: no active node within failover_timeout.
  // `on_change` runs on the calling thread.
  using ChangeFn = std::function<bool(const v1::Change&)>;
  grpc::Status Watch(uint64_t log_id, uint64_t from_seq, const ChangeFn& on_change,
                     WatchStop* stop = nullptr);

  // Looks for the active node now (within failover_timeout); OK once found.
  grpc::Status FindActive();
  // The address of the node calls go to now ("" before one was found).
  std::string active_address() const;
  const std::vector<Address>& addresses() const { return addresses_; }
  bool pair() const { return nodes_.size() > 1; }

 private:
  struct Node;
  using Attempt = std::function<grpc::Status(Stub*, grpc::ClientContext*)>;
  using Clock = std::chrono::steady_clock;

  PairClient() = default;
  grpc::Status Run(bool read, const CallOptions& opts, const Attempt& attempt);
  grpc::Status RunAny(const Attempt& attempt, std::string* answered_by);
  // The active node: the cached one, else found by probing until `deadline`.
  // `fresh`: probe anyway, and return the chosen node's status in `status`.
  grpc::Status Active(Clock::time_point deadline, bool fresh, int* index, v1::NodeStatus* status,
                      const WatchStop* stop = nullptr);
  void Forget(int index);  // the cached active node failed: look again next time
  bool Connect(int index, Clock::time_point deadline);
  // Before a write: the connection to node `index` still reaches a live node
  // (answered within recheck_after, or answers a GetStatus now).
  bool StillThere(int index, Clock::time_point deadline);
  // UNAVAILABLE of a call to node `index`, explained in one line.
  grpc::Status Explain(int index, const grpc::Status& st) const;
  std::string Unreachable(int index, const grpc::Status& st) const;
  std::chrono::system_clock::time_point CallDeadline(const CallOptions& opts) const;
  // The watch: one stream from node `index` (of `epoch`), from and advancing
  // `pos`; with a pair, cancelled when another node becomes active with a
  // higher epoch (NewerActive, asked every watch_check_interval).
  struct WatchPosition;
  struct StreamEnd;
  StreamEnd StreamFrom(int index, uint64_t epoch, WatchPosition* pos, const ChangeFn& on_change,
                       WatchStop* stop);
  bool NewerActive(int index, uint64_t epoch);

  PairOptions options_;
  std::vector<Address> addresses_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::string cert_, key_, ca_;  // PEM
  mutable std::mutex mu_;
  int active_ = -1;         // guarded by mu_
  std::mutex discover_mu_;  // one discovery at a time
};

}  // namespace tandem::client
