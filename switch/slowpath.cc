#include "switch/slowpath.h"

#include <rte_ethdev.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

namespace tandem::sw {
namespace {

using tables::Drop;
using tables::NeighState;

constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint8_t kZeroMac[6] = {};
constexpr uint16_t kArpRequest = 1, kArpReply = 2;
constexpr uint8_t kIcmpEchoRequest = 8, kIcmpEchoReply = 0;
constexpr uint8_t kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129;
constexpr uint8_t kNdNs = 135, kNdNa = 136;
constexpr uint8_t kOptSlla = 1, kOptTlla = 2;

inline uint16_t Be16(const uint8_t* p) { return uint16_t(p[0]) << 8 | p[1]; }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
bool UnicastMac(const uint8_t* mac) {
  return !(mac[0] & 1) && std::memcmp(mac, kZeroMac, 6) != 0;
}

IpAddr V6At(const uint8_t* p) { return IpAddr::FromV6(p); }

IpAddr V4At(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return IpAddr::FromV4(v);
}

// Finds a link-layer address option of `type` in ND options; nullptr if none.
const uint8_t* FindLlOption(const uint8_t* opt, int len, uint8_t type) {
  while (len >= 8) {
    int olen = opt[1] * 8;
    if (olen == 0 || olen > len) return nullptr;  // malformed options
    if (opt[0] == type && olen >= 8) return opt + 2;
    opt += olen;
    len -= olen;
  }
  return nullptr;
}

}  // namespace

SlowPath::SlowPath(Dataplane& dp) : dp_(dp) {
  // A random boot id per start: the peer's replay guard tells our restarts apart.
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

bool SlowPath::IsVip(const IpAddr& a) const {
  for (const auto& v : vips_) {
    if (v == a) return true;
  }
  return false;
}

bool SlowPath::OnLink(const IpAddr& a) const {
  if (dp_.cfg.prefixes.empty()) return true;
  for (const auto& p : dp_.cfg.prefixes) {
    if (p.Contains(a)) return true;
  }
  return false;
}

void SlowPath::Learn(const IpAddr& ip, const uint8_t mac[6], bool create, bool answer,
                     uint64_t now_ns) {
  if (!UnicastMac(mac) || ip.is_zero() || IsVip(ip)) return;
  tables::NeighEntry* e = create ? dp_.neigh.FindOrAdd(ip) : dp_.neigh.Find(ip);
  if (!e) return;
  // Only an answer to a request of ours that is still pending sets or moves
  // a neighbour's MAC. Anything else (a request, a gratuitous or unsolicited
  // frame) may claim another host's address to steal its media: it refreshes
  // an entry with the same MAC, is refused (and counted) against a known
  // entry, and for an unknown one starts a request of our own, whose answer
  // decides. A host that really changed its MAC answers the probes sent
  // when its entry goes stale (neigh_reachable_s).
  bool asked =
      e->requested_ns && now_ns - e->requested_ns < 3ull * dp_.cfg.neigh_probe_ms * 1000000ull;
  if (answer && asked) {
    NeighTable::Confirm(*e, mac, now_ns);
    return;
  }
  auto st = NeighState(e->state.load());
  bool known = st == NeighState::kReachable || st == NeighState::kStale;
  if (known && std::memcmp(e->mac, mac, 6) == 0) {
    if (st == NeighState::kReachable) NeighTable::Confirm(*e, mac, now_ns);
    return;
  }
  if (known) {
    dp_.state.worker_counters(dp_.cfg.worker_lcores.size()).drops[uint32_t(Drop::kNotForUs)]++;
    return;
  }
  Resolve(ip, now_ns);
}

unsigned SlowPath::Poll(uint64_t now_ns) {
  rte_mbuf* pkts[32];
  ResolveRequest req[32];
  unsigned n = rte_ring_sc_dequeue_burst(dp_.slow_ring, reinterpret_cast<void**>(pkts), 32,
                                         nullptr);
  for (unsigned i = 0; i < n; ++i) Handle(pkts[i]);
  unsigned r = rte_ring_sc_dequeue_burst_elem(dp_.resolve_ring, req, sizeof(ResolveRequest), 32,
                                              nullptr);
  for (unsigned i = 0; i < r; ++i) Resolve(req[i].ip, now_ns);
  Tick(now_ns);
  Flush();
  return n + r;
}

void SlowPath::Transmit(rte_mbuf* m) { out_.push_back(m); }

void SlowPath::Flush() {
  if (out_.empty()) return;
  unsigned n = static_cast<unsigned>(out_.size());
  unsigned queued = rte_ring_mp_enqueue_burst(dp_.inject_ring, reinterpret_cast<void**>(out_.data()), n, nullptr);
  tables::WorkerCounters& wc = dp_.state.worker_counters(dp_.cfg.worker_lcores.size());
  for (unsigned i = queued; i < n; ++i) {
    wc.drops[uint32_t(Drop::kTxFull)]++;
    rte_pktmbuf_free(out_[i]);
  }
  out_.clear();
}

rte_mbuf* SlowPath::NewFrame(const uint8_t dst_mac[6], uint16_t ethertype, uint16_t l3_len,
                             uint8_t** l3) {
  rte_mbuf* m = rte_pktmbuf_alloc(dp_.pool);
  if (!m) return nullptr;
  uint16_t l2 = dp_.cfg.vlan ? 18 : 14;
  // Pad to the Ethernet minimum (60 bytes without FCS).
  uint16_t total = std::max<uint16_t>(l2 + l3_len, 60);
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, total));
  if (!f) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(f, 0, total);
  std::memcpy(f, dst_mac, 6);
  std::memcpy(f + 6, dp_.ports[0].mac, 6);
  m->port = dp_.ports[0].id;
  if (dp_.cfg.vlan) {
    PutBe16(f + 12, kEthVlan);
    PutBe16(f + 14, dp_.cfg.vlan);
    PutBe16(f + 16, ethertype);
  } else {
    PutBe16(f + 12, ethertype);
  }
  *l3 = f + l2;
  return m;
}

