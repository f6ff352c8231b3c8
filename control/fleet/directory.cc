#include "control/fleet/directory.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::fleet {

using Clock = std::chrono::steady_clock;

absl::Status CheckId(absl::string_view what, absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
          c == '@' || c == '-')) {
      ok = false;
    }
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", what, " '", id, "' (want 1 to 128 of A-Z a-z 0-9 . _ : @ -)"));
}

Keys::Keys(absl::string_view prefix) : prefix_(prefix) {
  if (prefix_.empty() || prefix_.back() != '/') prefix_ += '/';
}

std::string Keys::Node(absl::string_view pair, absl::string_view node) const {
  return absl::StrCat(Pairs(), pair, "/", node);
}
std::string Keys::Drain(absl::string_view pair) const { return absl::StrCat(Drains(), pair); }
std::string Keys::Meeting(absl::string_view meeting) const {
  return absl::StrCat(Meetings(), meeting);
}

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

absl::Status FromJson(absl::string_view json, google::protobuf::Message* msg) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), msg, opts);
  if (st.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(st.message()));
}

PairState PairView::State() const {
  PairState s;
  s.pair_id = pair_id;
  s.drained = drained;
  if (const v1::NodeRecord* n = active_node()) {
    s.has_active = true;
    s.node_draining = n->draining();
    s.capacity_legs = n->capacity().legs();
    s.capacity_meetings = n->capacity().meetings();
    s.load_legs = n->load().legs();
    s.load_meetings = n->load().meetings();
  }
  return s;
}

const PairView* FleetView::Find(absl::string_view pair_id) const {
  for (const PairView& p : pairs) {
    if (p.pair_id == pair_id) return &p;
  }
  return nullptr;
}

std::vector<PairState> FleetView::States() const {
  std::vector<PairState> out;
  out.reserve(pairs.size());
  for (const PairView& p : pairs) out.push_back(p.State());
  return out;
}

FleetView BuildFleet(const Keys& keys, const RangeResult& nodes, const RangeResult& drains) {
  FleetView view;
  view.revision = std::max(nodes.revision, drains.revision);
  std::map<std::string, PairView> by_id;
  const std::string pairs_prefix = keys.Pairs();
  for (const KeyValue& kv : nodes.kvs) {
    // PREFIX/pairs/PAIR/NODE, and the record must say the same ids.
    std::vector<std::string> parts =
        absl::StrSplit(absl::string_view(kv.key).substr(pairs_prefix.size()), '/');
    v1::NodeRecord rec;
    if (parts.size() != 2 || !FromJson(kv.value, &rec).ok() || rec.pair_id() != parts[0] ||
        rec.node_id() != parts[1]) {
      view.bad_keys.push_back(kv.key);
      continue;
    }
    PairView& p = by_id[rec.pair_id()];
    p.pair_id = rec.pair_id();
    p.nodes.push_back(std::move(rec));
  }
  const std::string drain_prefix = keys.Drains();
  for (const KeyValue& kv : drains.kvs) {
    std::string pair = kv.key.substr(drain_prefix.size());
    v1::DrainRecord rec;
    if (!CheckId("pair id", pair).ok() || !FromJson(kv.value, &rec).ok()) {
      view.bad_keys.push_back(kv.key);
      continue;
    }
    // A drained pair with no node registered is still listed (as drained).
    PairView& p = by_id[pair];
    p.pair_id = pair;
    p.drained = true;
    p.drain = rec;
  }
  for (auto& [id, p] : by_id) {
    std::sort(p.nodes.begin(), p.nodes.end(), [](const v1::NodeRecord& a, const v1::NodeRecord& b) {
      return a.node_id() < b.node_id();
    });
    for (size_t i = 0; i < p.nodes.size(); ++i) {
      const v1::NodeRecord& n = p.nodes[i];
      if (n.role() != "active") continue;
      // Nodes are in id order, so on equal epochs the first (lower id) stays.
      if (p.active < 0 || n.epoch() > p.nodes[p.active].epoch()) p.active = static_cast<int>(i);
    }
    view.pairs.push_back(std::move(p));
  }
  return view;
}

absl::StatusOr<FleetView> ReadFleet(EtcdClient& etcd, const Keys& keys) {
  absl::StatusOr<std::vector<RangeResult>> r =
      etcd.ReadAll({{keys.Pairs(), true}, {keys.Drains(), true}});
  if (!r.ok()) return r.status();
  return BuildFleet(keys, (*r)[0], (*r)[1]);
}

// ---- Registration ----

Registration::Registration(EtcdClient* etcd, Keys keys, RegistrationOptions options)
    : etcd_(etcd), keys_(std::move(keys)), options_(options) {}

