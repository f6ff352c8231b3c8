// The witness's rules (control/fleet/witness.h): each rule case by case, then
// a simulated pair in a full partition against a model of etcd's leases
// (expiry at receipt + TTL, expired leases revoked on the lessor's 500 ms
// tick), sampled every millisecond: never two nodes serving.
#include "control/fleet/witness.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::fleet {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);
absl::Time At(int ms) { return kT0 + absl::Milliseconds(ms); }

TEST(WitnessTest, Config) {
  EXPECT_TRUE(CheckWitnessConfig({}).ok());
  struct Case {
    const char* name;
    WitnessConfig c;
  };
  WitnessConfig base;
  auto with = [&](auto change) {
    WitnessConfig c = base;
    change(c);
    return c;
  };
  const std::vector<Case> bad = {
      {"ttl under 2 s", with([](WitnessConfig& c) {
         c.ttl = absl::Seconds(1), c.margin = absl::Milliseconds(200),
         c.renew_interval = absl::Milliseconds(100);
       })},
      {"ttl not whole seconds", with([](WitnessConfig& c) { c.ttl = absl::Milliseconds(2500); })},
      {"margin 0", with([](WitnessConfig& c) { c.margin = absl::ZeroDuration(); })},
      {"margin >= ttl", with([](WitnessConfig& c) { c.margin = absl::Seconds(3); })},
      {"renewal too rare",
       with([](WitnessConfig& c) { c.renew_interval = absl::Milliseconds(1001); })},
      {"guard 0", with([](WitnessConfig& c) { c.guard = absl::ZeroDuration(); })},
  };
  for (const Case& c : bad) {
    EXPECT_EQ(CheckWitnessConfig(c.c).code(), absl::StatusCode::kInvalidArgument) << c.name;
  }
}

