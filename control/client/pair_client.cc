#include "control/client/pair_client.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tandem::client {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "ERROR";
  }
}

// ---- addresses ----

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  Address a;
  a.text = std::string(text);
  if (text.empty()) return absl::InvalidArgumentError("empty API address");
  if (absl::StartsWith(text, "/") || absl::StartsWith(text, "./") ||
      absl::StartsWith(text, "../")) {
    a.target = absl::StrCat("unix:", text);
    a.unix_socket = true;
    return a;
  }
  for (absl::string_view scheme : {"unix:", "unix-abstract:"}) {
    if (absl::StartsWith(text, scheme)) {
      if (text.size() == scheme.size()) {
        return absl::InvalidArgumentError(absl::StrCat("API address '", text, "' names no socket"));
      }
      a.target = a.text;
      a.unix_socket = true;
      return a;
    }
  }
  a.target = a.text;
  // gRPC's own target syntax is passed on as it is.
  for (absl::string_view scheme : {"dns:", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(text, scheme)) return a;
  }
  size_t colon = text.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? text : text.substr(0, colon);
  uint32_t port = 0;
  bool ok = colon != absl::string_view::npos && !host.empty() &&
            absl::SimpleAtoi(text.substr(colon + 1), &port) && port > 0 && port < 65536;
  // A bare IPv6 address needs brackets: [2001:db8::1]:7443.
  if (ok && absl::StrContains(host, ':')) {
    ok = host.size() > 2 && host.front() == '[' && host.back() == ']';
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid API address '", text,
        "' (want unix:PATH, a path, or HOST:PORT with [brackets] around an IPv6 HOST)"));
  }
  return a;
}

absl::StatusOr<std::vector<Address>> ParseAddresses(absl::string_view list) {
  std::vector<Address> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    absl::StatusOr<Address> a = ParseAddress(absl::StripAsciiWhitespace(part));
    if (!a.ok()) {
      if (part.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("empty address in '", list, "' (want A or A,B)"));
      }
      return a.status();
    }
    out.push_back(*std::move(a));
  }
  if (out.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", list, "' names ", out.size(), " nodes: a pair has two"));
  }
  return out;
}

// ---- choosing the active node ----

int ChooseActive(const std::vector<Probe>& probes) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(probes.size()); ++i) {
    const Probe& p = probes[i];
    if (!p.answered || p.status.role() != "active") continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const v1::NodeStatus& b = probes[best].status;
    if (p.status.epoch() > b.epoch() ||
        (p.status.epoch() == b.epoch() && p.status.has_pair() && b.has_pair() &&
         p.status.pair().node_id() < b.pair().node_id())) {
      best = i;
    }
  }
  return best;
}

bool IsStandbyRefusal(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
         absl::StrContains(st.error_message(), "is standby");
}

bool NeverSent(const grpc::Status& st) {
  // gRPC's pick failed: no connection could be made, so no call went out.
  return st.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StrContains(absl::AsciiStrToLower(st.error_message()), "failed to connect");
}

grpc::Status CheckResume(uint64_t log_id, uint64_t have_seq, bool moved, const v1::NodeStatus& node,
                         uint64_t* next_seq) {
  // Another log: the node's Watch says OUT_OF_RANGE itself.
  if (node.log_id() != log_id) return grpc::Status::OK;
  uint64_t held = node.change_seq();
  const v1::PairStatus& p = node.pair();
  // A node that took over numbers its own changes after its takeover
  // position: the old active's changes after it are not these.
  bool took_over = moved && p.takeover_log_id() == log_id && p.takeover_position() < held;
  if (took_over) held = p.takeover_position();
  if (have_seq > held) {
    return grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        took_over
            ? absl::StrCat("changes ", held + 1, " to ", have_seq, " of log ", log_id,
                           " were delivered from the old active node, but node ", node.node(),
                           " took over after change ", held,
                           ": they were lost at the takeover (LostWrites lists them once the old "
                           "active returns): resync")
            : absl::StrCat("node ", node.node(), " holds log ", log_id, " up to change ", held,
                           ", but changes up to ", have_seq, " were delivered: resync"));
  }
  if (*next_seq > held + 1) *next_seq = held + 1;
  return grpc::Status::OK;
}