void SlowPath::SendArp(uint16_t op, const uint8_t dst_mac[6], const IpAddr& sender,
                       const uint8_t target_mac[6], const IpAddr& target) {
  uint8_t* a;
  rte_mbuf* m = NewFrame(dst_mac, kEthArp, 28, &a);
  if (!m) return;
  PutBe16(a, 1);
  PutBe16(a + 2, kEthIPv4);
  a[4] = 6;
  a[5] = 4;
  PutBe16(a + 6, op);
  std::memcpy(a + 8, dp_.ports[0].mac, 6);
  std::memcpy(a + 14, sender.b + 12, 4);
  std::memcpy(a + 18, target_mac, 6);
  std::memcpy(a + 24, target.b + 12, 4);
  Transmit(m);
}

void SlowPath::SendNa(const IpAddr& target, const IpAddr& dst_ip, const uint8_t dst_mac[6],
                      bool solicited) {
  uint8_t* ip;
  rte_mbuf* m = NewFrame(dst_mac, kEthIPv6, 40 + 32, &ip);
  if (!m) return;
  ip[0] = 0x60;
  PutBe16(ip + 4, 32);
  ip[6] = kProtoIcmp6;
  ip[7] = 255;
  std::memcpy(ip + 8, target.b, 16);
  std::memcpy(ip + 24, dst_ip.b, 16);
  uint8_t* icmp = ip + 40;
  icmp[0] = kNdNa;
  icmp[4] = solicited ? 0x60 : 0x20;  // Solicited, Override
  std::memcpy(icmp + 8, target.b, 16);
  icmp[24] = kOptTlla;
  icmp[25] = 1;
  std::memcpy(icmp + 26, dp_.ports[0].mac, 6);
  PutBe16(icmp + 2, L4Checksum(false, ip, icmp, 32, kProtoIcmp6));
  Transmit(m);
}

