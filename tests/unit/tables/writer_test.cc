// The single writer: its errors, all-or-nothing batches, exclusivity, and
// adopting a region after a clean exit or a death in the middle of a change.
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/tables/layout.h"
#include "common/tables/tables.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tables/tables_testing.h"

namespace tandem::tables {
namespace {

using ::tandem::tables::testing::CheckRegion;
using ::tandem::tables::testing::KeyOfLeg;
using ::tandem::tables::testing::MakeLeg;
using ::tandem::tables::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::unique_ptr<TablesWriter> OpenWriter(const TempDir& dir, Capacity cap = {.legs = 64,
                                                                             .meetings = 8}) {
  auto w = TablesWriter::Open(dir.tables(), cap);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? std::move(*w) : nullptr;
}

// What a reader sees of a leg, or nullptr.
const LegEntry* Lookup(const TablesView& v, uint64_t leg_id) {
  uint32_t slot = v.Find(KeyOfLeg(leg_id));
  return slot == kNil ? nullptr : &v.leg(slot);
}

TEST(TablesWriter, AddedLegIsFoundByReaders) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(7, 1).ok());
  LegSpec spec = MakeLeg(1, 7, Channel::kVideo);
  spec.flags = kLegRecv;
  spec.pps_limit = 100;
  ASSERT_TRUE(w->AddLeg(spec).ok());

  auto attached = AttachTables(dir.tables());  // as another process would
  ASSERT_TRUE(attached.ok());
  const LegEntry* e = Lookup(attached->second, 1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->leg_id, 1u);
  EXPECT_EQ(e->participant_id, spec.participant_id);
  EXPECT_EQ(e->channel, uint8_t(Channel::kVideo));
  EXPECT_EQ(e->flags.load(), kLegRecv);
  EXPECT_EQ(e->pps_limit.load(), 100u);
  EXPECT_EQ(e->limited.load(), 1u) << "workers read the limits of a limited leg only";
  EXPECT_EQ(attached->second.meeting(e->meeting).meeting_id, 7u);
  EXPECT_EQ(attached->second.header().leg_count.load(), 1u);

  auto info = w->GetLeg(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->spec.meeting_id, 7u);
  EXPECT_EQ(*w->FindLegByKey(spec.key), 1u);
  EXPECT_THAT(w->LegsOfMeeting(7), UnorderedElementsAre(1));

  ASSERT_TRUE(w->SetLegFlags(1, kLegSend | kLegMuted).ok());
  EXPECT_EQ(e->flags.load(), kLegSend | kLegMuted);
  ASSERT_TRUE(w->RemoveLeg(1).ok());
  EXPECT_EQ(Lookup(attached->second, 1), nullptr);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

TEST(TablesWriter, IPv6LegsWork) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  LegSpec spec = MakeLeg(1, 1);
  spec.key.remote = *IpAddr::Parse("2001:db8:1::10");
  spec.key.local = *IpAddr::Parse("2001:db8::100");
  ASSERT_TRUE(w->AddLeg(spec).ok());
  EXPECT_NE(w->view().Find(spec.key), kNil);
}

TEST(TablesWriter, RoleEpochAndVips) {
  TempDir dir;
  auto w = OpenWriter(dir);
  w->SetRole(Role::kActive, 3);
  EXPECT_EQ(w->view().role(), Role::kActive);
  EXPECT_EQ(w->view().epoch(), 3u);
  std::vector<IpAddr> vips = {*IpAddr::Parse("198.18.0.100"), *IpAddr::Parse("2001:db8::100")};
  ASSERT_TRUE(w->SetVips(vips).ok());
  EXPECT_EQ(w->view().Vips(), vips);
  ASSERT_TRUE(w->SetVips({}).ok());
  EXPECT_TRUE(w->view().Vips().empty());
  std::vector<IpAddr> too_many(kMaxVips + 1, vips[0]);
  EXPECT_TRUE(absl::IsInvalidArgument(w->SetVips(too_many)));
}