Registration::~Registration() { Stop(true); }

absl::Status Registration::Start(const v1::NodeRecord& record) {
  if (absl::Status st = CheckId("pair id", record.pair_id()); !st.ok()) return st;
  if (absl::Status st = CheckId("node id", record.node_id()); !st.ok()) return st;
  if (thread_.joinable()) return absl::FailedPreconditionError("registration already started");
  if (options_.lease_ttl_s < 2 || options_.keepalive.count() <= 0 ||
      options_.keepalive >= std::chrono::seconds(options_.lease_ttl_s)) {
    return absl::InvalidArgumentError(
        "registration: want lease_ttl_s >= 2 and 0 < keepalive < TTL");
  }
  key_ = keys_.Node(record.pair_id(), record.node_id());
  {
    std::lock_guard<std::mutex> l(mu_);
    record_json_ = ToJson(record);
    stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

absl::Status Registration::Publish(const v1::NodeRecord& record) {
  std::lock_guard<std::mutex> l(mu_);
  if (absl::StrCat(keys_.Node(record.pair_id(), record.node_id())) != key_) {
    return absl::InvalidArgumentError(absl::StrCat("registration of ", key_,
                                                   ": a record of another node (", record.pair_id(),
                                                   "/", record.node_id(), ")"));
  }
  record_json_ = ToJson(record);
  wake_.notify_all();
  return absl::OkStatus();
}

void Registration::Stop(bool leave) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    wake_.notify_all();
  }
  thread_.join();
  int64_t lease;
  {
    std::lock_guard<std::mutex> l(mu_);
    lease = status_.lease;
    status_.registered = false;
    status_.lease = 0;
  }
  if (leave && lease != 0) (void)etcd_->RevokeLease(lease);  // else it expires by itself
}

Registration::Status Registration::status() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}

void Registration::Fail(const absl::Status& st) {
  std::lock_guard<std::mutex> l(mu_);
  ++status_.errors;
  status_.last_error = std::string(st.message());
  if (absl::IsNotFound(st)) {
    // The lease expired (or was revoked): start over with a new one.
    status_.lease = 0;
    status_.registered = false;
    written_json_.clear();
  }
}

bool Registration::Step(Clock::time_point now) {
  int64_t lease;
  std::string want;
  {
    std::lock_guard<std::mutex> l(mu_);
    lease = status_.lease;
    want = record_json_;
  }
  if (lease == 0) {
    absl::StatusOr<Lease> g = etcd_->GrantLease(options_.lease_ttl_s);
    if (!g.ok()) return Fail(g.status()), false;
    lease = g->id;
    written_json_.clear();
    next_keepalive_ = now + options_.keepalive;
    std::lock_guard<std::mutex> l(mu_);
    status_.lease = lease;
    ++status_.grants;
  }
  if (want != written_json_ && now >= next_write_) {
    absl::StatusOr<int64_t> put = etcd_->Put(key_, want, lease);
    if (!put.ok()) return Fail(put.status()), false;
    written_json_ = want;
    next_write_ = now + options_.refresh;
    std::lock_guard<std::mutex> l(mu_);
    ++status_.writes;
    status_.registered = true;
  }
  if (now >= next_keepalive_) {
    absl::StatusOr<int64_t> ttl = etcd_->KeepAlive(lease);
    if (!ttl.ok()) return Fail(ttl.status()), false;
    next_keepalive_ = now + options_.keepalive;
    std::lock_guard<std::mutex> l(mu_);
    ++status_.keepalives;
  }
  std::lock_guard<std::mutex> l(mu_);
  status_.last_error.clear();
  return true;
}

void Registration::Loop() {
  std::chrono::milliseconds backoff(100);
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
    }
    Clock::time_point now = Clock::now();
    bool ok = Step(now);
    Clock::time_point until;
    if (ok) {
      backoff = std::chrono::milliseconds(100);
      until = std::min(next_keepalive_, now + options_.refresh);
      if (next_write_ > now) until = std::min(until, next_write_);
    } else {
      // etcd's client already retried across the endpoints: pause, then go
      // on (at most a keepalive interval, so a returning etcd is used soon).
      until = now + backoff;
      backoff = std::min(backoff * 2,
                         std::chrono::duration_cast<std::chrono::milliseconds>(options_.keepalive));
    }
    std::unique_lock<std::mutex> l(mu_);
    // A published change wakes the loop; it is written at next_write_.
    wake_.wait_until(l, until, [&] {
      return stop_ || (ok && record_json_ != written_json_ && Clock::now() >= next_write_);
    });
  }
}

}  // namespace tandem::fleet
