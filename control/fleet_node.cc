#include "control/fleet_node.h"

#include <algorithm>

#include "common/log.h"

namespace tandem::control {

// Two significant digits (123456 -> 120000): a steady rate's noise costs no
// write in etcd (the registration writes a record only when it changed).
uint64_t TwoDigits(uint64_t v) {
  uint64_t scale = 1;
  while (v / scale >= 100) scale *= 10;
  return v / scale * scale;
}

absl::StatusOr<std::unique_ptr<FleetNode>> FleetNode::Start(Core& core) {
  const FleetConfig& f = core.config().fleet;
  std::unique_ptr<FleetNode> n(new FleetNode(core));
  fleet::EtcdOptions eo;
  eo.endpoints = f.etcd;
  eo.tls_ca = f.tls_ca_pem;
  eo.tls_cert = f.tls_cert_pem;
  eo.tls_key = f.tls_key_pem;
  // One step of the registration (a renewal) never waits past the lease's
  // half life, nor past 2 s.
  eo.retry_timeout = std::chrono::milliseconds(std::min<uint64_t>(2000, f.lease_ttl_s * 500));
  auto etcd = fleet::EtcdClient::Create(eo);
  if (!etcd.ok()) return etcd.status();
  n->etcd_ = *std::move(etcd);
  fleet::RegistrationOptions ro;
  ro.refresh = std::chrono::milliseconds(f.refresh_ms);
  ro.lease_ttl_s = static_cast<int64_t>(f.lease_ttl_s);
  ro.keepalive = std::chrono::milliseconds(f.lease_ttl_s * 1000 / 3);
  n->registration_ = std::make_unique<fleet::Registration>(n->etcd_.get(),
                                                           fleet::Keys(f.prefix), ro);
  if (absl::Status st = n->registration_->Start(n->Record()); !st.ok()) return st;
  n->thread_ = std::thread([p = n.get()] { p->Loop(); });
  log::Logf(log::Level::kNotice, "fleet: registering %s/%s in etcd at %s", f.pair_id, f.node_id,
            f.etcd.front());
  return n;
}

FleetNode::~FleetNode() { Stop(true); }

void FleetNode::Stop(bool leave) {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (registration_) registration_->Stop(leave);
}

fleet::v1::NodeRecord FleetNode::Record() {
  const FleetConfig& f = core_.config().fleet;
  v1::NodeStatus s;
  (void)core_.GetStatus(v1::GetStatusRequest(), &s);  // never fails: a read of the tables
  fleet::v1::NodeRecord r;
  r.set_pair_id(f.pair_id);
  r.set_node_id(f.node_id);
  r.set_data_center(f.data_center);
  r.set_api(f.api);
  r.set_role(s.role());
  r.set_epoch(s.epoch());
  for (const std::string& v : s.vips()) r.add_vips(v);
  r.mutable_capacity()->set_legs(f.legs);
  r.mutable_capacity()->set_meetings(f.meetings);
  r.mutable_load()->set_legs(s.legs());
  r.mutable_load()->set_meetings(s.meetings());
  // Packets/s received by the switch since the last look; a switch that
  // restarted (its counters from zero) reads as 0 for one refresh.
  auto now = std::chrono::steady_clock::now();
  if (last_at_ != std::chrono::steady_clock::time_point{} && s.rx_packets() >= last_packets_) {
    double secs = std::chrono::duration<double>(now - last_at_).count();
    if (secs > 0) {
      r.mutable_load()->set_packets_per_second(
          TwoDigits(static_cast<uint64_t>(static_cast<double>(s.rx_packets() - last_packets_) / secs)));
    }
  }
  last_packets_ = s.rx_packets();
  last_at_ = now;
  return r;
}

void FleetNode::Loop() {
  auto every = std::chrono::milliseconds(core_.config().fleet.refresh_ms);
  std::unique_lock<std::mutex> l(mu_);
  while (!wake_.wait_for(l, every, [this] { return stop_; })) {
    l.unlock();
    fleet::v1::NodeRecord r = Record();
    if (absl::Status st = registration_->Publish(r); !st.ok()) {
      log::Logf(log::Level::kErr, "fleet: %s", st.message());
    }
    // Logged at each change only: an etcd outage is one line, not one a second.
    fleet::Registration::Status rs = registration_->status();
    if (rs.last_error != last_error_) {
      if (rs.last_error.empty()) {
        log::Logf(log::Level::kNotice, "fleet: registered again in etcd");
      } else {
        log::Logf(log::Level::kWarning, "fleet: not registered: %s", rs.last_error);
      }
      last_error_ = rs.last_error;
    }
    l.lock();
  }
}

}  // namespace tandem::control