// One decision per row: the witness's history, what the pair sees, the verdict.
TEST(WitnessTest, RulesCaseByCase) {
  struct Case {
    const char* name;
    std::optional<uint64_t> acquired_epoch;  // acquired at 0 ms
    int renewed_ms = -1;                     // renewal sent then (-1: none)
    bool lost = false;
    PairSight sight;
    int now_ms;
    bool may_be_active;
    const char* rule;
    WitnessAction action;
    uint64_t acquire_epoch = 0;
    int step_down_ms = -1;  // -1: InfiniteFuture
  };
  using A = WitnessAction;
  const std::vector<Case> cases = {
      {"W2: active, peer heard, no key (etcd down): stays, tries to acquire at its epoch",
       {},
       -1,
       false,
       {.active = true, .epoch = 4, .peer_heard = true},
       100,
       true,
       "W2",
       A::kAcquire,
       4},
      {"W3: active, peer silent, holding: stays until ttl - margin after the acquisition",
       7,
       -1,
       false,
       {.active = true, .epoch = 7},
       1999,
       true,
       "W3",
       A::kRenew,
       0,
       2000},
      {"W3: the hold ends at ttl - margin",
       7,
       -1,
       false,
       {.active = true, .epoch = 7},
       2000,
       false,
       "W3",
       A::kRenew,
       0,
       2000},
      {"W1: a renewal sent at 1500 ms holds to 3500 ms",
       7,
       1500,
       false,
       {.active = true, .epoch = 7},
       3400,
       true,
       "W3",
       A::kRenew,
       0,
       3500},
      {"W1: etcd says the lease is gone: the hold ends at once",
       7,
       1500,
       true,
       {.active = true, .epoch = 7},
       1600,
       false,
       "W3",
       A::kNone,
       0,
       1600},
      {"W7: lost, the next attempt acquires again at its own epoch",
       7,
       1500,
       true,
       {.active = true, .epoch = 7},
       2000,
       false,
       "W3",
       A::kAcquire,
       7,
       2000},
      {"W3: active, peer silent, never held the key: steps down now",
       {},
       -1,
       false,
       {.active = true, .epoch = 3},
       50,
       false,
       "W3",
       A::kAcquire,
       3,
       50},
      {"W4: the peer holds the key at a higher epoch: step down although heard",
       {},
       -1,
       false,
       {.active = true, .epoch = 3, .peer_heard = true, .peer_key_epoch = 4},
       50,
       false,
       "W4",
       A::kAcquire,
       3,
       50},
      {"W4: a stale claim of the peer (lower than our key) is ignored",
       9,
       -1,
       false,
       {.active = true, .epoch = 9, .peer_key_epoch = 8},
       100,
       true,
       "W3",
       A::kNone,
       0,
       2000},
      {"W5: standby, takeover due, peer silent, no key: waits, acquires above what it saw",
       {},
       -1,
       false,
       {.epoch = 5, .takeover_due = true},
       100,
       false,
       "W5",
       A::kAcquire,
       6,
       100},
      {"W5: key acquired at epoch 6: not before the guard",
       6,
       -1,
       false,
       {.epoch = 5, .takeover_due = true},
       99,
       false,
       "W5",
       A::kNone,
       0,
       99},
      {"W5: key acquired at epoch 6: after the guard",
       6,
       -1,
       false,
       {.epoch = 5, .takeover_due = true},
       100,
       true,
       "W5",
       A::kNone,
       0,
       100},
      {"W5: the peer is heard again after the acquisition: take over all the same",
       6,
       -1,
       false,
       {.epoch = 5, .peer_heard = true},
       600,
       true,
       "W5",
       A::kRenew,
       0,
       600},
      {"W6: standby, takeover due with the peer heard (handover): no wait for etcd",
       {},
       -1,
       false,
       {.epoch = 5, .peer_heard = true, .takeover_due = true},
       10,
       true,
       "W6",
       A::kAcquire,
       6,
       10},
      {"standby, nothing due: nothing to do",
       {},
       -1,
       false,
       {.epoch = 5, .peer_heard = true},
       10,
       false,
       "",
       A::kNone,
       0,
       10},
      {"W8: demoted standby still holding its key releases it",
       5,
       -1,
       false,
       {.epoch = 6, .peer_heard = true},
       10,
       false,
       "",
       A::kRelease,
       0,
       10},
      {"W8: a pending takeover overtaken by a higher epoch releases",
       6,
       -1,
       false,
       {.epoch = 6, .peer_heard = true, .takeover_due = true},
       10,
       true,
       "W6",
       A::kRelease,
       0,
       10},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Witness w({});
    if (c.acquired_epoch) {
      w.Acquired(*c.acquired_epoch, At(0));
      w.Attempted(At(0));
    }
    if (c.renewed_ms >= 0) {
      w.Renewed(At(c.renewed_ms));
      w.Attempted(At(c.renewed_ms));
    }
    if (c.lost) w.Lost();
    if (c.sight.takeover_due && !c.sight.active) w.SawStoredEpoch(c.sight.epoch);
    WitnessVerdict v = w.Decide(c.sight, At(c.now_ms));
    EXPECT_EQ(v.may_be_active, c.may_be_active);
    EXPECT_STREQ(v.rule, c.rule);
    EXPECT_EQ(v.action, c.action) << WitnessActionName(v.action);
    if (c.action == A::kAcquire) {
      EXPECT_EQ(v.acquire_epoch, c.acquire_epoch);
    }
    EXPECT_EQ(v.step_down_at, c.step_down_ms < 0 ? absl::InfiniteFuture() : At(c.step_down_ms));
  }
}

TEST(WitnessTest, RenewalsAndAttemptsEveryRenewInterval) {
  Witness w({});
  w.Acquired(2, At(0));
  w.Attempted(At(0));
  PairSight s{.active = true, .epoch = 2};
  EXPECT_EQ(w.Decide(s, At(499)).action, WitnessAction::kNone);
  EXPECT_EQ(w.Decide(s, At(500)).action, WitnessAction::kRenew);
  // A renewal that got no answer moves nothing, and the next one is due.
  w.Attempted(At(500));
  EXPECT_EQ(w.hold_until(), At(2000));
  EXPECT_EQ(w.Decide(s, At(1000)).action, WitnessAction::kRenew);
}

// ---- a pair in a full partition, against a model of etcd ----

struct EtcdModel {
  // The key: holder, epoch, and when etcd revokes the lease.
  int holder = -1;
  uint64_t epoch = 0;  // the key's
  uint64_t stored_epoch = 0;
  absl::Time expiry;
  absl::Duration latency = absl::Milliseconds(2);
  absl::Duration ttl = absl::Seconds(3);