TEST(TablesWriter, FullLegTableIsResourceExhausted) {
  TempDir dir;
  auto w = OpenWriter(dir, {.legs = 8, .meetings = 2});
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  for (uint64_t id = 1; id <= 8; ++id) ASSERT_TRUE(w->AddLeg(MakeLeg(id, 1)).ok()) << id;
  absl::Status st = w->AddLeg(MakeLeg(9, 1));
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("full"));
  EXPECT_EQ(Lookup(w->view(), 9), nullptr);
  // Space comes back once a leg is removed (no reader holds it).
  ASSERT_TRUE(w->RemoveLeg(3).ok());
  EXPECT_TRUE(w->AddLeg(MakeLeg(9, 1)).ok());
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

TEST(TablesWriter, FullMeetingTableIsResourceExhausted) {
  TempDir dir;
  auto w = OpenWriter(dir, {.legs = 8, .meetings = 2});
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  ASSERT_TRUE(w->AddMeeting(2, 1).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(w->AddMeeting(3, 1)));
  ASSERT_TRUE(w->RemoveMeeting(1).ok());
  EXPECT_TRUE(w->AddMeeting(3, 1).ok());
}

TEST(TablesWriter, BatchIsAllOrNothing) {
  TempDir dir;
  auto w = OpenWriter(dir, {.legs = 8, .meetings = 2});
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  ASSERT_TRUE(w->AddLeg(MakeLeg(100, 1)).ok());
  const uint32_t changes = w->view().header().change_count.load();

  auto expect_untouched = [&](absl::Status st, absl::StatusCode code) {
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_EQ(w->leg_count(), 1u);
    for (uint64_t id = 1; id <= 9; ++id) EXPECT_EQ(Lookup(w->view(), id), nullptr) << id;
    EXPECT_EQ(w->view().header().change_count.load(), changes);
    EXPECT_EQ(CheckRegion(w->view(), *w), "");
  };
  // The bad leg comes last so that the good ones before it would be visible.
  std::vector<LegSpec> batch = {MakeLeg(1, 1), MakeLeg(2, 1), MakeLeg(3, 1), MakeLeg(4, 2)};
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kNotFound);
  batch[3] = MakeLeg(100, 1);  // existing leg id
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kAlreadyExists);
  batch[3] = MakeLeg(2, 1);  // leg id twice in the batch
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kAlreadyExists);
  batch[3] = MakeLeg(4, 1);
  batch[3].key = batch[0].key;  // key twice in the batch
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kAlreadyExists);
  batch[3] = MakeLeg(4, 1);
  batch[3].key.local_port = 0;
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kInvalidArgument);
  // More legs than free slots.
  batch.clear();
  for (uint64_t id = 1; id <= 8; ++id) batch.push_back(MakeLeg(id, 1));
  expect_untouched(w->AddLegs(batch), absl::StatusCode::kResourceExhausted);

  batch.pop_back();
  ASSERT_TRUE(w->AddLegs(batch).ok());
  EXPECT_EQ(w->leg_count(), 8u);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

TEST(TablesWriter, DuplicatesAreAlreadyExists) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(w->AddMeeting(1, 2)));
  ASSERT_TRUE(w->AddLeg(MakeLeg(1, 1)).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(w->AddLeg(MakeLeg(1, 1))));  // same leg id
  LegSpec same_key = MakeLeg(2, 1);
  same_key.key = KeyOfLeg(1);
  absl::Status st = w->AddLeg(same_key);
  EXPECT_TRUE(absl::IsAlreadyExists(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("already in use"));
  EXPECT_EQ(w->leg_count(), 1u);
}