void SlowPath::SendNs(const IpAddr& target, bool from_vip) {
  const IpAddr* src = nullptr;
  for (const auto& v : vips_) {
    if (!v.is_v4()) {
      src = &v;
      break;
    }
  }
  static const IpAddr kUnspecified6{};
  if (!from_vip) {
    src = &kUnspecified6;
  } else if (!src) {
    return;  // no IPv6 VIP to speak from
  }
  // From :: an NS carries no source link-layer option (RFC 4861 7.1.1).
  uint16_t len = from_vip ? 32 : 24;
  uint8_t mac[6] = {0x33, 0x33, 0xff, target.b[13], target.b[14], target.b[15]};
  uint8_t* ip;
  rte_mbuf* m = NewFrame(mac, kEthIPv6, 40 + len, &ip);
  if (!m) return;
  ip[0] = 0x60;
  PutBe16(ip + 4, len);
  ip[6] = kProtoIcmp6;
  ip[7] = 255;
  std::memcpy(ip + 8, src->b, 16);
  uint8_t solicited[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff,
                           target.b[13], target.b[14], target.b[15]};
  std::memcpy(ip + 24, solicited, 16);
  uint8_t* icmp = ip + 40;
  icmp[0] = kNdNs;
  std::memcpy(icmp + 8, target.b, 16);
  if (from_vip) {
    icmp[24] = kOptSlla;
    icmp[25] = 1;
    std::memcpy(icmp + 26, dp_.ports[0].mac, 6);
  }
  PutBe16(icmp + 2, L4Checksum(false, ip, icmp, len, kProtoIcmp6));
  Transmit(m);
}

void SlowPath::Handle(rte_mbuf* m) {
  if (m->port != dp_.ports[0].id) {
    HandleHeartbeat(m, 1, 14);  // the backbone carries nothing else to us
    return;
  }
  ParseConfig pc;
  std::memcpy(pc.mac, dp_.ports[0].mac, 6);
  pc.vlan = dp_.cfg.vlan;
  pc.mtu = dp_.cfg.mtu;
  Parsed p = Parse(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), pc);
  if (p.verdict != Verdict::kSlowPath) {
    rte_pktmbuf_free(m);
    return;
  }
  if (p.ethertype == kEthHeartbeat) {
    HandleHeartbeat(m, 0, p.l3);
  } else if (p.ethertype == kEthArp) {
    HandleArp(m, p);
  } else if (p.v4) {
    HandleIcmp4(m, p);
  } else {
    HandleIcmp6(m, p);
  }
}

void SlowPath::HandleArp(rte_mbuf* m, const Parsed& p) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint8_t* a = f + p.l3;
  tables::WorkerCounters& wc = dp_.state.worker_counters(dp_.cfg.worker_lcores.size());
  if (Be16(a) != 1 || Be16(a + 2) != kEthIPv4 || a[4] != 6 || a[5] != 4 ||
      std::memcmp(a + 8, f + 6, 6) != 0) {
    // A sender hardware address that is not the frame's source is a poisoning attempt.
    wc.drops[uint32_t(Drop::kMalformed)]++;
    rte_pktmbuf_free(m);
    return;
  }
  uint16_t op = Be16(a + 6);
  IpAddr spa = V4At(a + 14), tpa = V4At(a + 24);
  uint8_t sha[6];
  std::memcpy(sha, a + 8, 6);
  uint64_t now = MonotonicNs();
  bool active = dp_.Active();
  if (IsVip(spa)) {
    wc.drops[uint32_t(Drop::kNotForUs)]++;  // someone else claims our VIP
    Defend(now);
  } else if (op == kArpRequest && IsVip(tpa) && spa != tpa) {
    Learn(spa, sha, OnLink(spa), false, now);
    if (active) SendArp(kArpReply, sha, tpa, sha, spa);
  } else if (op == kArpRequest || op == kArpReply) {
    Learn(spa, sha, false, op == kArpReply, now);  // refresh only: never created unasked
  } else {
    wc.drops[uint32_t(Drop::kMalformed)]++;
  }
  rte_pktmbuf_free(m);
}

