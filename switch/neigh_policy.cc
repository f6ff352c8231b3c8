#include "switch/neigh_policy.h"

#include <algorithm>
#include <cstring>

namespace tandem::sw {
namespace {

using tables::NeighEntry;
using tables::NeighState;

constexpr uint8_t kNoMac[6] = {};
constexpr uint8_t kMaxProbes = 3;
// What the windows of an address showed is remembered this many probe
// intervals after the last one closed (rules 3 and 4).
constexpr uint64_t kMemory = 10;

NeighState StateOf(const NeighEntry& e) {
  return NeighState(e.state.load(std::memory_order_relaxed));
}

}  // namespace

NeighPolicy::NeighPolicy(NeighTable table, NeighPolicyConfig config, tables::NeighStats* stats)
    : table_(table), cfg_(config), stats_(stats) {
  if (stats_) {
    // A restarted switch goes on counting where the last one stopped.
    local_.conflicts = stats_->conflicts;
    local_.moves = stats_->moves;
    local_.evictions = stats_->evictions;
    local_.refused = stats_->refused;
    local_.last_conflict_ns = stats_->last_conflict_ns;  // CLOCK_MONOTONIC: the host's
    local_.last_conflict_ip = stats_->last_conflict_ip;
    std::memcpy(local_.last_conflict_mac, stats_->last_conflict_mac, 6);
    std::memcpy(local_.last_conflict_owner, stats_->last_conflict_owner, 6);
  }
}

bool NeighPolicy::HasMac(const NeighEntry& e) const {
  NeighState st = StateOf(e);
  return st == NeighState::kReachable || st == NeighState::kStale;
}

void NeighPolicy::Adopt(uint64_t now_ns) {
  for (uint32_t i = 0; i < tables::kNeighCapacity; ++i) {
    NeighEntry& e = table_.entries()[i];
    NeighState st = StateOf(e);
    if (st == NeighState::kIncomplete) {
      Free(e);
    } else if (st == NeighState::kReachable || st == NeighState::kStale) {
      NeighTable::Write(e, [&] {
        e.state.store(uint8_t(NeighState::kStale), std::memory_order_relaxed);
        e.probes = 0;
        e.requested_ns = 0;
        e.updated_ns = now_ns;
      });
    } else if (e.seq.load(std::memory_order_relaxed) & 1) {
      NeighTable::Write(e, [] {});  // left odd by a killed switch: readers skip it
    }
  }
  entries_ = 0;
  for (uint32_t i = 0; i < tables::kNeighCapacity; ++i) entries_ += HasMac(table_.entries()[i]);
  dirty_ = true;
}

void NeighPolicy::Resolve(const IpAddr& ip, uint64_t now_ns) {
  NeighEntry* e = table_.Find(ip);
  if (!e) {
    if (entries_ >= cfg_.max_entries) {
      local_.refused++;
      dirty_ = true;
      return;
    }
    bool added = false;
    e = table_.FindOrAdd(ip, &added);
    if (!e) {
      local_.refused++;
      dirty_ = true;
      return;
    }
    if (added) entries_++;
    dirty_ = true;
  }
  if (StateOf(*e) != NeighState::kReachable) Probe(*e, ip, now_ns);
}

void NeighPolicy::Probe(NeighEntry& e, const IpAddr& ip, uint64_t now_ns) {
  if (e.requested_ns && now_ns - e.requested_ns < cfg_.probe_ns) return;
  if (StateOf(e) == NeighState::kIncomplete && e.probes >= kMaxProbes) return;  // freed by Age
  NeighTable::Write(e, [&] {
    e.requested_ns = now_ns;
    if (e.probes < 255) e.probes++;
  });
  OpenWindow(ip, now_ns);
  probes_.push_back(ip);
}

NeighPolicy::Window& NeighPolicy::OpenWindow(const IpAddr& ip, uint64_t now_ns) {
  Window& w = windows_[ip];
  if (w.open && now_ns >= w.ends_ns) CloseWindow(ip, w, now_ns);
  if (!w.open) {
    Window next;
    next.forget_ns = w.forget_ns;
    next.last_conflict_ns = w.last_conflict_ns;
    next.last_claim_ns = w.last_claim_ns;
    next.streak = w.streak;
    std::memcpy(next.candidate, w.candidate, 6);
    std::memcpy(next.barred, w.barred, sizeof next.barred);
    next.nbarred = w.nbarred;
    w = next;
    w.open = true;
    w.ends_ns = now_ns + kAnswerIntervals * cfg_.probe_ns;
  }
  return w;
}

bool NeighPolicy::RecentConflict(const Window& w, uint64_t now_ns) const {
  return w.conflict || (w.last_conflict_ns && now_ns - w.last_conflict_ns < kBarNs);
}

bool NeighPolicy::Contested(const Window& w, uint64_t now_ns) const {
  return RecentConflict(w, now_ns) || (w.last_claim_ns && now_ns - w.last_claim_ns < kBarNs);
}

bool NeighPolicy::Barred(const Window& w, const uint8_t mac[6], uint64_t now_ns) const {
  if (!RecentConflict(w, now_ns)) return false;
  for (uint8_t i = 0; i < w.nbarred; ++i) {
    if (std::memcmp(w.barred[i], mac, 6) == 0) return true;
  }
  return false;
}

void NeighPolicy::Answer(const IpAddr& ip, const uint8_t mac[6], uint64_t now_ns,
                         Verdict* verdict) {
  NeighEntry* e = table_.Find(ip);
  auto it = windows_.find(ip);
  if (!e || it == windows_.end() || !it->second.open || now_ns >= it->second.ends_ns) {
    Claim(ip, mac, now_ns, verdict);  // rule 2: no probe of ours is waiting for it
    return;
  }
  Window& w = it->second;
  *verdict = Verdict::kConflict;
  if (HasMac(*e) && std::memcmp(e->mac, mac, 6) == 0) {
    w.own_seen = true;
    NeighTable::Confirm(*e, mac, now_ns);
    if (w.other_seen) Conflict(ip, w, w.other, mac, now_ns);
    if (w.claimed) Conflict(ip, w, w.claimer, mac, now_ns);
    *verdict = Verdict::kLearned;
  } else if (HasMac(*e) && w.took) {
    // Two MACs answered the probe that gave the entry its first MAC: which
    // one is the host cannot be told. Unusable until one answers alone.
    NeighTable::Write(*e, [&] {
      std::memset(e->mac, 0, 6);
      e->probes = 0;
      e->state.store(uint8_t(NeighState::kIncomplete), std::memory_order_relaxed);
    });
    w.took = false;
    Conflict(ip, w, mac, kNoMac, now_ns);
  } else if (HasMac(*e)) {
    if (w.own_seen || Barred(w, mac, now_ns)) {
      Conflict(ip, w, mac, e->mac, now_ns);
    } else if (w.other_seen && std::memcmp(w.other, mac, 6) != 0) {
      Conflict(ip, w, mac, kNoMac, now_ns);  // two strangers: nobody to bar
    } else {
      w.other_seen = true;
      std::memcpy(w.other, mac, 6);
      *verdict = Verdict::kCandidate;
    }
  } else {
    // No MAC yet (rule 3). Answered: not an address nobody has (rule 7).
    NeighTable::Write(*e, [&] { e->probes = 0; });
    if ((w.other_seen && std::memcmp(w.other, mac, 6) != 0) || Barred(w, mac, now_ns)) {
      Conflict(ip, w, mac, kNoMac, now_ns);
    } else {
      w.other_seen = true;
      std::memcpy(w.other, mac, 6);
      *verdict = Verdict::kCandidate;
      if (!RecentConflict(w, now_ns)) {
        w.took = true;
        NeighTable::Confirm(*e, mac, now_ns);
        *verdict = Verdict::kLearned;
      }
    }
  }
}

void NeighPolicy::Claim(const IpAddr& ip, const uint8_t mac[6], uint64_t now_ns,
                        Verdict* verdict) {
  NeighEntry* e = table_.Find(ip);
  if (!e || !HasMac(*e)) {
    *verdict = Verdict::kIgnored;
    return;
  }
  if (std::memcmp(e->mac, mac, 6) == 0) {
    if (StateOf(*e) == NeighState::kReachable) NeighTable::Confirm(*e, mac, now_ns);
    *verdict = Verdict::kLearned;
    return;
  }
  // Refused; a conflict (rule 6) once the entry's own MAC answers the probe
  // that asks its owner (rule 5, at most one per probe interval).
  *verdict = Verdict::kConflict;
  {
    Window& claimed = windows_[ip];  // remembered across windows (rule 7)
    claimed.last_claim_ns = now_ns;
    claimed.forget_ns = std::max(claimed.forget_ns, now_ns + kBarNs);
  }
  auto it = windows_.find(ip);
  if (it == windows_.end() || !it->second.open || now_ns >= it->second.ends_ns) {
    Probe(*e, ip, now_ns);
    it = windows_.find(ip);
    if (it == windows_.end() || !it->second.open) return;
  }
  Window& w = it->second;
  if (!w.claimed) std::memcpy(w.claimer, mac, 6);
  w.claimed = true;
  if (w.own_seen || Barred(w, mac, now_ns)) Conflict(ip, w, mac, e->mac, now_ns);
}

void NeighPolicy::Conflict(const IpAddr& ip, Window& w, const uint8_t claimer[6],
                           const uint8_t kept[6], uint64_t now_ns) {
  if (!w.conflict) local_.conflicts++;
  w.conflict = true;
  w.last_conflict_ns = now_ns;
  w.forget_ns = std::max(w.forget_ns, now_ns + kBarNs);
  local_.last_conflict_ns = now_ns;
  local_.last_conflict_ip = ip;
  std::memcpy(local_.last_conflict_mac, claimer, 6);
  std::memcpy(local_.last_conflict_owner, kept, 6);
  dirty_ = true;
  // Against a MAC the entry kept (its host answered): the claimer is barred.
  if (std::memcmp(kept, kNoMac, 6) == 0) return;
  for (uint8_t i = 0; i < w.nbarred; ++i) {
    if (std::memcmp(w.barred[i], claimer, 6) == 0) return;
  }
  std::memcpy(w.barred[w.nbarred < kMaxBarred ? w.nbarred++ : kMaxBarred - 1], claimer, 6);
}

void NeighPolicy::CloseWindow(const IpAddr& ip, Window& w, uint64_t now_ns) {
  w.open = false;
  w.forget_ns = std::max(w.forget_ns, now_ns + kMemory * cfg_.probe_ns);
  NeighEntry* e = table_.Find(ip);
  if (e && w.claimed && w.other_seen && std::memcmp(w.claimer, w.other, 6) != 0) {
    Conflict(ip, w, w.claimer, kNoMac, now_ns);  // two strangers
  }
  if (w.own_seen || w.conflict) w.streak = 0;
  if (!e || w.conflict || !w.other_seen || w.own_seen || w.took) return;
  // One other MAC alone answered this window.
  if (w.streak > 0 && std::memcmp(w.candidate, w.other, 6) == 0) {
    if (w.streak < 255) w.streak++;
  } else {
    std::memcpy(w.candidate, w.other, 6);
    w.streak = 1;
  }
  bool has_mac = HasMac(*e);
  if ((has_mac || RecentConflict(w, now_ns)) && w.streak < kMoveWindows) return;
  // The entry moves to it (rule 4), or takes it as its first MAC (rule 3).
  if (has_mac) local_.moves++;
  dirty_ = true;
  w.streak = 0;
  NeighTable::Confirm(*e, w.other, now_ns);
}

void NeighPolicy::Free(NeighEntry& e) {
  // What a contested address's windows showed outlives its entry (rules 3, 6).
  auto w = windows_.find(e.ip);
  if (w != windows_.end() && !RecentConflict(w->second, last_tick_ns_)) windows_.erase(w);
  table_.Remove(e);
  if (entries_) entries_--;
  local_.evictions++;
  dirty_ = true;
}

void NeighPolicy::Age(uint64_t now_ns) {
  uint32_t budget = cfg_.max_probes_per_tick;
  for (uint32_t i = 0; i < tables::kNeighCapacity; ++i) {
    NeighEntry& e = table_.entries()[i];
    NeighState st = StateOf(e);
    if (st == NeighState::kFree || st == NeighState::kEvicted) continue;
    if (st == NeighState::kReachable) {
      if (now_ns - e.updated_ns <= cfg_.reachable_ns) continue;
      NeighTable::Write(e, [&] {
        e.state.store(uint8_t(NeighState::kStale), std::memory_order_relaxed);
        e.probes = 0;
        e.requested_ns = 0;
      });
    }
    // Stale or incomplete: probed until it answers, freed after kMaxProbes;
    // but not while its address is contested (rule 7: its host answered
    // recently, or a flood that claims it may be drowning its answers).
    if (e.requested_ns && now_ns - e.requested_ns < cfg_.probe_ns) continue;
    auto w = windows_.find(e.ip);
    bool contested = HasMac(e) && w != windows_.end() && Contested(w->second, now_ns);
    if (e.probes >= kMaxProbes && !contested) {
      Free(e);
    } else if (budget > 0) {
      budget--;
      Probe(e, e.ip, now_ns);
    }
  }
}

void NeighPolicy::Tick(uint64_t now_ns) {
  last_tick_ns_ = now_ns;
  for (auto it = windows_.begin(); it != windows_.end();) {
    Window& w = it->second;
    if (w.open && now_ns >= w.ends_ns) CloseWindow(it->first, w, now_ns);
    if (!w.open && now_ns >= w.forget_ns) {
      windows_.erase(it++);
    } else {
      ++it;
    }
  }
  if (now_ns - last_age_ns_ >= 1'000'000'000ull) {
    last_age_ns_ = now_ns;
    Age(now_ns);
  }
  Publish();
}

std::vector<IpAddr> NeighPolicy::TakeProbes() {
  std::vector<IpAddr> out;
  out.swap(probes_);
  return out;
}

void NeighPolicy::Publish() {
  if (!dirty_) return;
  dirty_ = false;
  local_.entries = entries_;
  if (!stats_) return;
  tables::NeighStats& s = *stats_;
  NeighTable::Write(s, [&] {
    s.entries = local_.entries;
    s.conflicts = local_.conflicts;
    s.moves = local_.moves;
    s.evictions = local_.evictions;
    s.refused = local_.refused;
    s.last_conflict_ns = local_.last_conflict_ns;
    s.last_conflict_ip = local_.last_conflict_ip;
    std::memcpy(s.last_conflict_mac, local_.last_conflict_mac, 6);
    std::memcpy(s.last_conflict_owner, local_.last_conflict_owner, 6);
  });
}

}  // namespace tandem::sw