  void Tick(absl::Time now) {
    // The lessor revokes expired leases on its 500 ms tick.
    if (holder >= 0 && now >= expiry &&
        (now - kT0) % absl::Milliseconds(500) == absl::ZeroDuration())
      holder = -1;
  }
};

struct SimNode {
  int id = 0;
  bool active = false;
  uint64_t epoch = 1;
  bool alive = true;
  bool reaches_etcd = true;
  Witness w{WitnessConfig{}};
  std::optional<absl::Time> serving_until;  // still serving after a step-down, until then
};

struct Outcome {
  int overlap_ms = 0;    // both nodes serving
  int last_active = -1;  // node active at the end (-1: none)
  absl::Duration gap;    // from the first node stopping to the other serving
};

class PartitionSim {
 public:
  // `stop_time`: how long a node that steps down goes on forwarding.
  absl::Duration stop_time = absl::Milliseconds(50);
  absl::Duration detect = absl::Milliseconds(30);
  absl::Duration skew = absl::Milliseconds(10);  // node 0 detects later by this much
  bool a_hears_b = true, b_hears_a = true;
  absl::Time partition_at = absl::InfiniteFuture();
  SimNode n[2];
  EtcdModel etcd;

  PartitionSim() {
    n[0].id = 0;
    n[1].id = 1;
    n[0].active = true;
  }

  bool Serving(const SimNode& x, absl::Time now) const {
    return x.alive && (x.active || (x.serving_until && now < *x.serving_until));
  }

  bool Heard(int self, absl::Time now) const {
    bool path_ok = self == 0 ? a_hears_b : b_hears_a;
    if (!n[1 - self].alive) path_ok = false;
    absl::Duration d = detect + (self == 0 ? skew : absl::ZeroDuration());
    return path_ok || now < partition_at + d;
  }

  void Act(SimNode& x, const WitnessVerdict& v, absl::Time now) {
    if (v.action == WitnessAction::kNone) return;
    x.w.Attempted(now);
    if (!x.reaches_etcd) return;  // the request is lost
    absl::Time receipt = now + etcd.latency;
    switch (v.action) {
      case WitnessAction::kAcquire:
        if (etcd.holder < 0 && v.acquire_epoch >= etcd.stored_epoch) {
          etcd.holder = x.id;
          etcd.epoch = etcd.stored_epoch = v.acquire_epoch;
          etcd.expiry = receipt + etcd.ttl;
          x.w.Acquired(v.acquire_epoch, now);
        } else {
          x.w.SawStoredEpoch(etcd.stored_epoch);
        }
        break;
      case WitnessAction::kRenew:
        if (etcd.holder == x.id) {
          etcd.expiry = receipt + etcd.ttl;
          x.w.Renewed(now);
        } else {
          x.w.Lost();
        }
        break;
      case WitnessAction::kRelease:
        if (etcd.holder == x.id) etcd.holder = -1;
        x.w.Lost();
        break;
      case WitnessAction::kNone:
        break;
    }
  }

  void Step(SimNode& x, absl::Time now) {
    if (!x.alive) return;
    SimNode& peer = n[1 - x.id];
    bool heard = Heard(x.id, now);
    PairSight s{.active = x.active,
                .epoch = x.epoch,
                .peer_heard = heard,
                .peer_key_epoch = heard ? peer.w.key_epoch() : 0,
                .takeover_due = !x.active && !heard};
    if (heard && peer.epoch > x.epoch) {  // role rule 1
      x.epoch = peer.epoch;
      if (x.active) StepDown(x, now);
      s.active = false;
      s.epoch = x.epoch;
    }
    WitnessVerdict v = x.w.Decide(s, now);
    Act(x, v, now);
    if (x.active && !v.may_be_active) StepDown(x, now);
    if (!x.active && v.may_be_active && (s.takeover_due || std::string(v.rule) == "W5")) {
      x.active = true;
      x.epoch = x.w.key_epoch() > x.epoch ? x.w.key_epoch() : x.epoch + 1;
    }
  }

  void StepDown(SimNode& x, absl::Time now) {
    x.active = false;
    x.serving_until = now + stop_time;
  }