void SlowPath::HandleIcmp4(rte_mbuf* m, const Parsed& p) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* ip = f + p.l3;
  uint8_t* icmp = f + p.l4;
  uint16_t icmp_len = p.frame_len - p.l4;
  IpAddr dst = V4At(ip + 16);
  if (!IsVip(dst) || !dp_.Active() || icmp_len < 8 ||
      icmp[0] != kIcmpEchoRequest || CsumFold(CsumAdd(0, icmp, icmp_len)) != 0xffff) {
    rte_pktmbuf_free(m);
    return;
  }
  uint8_t mac[6];
  std::memcpy(mac, f + 6, 6);
  std::memcpy(f, mac, 6);
  std::memcpy(f + 6, dp_.ports[0].mac, 6);
  uint8_t tmp[4];
  std::memcpy(tmp, ip + 12, 4);
  std::memcpy(ip + 12, ip + 16, 4);
  std::memcpy(ip + 16, tmp, 4);
  ip[8] = kTtl;
  PutBe16(ip + 10, Ipv4HeaderChecksum(ip));
  icmp[0] = kIcmpEchoReply;
  PutBe16(icmp + 2, 0);
  PutBe16(icmp + 2, static_cast<uint16_t>(~CsumFold(CsumAdd(0, icmp, icmp_len))));
  rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
  Transmit(m);
}

void SlowPath::HandleIcmp6(rte_mbuf* m, const Parsed& p) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* ip = f + p.l3;
  uint8_t* icmp = f + p.l4;
  uint16_t len = p.frame_len - p.l4;
  tables::WorkerCounters& wc = dp_.state.worker_counters(dp_.cfg.worker_lcores.size());
  if (len < 8 || L4Checksum(false, ip, icmp, len, kProtoIcmp6) != 0) {
    // Summed with its checksum field, a valid message complements to zero.
    wc.drops[uint32_t(len < 8 ? Drop::kMalformed : Drop::kBadChecksum)]++;
    rte_pktmbuf_free(m);
    return;
  }
  IpAddr src = V6At(ip + 8), dst = V6At(ip + 24);
  bool active = dp_.Active();
  uint64_t now = MonotonicNs();
  uint8_t type = icmp[0];
  if ((type == kNdNs || type == kNdNa) && (ip[7] != 255 || len < 24 || icmp[1] != 0)) {
    wc.drops[uint32_t(Drop::kMalformed)]++;  // RFC 4861: hop limit 255 or not ND at all
    rte_pktmbuf_free(m);
    return;
  }
  if (type == kNdNs) {
    IpAddr target = V6At(icmp + 8);
    const uint8_t* slla = FindLlOption(icmp + 24, len - 24, kOptSlla);
    if (slla && !UnicastMac(slla)) {
      // No host's address: our answer to it would reach every host.
      wc.drops[uint32_t(Drop::kMalformed)]++;
      rte_pktmbuf_free(m);
      return;
    }
    bool unspecified = src.is_zero();
    if (!unspecified && slla) Learn(src, slla, IsVip(target) && OnLink(src), false, now);
    if (IsVip(target) && active) {
      if (unspecified) {
        static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
        uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        SendNa(target, V6At(all_nodes), all_nodes_mac, false);
      } else {
        SendNa(target, src, slla ? slla : f + 6, true);
      }
    }
  } else if (type == kNdNa) {
    IpAddr target = V6At(icmp + 8);
    const uint8_t* tlla = FindLlOption(icmp + 24, len - 24, kOptTlla);
    if (IsVip(target)) {
      wc.drops[uint32_t(Drop::kNotForUs)]++;  // someone else claims our VIP
      Defend(now);
    } else {
      // An answer is a solicited NA; a standby's probes go out from ::, and
      // hosts answer those to all nodes without the S flag (Learn still
      // accepts either only while our request is pending).
      bool answer = (icmp[4] & 0x40) != 0 || !dp_.Active();
      Learn(target, tlla ? tlla : f + 6, false, answer, now);
    }
  } else if (type == kIcmp6EchoRequest && IsVip(dst) && active) {
    uint8_t mac[6];
    std::memcpy(mac, f + 6, 6);
    std::memcpy(f, mac, 6);
    std::memcpy(f + 6, dp_.ports[0].mac, 6);
    std::memcpy(ip + 24, src.b, 16);
    std::memcpy(ip + 8, dst.b, 16);
    ip[7] = kTtl;
    icmp[0] = kIcmp6EchoReply;
    PutBe16(icmp + 2, 0);
    PutBe16(icmp + 2, L4Checksum(false, ip, icmp, len, kProtoIcmp6));
    rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
    Transmit(m);
    return;
  }
  rte_pktmbuf_free(m);
}