// ---- stopping a watch ----

void WatchStop::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  if (ctx_) ctx_->TryCancel();
}

bool WatchStop::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopped_;
}

bool WatchStop::Attach(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return false;
  ctx_ = ctx;
  return true;
}

void WatchStop::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  ctx_ = nullptr;
}

// ---- the client ----

struct PairClient::Node {
  Address addr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Stub> stub;
  // When the node last answered a call (steady clock, ns since its epoch).
  std::atomic<int64_t> answered_ns{0};
  void Answered() {
    answered_ns.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                      std::memory_order_relaxed);
  }
};

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& name, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", name, " ", path, ": ", strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", name, " ", path, ": ", strerror(errno)));
  }
  return ss.str();
}

X509* FirstCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ERR_clear_error();
  return x;
}

// gRPC says only "empty address list" of files it cannot use: say which.
absl::Status CheckPem(const TlsOptions& t, const std::string& cert, const std::string& key,
                      const std::string& ca) {
  if (!ca.empty()) {
    X509* x = FirstCert(ca);
    if (!x) {
      return absl::InvalidArgumentError(
          absl::StrCat(t.names.ca, " ", t.ca_file, " holds no PEM certificate"));
    }
    X509_free(x);
  }
  if (cert.empty()) return absl::OkStatus();
  X509* x = FirstCert(cert);
  if (!x) {
    return absl::InvalidArgumentError(
        absl::StrCat(t.names.cert, " ", t.cert_file, " holds no PEM certificate"));
  }
  BIO* bio = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(""));
  BIO_free(bio);
  bool matches = k && X509_check_private_key(x, k) == 1;
  EVP_PKEY_free(k);
  X509_free(x);
  ERR_clear_error();
  if (!k) {
    return absl::InvalidArgumentError(
        absl::StrCat(t.names.key, " ", t.key_file, " holds no unencrypted PEM private key"));
  }
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat(
        t.names.key, " ", t.key_file, " is not the key of the certificate in ", t.cert_file));
  }
  return absl::OkStatus();
}

bool Transient(const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return true;
    default:
      return false;
  }
}

// A watch stream that ended without the caller stopping it and may go on
// elsewhere: the node died or stopped (the server ends streams with OK when
// it shuts down), the connection broke, or we cancelled it for a newer active.
bool Resumable(const grpc::Status& st) {
  return st.ok() || Transient(st) || st.error_code() == grpc::StatusCode::ABORTED ||
         IsStandbyRefusal(st);
}

std::chrono::system_clock::time_point SystemDeadline(std::chrono::steady_clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             t - std::chrono::steady_clock::now());
}

}  // namespace