  Outcome Run(absl::Duration total) {
    Outcome o;
    std::optional<absl::Time> first_stop, second_start;
    for (absl::Time now = kT0; now < kT0 + total; now += absl::Milliseconds(1)) {
      etcd.Tick(now);
      Step(n[0], now);
      Step(n[1], now);
      bool s0 = Serving(n[0], now), s1 = Serving(n[1], now);
      if (s0 && s1) ++o.overlap_ms;
      if (!s0 && !first_stop) first_stop = now;
      if (first_stop && s1 && !second_start) second_start = now;
    }
    o.last_active = n[0].active ? 0 : n[1].active ? 1 : -1;
    o.gap = first_stop && second_start ? *second_start - *first_stop : absl::InfiniteDuration();
    return o;
  }
};

// Starts with A active holding the key (it acquired it in the first tick),
// then a full partition at 5 s; `setup` cuts etcd or kills a node.
TEST(WitnessTest, FullPartitionNeverTwoServing) {
  struct Case {
    const char* name;
    bool a_reaches_etcd, b_reaches_etcd;
    bool a_cut_from_etcd_early;  // A lost etcd long before the partition
    bool a_dies;                 // the host dies instead of a partition
    bool asymmetric;             // A still hears B
    int want_active;             // at the end
  };
  const std::vector<Case> cases = {
      {"etcd reachable from both: A keeps the key and the role", true, true, false, false, false,
       0},
      {"only B reaches etcd: A steps down, B takes over once the lease expired", false, true, false,
       false, false, 1},
      {"only A reaches etcd: A stays, B waits", true, false, false, false, false, 0},
      {"neither reaches etcd: A steps down, nobody serves", false, false, false, false, false, -1},
      {"A lost etcd long before (no key): A steps down at detection, B after its guard", false,
       true, true, false, false, 1},
      {"A's host dies: B takes over after the lease expires", true, true, false, true, false, 1},
      {"asymmetric, A hears B, A without etcd: A sees B's key and steps down", false, true, true,
       false, true, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PartitionSim sim;
    const absl::Time partition = kT0 + absl::Seconds(5);
    // Before the partition: both reach etcd unless A was cut off early.
    if (c.a_cut_from_etcd_early) {
      sim.n[0].reaches_etcd = false;
    }
    Outcome before = sim.Run(absl::Seconds(5) - absl::Milliseconds(1));
    ASSERT_EQ(before.overlap_ms, 0);
    ASSERT_TRUE(sim.n[0].active);
    sim.partition_at = partition;
    if (c.a_dies) {
      sim.n[0].alive = false;
    } else {
      sim.a_hears_b = c.asymmetric;
      sim.b_hears_a = false;
    }
    sim.n[0].reaches_etcd = c.a_reaches_etcd;
    sim.n[1].reaches_etcd = c.b_reaches_etcd;
    // Run on from where the first run stopped.
    Outcome o;
    PartitionSim& s = sim;
    int overlap = 0;
    std::optional<absl::Time> a_stop, b_start;
    for (absl::Time now = partition - absl::Milliseconds(1); now < partition + absl::Seconds(10);
         now += absl::Milliseconds(1)) {
      s.etcd.Tick(now);
      s.Step(s.n[0], now);
      s.Step(s.n[1], now);
      bool s0 = s.Serving(s.n[0], now), s1 = s.Serving(s.n[1], now);
      overlap += s0 && s1;
      if (!s0 && !a_stop) a_stop = now;
      if (s1 && !b_start) b_start = now;
    }
    EXPECT_EQ(overlap, 0);
    o.last_active = s.n[0].active && s.n[0].alive ? 0 : s.n[1].active ? 1 : -1;
    EXPECT_EQ(o.last_active, c.want_active);
    if (c.want_active == 1) {
      // The documented bound (docs/fleet.md): ttl + the lessor's tick +
      // guard + latencies, from the partition.
      ASSERT_TRUE(b_start.has_value());
      EXPECT_LE(*b_start - partition, absl::Seconds(3) + absl::Milliseconds(500 + 100 + 50));
    }
  }
}

}  // namespace
}  // namespace tandem::fleet