void SlowPath::Resolve(const IpAddr& ip, uint64_t now_ns) {
  tables::NeighEntry* e = dp_.neigh.FindOrAdd(ip);
  if (!e) return;
  auto st = NeighState(e->state.load());
  if (st == NeighState::kReachable) return;
  if (e->requested_ns && now_ns - e->requested_ns < dp_.cfg.neigh_probe_ms * 1000000ull) return;
  NeighTable::Write(*e, [&] {
    e->requested_ns = now_ns;
    if (e->probes < 255) e->probes++;
  });
  // A request from a VIP teaches the asked host that the VIP lives at our
  // MAC: only the active node may say so. A standby (whose neighbour cache is
  // kept warm for a takeover) asks from the unspecified address, as duplicate
  // address detection does (RFC 5227 ARP probe, RFC 4862 NS from ::).
  bool speak_for_vip = dp_.Active();
  if (ip.is_v4()) {
    const IpAddr* src = nullptr;
    for (const auto& v : vips_) {
      if (v.is_v4()) {
        src = &v;
        break;
      }
    }
    static const IpAddr kUnspecified4 = IpAddr::FromV4(0);
    if (!src && speak_for_vip) return;
    SendArp(kArpRequest, kBroadcast, speak_for_vip ? *src : kUnspecified4, kZeroMac, ip);
  } else {
    SendNs(ip, speak_for_vip);
  }
}

// Another host claimed one of our VIPs (a gratuitous ARP or an unsolicited
// NA): hosts that believed it would send media there. Announce our VIPs again
// at once, as RFC 5227 defends an address, at most every 10 ms.
void SlowPath::Defend(uint64_t now_ns) {
  if (!dp_.Active() || now_ns - last_defence_ns_ < 10'000'000ull) return;
  last_defence_ns_ = now_ns;
  Announce();
}

void SlowPath::Announce() {
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  for (const auto& v : vips_) {
    if (v.is_v4()) {
      SendArp(kArpRequest, kBroadcast, v, kZeroMac, v);  // gratuitous ARP
    } else {
      SendNa(v, V6At(all_nodes), all_nodes_mac, false);  // unsolicited NA
    }
  }
  announcements_++;
}

void SlowPath::HandleHeartbeat(rte_mbuf* m, uint32_t path, uint16_t l3) {
  tables::PeerPath& peer = dp_.state.header().peer[path];
  if (dp_.cfg.pair_node_id == 0) {
    rte_pktmbuf_free(m);
    return;
  }
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m);
  auto msg = len > l3 ? DecodeHeartbeat(f + l3, len - l3, dp_.cfg.heartbeat_key)
                      : absl::StatusOr<HeartbeatMsg>(absl::InvalidArgumentError("short"));
  rte_pktmbuf_free(m);
  if (!msg.ok() || msg->node_id == dp_.cfg.pair_node_id ||
      !replay_[path].Accept(*msg, UnixNs())) {
    // Our own broadcast coming back is not refused, merely ignored.
    if (!msg.ok() || msg->node_id != dp_.cfg.pair_node_id) {
      NeighTable::Write(peer, [&] { peer.frames_refused++; });
    }
    return;
  }
  if ((msg->flags & tables::kHbActive) && msg->epoch >= dp_.tables.epoch()) {
    peer_took_over_ = true;  // keep holding until our control plane demotes us
  } else if (dp_.hold_active.load(std::memory_order_relaxed)) {
    dp_.hold_active.store(false);
    std::fprintf(stderr, "tandem-switch: peer %u is not active in a higher epoch: forwarding\n",
                 msg->node_id);
  }
  NeighTable::Write(peer, [&] {
    peer.node_id = msg->node_id;
    peer.last_heard_ns = MonotonicNs();
    peer.epoch = msg->epoch;
    peer.position = msg->position;
    peer.flags = msg->flags;
    peer.frames_ok++;
  });
}

bool SlowPath::UpdateLocalHealth(uint64_t now_ns) {
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

void SlowPath::SendHeartbeats(uint64_t now_ns) {
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
    uint8_t* body;
    rte_mbuf* m = NewFrame(kBroadcast, kEthHeartbeat, kHeartbeatLen, &body);
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
      m->port = port.id;
    }
    EncodeHeartbeat(msg, dp_.cfg.heartbeat_key, body);
    Transmit(m);
  }
  dp_.state.header().heartbeats_sent.fetch_add(1, std::memory_order_relaxed);
}

