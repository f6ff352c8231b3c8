// The neighbour cache's rules: which addresses get an entry, which frames may
// set or move an entry's MAC, when entries are probed and when they are freed.
// Pure decisions on a NeighTable (the state region, or plain memory in the
// unit tests), time injected; the slow path (switch/slowpath.h) tells it what
// the wire said and sends the probes it asks for.
//
// Rules, in order:
//  1. Only Resolve creates entries, and the slow path calls it only for an
//     address a leg needs (a worker found no MAC for a receiver's next hop, a
//     standby warms its receivers) or for one that has an entry. Nothing a
//     host sends creates one.
//  2. A probe of ours (ARP request or NS, at most one per probe interval,
//     neigh_probe_ms) opens an answer window of kAnswerIntervals probe
//     intervals, unless one is open (a busy host or switch may answer late;
//     further probes go out in it, but do not extend it). An answer (ARP
//     reply, neighbour advertisement: the slow path says which) outside a
//     window is a claim (5).
//  3. An entry without a MAC takes the first answer's MAC at once (receivers
//     wait for it), unless its address had a conflict within kBarNs: then, as
//     in 4, only a MAC that alone answered kMoveWindows windows in a row.
//  4. An entry with a MAC: an answer from that MAC confirms it at once. An
//     answer from another MAC is a candidate: the entry moves to it only
//     when that MAC alone (not the entry's own MAC, no third MAC, no
//     conflict) answered kMoveWindows windows in a row. One lost answer of
//     the real host (a flood overran a queue) moves nothing.
//  5. A claim (ARP request, gratuitous ARP, unsolicited NA, NS with a source
//     link-layer address, late answer) from the entry's MAC refreshes a
//     reachable entry; from another MAC it is refused (kConflict: the caller
//     drops it) and starts a probe, whose answers decide (4). A claim for an
//     address without an entry, or for one without a MAC, is ignored.
//  6. A conflict: two MACs answered in one window, or the entry's own MAC
//     answered a window in which another MAC claimed or answered. It is
//     counted once per window and kept as the last conflict (address, the
//     MAC that claimed it, the MAC kept); the entry keeps its MAC, and an
//     entry that took its first MAC in that window (3) loses it again. A MAC
//     that claimed an address against the MAC its host answered with is
//     barred from it for kBarNs after the last such conflict: it never
//     becomes that address's MAC, by move or first answer, however many of
//     the host's answers a flood drowns.
//  7. Ageing (a scan of the table once a second): a reachable entry not
//     confirmed for neigh_reachable_s goes stale and is probed (and used
//     meanwhile); a stale or incomplete entry whose 3 probes went unanswered
//     is freed, unless its address had a conflict within kBarNs (its host
//     was heard then) or another MAC claimed it within kBarNs (a flood that
//     claims an address also drowns its host's answers): it stays stale,
//     keeps its MAC and is probed. A receiver that needs a freed address
//     again asks again (1).
//  8. At most `max_entries` entries: past that Resolve refuses (counted) until
//     ageing frees some. At most `max_probes_per_tick` probes per Tick.
//  9. Adopt, when a (re)started switch takes over the table: incomplete
//     entries are freed, the others become stale (probed again before they
//     are trusted for long).
//
// Threads: the switch's main thread only (the table's single writer).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/tables/layout.h"
#include "switch/neigh.h"

namespace tandem::sw {

struct NeighPolicyConfig {
  uint64_t probe_ns = 1'000'000'000ull;       // neigh_probe_ms
  uint64_t reachable_ns = 30'000'000'000ull;  // neigh_reachable_s
  uint32_t max_entries = tables::kNeighCapacity / 4 * 3;
  uint32_t max_probes_per_tick = 256;
};

// Rule 2: an answer window lasts this many probe intervals.
inline constexpr uint64_t kAnswerIntervals = 3;
// Rules 3 and 4: windows in a row that one other MAC alone must answer.
inline constexpr uint8_t kMoveWindows = 3;
// Rule 6: how long a conflict bars its claimer and makes an address careful.
inline constexpr uint64_t kBarNs = 60'000'000'000ull;

class NeighPolicy {
 public:
  enum class Verdict {
    kIgnored,    // no entry, or nothing to learn: not a drop
    kLearned,    // set, confirmed or refreshed an entry
    kCandidate,  // another MAC's answer, held until its window ends (rule 4)
    kConflict,   // refused: names a known address from another MAC (a drop)
  };