// A leg is marked limited while either limit is set (Worker::Admit reads
// the limits, in the entry's second line, only then).
TEST(TablesWriter, LimitsMarkTheLegLimited) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  ASSERT_TRUE(w->AddLeg(MakeLeg(1, 1)).ok());
  auto attached = AttachTables(dir.tables());
  ASSERT_TRUE(attached.ok());
  const LegEntry* e = Lookup(attached->second, 1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->limited.load(), 0u);
  ASSERT_TRUE(w->SetLegLimits(1, 0, 64).ok());
  EXPECT_EQ(e->limited.load(), 1u) << "kbit/s alone";
  ASSERT_TRUE(w->SetLegLimits(1, 0, 0).ok());
  EXPECT_EQ(e->limited.load(), 0u);
  ASSERT_TRUE(w->SetLegLimits(1, 10, 0).ok());
  EXPECT_EQ(e->limited.load(), 1u) << "pps alone";
}

// Each leg carries the one's complement sums of its key (LegEntry::sums),
// which the switch adds into every copy's checksums instead of summing the
// addresses: here against sums worked out by hand, big-endian 16-bit words.
TEST(TablesWriter, StoresTheChecksumSumsOfTheKey) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  LegSpec v4 = MakeLeg(1, 1), v6 = MakeLeg(2, 1);
  v4.key.remote = *IpAddr::Parse("198.18.0.10");
  v4.key.local = *IpAddr::Parse("198.18.0.100");
  v6.key.remote = *IpAddr::Parse("2001:db8:1::10");
  v6.key.local = *IpAddr::Parse("2001:db8:1::100");
  for (LegSpec* s : {&v4, &v6}) {
    s->key.remote_port = 5000;
    s->key.local_port = 20000;
  }
  ASSERT_TRUE(w->AddLegs({v4, v6}).ok());
  auto attached = AttachTables(dir.tables());
  ASSERT_TRUE(attached.ok());
  // c612 + 000a + c612 + 0064 = 0x18c92 -> 0x8c93; + 0x1388 + 0x4e20 -> 0xee3b.
  const TablesView& v = attached->second;
  uint32_t s4 = v.Find(v4.key), s6 = v.Find(v6.key);
  ASSERT_NE(s4, kNil);
  ASSERT_NE(s6, kNil);
  const LegEntry* e4 = &v.leg(s4);
  EXPECT_EQ(e4->sums.addrs, 0x8c93);
  EXPECT_EQ(e4->sums.all, 0xee3b);
  // 2 x (2001 + 0db8 + 0001) + 0010 + 0100 -> 0x5c84; with the ports 0xbe2c.
  const LegEntry* e6 = &v.leg(s6);
  EXPECT_EQ(e6->sums.addrs, 0x5c84);
  EXPECT_EQ(e6->sums.all, 0xbe2c);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

// shm_dir on hugetlbfs (docs/performance.md: a million legs on 2 MB pages):
// a region there is a whole number of huge pages (ftruncate refuses any
// other size) and reads as anywhere else.
TEST(TablesRegions, OnHugetlbfsTakeWholeHugePages) {
  struct statfs fs;
  if (statfs("/dev/hugepages", &fs) != 0 || fs.f_type != HUGETLBFS_MAGIC) {
    GTEST_SKIP() << "no hugetlbfs mounted at /dev/hugepages";
  }
  TempDir dir("/dev/hugepages");
  auto w = OpenWriter(dir);
  ASSERT_NE(w, nullptr);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  ASSERT_TRUE(w->AddLeg(MakeLeg(1, 1)).ok());
  auto attached = AttachTables(dir.tables());
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_NE(Lookup(attached->second, 1), nullptr);
  struct stat st;
  ASSERT_EQ(stat(dir.tables().c_str(), &st), 0);
  EXPECT_EQ(st.st_size % fs.f_bsize, 0);
  auto state = OpenOrCreateState(dir.state(), 64, 2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->second.leg_counters(1, 63).packets_in, 0u);
}