// A standby resolves the receivers of every leg in its (mirrored) tables
// ahead of time, a slice of the slots per tick, so that its first copy to
// each receiver after a takeover does not wait for ARP or ND. Its probes come
// from the unspecified address (Resolve), and the entries then age and are
// refreshed as any other.
void SlowPath::WarmNeighbours(uint64_t now_ns) {
  constexpr uint32_t kSlotsPerTick = 1024;
  const uint32_t capacity = dp_.tables.leg_capacity();
  for (uint32_t n = 0; n < kSlotsPerTick && n < capacity; ++n) {
    if (warm_cursor_ >= capacity) warm_cursor_ = 0;
    const tables::LegEntry& e = dp_.tables.leg(warm_cursor_++);
    if (e.state.load(std::memory_order_acquire) != uint8_t(tables::EntryState::kLive)) continue;
    if (!(e.flags.load(std::memory_order_relaxed) & tables::kLegRecv)) continue;
    IpAddr hop = dp_.NextHop(e.key.remote);
    uint8_t mac[6];
    if (!dp_.neigh.Lookup(hop, mac)) Resolve(hop, now_ns);
  }
}

void SlowPath::Tick(uint64_t now_ns) {
  SendHeartbeats(now_ns);
  // Once a millisecond, not once a loop: a busy main thread loops far more often.
  if (!dp_.Active() && now_ns >= next_warm_ns_) {
    next_warm_ns_ = now_ns + 1000000ull;
    WarmNeighbours(now_ns);
  }
  if (dp_.hold_active.load(std::memory_order_relaxed)) {
    if (!hold_until_ns_) hold_until_ns_ = now_ns + std::max<uint64_t>(
        300'000'000ull, 30ull * dp_.cfg.heartbeat_ms * 1000000ull);
    bool standby = dp_.tables.role() != tables::Role::kActive;
    if (standby || (now_ns >= hold_until_ns_ && !peer_took_over_)) {
      dp_.hold_active.store(false);
      if (!standby) std::fprintf(stderr, "tandem-switch: no active peer heard: forwarding\n");
    }
  }
  uint32_t seq = dp_.tables.header().vip_seq.load(std::memory_order_acquire);
  bool vips_changed = seq != vip_seq_;
  if (vips_changed) {
    vips_ = dp_.tables.Vips();
    vip_seq_ = seq;
  }
  bool active = dp_.Active();
  uint64_t epoch = dp_.tables.epoch();
  if (active && (!was_active_ || epoch != epoch_ || vips_changed)) {
    // Repeated a few times: a single frame can be lost, and bridges and
    // hosts must all move the VIPs to us at once.
    announce_left_ = 3;
    next_announce_ns_ = now_ns;
  }
  was_active_ = active;
  epoch_ = epoch;
  if (active && announce_left_ > 0 && now_ns >= next_announce_ns_) {
    Announce();
    announce_left_--;
    next_announce_ns_ = now_ns + 50 * 1000000ull;
  }
  if (now_ns - last_age_ns_ < 1000000000ull) return;
  last_age_ns_ = now_ns;
  uint64_t reachable = dp_.cfg.neigh_reachable_s * 1000000000ull;
  uint64_t probe = dp_.cfg.neigh_probe_ms * 1000000ull;
  for (uint32_t i = 0; i < tables::kNeighCapacity; ++i) {
    tables::NeighEntry& e = dp_.neigh.entries()[i];
    auto st = NeighState(e.state.load(std::memory_order_relaxed));
    if (st == NeighState::kReachable && now_ns - e.updated_ns > reachable) {
      NeighTable::Write(e, [&] {
        e.state.store(uint8_t(NeighState::kStale));
        e.probes = 0;
        e.requested_ns = 0;
      });
      Resolve(e.ip, now_ns);
    } else if (st == NeighState::kStale && now_ns - e.requested_ns > probe) {
      if (e.probes >= 3) {
        NeighTable::Write(e, [&] { e.state.store(uint8_t(NeighState::kIncomplete)); });
      } else {
        Resolve(e.ip, now_ns);
      }
    }
  }
}

}  // namespace tandem::sw
