#include "control/fleet_witness.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "control/witness_link.h"

namespace tandem::control {

namespace pb = ::etcdserverpb;

namespace {
// How often the thread looks at the pair: a takeover waiting for the key is
// tried within this of becoming due (then every renew_interval).
constexpr absl::Duration kStep = absl::Milliseconds(20);

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }
}  // namespace

FleetWitness::FleetWitness(const FleetConfig& f, std::function<absl::Time()> now)
    : timing_(WitnessTiming(f)),
      node_(f.node_id),
      leader_key_(fleet::Keys(f.prefix).Leader(f.pair_id)),
      epoch_key_(fleet::Keys(f.prefix).Epoch(f.pair_id)),
      now_(std::move(now)),
      witness_(timing_) {}

absl::StatusOr<std::unique_ptr<FleetWitness>> FleetWitness::Start(
    const FleetConfig& f, std::function<absl::Time()> now) {
  if (auto st = fleet::CheckWitnessConfig(WitnessTiming(f)); !st.ok()) return st;
  std::unique_ptr<FleetWitness> w(new FleetWitness(f, std::move(now)));
  fleet::EtcdOptions eo;
  eo.endpoints = f.etcd;
  eo.tls_ca = f.tls_ca_pem;
  eo.tls_cert = f.tls_cert_pem;
  eo.tls_key = f.tls_key_pem;
  // One step (e.g. a renewal) never takes more than a renewal interval,
  // every endpoint tried: the next renewal is due then.
  eo.call_timeout = std::chrono::milliseconds(Millis(w->timing_.renew_interval));
  eo.retry_timeout = eo.call_timeout;
  eo.backoff_initial = std::chrono::milliseconds(20);
  eo.backoff_max = std::chrono::milliseconds(100);
  auto etcd = fleet::EtcdClient::Create(eo);
  if (!etcd.ok()) return etcd.status();
  w->etcd_ = *std::move(etcd);
  w->thread_ = std::thread([p = w.get()] { p->Loop(); });
  log::Logf(log::Level::kNotice,
            "fleet: witness on %s (lease %d s, renewed every %d ms, step-down margin %d ms)",
            w->leader_key_, static_cast<int>(absl::ToInt64Seconds(w->timing_.ttl)),
            static_cast<int>(Millis(w->timing_.renew_interval)),
            static_cast<int>(Millis(w->timing_.margin)));
  return w;
}

FleetWitness::~FleetWitness() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (lease_ != 0) (void)etcd_->RevokeLease(lease_);  // the key goes now, not at expiry
}

void FleetWitness::See(const fleet::PairSight& sight) {
  std::lock_guard<std::mutex> l(mu_);
  // A takeover that became due wakes the thread at once.
  const bool wake = sight.takeover_due && !sight_.takeover_due;
  sight_ = sight;
  seen_ = true;
  if (wake) {
    poke_ = true;
    wake_.notify_all();
  }
}

mirror::WitnessInput FleetWitness::Input() const {
  std::lock_guard<std::mutex> l(mu_);
  return InputOf(witness_, timing_.guard);
}

FleetWitness::Status FleetWitness::status() const {
  std::lock_guard<std::mutex> l(mu_);
  Status s = status_;
  s.holds = witness_.holds(now_());
  s.key_epoch = witness_.key_epoch();
  return s;
}

void FleetWitness::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    wake_.wait_for(l, absl::ToChronoMilliseconds(kStep), [this] { return stop_ || poke_; });
    if (stop_) return;
    poke_ = false;
    if (!seen_) continue;
    fleet::PairSight sight = sight_;
    const absl::Time now = now_();
    fleet::WitnessVerdict v = witness_.Decide(sight, now);
    if (v.action == fleet::WitnessAction::kNone) {
      // A takeover waiting for the key: watch it until the next attempt.
      if (watch_after_ != 0 && sight.takeover_due && !sight.active && !witness_.holds(now)) {
        Watch(l, witness_.last_attempt() + timing_.renew_interval);
      }
      continue;
    }
    l.unlock();
    Act(sight, v);
    l.lock();
  }
}

void FleetWitness::Watch(std::unique_lock<std::mutex>& l, absl::Time until) {
  const absl::Duration left = until - now_();
  if (left <= absl::ZeroDuration()) return;
  const int64_t after = watch_after_;
  l.unlock();
  absl::StatusOr<bool> gone = etcd_->WaitDeleted(
      leader_key_, after, std::chrono::milliseconds(std::max<int64_t>(1, Millis(left))));
  l.lock();
  if (!gone.ok()) {
    watch_after_ = 0;  // attempts every renew_interval until the next one finds it held
    l.unlock();
    Failed(gone.status());
    l.lock();
    return;
  }
  if (*gone) {
    watch_after_ = 0;
    witness_.KeyGone();
    status_.watched_deletions++;
    poke_ = true;
  }
}

void FleetWitness::Act(const fleet::PairSight& sight, const fleet::WitnessVerdict& v) {
  {
    std::lock_guard<std::mutex> l(mu_);
    witness_.Attempted(now_());
  }
  switch (v.action) {
    case fleet::WitnessAction::kAcquire:
      Acquire(sight, v.acquire_epoch);
      break;
    case fleet::WitnessAction::kRenew:
      Renew();
      break;
    case fleet::WitnessAction::kRelease:
      Release();
      break;
    case fleet::WitnessAction::kNone:
      break;
  }
}

