#include "control/fleet/etcd.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tandem::fleet {

namespace pb = ::etcdserverpb;
using Clock = std::chrono::steady_clock;

// One channel to an endpoint and its stubs. Replaced whole, never changed: an
// attempt keeps the one it started with.
struct EtcdClient::Endpoint {
  std::string name;  // as given
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
};

// An endpoint as configured, and the channel in use for it.
struct EtcdClient::Member {
  std::string name, target;
  std::mutex mu;
  std::shared_ptr<Endpoint> current;     // guarded by mu
  Clock::time_point unanswered_since{};  // guarded by mu; zero: answered
};

namespace {

absl::Status FromGrpc(const grpc::Status& st) {
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
}

bool Retryable(const grpc::Status& st) {
  // etcd answers UNKNOWN "context deadline exceeded" when the request's
  // deadline passed inside it (e.g. waiting for a new leader).
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         (st.error_code() == grpc::StatusCode::UNKNOWN &&
          absl::StrContains(st.error_message(), "context deadline exceeded"));
}

bool TimedOut(const grpc::Status& st) { return st.error_code() != grpc::StatusCode::UNAVAILABLE; }

// The smallest key greater than every key that starts with `prefix`.
std::string PrefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

KeyValue FromPb(const mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.lease()};
}

RangeResult FromPb(const pb::RangeResponse& r) {
  RangeResult out;
  out.revision = r.header().revision();
  for (const auto& kv : r.kvs()) out.kvs.push_back(FromPb(kv));
  return out;
}

void SetPrefixRange(absl::string_view prefix, pb::RangeRequest* req) {
  req->set_key(std::string(prefix));
  req->set_range_end(PrefixEnd(prefix));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseEndpoints(absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("empty etcd endpoint in '", list, "'"));
    }
    out.emplace_back(part);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const EtcdOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("etcd TLS: a client certificate needs its key, and a key its certificate");
  }
  const bool tls = !options.tls_ca.empty();
  if (!tls && !options.tls_cert.empty()) {
    return absl::InvalidArgumentError("etcd TLS: a client certificate needs the CA of etcd's servers");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (tls) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = options.tls_ca;
    o.pem_cert_chain = options.tls_cert;
    o.pem_private_key = options.tls_key;
    creds = grpc::SslCredentials(o);
  }
  std::unique_ptr<EtcdClient> c(new EtcdClient());
  c->options_ = options;
  c->creds_ = creds;
  for (const std::string& given : options.endpoints) {
    absl::string_view target = given;
    if (absl::StartsWith(target, "https://")) {
      if (!tls) {
        return absl::InvalidArgumentError(
            absl::StrCat("etcd endpoint '", given, "': https needs the CA of etcd's servers"));
      }
      target.remove_prefix(8);
    } else if (absl::StartsWith(target, "http://")) {
      if (tls) {
        return absl::InvalidArgumentError(
            absl::StrCat("etcd endpoint '", given, "': http with TLS configured"));
      }
      target.remove_prefix(7);
    }
    while (!target.empty() && target.back() == '/') target.remove_suffix(1);
    size_t colon = target.rfind(':');
    uint32_t port = 0;
    if (target.empty() || colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(target.substr(colon + 1), &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd endpoint '", given, "': want HOST:PORT or http://HOST:PORT"));
    }
    auto m = std::make_unique<Member>();
    m->name = given;
    m->target = std::string(target);
    m->current = c->Connect(*m);
    c->endpoints_.push_back(given);
    c->members_.push_back(std::move(m));
  }
  return c;
}

std::shared_ptr<EtcdClient::Endpoint> EtcdClient::Connect(const Member& m) const {
  grpc::ChannelArguments args;
  // A member that was down is tried again within a second of its return,
  // not after gRPC's default reconnect back-off (up to two minutes).
  // gRPC also takes the minimum back-off as the time a connection attempt
  // gets: at the default 20 s one attempt toward a silent member lasts 20 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto ep = std::make_shared<Endpoint>();
  ep->name = m.name;
  ep->channel = grpc::CreateCustomChannel(m.target, creds_, args);
  ep->kv = pb::KV::NewStub(ep->channel);
  ep->lease = pb::Lease::NewStub(ep->channel);
  ep->watch = pb::Watch::NewStub(ep->channel);
  return ep;
}