absl::StatusOr<std::unique_ptr<PairClient>> PairClient::Create(const PairOptions& options) {
  std::unique_ptr<PairClient> c(new PairClient());
  c->options_ = options;
  if (options.addresses.empty() || options.addresses.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a pair client takes one or two API addresses, not ", options.addresses.size()));
  }
  bool tls = false;
  for (const std::string& text : options.addresses) {
    absl::StatusOr<Address> a = ParseAddress(text);
    if (!a.ok()) return a.status();
    tls |= !a->unix_socket;
    c->addresses_.push_back(*std::move(a));
  }
  const TlsOptions& t = options.tls;
  if (tls) {
    if (t.cert_file.empty() != t.key_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(t.names.cert, " and ", t.names.key,
                                                     " go together (the client's certificate "
                                                     "and key)"));
    }
    for (auto [name, path, out] : {std::tuple{&t.names.cert, &t.cert_file, &c->cert_},
                                   std::tuple{&t.names.key, &t.key_file, &c->key_},
                                   std::tuple{&t.names.ca, &t.ca_file, &c->ca_}}) {
      if (path->empty()) continue;
      absl::StatusOr<std::string> pem = ReadFile(*name, *path);
      if (!pem.ok()) return pem.status();
      *out = *std::move(pem);
    }
    if (absl::Status st = CheckPem(t, c->cert_, c->key_, c->ca_); !st.ok()) return st;
  }
  for (const Address& a : c->addresses_) {
    auto n = std::make_unique<Node>();
    n->addr = a;
    grpc::ChannelArguments args;
    // Reconnect soon to a node that comes back (gRPC's default backoff grows
    // to two minutes). Its minimum, the time a connection attempt may take,
    // stays at gRPC's 20 s: a TLS handshake over a slow path needs it.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    if (a.unix_socket) {
      n->channel = grpc::CreateCustomChannel(a.target, grpc::InsecureChannelCredentials(), args);
    } else {
      grpc::SslCredentialsOptions opts;
      opts.pem_root_certs = c->ca_;  // empty: the system's roots
      opts.pem_private_key = c->key_;
      opts.pem_cert_chain = c->cert_;
      if (!t.server_name.empty()) args.SetSslTargetNameOverride(t.server_name);
      n->channel = grpc::CreateCustomChannel(a.target, grpc::SslCredentials(opts), args);
    }
    n->stub = v1::Control::NewStub(n->channel);
    c->nodes_.push_back(std::move(n));
  }
  return c;
}

PairClient::~PairClient() = default;

std::string PairClient::Unreachable(int index, const grpc::Status& st) const {
  const Address& addr = nodes_[index]->addr;
  const TlsOptions::Names& names = options_.tls.names;
  std::string detail = st.error_message();
  std::replace(detail.begin(), detail.end(), '\n', ' ');
  std::string d = absl::AsciiStrToLower(detail);
  bool tls = !addr.unix_socket &&
             (absl::StrContains(d, "ssl") || absl::StrContains(d, "handshake") ||
              absl::StrContains(d, "certificate") || absl::StrContains(d, "peer name") ||
              absl::StrContains(d, "socket closed") || absl::StrContains(d, "connection reset") ||
              absl::StrContains(d, "alert"));
  if (!tls) return absl::StrCat("cannot reach tandem-control at ", addr.text, ": ", detail);
  std::string why;
  if (absl::StrContains(d, "certificate verify failed")) {
    why = ca_.empty()
              ? absl::StrCat("its certificate is not issued by a CA this system trusts (give ",
                             names.ca, ")")
              : absl::StrCat("its certificate is not issued by the CA of ", names.ca);
  } else if (absl::StrContains(d, "peer name")) {
    why = absl::StrCat("its certificate is not issued to that name (see ", names.server_name, ")");
  } else if (cert_.empty()) {
    why =
        absl::StrCat("it requires a client certificate and none was given (", names.give_cert, ")");
  } else {
    why = "it closed the connection: it takes only client certificates issued by its [api] tls_ca";
  }
  return absl::StrCat("TLS handshake with tandem-control at ", addr.text, " failed: ", why, " (",
                      detail, ")");
}

grpc::Status PairClient::Explain(int index, const grpc::Status& st) const {
  if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return st;
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, Unreachable(index, st));
}

std::chrono::system_clock::time_point PairClient::CallDeadline(const CallOptions& opts) const {
  auto timeout = opts.timeout.count() > 0 ? opts.timeout : options_.call_timeout;
  return std::chrono::system_clock::now() + timeout;
}

std::string PairClient::active_address() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (nodes_.size() == 1) return nodes_[0]->addr.text;
  return active_ >= 0 ? nodes_[active_]->addr.text : std::string();
}

void PairClient::Forget(int index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (active_ == index) active_ = -1;
}

bool PairClient::Connect(int index, Clock::time_point deadline) {
  grpc::Channel& ch = *nodes_[index]->channel;
  grpc_connectivity_state state = ch.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!ch.WaitForStateChange(state, SystemDeadline(deadline))) return false;
    state = ch.GetState(true);
  }
  return true;
}

