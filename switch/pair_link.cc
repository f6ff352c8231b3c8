#include "switch/pair_link.h"

#include <rte_ethdev.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "switch/mbuf_fields.h"

namespace tandem::sw {
namespace {

constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

}  // namespace

rte_mbuf* NewFrame(const Dataplane& dp, const uint8_t dst_mac[6], uint16_t ethertype,
                   uint16_t l3_len, uint8_t** l3) {
  rte_mbuf* m = rte_pktmbuf_alloc(dp.pool);
  if (!m) return nullptr;
  uint16_t l2 = dp.cfg.vlan ? 18 : 14;
  // Pad to the Ethernet minimum (60 bytes without FCS).
  uint16_t total = std::max<uint16_t>(l2 + l3_len, 60);
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, total));
  if (!f) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(f, 0, total);
  std::memcpy(f, dst_mac, 6);
  std::memcpy(f + 6, dp.ports[0].mac, 6);
  SetInjectPort(m, dp.ports[0].id);
  if (dp.cfg.vlan) {
    PutBe16(f + 12, kEthVlan);
    PutBe16(f + 14, dp.cfg.vlan);
    PutBe16(f + 16, ethertype);
  } else {
    PutBe16(f + 12, ethertype);
  }
  *l3 = f + l2;
  return m;
}

PairLink::PairLink(Dataplane& dp) : dp_(dp) {
  // A random boot id per start: the peer's replay guard tells our restarts
  // apart. Its low 32 bits are never 0 (an echo of 0 means "none").
  std::random_device rd;
  boot_id_ = (uint64_t(rd()) << 32) | rd() | 1;
  // net_af_packet and net_af_xdp ports report no link state of their own; the
  // kernel interface behind them does.
  const std::string& d = dp.cfg.ports[0].devargs;
  size_t at = d.find("iface=");
  if (at != std::string::npos) {
    access_iface_ = d.substr(at + 6, d.find(',', at) - (at + 6));
  }
}

uint64_t PairLink::HoldNs() const {
  return std::max<uint64_t>(300'000'000ull, 30ull * dp_.cfg.heartbeat_ms * 1000000ull);
}

bool PairLink::IsPeerAccessMac(const uint8_t mac[6]) const {
  static constexpr uint8_t kZero[6] = {};
  const uint8_t* peer = dp_.state.header().peer[0].mac;
  return std::memcmp(peer, kZero, 6) != 0 && std::memcmp(peer, mac, 6) == 0;
}

void PairLink::Receive(rte_mbuf* m, uint32_t path, uint16_t l3, uint64_t now_ns) {
  tables::PeerPath& peer = dp_.state.header().peer[path];
  if (dp_.cfg.pair_node_id == 0) {
    rte_pktmbuf_free(m);
    return;
  }
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m);
  uint8_t src[6];
  std::memcpy(src, f + 6, 6);
  auto msg = len > l3 ? ParseHeartbeat(f + l3, len - l3)
                      : absl::StatusOr<HeartbeatMsg>(absl::InvalidArgumentError("short"));
  // The cheap checks first: a forged heartbeat costs an HMAC only if it
  // names the peer, this path and a counter not yet seen.
  bool ours = msg.ok() && msg->node_id == dp_.cfg.pair_node_id;
  bool other = msg.ok() && !ours && (msg->node_id != dp_.cfg.pair_peer_node_id ||
                                     msg->path != path);
  bool ok = msg.ok() && !ours && !other && replay_[path].IsNew(*msg) &&
            DecodeHeartbeat(f + l3, len - l3, dp_.cfg.heartbeat_key).ok();
  rte_pktmbuf_free(m);
  if (ours) return;  // our own broadcast coming back: ignored, not refused
  if (other) {
    NeighTable::Write(peer, [&] { peer.frames_other++; });
    return;
  }
  if (!ok || replay_[path].Accept(*msg, boot_id_, sent_, now_ns, UnixNs()) !=
                 ReplayGuard::Result::kAccepted) {
    NeighTable::Write(peer, [&] { peer.frames_refused++; });
    return;
  }
  Accepted(*msg, path, src, now_ns);
}