std::shared_ptr<EtcdClient::Endpoint> EtcdClient::Current(Member& m) const {
  std::lock_guard<std::mutex> lock(m.mu);
  return m.current;
}

// A channel whose first connection attempts met etcd while it was starting
// kept failing them ("tcp handshaker shutdown", "timed out before receiving
// SETTINGS frame") for as long as it was tried, 30 s and more, while a new
// channel connected at once (gRPC 1.51 against etcd 3.4;
// EtcdStartTest.ClientThatStartedFirstConnectsOnceEtcdServes). So a member
// that has not answered for kRenewAfter gets a new channel, and again after
// each further kRenewAfter without an answer.
void EtcdClient::Note(Member& m, bool answered) {
  constexpr auto kRenewAfter = std::chrono::seconds(2);
  std::lock_guard<std::mutex> lock(m.mu);
  const Clock::time_point now = Clock::now();
  if (answered) {
    m.unanswered_since = {};
  } else if (m.unanswered_since == Clock::time_point{}) {
    m.unanswered_since = now;
  } else if (now - m.unanswered_since >= kRenewAfter) {
    m.current = Connect(m);
    m.unanswered_since = now;
    renewals_.fetch_add(1, std::memory_order_relaxed);
  }
}

EtcdClient::~EtcdClient() = default;