bool PairClient::StillThere(int index, Clock::time_point deadline) {
  Node& node = *nodes_[index];
  const Clock::time_point answered{Clock::duration(node.answered_ns.load(std::memory_order_relaxed))};
  if (Clock::now() - answered < options_.recheck_after) return true;
  grpc::ClientContext ctx;
  ctx.set_deadline(SystemDeadline(std::min(deadline, Clock::now() + options_.probe_timeout)));
  v1::NodeStatus status;
  if (!node.stub->GetStatus(&ctx, v1::GetStatusRequest(), &status).ok()) return false;
  node.Answered();
  return true;
}

grpc::Status PairClient::Active(Clock::time_point deadline, bool fresh, int* index,
                                v1::NodeStatus* status, const WatchStop* stop) {
  auto cached = [&]() {
    std::lock_guard<std::mutex> lock(mu_);
    *index = active_;
    return active_ >= 0;
  };
  if (!fresh && cached()) return grpc::Status::OK;
  std::lock_guard<std::mutex> one(discover_mu_);
  if (!fresh && cached()) return grpc::Status::OK;  // another thread found it meanwhile
  const size_t n = nodes_.size();
  std::map<std::string, std::string> errors;  // why a node did not answer, by address
  for (;;) {
    std::vector<Probe> probes(n);
    std::vector<grpc::Status> sts(n);
    auto probe = [&](size_t i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + options_.probe_timeout);
      sts[i] = nodes_[i]->stub->GetStatus(&ctx, v1::GetStatusRequest(), &probes[i].status);
      probes[i].answered = sts[i].ok();
      if (probes[i].answered) nodes_[i]->Answered();
    };
    // Both at once: a hung node costs one probe_timeout, not one per node.
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(probe, i);
    probe(0);
    for (std::thread& t : threads) t.join();
    for (size_t i = 0; i < n; ++i) {
      const std::string& text = nodes_[i]->addr.text;
      if (sts[i].ok()) {
        errors.erase(text);
      } else if (sts[i].error_code() == grpc::StatusCode::UNAVAILABLE) {
        errors[text] = Unreachable(static_cast<int>(i), sts[i]);
      } else {
        errors[text] =
            absl::StrCat(text, ": ", CodeName(sts[i].error_code()), ": ", sts[i].error_message());
      }
    }
    int best = ChooseActive(probes);
    if (best >= 0) {
      std::lock_guard<std::mutex> lock(mu_);
      active_ = best;
      *index = best;
      if (status) *status = std::move(probes[best].status);
      return grpc::Status::OK;
    }
    if (stop && stop->stopped()) return grpc::Status(grpc::StatusCode::CANCELLED, "stopped");
    if (Clock::now() + options_.probe_interval >= deadline) {
      std::vector<std::string> texts;
      for (const auto& node : nodes_) texts.push_back(node->addr.text);
      std::string why;
      for (const auto& [addr, e] : errors) absl::StrAppend(&why, "; ", e);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("no active node among ", absl::StrJoin(texts, ","), why));
    }
    std::this_thread::sleep_for(options_.probe_interval);
  }
}

grpc::Status PairClient::FindActive() {
  if (nodes_.size() == 1) return grpc::Status::OK;
  int index;
  return Active(Clock::now() + options_.failover_timeout, true, &index, nullptr);
}