void PairLink::Accepted(const HeartbeatMsg& msg, uint32_t path, const uint8_t* src_mac,
                        uint64_t now_ns) {
  tables::PeerPath& peer = dp_.state.header().peer[path];
  const uint64_t epoch = dp_.tables.epoch();
  const bool over_us = (msg.flags & tables::kHbActive) &&
                       (msg.epoch > epoch ||
                        (msg.epoch == epoch && msg.node_id < dp_.cfg.pair_node_id));
  if (over_us) {
    peer_over_us_ns_ = now_ns;
    if (dp_.tables.role() == tables::Role::kActive &&
        !dp_.hold_active.load(std::memory_order_relaxed)) {
      // The epoch decides: quiet at once, before our control plane demotes us.
      dp_.hold_active.store(true);
      hold_since_ns_ = now_ns;
      std::fprintf(stderr,
                   "tandem-switch: peer %u is active in epoch %llu (ours %llu): quiet until "
                   "demoted\n",
                   msg.node_id, static_cast<unsigned long long>(msg.epoch),
                   static_cast<unsigned long long>(epoch));
    }
  } else if (dp_.hold_active.load(std::memory_order_relaxed)) {
    dp_.hold_active.store(false);
    hold_since_ns_ = peer_over_us_ns_ = 0;
    std::fprintf(stderr, "tandem-switch: peer %u is not active over us: forwarding\n",
                 msg.node_id);
  }
  const int64_t skew = static_cast<int64_t>(msg.unix_ns - UnixNs());
  NeighTable::Write(peer, [&] {
    peer.node_id = msg.node_id;
    peer.last_heard_ns = now_ns;
    peer.epoch = msg.epoch;
    peer.position = msg.position;
    peer.flags = msg.flags;
    peer.frames_ok++;
    peer.clock_skew_ns = skew;
    if (path == 0) std::memcpy(peer.mac, src_mac, 6);
  });
}

bool PairLink::UpdateLocalHealth(uint64_t now_ns) {
  uint32_t flags = 0;
  bool workers_ok = true;
  const uint64_t stall_ns = dp_.cfg.worker_stall_ms * 1000000ull;
  for (uint32_t w = 0; w < dp_.cfg.worker_lcores.size(); ++w) {
    uint64_t hb = dp_.state.health(w).heartbeat_ns.load(std::memory_order_relaxed);
    if (hb == 0 || now_ns - std::min(now_ns, hb) > stall_ns) workers_ok = false;
  }
  if (workers_ok) flags |= tables::kHbDataPlaneOk;
  bool link = dp_.state.port(0).link_up;
  if (!access_iface_.empty()) {
    std::ifstream in("/sys/class/net/" + access_iface_ + "/operstate");
    std::string state;
    in >> state;
    link = link && (state == "up" || state == "unknown");
  }
  if (link) flags |= tables::kHbAccessLinkUp;
  return dp_.state.header().local_flags.exchange(flags, std::memory_order_relaxed) != flags;
}

void PairLink::FollowWitness(uint64_t now_ns) {
  const uint64_t until = dp_.tables.header().active_until_ns.load(std::memory_order_acquire);
  bool heard = false;
  for (const tables::PeerPath& p : dp_.state.header().peer) {
    // Our own writes (main thread): no sequence lock needed to read them.
    heard = heard || (p.last_heard_ns && now_ns - std::min(now_ns, p.last_heard_ns) < HoldNs());
  }
  const bool expired = until != 0 && now_ns >= until && !heard &&
                       dp_.tables.role() == tables::Role::kActive;
  if (expired == dp_.witness_expired.load(std::memory_order_relaxed)) return;
  dp_.witness_expired.store(expired);
  if (expired) {
    std::fprintf(stderr,
                 "tandem-switch: witness: the hold on the pair's key ended %.0f ms ago and the "
                 "peer is not heard: quiet (no VIP answered, nothing forwarded)\n",
                 double(now_ns - until) / 1e6);
  } else {
    std::fprintf(stderr, "tandem-switch: witness: %s: serving again\n",
                 heard ? "the peer is heard" : "the hold was renewed");
  }
}