absl::Status EtcdClient::Run(const std::string& what, const Attempt& attempt) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + options_.retry_timeout;
  const size_t n = members_.size();
  std::vector<std::string> last_error(n);
  std::chrono::milliseconds backoff = options_.backoff_initial;
  thread_local std::minstd_rand jitter(std::random_device{}());
  int attempts = 0;
  for (;;) {
    const size_t first = preferred_.load(std::memory_order_relaxed) % n;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (first + k) % n;
      Member& member = *members_[i];
      std::shared_ptr<Endpoint> held = Current(member);
      Endpoint& ep = *held;
      grpc::ClientContext ctx;
      // The last attempts get what is left of retry_timeout, but at least
      // 100 ms: less would fail without a real try.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      // (gRPC takes deadlines on the system clock only.)
      ctx.set_deadline(
          std::chrono::system_clock::now() +
          std::min(options_.call_timeout, std::max(left, std::chrono::milliseconds(100))));
      ++attempts;
      grpc::Status st = attempt(ep, &ctx);
      Note(member, !Retryable(st));
      if (st.ok()) {
        preferred_.store(i, std::memory_order_relaxed);
        return absl::OkStatus();
      }
      if (!Retryable(st)) {
        return absl::Status(FromGrpc(st).code(),
                            absl::StrCat("etcd ", what, " at ", ep.name, ": ", st.error_message()));
      }
      last_error[i] = TimedOut(st)
                          ? absl::StrCat("no answer within ", options_.call_timeout.count(), " ms")
                          : st.error_message();
      if (Clock::now() >= deadline) break;
    }
    if (Clock::now() >= deadline) break;
    auto pause = std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(jitter));
    pause = std::min(
        pause, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    std::this_thread::sleep_for(pause);
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
  std::vector<std::string> reasons;
  for (size_t i = 0; i < n; ++i) {
    if (!last_error[i].empty()) reasons.push_back(absl::StrCat(endpoints_[i], ": ", last_error[i]));
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  return absl::UnavailableError(
      absl::StrCat("etcd unreachable: ", what, " failed on every endpoint for ", ms, " ms (",
                   attempts, " attempts); ", absl::StrJoin(reasons, "; ")));
}

absl::StatusOr<std::optional<KeyValue>> EtcdClient::Get(absl::string_view key) {
  pb::RangeRequest req;
  req.set_key(std::string(key));
  pb::RangeResponse resp;
  absl::Status st = Run(absl::StrCat("get ", key), [&](Endpoint& ep, grpc::ClientContext* ctx) {
    return ep.kv->Range(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  if (resp.kvs_size() == 0) return std::optional<KeyValue>();
  return std::optional<KeyValue>(FromPb(resp.kvs(0)));
}

absl::StatusOr<RangeResult> EtcdClient::GetPrefix(absl::string_view prefix) {
  pb::RangeRequest req;
  SetPrefixRange(prefix, &req);
  pb::RangeResponse resp;
  absl::Status st =
      Run(absl::StrCat("range ", prefix),
          [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Range(ctx, req, &resp); });
  if (!st.ok()) return st;
  return FromPb(resp);
}

absl::StatusOr<std::vector<RangeResult>> EtcdClient::ReadAll(const std::vector<Read>& reads) {
  // A transaction without compares runs its success branch: every range at
  // the same revision.
  pb::TxnRequest req;
  std::vector<std::string> names;
  for (const Read& r : reads) {
    pb::RangeRequest* range = req.add_success()->mutable_request_range();
    if (r.prefix) {
      SetPrefixRange(r.key, range);
    } else {
      range->set_key(r.key);
    }
    names.push_back(r.prefix ? r.key + "*" : r.key);
  }
  pb::TxnResponse resp;
  absl::Status st =
      Run(absl::StrCat("read ", absl::StrJoin(names, " ")),
          [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, req, &resp); });
  if (!st.ok()) return st;
  std::vector<RangeResult> out;
  for (const auto& op : resp.responses()) {
    out.push_back(FromPb(op.response_range()));
    out.back().revision = resp.header().revision();
  }
  if (out.size() != reads.size()) {
    return absl::InternalError(
        absl::StrCat("etcd answered ", out.size(), " ranges for ", reads.size()));
  }
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(absl::string_view key, absl::string_view value,
                                        int64_t lease) {
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  absl::Status st = Run(absl::StrCat("put ", key), [&](Endpoint& ep, grpc::ClientContext* ctx) {
    return ep.kv->Put(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp.header().revision();
}

absl::StatusOr<int64_t> EtcdClient::Delete(absl::string_view key) {
  pb::DeleteRangeRequest req;
  req.set_key(std::string(key));
  pb::DeleteRangeResponse resp;
  absl::Status st = Run(absl::StrCat("delete ", key), [&](Endpoint& ep, grpc::ClientContext* ctx) {
    return ep.kv->DeleteRange(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp.deleted();
}

absl::StatusOr<CasResult> EtcdClient::CompareAndPut(absl::string_view key, absl::string_view value,
                                                    int64_t expected_mod_revision, int64_t lease) {
  pb::TxnRequest req;
  pb::Compare* cmp = req.add_compare();
  cmp->set_key(std::string(key));
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_target(pb::Compare::MOD);
  cmp->set_mod_revision(expected_mod_revision);
  pb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(std::string(key));
  put->set_value(std::string(value));
  put->set_lease(lease);
  req.add_failure()->mutable_request_range()->set_key(std::string(key));
  pb::TxnResponse resp;
  absl::Status st =
      Run(absl::StrCat("compare-and-put ", key),
          [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, req, &resp); });
  if (!st.ok()) return st;
  CasResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  if (out.succeeded) {
    KeyValue kv{std::string(key), std::string(value), 0, out.revision, lease};
    kv.create_revision = expected_mod_revision == 0 ? out.revision : 0;  // 0: not known here
    out.current = kv;
  } else if (resp.responses_size() == 1 && resp.responses(0).response_range().kvs_size() > 0) {
    out.current = FromPb(resp.responses(0).response_range().kvs(0));
  }
  return out;
}

absl::StatusOr<pb::TxnResponse> EtcdClient::Txn(const std::string& what,
                                                const pb::TxnRequest& request) {
  pb::TxnResponse resp;
  absl::Status st = Run(what, [&](Endpoint& ep, grpc::ClientContext* ctx) {
    resp.Clear();
    return ep.kv->Txn(ctx, request, &resp);
  });
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<Lease> EtcdClient::GrantLease(int64_t ttl_s) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  pb::LeaseGrantResponse resp;
  absl::Status st = Run("lease grant", [&](Endpoint& ep, grpc::ClientContext* ctx) {
    return ep.lease->LeaseGrant(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  if (!resp.error().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("etcd lease grant: ", resp.error()));
  }
  return Lease{resp.id(), resp.ttl()};
}

absl::StatusOr<int64_t> EtcdClient::KeepAlive(int64_t lease_id) {
  pb::LeaseKeepAliveRequest req;
  req.set_id(lease_id);
  pb::LeaseKeepAliveResponse resp;
  // The keep-alive call is a stream; one request, one answer.
  absl::Status st =
      Run(absl::StrCat("lease keep-alive ", lease_id), [&](Endpoint& ep, grpc::ClientContext* ctx) {
        auto stream = ep.lease->LeaseKeepAlive(ctx);
        bool got = stream->Write(req) && stream->Read(&resp);
        stream->WritesDone();
        if (got) ctx->TryCancel();
        grpc::Status s = stream->Finish();
        if (got) return grpc::Status::OK;
        return s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "keep-alive stream closed without an answer")
                      : s;
      });
  if (!st.ok()) return st;
  if (resp.ttl() <= 0) {
    return absl::NotFoundError(absl::StrCat("etcd lease ", lease_id, " expired"));
  }
  return resp.ttl();
}

absl::Status EtcdClient::RevokeLease(int64_t lease_id) {
  pb::LeaseRevokeRequest req;
  req.set_id(lease_id);
  pb::LeaseRevokeResponse resp;
  absl::Status st =
      Run(absl::StrCat("lease revoke ", lease_id), [&](Endpoint& ep, grpc::ClientContext* ctx) {
        return ep.lease->LeaseRevoke(ctx, req, &resp);
      });
  if (absl::IsNotFound(st)) return absl::OkStatus();
  return st;
}

absl::StatusOr<bool> EtcdClient::WaitDeleted(absl::string_view key, int64_t after_revision,
                                             std::chrono::milliseconds timeout) {
  Member& member = *members_[preferred_.load() % members_.size()];
  std::shared_ptr<Endpoint> held = Current(member);
  Endpoint& ep = *held;
  grpc::ClientContext ctx;
  const auto deadline = std::chrono::system_clock::now() + timeout;
  ctx.set_deadline(deadline);
  pb::WatchRequest req;
  pb::WatchCreateRequest* create = req.mutable_create_request();
  create->set_key(std::string(key));
  create->set_start_revision(after_revision + 1);
  create->add_filters(pb::WatchCreateRequest::NOPUT);  // deletions only
  auto stream = ep.watch->Watch(&ctx);
  bool deleted = false, canceled = false;
  std::string why;
  pb::WatchResponse resp;
  if (stream->Write(req)) {
    while (!deleted && !canceled && stream->Read(&resp)) {
      if (resp.compact_revision() != 0) deleted = true;  // read again
      for (const auto& ev : resp.events()) deleted |= ev.type() == mvccpb::Event::DELETE;
      if (resp.canceled() && !deleted) {
        canceled = true;
        why = resp.cancel_reason();
      }
    }
  }
  // Only a stream we leave open is cancelled: one that ended at its deadline
  // and was cancelled as well could report CANCELLED, which read as a
  // broken watch and stopped the watching until the next acquisition.
  if (deleted || canceled) ctx.TryCancel();
  grpc::Status st = stream->Finish();
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE) Note(member, false);
  if (deleted) return true;
  if (canceled) {
    return absl::AbortedError(
        absl::StrCat("etcd watch on ", key, " at ", ep.name, " canceled: ", why));
  }
  // The timeout as the client saw it, or as etcd did (UNKNOWN "context
  // deadline exceeded", seen in a sanitizer build's run).
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      (st.error_code() == grpc::StatusCode::UNKNOWN &&
       absl::StrContains(st.error_message(), "context deadline exceeded")) ||
      (st.error_code() == grpc::StatusCode::CANCELLED &&
       std::chrono::system_clock::now() >= deadline)) {
    return false;
  }
  return absl::Status(
      static_cast<absl::StatusCode>(st.error_code()),
      absl::StrCat("etcd watch on ", key, " at ", ep.name, ": ", st.error_message()));
}

}  // namespace tandem::fleet