grpc::Status PairClient::Run(bool read, const CallOptions& opts, const Attempt& attempt) {
  if (nodes_.size() == 1) {
    grpc::ClientContext ctx;
    ctx.set_deadline(CallDeadline(opts));
    return Explain(0, attempt(nodes_[0]->stub.get(), &ctx));
  }
  const Clock::time_point overall = Clock::now() + options_.failover_timeout;
  for (int round = 0;; ++round) {
    // Once a refusal or a dead node was followed at once, pause between
    // rounds: a takeover takes a moment.
    if (round > 1) std::this_thread::sleep_for(options_.probe_interval);
    int i = -1;
    if (grpc::Status st = Active(overall, false, &i, nullptr); !st.ok()) return st;
    // Not connected, and cannot connect: the call would not leave, so it is
    // certainly not applied; look for the active node again.
    // Nor when the connection leads to a node that died meanwhile: the
    // check reads the socket, so gRPC sees it closed before the write goes.
    if (!Connect(i, std::min(overall, Clock::now() + options_.probe_timeout)) ||
        (!read && !StillThere(i, overall))) {
      Forget(i);
      if (Clock::now() >= overall) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("cannot reach tandem-control at ", nodes_[i]->addr.text,
                                         ": cannot connect"));
      }
      continue;
    }
    grpc::ClientContext ctx;
    const auto deadline = CallDeadline(opts);
    ctx.set_deadline(deadline);
    grpc::Status st = attempt(nodes_[i]->stub.get(), &ctx);
    if (!Transient(st)) nodes_[i]->Answered();
    if (st.ok()) return st;
    if (IsStandbyRefusal(st) || NeverSent(st)) {
      // Certainly not applied: a standby refuses before it changes anything.
      Forget(i);
    } else if (Transient(st)) {
      bool client_deadline = st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED ||
                             std::chrono::system_clock::now() >= deadline;
      if (!client_deadline) return st;  // the node's own answer (sync mode: not confirmed)
      Forget(i);
      if (!read && !opts.idempotent) {
        // The write went out and was cut off: it may have been applied.
        std::string detail = st.error_message();
        std::replace(detail.begin(), detail.end(), '\n', ' ');
        return grpc::Status(
            st.error_code(),
            absl::StrCat(
                st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                    ? "no answer in time from tandem-control at "
                    : "the call to tandem-control at ",
                nodes_[i]->addr.text,
                st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? "" : " was cut off", " (",
                detail,
                "): the write may have been applied there before; check before sending "
                "it again (the next call goes to the active node)"));
      }
    } else {
      return st;
    }
    if (Clock::now() >= overall) return Explain(i, st);
  }
}

grpc::Status PairClient::RunAny(const Attempt& attempt, std::string* answered_by) {
  std::vector<int> order;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_ >= 0) order.push_back(active_);
  }
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    if (order.empty() || order[0] != i) order.push_back(i);
  }
  grpc::Status last;
  for (int i : order) {
    grpc::ClientContext ctx;
    ctx.set_deadline(CallDeadline({}));
    grpc::Status st = attempt(nodes_[i]->stub.get(), &ctx);
    if (st.ok() || !Transient(st)) {
      if (answered_by) *answered_by = nodes_[i]->addr.text;
      return st;
    }
    Forget(i);
    last = Explain(i, st);
  }
  return last;
}

// ---- the watch ----

namespace {

// While a watch streams from one node of a pair: a node that hangs, or is cut
// off from us and its peer, ends no stream. So this asks `superseded_now`
// every `every` and cancels the stream (`ctx`) the first time it says yes.
class SupersedeMonitor {
 public:
  SupersedeMonitor(std::chrono::milliseconds every, std::function<bool()> superseded_now,
                   grpc::ClientContext* ctx)
      : thread_([this, every, superseded_now = std::move(superseded_now), ctx] {
          std::unique_lock<std::mutex> lock(mu_);
          if (every.count() <= 0) return;
          while (!cv_.wait_for(lock, every, [&] { return done_; })) {
            lock.unlock();
            bool newer = superseded_now();
            lock.lock();
            if (newer && !done_) {
              superseded_ = true;
              ctx->TryCancel();
              return;
            }
          }
        }) {}
  ~SupersedeMonitor() { Stop(); }

  // Ends the checks (before the stream's context goes); whether it cancelled
  // the stream.
  bool Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return superseded_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;        // guarded by mu_
  bool superseded_ = false;  // guarded by mu_; read after the join
  std::thread thread_;       // last: starts once the members above exist
};

}  // namespace

struct PairClient::WatchPosition {
  uint64_t log_id;
  uint64_t next;  // the change to ask for
  uint64_t have;  // the caller holds the changes up to this one
};

