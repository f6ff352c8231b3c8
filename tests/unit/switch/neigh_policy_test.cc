// switch/neigh_policy.h, rule by rule, on a neighbour table in plain memory
// with a fake clock (nanoseconds from 1 s).
#include "switch/neigh_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tandem::sw {
namespace {

using tables::NeighState;
using Verdict = NeighPolicy::Verdict;

constexpr uint64_t kMs = 1'000'000ull;
constexpr uint64_t kProbe = 200 * kMs;
constexpr uint64_t kWindow = kAnswerIntervals * kProbe;

struct Mac {
  uint8_t b[6];
};
constexpr Mac kHost{{0x02, 0, 0, 0, 0, 0x11}};
constexpr Mac kStranger{{0x02, 0, 0, 0, 0, 0x66}};
constexpr Mac kThird{{0x02, 0, 0, 0, 0, 0x77}};
constexpr Mac kNewHost{{0x02, 0, 0, 0, 0, 0x12}};

IpAddr Ip(const std::string& s) { return *IpAddr::Parse(s); }
std::string Text(const uint8_t* m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

class NeighPolicyTest : public ::testing::Test {
 protected:
  NeighPolicyTest()
      : entries_(new tables::NeighEntry[tables::kNeighCapacity]()),
        table_(entries_.get()),
        stats_(new tables::NeighStats()) {
    Make();
  }
  void Make(uint32_t max_entries = tables::kNeighCapacity / 4 * 3) {
    NeighPolicyConfig c;
    c.probe_ns = kProbe;
    c.reachable_ns = 30'000 * kMs;
    c.max_entries = max_entries;
    policy_ = std::make_unique<NeighPolicy>(table_, c, stats_.get());
  }

  // The MAC the workers would use for `ip`, or "" if none.
  std::string Used(const IpAddr& ip) {
    uint8_t mac[6];
    return table_.Lookup(ip, mac) ? Text(mac) : "";
  }
  Verdict Answer(const IpAddr& ip, Mac m) {
    Verdict v;
    policy_->Answer(ip, m.b, now_, &v);
    return v;
  }
  Verdict Claim(const IpAddr& ip, Mac m) {
    Verdict v;
    policy_->Claim(ip, m.b, now_, &v);
    return v;
  }
  size_t Probes() { return policy_->TakeProbes().size(); }
  void Advance(uint64_t ns) {
    // The slow path ticks every millisecond.
    for (uint64_t t = 0; t < ns; t += kMs) {
      now_ += kMs;
      policy_->Tick(now_);
    }
  }
  // Resolves `ip` to `m` through a probe and its answer.
  void Learn(const IpAddr& ip, Mac m) {
    policy_->Resolve(ip, now_);
    ASSERT_EQ(Answer(ip, m), Verdict::kLearned);
    Advance(kWindow + kMs);
    policy_->TakeProbes();
  }

  std::unique_ptr<tables::NeighEntry[]> entries_;
  NeighTable table_;
  std::unique_ptr<tables::NeighStats> stats_;
  std::unique_ptr<NeighPolicy> policy_;
  uint64_t now_ = 1'000 * kMs;
  const IpAddr p1_ = Ip("198.18.0.11");
  const IpAddr p1v6_ = Ip("2001:db8:1::11");
};

TEST_F(NeighPolicyTest, Rule1_NothingAHostSendsCreatesAnEntry) {
  EXPECT_EQ(Claim(p1_, kStranger), Verdict::kIgnored);
  EXPECT_EQ(Answer(p1_, kStranger), Verdict::kIgnored);
  EXPECT_EQ(table_.Find(p1_), nullptr);
  EXPECT_EQ(policy_->entries(), 0u);
  policy_->Resolve(p1_, now_);
  EXPECT_NE(table_.Find(p1_), nullptr);
  EXPECT_EQ(Probes(), 1u) << "a resolution sends a probe";
}

TEST_F(NeighPolicyTest, Rule2_AtMostOneProbePerIntervalAndLateAnswersAreClaims) {
  policy_->Resolve(p1_, now_);
  policy_->Resolve(p1_, now_ + kMs);
  EXPECT_EQ(Probes(), 1u);
  Advance(kWindow + kMs);
  EXPECT_EQ(Answer(p1_, kHost), Verdict::kIgnored) << "no MAC yet and no window: nothing learnt";
  EXPECT_EQ(Used(p1_), "");
  policy_->Resolve(p1_, now_);
  EXPECT_EQ(Probes(), 1u);
  EXPECT_EQ(Answer(p1_, kHost), Verdict::kLearned);
  EXPECT_EQ(Used(p1_), Text(kHost.b));
}

TEST_F(NeighPolicyTest, Rule3_FirstAnswerIsUsedAtOnceASecondMacMakesItUnusable) {
  policy_->Resolve(p1_, now_);
  EXPECT_EQ(Answer(p1_, kStranger), Verdict::kLearned);
  EXPECT_EQ(Used(p1_), Text(kStranger.b));
  EXPECT_EQ(Answer(p1_, kHost), Verdict::kConflict);
  EXPECT_EQ(Used(p1_), "") << "two MACs answered the first probe: neither is used";
  EXPECT_EQ(policy_->stats().conflicts, 1u);
  // Later windows with both answering: still nothing; once the host answers
  // alone for kMoveWindows windows, it is used.
  Advance(kWindow + kMs);
  policy_->Resolve(p1_, now_);
  EXPECT_EQ(Answer(p1_, kStranger), Verdict::kCandidate);
  EXPECT_EQ(Answer(p1_, kHost), Verdict::kConflict);
  EXPECT_EQ(Used(p1_), "");
  for (int w = 0; w < kMoveWindows; ++w) {
    Advance(kWindow + kMs);
    EXPECT_EQ(Used(p1_), "") << "window " << w;
    policy_->Resolve(p1_, now_);
    EXPECT_EQ(Answer(p1_, kHost), Verdict::kCandidate);
  }
  Advance(kWindow + kMs);
  EXPECT_EQ(Used(p1_), Text(kHost.b));
}

TEST_F(NeighPolicyTest, Rule4_AnotherMacMovesAnEntryOnlyWhenItAloneAnswersWindowsInARow) {
  Learn(p1_, kHost);
  struct Case {
    const char* what;
    std::vector<std::vector<Mac>> windows;  // who answers each probe window
    std::string expect;
  };
  const Case cases[] = {
      {"the host answers as well", {{kStranger, kHost}, {kStranger, kHost}, {kStranger, kHost},
                                    {kStranger, kHost}},
       Text(kHost.b)},
      {"one answer of the host lost", {{kStranger}, {kStranger, kHost}, {kStranger}, {kStranger}},
       Text(kHost.b)},
      {"a third MAC", {{kStranger}, {kThird}, {kStranger}, {kStranger, kThird}}, Text(kHost.b)},
      {"two answers of the host lost", {{kStranger}, {kStranger}}, Text(kHost.b)},
      {"the host is gone, a new one answers", {{kNewHost}, {kNewHost}, {kNewHost}},
       Text(kNewHost.b)},
  };
  for (const Case& c : cases) {
    Make();
    std::memset(static_cast<void*>(entries_.get()), 0, sizeof(tables::NeighEntry) * tables::kNeighCapacity);
    Learn(p1_, kHost);
    for (const auto& window : c.windows) {
      Claim(p1_, window[0]);  // the claim starts a verification probe
      for (Mac m : window) Answer(p1_, m);
      EXPECT_NE(Used(p1_), Text(kStranger.b)) << c.what << ": moved before the window ended";
      Advance(kWindow + kMs);
      policy_->TakeProbes();
    }
    EXPECT_EQ(Used(p1_), c.expect) << c.what;
  }
}

TEST_F(NeighPolicyTest, Rule5_ClaimsRefreshFromTheOwnerAndAreRefusedFromOthers) {
  Learn(p1_, kHost);
  Learn(p1v6_, kHost);
  // A sustained barrage of claims for p1 from the stranger: every frame is
  // refused, one verification probe per interval, the host answers each.
  uint64_t refused = 0, probes = 0;
  for (int i = 0; i < 8000; ++i) {
    now_ += kMs / 4;
    for (const IpAddr& ip : {p1_, p1v6_}) {
      refused += Claim(ip, kStranger) == Verdict::kConflict;
      refused += Answer(ip, kStranger) == Verdict::kConflict;
      size_t n = Probes();
      probes += n;
      if (n) Answer(ip, kHost);  // the real host answers our probe
    }
    policy_->Tick(now_);
    ASSERT_EQ(Used(p1_), Text(kHost.b)) << "after " << i << " rounds";
    ASSERT_EQ(Used(p1v6_), Text(kHost.b)) << "after " << i << " rounds";
  }
  EXPECT_GE(refused, 2u * 8000);
  EXPECT_LE(probes, 2u * (8000 * kMs / 4 / kProbe + 1)) << "one probe per interval per address";
  EXPECT_GE(policy_->stats().conflicts, probes - 2) << "each probe window shows the conflict";
  EXPECT_EQ(policy_->stats().moves, 0u);
  EXPECT_EQ(policy_->stats().last_conflict_ip, p1v6_);
  EXPECT_EQ(Text(policy_->stats().last_conflict_mac), Text(kStranger.b));
  EXPECT_EQ(Text(policy_->stats().last_conflict_owner), Text(kHost.b));
  EXPECT_EQ(stats_->conflicts, policy_->stats().conflicts) << "published in the state region";
  // The owner's own frames refresh it.
  now_ += 10 * kMs;
  EXPECT_EQ(Claim(p1_, kHost), Verdict::kLearned);
}

TEST_F(NeighPolicyTest, Rule6_AClaimerRefutedOnceNeverTakesTheAddressHoweverManyAnswersAreLost) {
  Learn(p1_, kHost);
  // The host answers the first verification probe only; a flood drowns all
  // its later answers (for longer than the entry stays reachable), while the
  // stranger claims and answers in every window.
  for (int w = 0; w < 100; ++w) {
    Claim(p1_, kStranger);
    Answer(p1_, kStranger);
    if (w == 0) Answer(p1_, kHost);
    Advance(kWindow + kMs);
    policy_->TakeProbes();
    ASSERT_EQ(Used(p1_), Text(kHost.b)) << "window " << w;
  }
  EXPECT_EQ(policy_->stats().moves, 0u);
  EXPECT_EQ(policy_->stats().evictions, 0u) << "a contested entry is not freed for silence";
  // A minute after the last conflict the bar is lifted: the host still
  // silent, the stranger alone would now take it (as any host that alone
  // answers for an address nobody else does).
  Advance(kBarNs);
  policy_->TakeProbes();
  for (int w = 0; w < kMoveWindows + 1; ++w) {
    Claim(p1_, kStranger);
    Answer(p1_, kStranger);
    Advance(kWindow + kMs);
    policy_->TakeProbes();
  }
  EXPECT_NE(Used(p1_), Text(kHost.b));
}

TEST_F(NeighPolicyTest, Rule7_UnansweredEntriesAreFreedAndStaleOnesStillUsed) {
  Learn(p1_, kHost);
  policy_->Resolve(Ip("198.18.0.50"), now_);  // never answers
  EXPECT_EQ(policy_->entries(), 2u);
  Advance(30'000 * kMs + 1'500 * kMs);
  EXPECT_EQ(NeighState(table_.Find(p1_)->state.load()), NeighState::kStale);
  EXPECT_EQ(Used(p1_), Text(kHost.b)) << "a stale entry is still used while re-confirmed";
  EXPECT_EQ(table_.Find(Ip("198.18.0.50")), nullptr) << "freed after its unanswered probes";
  Advance(5'000 * kMs);
  EXPECT_EQ(table_.Find(p1_), nullptr) << "stale, probes unanswered: freed";
  EXPECT_EQ(policy_->entries(), 0u);
  EXPECT_EQ(policy_->stats().evictions, 2u);
}

// A flood that claims an address can drown every answer of its host (the
// switch's receive ring full): the entry must not be freed for that silence,
// or the address is resolved again while the flood answers for it.
TEST_F(NeighPolicyTest, Rule7_AnEntryAnotherMacClaimsIsNotFreedForSilence) {
  Learn(p1_, kHost);
  for (int i = 0; i < 400; ++i) {  // 40 s: past reachable_ns, the host silent
    EXPECT_EQ(Claim(p1_, kStranger), Verdict::kConflict);
    Advance(100 * kMs);
    policy_->TakeProbes();
    ASSERT_EQ(Used(p1_), Text(kHost.b)) << "after " << i * 100 << " ms";
  }
  EXPECT_EQ(NeighState(table_.Find(p1_)->state.load()), NeighState::kStale);
  EXPECT_EQ(policy_->stats().evictions, 0u);
  EXPECT_EQ(policy_->stats().moves, 0u);
  // The claims stop: a minute later, its probes still unanswered, it is freed.
  Advance(kBarNs + 5'000 * kMs);
  EXPECT_EQ(table_.Find(p1_), nullptr);
  EXPECT_EQ(policy_->stats().evictions, 1u);
}

TEST_F(NeighPolicyTest, Rule8_TheTableStaysBoundedUnderAFloodOfNewAddresses) {
  Make(1000);
  std::mt19937 rng(7);
  const IpAddr receiver = Ip("198.18.0.12");
  for (int i = 0; i < 200'000; ++i) {
    uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
    for (int k = 8; k < 16; ++k) b[k] = rng() & 0xff;
    IpAddr ip = IpAddr::FromV6(b);
    Mac m{{0x02, uint8_t(rng()), uint8_t(rng()), uint8_t(rng()), uint8_t(rng()), 1}};
    Claim(ip, m);
    Answer(ip, m);
    if (i % 100 == 0) Advance(kMs);
  }
  EXPECT_EQ(policy_->entries(), 0u) << "no spoofed source created an entry";
  // Receivers the legs need: resolved up to the bound, then refused, and freed
  // again when they stop answering.
  for (int i = 0; i < 2000; ++i) {
    uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(i >> 8),
                     uint8_t(i)};
    policy_->Resolve(IpAddr::FromV6(b), now_);
  }
  EXPECT_EQ(policy_->entries(), 1000u);
  EXPECT_EQ(policy_->stats().refused, 1000u);
  Advance(15'000 * kMs);
  EXPECT_EQ(policy_->entries(), 0u);
  Learn(receiver, kHost);
  EXPECT_EQ(Used(receiver), Text(kHost.b)) << "a real receiver still resolves";
}

TEST_F(NeighPolicyTest, Rule9_AdoptFreesIncompleteEntriesAndReconfirmsTheRest) {
  Learn(p1_, kHost);
  policy_->Resolve(Ip("198.18.0.50"), now_);
  policy_->TakeProbes();
  Make();  // a restarted switch
  policy_->Adopt(now_);
  EXPECT_EQ(table_.Find(Ip("198.18.0.50")), nullptr);
  ASSERT_NE(table_.Find(p1_), nullptr);
  EXPECT_EQ(NeighState(table_.Find(p1_)->state.load()), NeighState::kStale);
  EXPECT_EQ(Used(p1_), Text(kHost.b));
  EXPECT_EQ(policy_->entries(), 1u);
  Advance(500 * kMs);
  EXPECT_EQ(Probes(), 1u) << "re-confirmed";
}

TEST(NeighTable, ChainsSurviveRemovalAndTombstonesAreReused) {
  std::unique_ptr<tables::NeighEntry[]> entries(new tables::NeighEntry[tables::kNeighCapacity]());
  NeighTable t(entries.get());
  // Addresses that share a home slot make one chain.
  std::vector<IpAddr> chain;
  uint32_t home = NeighHash(*IpAddr::Parse("198.18.0.1")) & (tables::kNeighCapacity - 1);
  for (uint32_t i = 1; chain.size() < 4; ++i) {
    IpAddr a = IpAddr::FromV4(htonl(0xc6120000u + i));
    if ((NeighHash(a) & (tables::kNeighCapacity - 1)) == home) chain.push_back(a);
  }
  uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
  for (const IpAddr& a : chain) NeighTable::Confirm(*t.FindOrAdd(a), mac, 1);
  t.Remove(*t.Find(chain[1]));
  uint8_t got[6];
  EXPECT_FALSE(t.Lookup(chain[1], got));
  EXPECT_TRUE(t.Lookup(chain[2], got)) << "found past the tombstone";
  EXPECT_TRUE(t.Lookup(chain[3], got));
  const uint32_t second = (home + 1) & (tables::kNeighCapacity - 1);
  EXPECT_EQ(NeighState(entries[second].state.load()), NeighState::kEvicted);
  t.Remove(*t.Find(chain[3]));
  t.Remove(*t.Find(chain[2]));
  EXPECT_EQ(NeighState(entries[second].state.load()), NeighState::kFree)
      << "tombstones at the end of a chain become free";
  EXPECT_EQ(t.FindOrAdd(chain[3]), &entries[second]) << "the freed slot is reused";
}

}  // namespace
}  // namespace tandem::sw