TEST(TablesWriter, UnknownThingsAreNotFound) {
  TempDir dir;
  auto w = OpenWriter(dir);
  absl::Status st = w->AddLeg(MakeLeg(1, 99));
  EXPECT_TRUE(absl::IsNotFound(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("unknown meeting 99"));
  EXPECT_TRUE(absl::IsNotFound(w->RemoveLeg(1)));
  EXPECT_TRUE(absl::IsNotFound(w->SetLegFlags(1, 0)));
  EXPECT_TRUE(absl::IsNotFound(w->SetLegLimits(1, 0, 0)));
  EXPECT_TRUE(absl::IsNotFound(w->GetLeg(1).status()));
  EXPECT_TRUE(absl::IsNotFound(w->RemoveMeeting(99)));
  EXPECT_TRUE(absl::IsNotFound(w->SetMeetingFlags(99, 0)));
  EXPECT_TRUE(absl::IsNotFound(w->FindLegByKey(KeyOfLeg(1)).status()));
}

TEST(TablesWriter, MixedFamiliesAreInvalid) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  LegSpec spec = MakeLeg(1, 1);
  spec.key.local = *IpAddr::Parse("2001:db8::100");
  absl::Status st = w->AddLeg(spec);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("different address families"));
  spec = MakeLeg(1, 1);
  spec.key.remote_port = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(w->AddLeg(spec)));
  for (const char* nobody : {"0.0.0.0", "::"}) {
    spec = MakeLeg(1, 1);
    if (std::string(nobody) == "::") spec.key.local = *IpAddr::Parse("2001:db8::100");
    spec.key.remote = *IpAddr::Parse(nobody);
    st = w->AddLeg(spec);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << nobody << ": " << st;
  }
  EXPECT_EQ(w->leg_count(), 0u);
}

TEST(TablesWriter, RemoveMeetingRemovesItsLegs) {
  TempDir dir;
  auto w = OpenWriter(dir);
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  ASSERT_TRUE(w->AddMeeting(2, 1).ok());
  ASSERT_TRUE(w->AddLegs({MakeLeg(1, 1, Channel::kAudio), MakeLeg(2, 1, Channel::kVideo),
                          MakeLeg(3, 1, Channel::kShare), MakeLeg(4, 1, Channel::kAudio),
                          MakeLeg(5, 2, Channel::kAudio)})
                  .ok());
  ASSERT_TRUE(w->RemoveMeeting(1).ok());
  EXPECT_FALSE(w->HasMeeting(1));
  for (uint64_t id = 1; id <= 4; ++id) {
    EXPECT_EQ(Lookup(w->view(), id), nullptr) << id;
    EXPECT_TRUE(absl::IsNotFound(w->GetLeg(id).status())) << id;
  }
  EXPECT_NE(Lookup(w->view(), 5), nullptr);
  EXPECT_THAT(w->LegsOfMeeting(2), UnorderedElementsAre(5));
  EXPECT_EQ(w->leg_count(), 1u);
  EXPECT_EQ(w->view().header().meeting_count.load(), 1u);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
  // The ids are free again.
  ASSERT_TRUE(w->AddMeeting(1, 1).ok());
  EXPECT_TRUE(w->AddLeg(MakeLeg(1, 1)).ok());
}

TEST(TablesWriter, SecondWriterIsRefused) {
  TempDir dir;
  auto first = OpenWriter(dir);
  auto second = TablesWriter::Open(dir.tables(), {});
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("pid ", getpid())));
  first.reset();
  EXPECT_TRUE(TablesWriter::Open(dir.tables(), {}).ok());
}

// Everything the writer knows, for comparing before and after a restart.
struct Contents {
  std::map<uint64_t, std::tuple<uint64_t, uint32_t, uint32_t, uint8_t, uint64_t>> legs;
  std::map<uint64_t, uint64_t> meetings;
  bool operator==(const Contents&) const = default;
};