struct PairClient::StreamEnd {
  grpc::Status status;      // of the stream
  bool stopped = false;     // by on_change, or by the WatchStop
  bool superseded = false;  // cancelled: another node is active with a higher epoch
  bool delivered = false;   // at least one change
};

bool PairClient::NewerActive(int index, uint64_t epoch) {
  for (int j = 0; j < static_cast<int>(nodes_.size()); ++j) {
    if (j == index) continue;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.probe_timeout);
    v1::NodeStatus s;
    if (nodes_[j]->stub->GetStatus(&ctx, v1::GetStatusRequest(), &s).ok() && s.role() == "active" &&
        s.epoch() > epoch) {
      return true;
    }
  }
  return false;
}

PairClient::StreamEnd PairClient::StreamFrom(int index, uint64_t epoch, WatchPosition* pos,
                                             const ChangeFn& on_change, WatchStop* stop) {
  StreamEnd end;
  grpc::ClientContext ctx;
  if (stop && !stop->Attach(&ctx)) {
    end.stopped = true;
    return end;
  }
  std::optional<SupersedeMonitor> monitor;
  if (pair()) {
    monitor.emplace(
        options_.watch_check_interval, [this, index, epoch] { return NewerActive(index, epoch); },
        &ctx);
  }
  v1::WatchRequest req;
  req.set_log_id(pos->log_id);
  req.set_from_seq(pos->next);
  v1::Change change;
  auto reader = nodes_[index]->stub->Watch(&ctx, req);
  while (reader->Read(&change)) {
    end.delivered = true;
    pos->have = change.seq();
    pos->next = change.seq() + 1;
    pos->log_id = change.log_id();
    if (!on_change(change)) {
      end.stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  end.status = reader->Finish();
  if (monitor) end.superseded = monitor->Stop();
  if (stop) {
    stop->Detach();
    end.stopped |= stop->stopped();
  }
  return end;
}

grpc::Status PairClient::Watch(uint64_t log_id, uint64_t from_seq, const ChangeFn& on_change,
                               WatchStop* stop) {
  WatchPosition pos{log_id, from_seq, from_seq ? from_seq - 1 : 0};
  if (!pair()) {
    StreamEnd end = StreamFrom(0, 0, &pos, on_change, stop);
    return end.stopped ? grpc::Status::OK : Explain(0, end.status);
  }

  // The pair: follow the active node.
  int served = -1;  // the node whose log we follow
  Clock::time_point give_up = Clock::now() + options_.failover_timeout;
  for (;;) {
    if (stop && stop->stopped()) return grpc::Status::OK;
    int i = -1;
    v1::NodeStatus s;
    grpc::Status st = Active(give_up, true, &i, &s, stop);
    if (stop && stop->stopped()) return grpc::Status::OK;
    if (!st.ok()) return st;
    if (served < 0) {
      // The start: pin the position, so that a break before the first change
      // loses nothing ("from now" means from the active node's last change).
      if (pos.log_id == 0) pos.log_id = s.log_id();
      if (from_seq == 0 && pos.log_id == s.log_id()) pos.next = s.change_seq() + 1;
    } else if (st = CheckResume(pos.log_id, pos.have, i != served, s, &pos.next); !st.ok()) {
      return st;
    }
    served = i;

    const Clock::time_point started = Clock::now();
    StreamEnd end = StreamFrom(i, s.epoch(), &pos, on_change, stop);
    if (end.stopped) return grpc::Status::OK;
    if (!end.superseded && !Resumable(end.status)) return Explain(i, end.status);
    // The stream broke: resume on the active node, wherever it is now.
    Forget(i);
    if (end.delivered || Clock::now() - started >= options_.probe_timeout) {
      give_up = Clock::now() + options_.failover_timeout;
      continue;
    }
    if (Clock::now() >= give_up) {
      return end.status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                            absl::StrCat("the watch on tandem-control at ",
                                                         nodes_[i]->addr.text, " keeps ending"))
                             : Explain(i, end.status);
    }
    std::this_thread::sleep_for(options_.probe_interval);
  }
}

}  // namespace tandem::client