void PairLink::PublishQuiet() {
  uint32_t quiet = 0;
  if (dp_.hold_active.load(std::memory_order_relaxed)) quiet |= tables::kQuietPeerActive;
  if (dp_.witness_expired.load(std::memory_order_relaxed)) quiet |= tables::kQuietWitness;
  dp_.state.header().quiet.store(quiet, std::memory_order_relaxed);
}

void PairLink::Tick(uint64_t now_ns, std::vector<rte_mbuf*>* out) {
  SendHeartbeats(now_ns, out);
  FollowWitness(now_ns);
  PublishQuiet();
  if (!dp_.hold_active.load(std::memory_order_relaxed)) return;
  if (!hold_since_ns_) hold_since_ns_ = now_ns;  // the hold of a (re)start
  bool standby = dp_.tables.role() != tables::Role::kActive;
  uint64_t last = std::max(hold_since_ns_, peer_over_us_ns_);
  if (standby || now_ns - last >= HoldNs()) {
    dp_.hold_active.store(false);
    hold_since_ns_ = peer_over_us_ns_ = 0;
    if (!standby) std::fprintf(stderr, "tandem-switch: no peer active over us heard: forwarding\n");
  }
}

void PairLink::SendHeartbeats(uint64_t now_ns, std::vector<rte_mbuf*>* out) {
  if (dp_.cfg.pair_node_id == 0) return;
  // Health is looked at every millisecond and a change goes out at once: a
  // lost access link reaches the standby in about a millisecond, not at the
  // next interval.
  if (now_ns >= next_health_ns_) {
    next_health_ns_ = now_ns + 1000000ull;
    if (UpdateLocalHealth(now_ns)) next_hb_ns_ = now_ns;
  }
  if (now_ns < next_hb_ns_) return;
  next_hb_ns_ = now_ns + dp_.cfg.heartbeat_ms * 1000000ull;
  HeartbeatMsg msg;
  msg.node_id = dp_.cfg.pair_node_id;
  msg.flags = dp_.state.header().local_flags.load(std::memory_order_relaxed);
  // The tables' role even while held: a peer active in a higher epoch then
  // sees two actives and this node's control demotes (the lower epoch yields).
  if (dp_.tables.role() == tables::Role::kActive) msg.flags |= tables::kHbActive;
  if (dp_.tables.header().handover.load(std::memory_order_relaxed)) {
    msg.flags |= tables::kHbHandover;
  }
  msg.epoch = dp_.tables.epoch();
  msg.position = dp_.tables.header().mirror_position.load(std::memory_order_relaxed);
  msg.boot_id = boot_id_;
  msg.unix_ns = UnixNs();
  for (const Port& port : dp_.ports) {
    bool access = port.role == PortRole::kAccess;
    msg.path = access ? 0 : 1;
    msg.counter = ++hb_counter_;
    msg.echo_boot = replay_[msg.path].echo_boot();
    msg.echo_counter = replay_[msg.path].echo_counter();
    uint8_t* body;
    rte_mbuf* m = NewFrame(dp_, kBroadcast, kEthHeartbeat, kHeartbeatLen, &body);
    if (!m) return;
    if (!access) {
      // The backbone is untagged and has its own MAC.
      uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
      if (dp_.cfg.vlan) {
        std::memmove(f + 12, f + 16, rte_pktmbuf_data_len(m) - 16);
        rte_pktmbuf_trim(m, 4);
        body = f + 14;
      }
      std::memcpy(f + 6, port.mac, 6);
      SetInjectPort(m, port.id);
    }
    EncodeHeartbeat(msg, dp_.cfg.heartbeat_key, body);
    sent_.Record(msg.counter, now_ns);
    out->push_back(m);
  }
  dp_.state.header().heartbeats_sent.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace tandem::sw