  // `stats` (the state region's NeighStats) may be null.
  NeighPolicy(NeighTable table, NeighPolicyConfig config, tables::NeighStats* stats);

  void Adopt(uint64_t now_ns);  // rule 9
  // Rule 1: finds or creates the entry of `ip` and asks for a probe when one
  // is due (TakeProbes).
  void Resolve(const IpAddr& ip, uint64_t now_ns);
  void Answer(const IpAddr& ip, const uint8_t mac[6], uint64_t now_ns, Verdict* verdict);
  void Claim(const IpAddr& ip, const uint8_t mac[6], uint64_t now_ns, Verdict* verdict);
  // Ends windows (rule 4), ages the table (rule 7), publishes the stats.
  void Tick(uint64_t now_ns);
  // The addresses to probe now, oldest request first; the caller sends them.
  std::vector<IpAddr> TakeProbes();

  uint32_t entries() const { return entries_; }
  const tables::NeighStats& stats() const { return local_; }

 private:
  static constexpr uint8_t kMaxBarred = 4;
  // The probe windows of one address: the one open now, and what earlier
  // ones showed (rules 3 and 4). Kept while probes go on, forgotten
  // kMemory probe intervals after the last window closed.
  struct Window {
    uint64_t ends_ns = 0;  // open while now < ends_ns
    bool open = false;
    bool own_seen = false;    // the entry's MAC answered
    bool other_seen = false;  // another MAC answered: `other`
    bool claimed = false;     // another MAC claimed: `claimer`
    bool conflict = false;    // rule 6, counted
    bool took = false;        // the entry took its first MAC in this window (rule 3)
    uint8_t other[6] = {};
    uint8_t claimer[6] = {};
    // Across windows.
    uint64_t forget_ns = 0;
    uint64_t last_conflict_ns = 0;
    uint64_t last_claim_ns = 0;  // another MAC claimed the address (rule 5)
    uint8_t streak = 0;  // windows in a row that `candidate` alone answered
    uint8_t candidate[6] = {};
    uint8_t nbarred = 0;
    uint8_t barred[kMaxBarred][6] = {};  // rule 6
  };

  bool HasMac(const tables::NeighEntry& e) const;
  Window& OpenWindow(const IpAddr& ip, uint64_t now_ns);
  void CloseWindow(const IpAddr& ip, Window& w, uint64_t now_ns);
  void Conflict(const IpAddr& ip, Window& w, const uint8_t claimer[6], const uint8_t kept[6],
                uint64_t now_ns);
  // A conflict within kBarNs (rules 3, 6 and 7).
  bool RecentConflict(const Window& w, uint64_t now_ns) const;
  // Rule 7: a conflict or another MAC's claim within kBarNs.
  bool Contested(const Window& w, uint64_t now_ns) const;
  bool Barred(const Window& w, const uint8_t mac[6], uint64_t now_ns) const;
  // Sends a probe for `e` unless one went out within the probe interval.
  void Probe(tables::NeighEntry& e, const IpAddr& ip, uint64_t now_ns);
  void Free(tables::NeighEntry& e);
  void Age(uint64_t now_ns);
  void Publish();

  struct IpHash {
    size_t operator()(const IpAddr& a) const { return NeighHash(a); }
  };

  NeighTable table_;
  NeighPolicyConfig cfg_;
  tables::NeighStats* stats_;
  tables::NeighStats local_{};  // what Publish copies out
  bool dirty_ = true;
  uint32_t entries_ = 0;
  uint64_t last_age_ns_ = 0;
  uint64_t last_tick_ns_ = 0;
  absl::flat_hash_map<IpAddr, Window, IpHash> windows_;
  std::vector<IpAddr> probes_;
};

}  // namespace tandem::sw