Contents ContentsOf(const TablesWriter& w) {
  Contents c;
  w.ForEachLeg([&](const LegInfo& l) {
    c.legs[l.spec.leg_id] = {l.spec.meeting_id, l.spec.flags, l.slot,
                             uint8_t(l.spec.channel), l.spec.participant_id};
  });
  w.ForEachMeeting([&](uint64_t id, uint64_t site, uint32_t) { c.meetings[id] = site; });
  return c;
}

TEST(TablesWriter, RestartedWriterAdoptsEverything) {
  TempDir dir;
  Contents before;
  {
    auto w = OpenWriter(dir, {.legs = 256, .meetings = 16});
    w->SetRole(Role::kActive, 5);
    ASSERT_TRUE(w->SetVips({*IpAddr::Parse("198.18.0.100")}).ok());
    for (uint64_t m = 1; m <= 4; ++m) ASSERT_TRUE(w->AddMeeting(m, 10 + m).ok());
    for (uint64_t id = 1; id <= 100; ++id) {
      ASSERT_TRUE(w->AddLeg(MakeLeg(id, 1 + id % 4, Channel(id % kChannels))).ok());
    }
    for (uint64_t id = 1; id <= 100; id += 7) ASSERT_TRUE(w->RemoveLeg(id).ok());
    ASSERT_TRUE(w->SetLegFlags(2, kLegRecv).ok());
    ASSERT_TRUE(w->RemoveMeeting(4).ok());
    before = ContentsOf(*w);
  }
  auto w = OpenWriter(dir, {.legs = 256, .meetings = 16});
  EXPECT_EQ(ContentsOf(*w), before);
  EXPECT_EQ(w->view().role(), Role::kActive);
  EXPECT_EQ(w->view().epoch(), 5u);
  EXPECT_EQ(w->view().Vips().size(), 1u);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
  for (const auto& [id, leg] : before.legs) EXPECT_NE(Lookup(w->view(), id), nullptr) << id;
  EXPECT_EQ(w->GetLeg(2)->spec.flags, kLegRecv);
  // And it goes on: fan-out lists keep working for removals in their middle.
  ASSERT_TRUE(w->RemoveLeg(10).ok());
  ASSERT_TRUE(w->AddLeg(MakeLeg(1000, 1)).ok());
  ASSERT_TRUE(w->RemoveMeeting(2).ok());
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

// A writer that dies between steps of a change leaves half-made entries; the
// next writer must drop them without corrupting any list. These are the
// states a death can leave, made by hand.
TEST(TablesWriter, AdoptsHalfMadeEntries) {
  TempDir dir;
  uint32_t orphan_slot, listed_slot;
  {
    auto w = OpenWriter(dir);
    ASSERT_TRUE(w->AddMeeting(1, 1).ok());
    ASSERT_TRUE(w->AddLegs({MakeLeg(1, 1), MakeLeg(2, 1), MakeLeg(3, 1)}).ok());
    const TablesView& v = w->view();
    // Died after marking a never-used slot live, before linking it anywhere:
    // its writer-only back link is still the zero of a fresh region.
    orphan_slot = 10;
    LegEntry& orphan = v.leg(orphan_slot);
    orphan.key = KeyOfLeg(4);
    orphan.leg_id = 4;
    orphan.meeting = v.leg(w->GetLeg(1)->slot).meeting;
    ASSERT_EQ(orphan.group_prev, 0u);
    orphan.state.store(uint8_t(EntryState::kLive));
    // Died after linking a leg into its fan-out list but not its lookup chain.
    listed_slot = 11;
    LegEntry& listed = v.leg(listed_slot);
    listed.key = KeyOfLeg(5);
    listed.leg_id = 5;
    listed.meeting = orphan.meeting;
    listed.channel = 0;
    MeetingEntry& m = v.meeting(listed.meeting);
    listed.group_next.store(m.head[0].load());
    listed.state.store(uint8_t(EntryState::kLive));
    m.head[0].store(listed_slot);
  }
  auto w = OpenWriter(dir);
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
  EXPECT_EQ(w->leg_count(), 3u);
  EXPECT_THAT(w->LegsOfMeeting(1), UnorderedElementsAre(1, 2, 3));
  EXPECT_TRUE(absl::IsNotFound(w->GetLeg(4).status()));
  EXPECT_TRUE(absl::IsNotFound(w->GetLeg(5).status()));
  EXPECT_EQ(Lookup(w->view(), 4), nullptr);
  // Both ids and keys can be used again.
  ASSERT_TRUE(w->AddLegs({MakeLeg(4, 1), MakeLeg(5, 1)}).ok());
  ASSERT_TRUE(w->RemoveLeg(2).ok());
  EXPECT_EQ(CheckRegion(w->view(), *w), "");
}

// A child process churns the tables and dies abruptly (_exit, or SIGKILL at a
// random moment); the next writer adopts a sound region every time.
TEST(TablesWriter, WriterKilledMidChangeLeavesAdoptableRegion) {
  TempDir dir;
  const Capacity cap{.legs = 512, .meetings = 16};
  std::mt19937 rng(12345);
  uint64_t next_id = 1;
  for (int round = 0; round < 12; ++round) {
    const bool kill_it = round % 2 == 1;
    const uint64_t first_id = next_id;
    next_id += 100000;
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto w = TablesWriter::Open(dir.tables(), cap);
      if (!w.ok()) _exit(2);
      std::mt19937 crng(round);
      std::vector<uint64_t> mine;
      for (uint64_t id = first_id;; ++id) {
        if ((*w)->meeting_count() < 8) (void)(*w)->AddMeeting(id, 1);
        std::vector<uint64_t> meetings;
        (*w)->ForEachMeeting([&](uint64_t m, uint64_t, uint32_t) { meetings.push_back(m); });
        if (meetings.empty()) continue;
        uint32_t op = crng() % 16;
        if (op < 8 && (*w)->leg_count() < 400) {
          std::vector<LegSpec> batch;
          for (int i = 0; i < 1 + int(crng() % 4); ++i, ++id) {
            batch.push_back(MakeLeg(id, meetings[crng() % meetings.size()],
                                    Channel(crng() % kChannels)));
          }
          if ((*w)->AddLegs(batch).ok()) {
            for (auto& s : batch) mine.push_back(s.leg_id);
          }
        } else if (op < 14 && !mine.empty()) {
          size_t i = crng() % mine.size();
          (void)(*w)->RemoveLeg(mine[i]);
          mine[i] = mine.back();
          mine.pop_back();
        } else if (op == 14) {
          (void)(*w)->RemoveMeeting(meetings[crng() % meetings.size()]);
        } else if (!mine.empty()) {
          (void)(*w)->SetLegFlags(mine[crng() % mine.size()], crng() % 8);
        }
        // A clean stop without running destructors, as a crash would.
        if (!kill_it && id - first_id > 3000) _exit(0);
      }
    }
    if (kill_it) {
      usleep(2000 + rng() % 20000);
      kill(child, SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    if (!kill_it) {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }

    auto w = TablesWriter::Open(dir.tables(), cap);
    ASSERT_TRUE(w.ok()) << "round " << round << ": " << w.status();
    ASSERT_EQ(CheckRegion((*w)->view(), **w), "") << "round " << round;
    // The adopted region takes changes.
    ASSERT_TRUE((*w)->AddMeeting(next_id, 1).ok());
    ASSERT_TRUE((*w)->AddLeg(MakeLeg(next_id + 1, next_id)).ok());
    ASSERT_TRUE((*w)->RemoveMeeting(next_id).ok());
    ASSERT_EQ(CheckRegion((*w)->view(), **w), "") << "round " << round;
  }
}

}  // namespace
}  // namespace tandem::tables