void FleetWitness::Failed(const absl::Status& st) {
  std::string e(st.message());
  std::lock_guard<std::mutex> l(mu_);
  if (e == status_.last_error) return;  // logged at each change only
  status_.last_error = e;
  if (!e.empty()) log::Logf(log::Level::kWarning, "fleet: witness: %s", e);
}

absl::StatusOr<int64_t> FleetWitness::FreshLease(absl::Time* sent) {
  if (lease_ != 0) {
    *sent = now_();
    absl::StatusOr<int64_t> ttl = etcd_->KeepAlive(lease_);
    if (ttl.ok()) return lease_;
    if (!absl::IsNotFound(ttl.status())) return ttl.status();
    lease_ = 0;
  }
  *sent = now_();
  auto lease = etcd_->GrantLease(absl::ToInt64Seconds(timing_.ttl));
  if (!lease.ok()) return lease.status();
  lease_ = lease->id;
  return lease_;
}

void FleetWitness::Acquire(const fleet::PairSight& sight, uint64_t epoch) {
  absl::Time sent;
  absl::StatusOr<int64_t> lease = FreshLease(&sent);
  if (!lease.ok()) return Failed(lease.status());
  auto read = etcd_->ReadAll({{leader_key_}, {epoch_key_}});
  if (!read.ok()) return Failed(read.status());
  uint64_t stored = 0;
  int64_t stored_rev = 0;
  if (!(*read)[1].kvs.empty()) {
    const fleet::KeyValue& kv = (*read)[1].kvs[0];
    stored_rev = kv.mod_revision;
    if (!absl::SimpleAtoi(kv.value, &stored)) {
      return Failed(absl::DataLossError(absl::StrCat(epoch_key_, " holds \"", kv.value,
                                                     "\", not an epoch")));
    }
  }
  if (!(*read)[0].kvs.empty()) {
    const fleet::KeyValue& kv = (*read)[0].kvs[0];
    fleet::v1::LeaderRecord held;
    (void)fleet::FromJson(kv.value, &held);
    std::lock_guard<std::mutex> l(mu_);
    if (kv.lease == *lease && held.node_id() == node_) {
      // Ours: the answer to an earlier acquisition was lost.
      witness_.Acquired(held.epoch(), sent);
      status_.acquisitions++;
    } else {
      witness_.SawStoredEpoch(std::max(stored, held.epoch()));
      watch_after_ = (*read)[0].revision;
    }
    return;
  }
  // An active node keeps its epoch, unless a higher one was taken: then
  // someone took over and it must not hold the key again. A standby goes
  // above everything seen.
  if (sight.active && stored > epoch) {
    std::lock_guard<std::mutex> l(mu_);
    witness_.SawStoredEpoch(stored);
    return;
  }
  if (!sight.active) epoch = std::max({epoch, stored + 1, sight.epoch + 1});
  fleet::v1::LeaderRecord rec;
  rec.set_node_id(node_);
  rec.set_epoch(epoch);
  pb::TxnRequest txn;
  pb::Compare* absent = txn.add_compare();
  absent->set_key(leader_key_);
  absent->set_target(pb::Compare::VERSION);
  absent->set_result(pb::Compare::EQUAL);
  absent->set_version(0);
  pb::Compare* unchanged = txn.add_compare();
  unchanged->set_key(epoch_key_);
  unchanged->set_target(pb::Compare::MOD);
  unchanged->set_result(pb::Compare::EQUAL);
  unchanged->set_mod_revision(stored_rev);
  pb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(leader_key_);
  put->set_value(fleet::ToJson(rec));
  put->set_lease(*lease);
  pb::PutRequest* put_epoch = txn.add_success()->mutable_request_put();
  put_epoch->set_key(epoch_key_);
  put_epoch->set_value(absl::StrCat(epoch));
  auto r = etcd_->Txn(absl::StrCat("acquire ", leader_key_), txn);
  if (!r.ok()) return Failed(r.status());
  Failed(absl::OkStatus());
  std::lock_guard<std::mutex> l(mu_);
  if (r->succeeded()) {
    witness_.Acquired(epoch, sent);
    status_.acquisitions++;
    log::Logf(log::Level::kNotice, "fleet: witness: %s acquired at epoch %d", leader_key_,
              static_cast<int>(epoch));
  } else {
    witness_.SawStoredEpoch(stored);  // moved meanwhile: the next try reads again
    watch_after_ = r->header().revision();
  }
}

void FleetWitness::Renew() {
  absl::Time sent = now_();
  absl::StatusOr<int64_t> ttl = etcd_->KeepAlive(lease_);
  std::unique_lock<std::mutex> l(mu_);
  if (ttl.ok()) {
    witness_.Renewed(sent);
    status_.renewals++;
    l.unlock();
    return Failed(absl::OkStatus());
  }
  status_.renew_failures++;
  if (absl::IsNotFound(ttl.status())) {
    witness_.Lost();
    status_.losses++;
    lease_ = 0;
    log::Logf(log::Level::kWarning, "fleet: witness: %s lost (lease expired)", leader_key_);
  }
  l.unlock();
  Failed(ttl.status());
}

void FleetWitness::Release() {
  absl::Status st = etcd_->RevokeLease(lease_);
  if (!st.ok()) return Failed(st);
  lease_ = 0;
  std::lock_guard<std::mutex> l(mu_);
  witness_.Lost();
  log::Logf(log::Level::kNotice, "fleet: witness: %s released", leader_key_);
}

}  // namespace tandem::control
