// The worker's stages from admission to TX (switch/worker.h says what each
// reads and decides): Admit and Police, GatherReceivers and the meeting's
// cap, FanOut with its copies and rewrites, and the TX buffers.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <cstring>

#include "switch/mbuf_fields.h"
#include "switch/worker.h"

namespace tandem::sw {

namespace {

using tables::Drop;
using tables::kNil;
using tables::LegEntry;

// The rewrite the profile times: a call, so that its work stays between the
// two clock reads (inline, the compiler may move its stores past them).
[[gnu::noinline]] void RewriteTimed(uint8_t* frame, const Parsed& p, const UdpCsumBase& base,
                                    const Rewrite& rw) {
  RewriteHeaders(frame, p, base, rw);
}

}  // namespace

tables::LegCounters& Worker::Usage(uint32_t slot, uint32_t gen) {
  tables::LegCounters& c = usage_[slot];
  if (c.gen.load(std::memory_order_relaxed) != gen) [[unlikely]] {
    // The slot's previous occupant left; its counts are not this leg's.
    c.packets_in = c.bytes_in = c.packets_out = c.bytes_out = 0;
    c.drop_not_allowed = c.drop_policed = c.drop_other = 0;
    c.first_unix_ns = c.last_unix_ns = 0;
    c.policer_tsc = 0;
    c.hop_epoch = 0;  // the next hop was the previous occupant's
    c.gen.store(gen, std::memory_order_release);
  }
  return c;
}

// A leg's packets mostly arrive on one worker (RSS on the 5-tuple), so
// per-worker policing holds the leg to its rate.
bool Worker::Police(tables::LegCounters& u, const LegEntry& e, uint32_t bytes) {
  return PoliceLeg(u, e.pps_limit.load(std::memory_order_relaxed),
                   e.kbps_limit.load(std::memory_order_relaxed), bytes, now_tsc_, sec_per_tsc_);
}

// The meeting's cap is split evenly over the workers, so that the node as a
// whole keeps to it.
bool Worker::MeetingAllows(uint32_t meeting_slot, uint32_t limit, uint32_t copies) {
  const tables::MeetingEntry& mt = dp_.tables.meeting(meeting_slot);
  if (budgets_.empty()) budgets_.resize(dp_.tables.meeting_capacity());
  double share = double(limit) / double(std::max<size_t>(1, dp_.cfg.worker_lcores.size()));
  return SpendMeetingBudget(budgets_[meeting_slot], mt.gen, share, copies, now_tsc_,
                            sec_per_tsc_);
}

// `bytes` is the packet's length, known to the caller: Flush then counts
// the bytes sent without reading every mbuf again.
template <bool kProfile>
void Worker::Send(uint32_t port_index, rte_mbuf* m, uint32_t bytes) {
  tx_bytes_pending_[port_index] += bytes;
  TxBuffer& t = tx_[port_index];
  t.pkts[t.n++] = m;
  if (t.n == kTxBufSize) Flush<kProfile>(port_index);
}

template <bool kProfile>
void Worker::Flush(uint32_t port_index) {
  TxBuffer& t = tx_[port_index];
  if (t.n == 0) return;
  [[maybe_unused]] uint64_t t0 = kProfile ? rte_rdtsc() : 0;
  uint16_t sent = 0;
  for (int tries = 0; tries < 3 && sent < t.n; ++tries) {
    sent += rte_eth_tx_burst(t.port, queue_, t.pkts + sent, t.n - sent);
  }
  uint64_t bytes = tx_bytes_pending_[port_index];
  tx_bytes_pending_[port_index] = 0;
  for (uint16_t i = sent; i < t.n; ++i) {
    rte_mbuf* m = t.pkts[i];
    bytes -= rte_pktmbuf_pkt_len(m);
    // A copy the queue refused is counted against the leg that missed it.
    uint32_t slot = TxLeg(m);
    if (slot < dp_.tables.leg_capacity()) {
      tables::LegCounters& c = usage_[slot];
      if (c.packets_out) {
        c.packets_out--;
        c.bytes_out -= std::min<uint64_t>(c.bytes_out, rte_pktmbuf_pkt_len(m));
        c.drop_other++;
      }
    }
    DropPacket(m, Drop::kTxFull);
  }
  wc_.tx_packets += sent;
  wc_.tx_bytes += bytes;
  t.n = 0;
  if constexpr (kProfile) {
    uint64_t dt = rte_rdtsc() - t0;
    profile_.cycles[uint32_t(Stage::kTx)] += dt;
    profile_.copies += sent;
    nested_cycles_ += dt;
  }
}

template void Worker::Flush<true>(uint32_t);
template void Worker::Flush<false>(uint32_t);
template void Worker::Send<true>(uint32_t, rte_mbuf*, uint32_t);
template void Worker::Send<false>(uint32_t, rte_mbuf*, uint32_t);

// A copy for one more receiver. Large packets share the payload: a fresh
// header mbuf in front of an indirect mbuf that references the original's
// data, so no payload byte is copied per receiver.
rte_mbuf* Worker::Replica(rte_mbuf* m, const Parsed& p) {
  const uint8_t* src = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t hdr_len = p.l4 + 8u;
  if (p.frame_len >= dp_.cfg.zero_copy_min && p.frame_len > hdr_len) {
    rte_mbuf* h = rte_pktmbuf_alloc(dp_.hdr_pool);
    if (!h) return nullptr;
    rte_mbuf* body = rte_pktmbuf_clone(m, dp_.clone_pool);
    if (!body) {
      rte_pktmbuf_free(h);
      return nullptr;
    }
    std::memcpy(rte_pktmbuf_append(h, hdr_len), src, hdr_len);
    rte_pktmbuf_adj(body, hdr_len);
    rte_pktmbuf_trim(body, rte_pktmbuf_pkt_len(body) - (p.frame_len - hdr_len));
    if (rte_pktmbuf_chain(h, body) != 0) {
      rte_pktmbuf_free(h);
      rte_pktmbuf_free(body);
      return nullptr;
    }
    return h;
  }
  rte_mbuf* c = rte_pktmbuf_alloc(dp_.pool);
  if (!c) return nullptr;
  char* dst = rte_pktmbuf_append(c, p.frame_len);
  if (!dst) {
    rte_pktmbuf_free(c);
    return nullptr;
  }
  std::memcpy(dst, src, p.frame_len);
  return c;
}

// The sender's checks and its inbound usage. False when the packet is dropped.
// Inline in AdmitStage: a call per packet spilled and restored six registers.
[[gnu::always_inline]] inline bool Worker::Admit(rte_mbuf* m, const Parsed& p, uint32_t slot) {
  const LegEntry& s = dp_.tables.leg(slot);
  tables::LegCounters& u = Usage(slot, s.gen.load(std::memory_order_relaxed));
  // Anti-spoofing: a leg's packets come from the MAC its address (or its
  // gateway) resolved to; another host on the access network sending with a
  // member's address and port reaches nobody, nor counts as the member's.
  // Until the neighbour is known there is nothing to compare with.
  uint8_t known[6];
  if (hops_.Mac(u, s.key.remote, known) &&
      std::memcmp(known, rte_pktmbuf_mtod(m, const uint8_t*) + 6, 6) != 0) {
    DropLater(m, Drop::kNotForUs);
    return false;
  }
  uint32_t flags = s.flags.load(std::memory_order_acquire);
  // The first packet's time lives in the block's second line: tested by the
  // count in the first, so a packet touches one line of the block.
  if (u.packets_in++ == 0) [[unlikely]] u.first_unix_ns = now_unix_ns_;
  u.bytes_in += p.frame_len;
  u.last_unix_ns = now_unix_ns_;
  if (!(flags & tables::kLegSend) || (flags & tables::kLegMuted)) {
    u.drop_not_allowed++;
    DropLater(m, Drop::kNotAllowed);
    return false;
  }
  if (s.limited.load(std::memory_order_acquire) && !Police(u, s, p.frame_len)) {
    u.drop_policed++;
    DropLater(m, Drop::kPoliced);
    return false;
  }
  return true;
}

// The sender's checks; start loading the first receiver.
uint16_t Worker::AdmitStage(rte_mbuf** pkts, uint16_t n) {
  uint32_t capacity = dp_.tables.leg_capacity();
  uint16_t nadm = 0;
  for (uint16_t k = 0; k < n; ++k) {
    uint16_t i = b_.fwd[k];
    uint32_t slot = b_.slots[k];
    if (!Admit(pkts[i], b_.parsed[i], slot)) continue;
    const LegEntry& s = dp_.tables.leg(slot);
    // Without a branch: whether the sender heads its list is a coin toss in
    // a two-leg meeting, and the mispredicted jump cost more than the load
    // of a line already at hand (perf, issue 15).
    uint32_t head = dp_.tables.meeting(s.meeting).head[s.channel].load(std::memory_order_acquire);
    uint32_t next = s.group_next.load(std::memory_order_acquire);
    uint32_t first = head == slot ? next : head;
    if (first != kNil && first < capacity) {
      rte_prefetch0(&dp_.tables.leg(first));
      PrefetchForWrite(&usage_[first]);  // counters and next hop: one line
    }
    if (!budgets_.empty()) PrefetchForWrite(&budgets_[s.meeting]);
    b_.slots[nadm] = slot;
    b_.fwd[nadm++] = i;
  }
  return nadm;
}

// Appends the receivers of a packet from `sender` at receivers_[at...] (every
// other leg of its meeting and channel with `recv` and a resolved neighbour)
// and returns how many.
[[gnu::always_inline]] inline uint32_t Worker::GatherReceivers(const LegEntry& sender,
                                                               uint32_t sender_slot, uint32_t at) {
  const tables::MeetingEntry& mt = dp_.tables.meeting(sender.meeting);
  uint32_t n = 0;
  // In locals: the stores to the receivers and the usage blocks below may
  // alias members, and reloading the bases through dp_ and this for every leg
  // of the chain was a dependent load each (perf, issue 15).
  const LegEntry* legs = &dp_.tables.leg(0);
  tables::LegCounters* usage = usage_;
  Receiver* out = receivers_.data() + at;
  uint32_t room = static_cast<uint32_t>(receivers_.size()) - at;
  const uint32_t capacity = dp_.tables.leg_capacity();
  uint32_t guard = capacity;
  const bool v4 = sender.key.remote.is_v4();
  // The sender is stepped over by a select, not a branch: in a two-leg
  // meeting whether it comes first is a coin toss, and so was the branch
  // (and the number of turns of the loop); its own link is at hand.
  const uint32_t after_sender = sender.group_next.load(std::memory_order_acquire);
  auto past_sender = [&](uint32_t i) { return i == sender_slot ? after_sender : i; };
  for (uint32_t i = past_sender(mt.head[sender.channel].load(std::memory_order_acquire));
       i != kNil && i < capacity && guard--;
       i = past_sender(legs[i].group_next.load(std::memory_order_acquire))) {
    const LegEntry& r = legs[i];
    if (!(r.flags.load(std::memory_order_relaxed) & tables::kLegRecv)) continue;
    // The switch does not translate between IPv4 and IPv6: a leg receives the
    // packets of its own family only. (A copy of an IPv4 packet for an IPv6
    // leg went out with the low 32 bits of the leg's addresses.)
    if (r.key.remote.is_v4() != v4) continue;
    if (n == room) [[unlikely]] {
      receivers_.resize(receivers_.size() * 2);
      out = receivers_.data() + at;
      room = static_cast<uint32_t>(receivers_.size()) - at;
    }
    Receiver& rc = out[n];
    tables::LegCounters& u = usage[i];
    uint32_t gen = r.gen.load(std::memory_order_relaxed);
    if (u.gen.load(std::memory_order_relaxed) != gen) [[unlikely]] Usage(i, gen);
    if (!hops_.Mac(u, r.key.remote, rc.mac)) {
      ResolveRequest req{hops_.next_hops().Of(r.key.remote)};
      rte_ring_mp_enqueue_elem(dp_.resolve_ring, &req, sizeof(req));
      wc_.drops[uint32_t(Drop::kNoNeighbour)]++;
      u.drop_other++;
      continue;
    }
    rc.usage = &u;
    rc.slot = i;
    ++n;
  }
  return n;
}

// The receivers of every packet, with their MACs; the meeting's output cap.
uint16_t Worker::ReceiversStage(rte_mbuf** pkts, uint16_t n) {
  uint32_t at = 0;
  uint16_t nout = 0;
  for (uint16_t k = 0; k < n; ++k) {
    const LegEntry& s = dp_.tables.leg(b_.slots[k]);
    uint32_t r = GatherReceivers(s, b_.slots[k], at);
    // Most meetings have no cap: tested here, on a line the walk just read,
    // the call (1.5 % of the unicast worker, perf) is made for capped ones only.
    uint32_t limit = dp_.tables.meeting(s.meeting).copies_limit.load(std::memory_order_relaxed);
    if (limit != 0 && !MeetingAllows(s.meeting, limit, r)) [[unlikely]] {
      Usage(b_.slots[k], s.gen.load(std::memory_order_relaxed)).drop_policed++;
      DropLater(pkts[b_.fwd[k]], Drop::kMeetingCapped);
      continue;  // its receivers' entries are overwritten by the next packet's
    }
    wc_.forwarded_in++;
    b_.rcv_at[nout] = at;
    b_.slots[nout] = b_.slots[k];  // the fan-out reads the sender's checksum sums
    b_.fwd[nout++] = b_.fwd[k];
    at += r;
  }
  b_.rcv_at[nout] = at;
  return nout;
}

template <bool kProfile>
void Worker::FanOut(rte_mbuf* m, const Parsed& p, tables::EndpointSums from, const Receiver* rcv,
                    uint32_t n) {
  if (n == 0) {
    dropped_[ndropped_++] = m;  // counted per receiver as no_neighbour, or nobody listens
    return;
  }
  // Where the port knows (virtio, vhost), it says the checksum is not filled
  // in; AF_PACKET and AF_XDP say nothing, and the field itself tells.
  bool port_says_partial =
      (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_NONE;
  UdpCsumBase base =
      UdpCsumWithoutEndpoints(rte_pktmbuf_mtod(m, const uint8_t*), p, from, port_says_partial);
  wc_.csum_completed += base.completed;
  Rewrite rw;
  std::memcpy(rw.src_mac, dp_.ports[0].mac, 6);
  if (rte_pktmbuf_pkt_len(m) > p.frame_len) {
    rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - p.frame_len);
  }
  // Copies of a small packet come from one bulk allocation: one pool-cache
  // access for all of them instead of one each.
  rte_mbuf* copies[64];
  uint32_t bulk = 0;
  bool small = p.frame_len < dp_.cfg.zero_copy_min;
  if (small && n > 1 && n - 1 <= 64 &&
      rte_pktmbuf_alloc_bulk(dp_.pool, copies, n - 1) == 0) {
    bulk = n - 1;
  }
  const uint8_t* src = rte_pktmbuf_mtod(m, const uint8_t*);
  for (uint32_t k = 0; k < n; ++k) {
    // The last receiver gets the original packet, rewritten in place.
    rte_mbuf* c;
    if (k + 1 == n) {
      c = m;
    } else if (k < bulk) {
      c = copies[k];
      std::memcpy(rte_pktmbuf_mtod(c, uint8_t*), src, p.frame_len);
      c->data_len = p.frame_len;
      c->pkt_len = p.frame_len;
    } else {
      c = Replica(m, p);
    }
    uint32_t slot = rcv[k].slot;
    const LegEntry& r = dp_.tables.leg(slot);
    tables::LegCounters& u = *rcv[k].usage;
    if (!c) {
      wc_.drops[uint32_t(Drop::kNoBuffer)]++;
      u.drop_other++;
      continue;
    }
    std::memcpy(rw.dst_mac, rcv[k].mac, 6);
    rw.to = &r.key;
    rw.to_sums = r.sums;
    // Profiled: one rewrite in kRewriteSample is timed and counted that many
    // times; a clock read around every copy cost more than the rewrite. Fenced
    // reads: a plain rdtsc ran ahead of the rewrite's loads and stores, and
    // the inlined rewrite of issue 15 then mostly read as no time at all.
    if (kProfile && (++rewrites_ & (kRewriteSample - 1)) == 0) {
      uint64_t t0 = rte_rdtsc_precise();
      RewriteTimed(rte_pktmbuf_mtod(c, uint8_t*), p, base, rw);
      uint64_t dt = rte_rdtsc_precise() - t0;
      dt = (dt > rdtsc_cost_ ? dt - rdtsc_cost_ : 0) * kRewriteSample;
      profile_.cycles[uint32_t(Stage::kRewrite)] += dt;
      nested_cycles_ += dt;
    } else {
      RewriteHeaders(rte_pktmbuf_mtod(c, uint8_t*), p, base, rw);
    }
    SetTxLeg(c, slot);
    u.packets_out++;
    u.bytes_out += p.frame_len;
    Send<kProfile>(0, c, p.frame_len);
  }
}

// Copy, rewrite, send. With the profile on, the rewrites and the TX bursts
// inside are counted as theirs, the rest as replication.
template <bool kProfile>
void Worker::FanOutStage(rte_mbuf** pkts, uint16_t n) {
  [[maybe_unused]] uint64_t t0 = kProfile ? rte_rdtsc() : 0;
  nested_cycles_ = 0;
  for (uint16_t k = 0; k < n; ++k) {
    uint16_t i = b_.fwd[k];
    // The sender's sums are its key's, which is the packet's (the lookup
    // matched it); its entry's first line was read by the admission.
    FanOut<kProfile>(pkts[i], b_.parsed[i], dp_.tables.leg(b_.slots[k]).sums,
                     &receivers_[b_.rcv_at[k]], b_.rcv_at[k + 1] - b_.rcv_at[k]);
  }
  if constexpr (kProfile) {
    uint64_t t = rte_rdtsc() - t0;  // the sampled rewrites are an estimate: keep it >= 0
    profile_.cycles[uint32_t(Stage::kReplicate)] += t > nested_cycles_ ? t - nested_cycles_ : 0;
  }
}

template void Worker::FanOutStage<true>(rte_mbuf**, uint16_t);
template void Worker::FanOutStage<false>(rte_mbuf**, uint16_t);

}  // namespace tandem::sw
