// The control core against real session tables and a real SQLite store in a
// temp dir: the rules a meeting application relies on (all or nothing,
// policy limits, typed errors), restart adoption, and a standby replaying the
// active's change stream into the same tables.
#include "control/core.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <map>
#include <thread>
#include <tuple>

#include "tests/unit/control/node_config.h"
#include "tests/unit/control/test_dir.h"

namespace tandem::control {
namespace {

using testing::TempDir;

class CoreTest : public ::testing::Test {
 protected:
  Config MakeConfig() { return testing::NodeConfig(dir_, "t", 20003); }
  void SetUp() override { Restart(); }
  void Restart() {
    core_.reset();  // releases the tables' writer lock
    auto core = Core::Start(MakeConfig());
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  uint64_t Site(const std::string& name, v1::Policy policy = {}) {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name(name);
    *req.mutable_site()->mutable_policy() = policy;
    v1::Site s;
    EXPECT_TRUE(core_->CreateSite(req, &s).ok());
    return s.site_id();
  }
  uint64_t LiveMeeting(uint64_t site) {
    v1::ScheduleMeetingRequest req;
    req.mutable_meeting()->set_site_id(site);
    req.mutable_meeting()->set_title("m");
    v1::Meeting m;
    EXPECT_TRUE(core_->ScheduleMeeting(req, &m).ok());
    v1::StartMeetingRequest start;
    start.set_meeting_id(m.meeting_id());
    EXPECT_TRUE(core_->StartMeeting(start, &m).ok());
    return m.meeting_id();
  }
  static v1::ParticipantJoin Joiner(uint64_t meeting, std::vector<std::string> remotes) {
    v1::ParticipantJoin pj;
    pj.set_meeting_id(meeting);
    pj.set_name("p");
    for (const auto& r : remotes) {
      v1::LegRequest* l = pj.add_legs();
      l->set_channel(v1::AUDIO);
      l->set_remote(r);
    }
    return pj;
  }
  absl::Status Join(std::vector<v1::ParticipantJoin> ps, v1::JoinResponse* out = nullptr) {
    v1::JoinRequest req;
    for (auto& p : ps) *req.add_participants() = p;
    v1::JoinResponse scratch;
    return core_->Join(req, out ? out : &scratch);
  }
  // The meeting's output cap as the switch reads it.
  uint32_t TablesCopiesLimit(uint64_t meeting_id) {
    auto t = tables::AttachTables(tables::TablesPath(dir_.path(), "t"));
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) return ~0u;
    const tables::TablesView& v = t->second;
    for (uint32_t s = 0; s < v.meeting_capacity(); ++s) {
      const tables::MeetingEntry& e = v.meeting(s);
      if (e.state.load() == uint8_t(tables::EntryState::kLive) && e.meeting_id == meeting_id) {
        return e.copies_limit.load();
      }
    }
    ADD_FAILURE() << "meeting " << meeting_id << " not in the tables";
    return ~0u;
  }
  size_t LegCount() {
    v1::ListLegsResponse legs;
    EXPECT_TRUE(core_->ListLegs(v1::ListLegsRequest(), &legs).ok());
    return legs.legs_size();
  }

  TempDir dir_;
  std::unique_ptr<Core> core_;
};

TEST_F(CoreTest, JoinAllocatesLocalAddressesAndListsLegs) {
  uint64_t m = LiveMeeting(Site("acme"));
  v1::JoinResponse out;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:5000", "[2001:db8:1::10]:5000"})}, &out).ok());
  ASSERT_EQ(out.participants_size(), 1);
  ASSERT_EQ(out.participants(0).legs_size(), 2);
  EXPECT_EQ(out.participants(0).legs(0).local(), "198.18.0.100:20000");
  EXPECT_EQ(out.participants(0).legs(1).local(), "[2001:db8:1::100]:20000");
  EXPECT_TRUE(out.participants(0).legs(0).send());
  EXPECT_EQ(out.participants(0).role(), v1::ATTENDEE);
  EXPECT_EQ(LegCount(), 2u);
}

TEST_F(CoreTest, AFailedBatchChangesNothing) {
  uint64_t m = LiveMeeting(Site("acme"));
  auto first = Joiner(m, {"198.18.0.10:5000"});
  first.mutable_legs(0)->set_local("198.18.0.100:30000");
  ASSERT_TRUE(Join({first}).ok());
  // The second participant asks for the first one's leg again: the whole
  // batch fails, the first participant of the batch included.
  auto st = Join({Joiner(m, {"198.18.0.11:5000"}), first});
  EXPECT_TRUE(absl::IsAlreadyExists(st)) << st;
  EXPECT_EQ(LegCount(), 1u);
  v1::ListParticipantsRequest lp;
  lp.set_meeting_id(m);
  v1::ListParticipantsResponse parts;
  ASSERT_TRUE(core_->ListParticipants(lp, &parts).ok());
  EXPECT_EQ(parts.participants_size(), 1);
  // The endpoints the failed batch had taken are free again: 3 of 4 left.
  v1::NodeStatus status;
  ASSERT_TRUE(core_->GetStatus(v1::GetStatusRequest(), &status).ok());
  EXPECT_EQ(status.pool_free(), 4u + 4u);  // the given local 30000 is outside the pool
}

TEST_F(CoreTest, TypedErrors) {
  uint64_t site = Site("acme");
  v1::ScheduleMeetingRequest sreq;
  sreq.mutable_meeting()->set_site_id(site);
  sreq.mutable_meeting()->set_title("later");
  v1::Meeting scheduled;
  ASSERT_TRUE(core_->ScheduleMeeting(sreq, &scheduled).ok());
  uint64_t m = LiveMeeting(site);

  EXPECT_TRUE(absl::IsNotFound(Join({Joiner(999, {"198.18.0.10:5000"})})));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(Join({Joiner(scheduled.meeting_id(), {"198.18.0.10:5000"})})));
  EXPECT_TRUE(absl::IsInvalidArgument(Join({Joiner(m, {"198.18.0.300:5000"})})));
  EXPECT_TRUE(absl::IsInvalidArgument(Join({Joiner(m, {"198.18.0.10:0"})})));
  EXPECT_TRUE(absl::IsInvalidArgument(Join({Joiner(m, {"224.0.0.1:5000"})})));
  auto bad_local = Joiner(m, {"198.18.0.10:5000"});
  bad_local.mutable_legs(0)->set_local("198.18.0.55:20000");
  EXPECT_TRUE(absl::IsInvalidArgument(Join({bad_local})));
  auto mixed = Joiner(m, {"198.18.0.10:5000"});
  mixed.mutable_legs(0)->set_local("[2001:db8:1::100]:20000");
  EXPECT_TRUE(absl::IsInvalidArgument(Join({mixed})));
  auto no_channel = Joiner(m, {"198.18.0.10:5000"});
  no_channel.mutable_legs(0)->set_channel(v1::CHANNEL_UNSPECIFIED);
  EXPECT_TRUE(absl::IsInvalidArgument(Join({no_channel})));

  // Local port in use by another leg.
  auto given = Joiner(m, {"198.18.0.10:5000"});
  given.mutable_legs(0)->set_local("198.18.0.100:30000");
  ASSERT_TRUE(Join({given}).ok());
  given.mutable_legs(0)->set_remote("198.18.0.11:5000");
  auto st = Join({given});
  EXPECT_TRUE(absl::IsAlreadyExists(st));
  EXPECT_NE(st.message().find("already in use"), std::string::npos) << st;

  // Pool exhausted: 4 IPv4 ports.
  auto many = Joiner(
      m, {"198.18.0.20:1", "198.18.0.20:2", "198.18.0.20:3", "198.18.0.20:4", "198.18.0.20:5"});
  st = Join({many});
  EXPECT_TRUE(absl::IsResourceExhausted(st));
  EXPECT_NE(st.message().find("pool"), std::string::npos) << st;

  v1::LeaveRequest leave;
  leave.add_participant_ids(12345);
  v1::LeaveResponse lr;
  EXPECT_TRUE(absl::IsNotFound(core_->Leave(leave, &lr)));
  v1::CreateSiteRequest dup;
  dup.mutable_site()->set_name("acme");
  v1::Site s;
  EXPECT_TRUE(absl::IsAlreadyExists(core_->CreateSite(dup, &s)));
  dup.mutable_site()->set_name("");
  EXPECT_TRUE(absl::IsInvalidArgument(core_->CreateSite(dup, &s)));
  v1::DeleteSiteRequest del;
  del.set_site_id(site);
  v1::DeleteSiteResponse dr;
  EXPECT_TRUE(absl::IsFailedPrecondition(core_->DeleteSite(del, &dr)));
}

TEST_F(CoreTest, SitePolicyLimits) {
  v1::Policy policy;
  policy.set_max_participants_per_meeting(2);
  policy.set_max_legs(3);
  policy.set_max_live_meetings(1);
  policy.set_leg_pps(500);
  uint64_t site = Site("small", policy);
  uint64_t m = LiveMeeting(site);
  v1::JoinResponse out;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"})}, &out).ok());
  EXPECT_EQ(out.participants(0).legs(0).pps_limit(), 500u);
  auto st = Join({Joiner(m, {"198.18.0.11:1"}), Joiner(m, {"198.18.0.12:1"})});
  EXPECT_TRUE(absl::IsResourceExhausted(st));
  EXPECT_NE(st.message().find("participants per meeting"), std::string::npos) << st;
  st = Join({Joiner(m, {"198.18.0.11:1", "198.18.0.11:2", "198.18.0.11:3"})});
  EXPECT_TRUE(absl::IsResourceExhausted(st));
  EXPECT_NE(st.message().find("legs"), std::string::npos) << st;
  v1::ScheduleMeetingRequest sreq;
  sreq.mutable_meeting()->set_site_id(site);
  sreq.mutable_meeting()->set_title("second");
  v1::Meeting second;
  ASSERT_TRUE(core_->ScheduleMeeting(sreq, &second).ok());
  v1::StartMeetingRequest start;
  start.set_meeting_id(second.meeting_id());
  EXPECT_TRUE(absl::IsResourceExhausted(core_->StartMeeting(start, &second)));
}

// Without a policy a leg gets the node's defaults for its channel and a
// meeting the node's copies-per-second cap, in the tables the switch reads.
TEST_F(CoreTest, DefaultMediaLimitsReachTheTables) {
  uint64_t m = LiveMeeting(Site("plain"));
  v1::ParticipantJoin pj = Joiner(m, {"198.18.0.10:1"});
  v1::LegRequest* video = pj.add_legs();
  video->set_channel(v1::VIDEO);
  video->set_remote("198.18.0.10:2");
  v1::JoinResponse out;
  ASSERT_TRUE(Join({pj}, &out).ok());
  const MediaLimits node;
  for (const v1::Leg& l : out.participants(0).legs()) {
    const ChannelLimits& want = node.channel[l.channel() == v1::VIDEO ? 1 : 0];
    EXPECT_EQ(l.pps_limit(), want.pps) << l.ShortDebugString();
    EXPECT_EQ(l.kbps_limit(), want.kbps) << l.ShortDebugString();
  }
  // ListLegs reads the limits back from the tables.
  v1::ListLegsResponse legs;
  ASSERT_TRUE(core_->ListLegs(v1::ListLegsRequest(), &legs).ok());
  ASSERT_EQ(legs.legs_size(), 2);
  for (const v1::Leg& l : legs.legs()) {
    EXPECT_EQ(l.pps_limit(), node.channel[l.channel() == v1::VIDEO ? 1 : 0].pps);
  }
  v1::GetMeetingRequest get;
  get.set_meeting_id(m);
  v1::Meeting meeting;
  ASSERT_TRUE(core_->GetMeeting(get, &meeting).ok());
  EXPECT_EQ(meeting.copies_per_s_limit(), node.meeting_copies_per_s);
  EXPECT_EQ(TablesCopiesLimit(m), node.meeting_copies_per_s);
}

TEST_F(CoreTest, SitePolicyOverridesMediaLimitsPerChannel) {
  v1::Policy policy;
  policy.mutable_audio()->set_pps(0);  // unlimited audio packet rate
  policy.set_leg_kbps(64);
  policy.set_meeting_copies_per_s(1234);
  uint64_t m = LiveMeeting(Site("custom", policy));
  v1::JoinResponse out;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"})}, &out).ok());
  EXPECT_EQ(out.participants(0).legs(0).pps_limit(), 0u);
  EXPECT_EQ(out.participants(0).legs(0).kbps_limit(), 64u);
  v1::GetMeetingRequest get;
  get.set_meeting_id(m);
  v1::Meeting meeting;
  ASSERT_TRUE(core_->GetMeeting(get, &meeting).ok());
  EXPECT_EQ(meeting.copies_per_s_limit(), 1234u);
  EXPECT_EQ(TablesCopiesLimit(m), 1234u);
  // A restart keeps the meeting's cap, from the store, in the tables.
  Restart();
  ASSERT_TRUE(core_->GetMeeting(get, &meeting).ok());
  EXPECT_EQ(meeting.copies_per_s_limit(), 1234u);
  EXPECT_EQ(TablesCopiesLimit(m), 1234u);
}

TEST_F(CoreTest, MuteAndPresenterOnlySetTheTablesFlags) {
  uint64_t m = LiveMeeting(Site("acme"));
  v1::JoinResponse out;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"}), Joiner(m, {"198.18.0.11:1"})}, &out).ok());
  uint64_t a = out.participants(0).participant_id();
  v1::SetMuteRequest mute;
  mute.add_participant_ids(a);
  mute.set_muted(true);
  v1::SetMuteResponse mr;
  ASSERT_TRUE(core_->SetMute(mute, &mr).ok());
  EXPECT_EQ(mr.legs_changed(), 1u);
  v1::ListLegsRequest lreq;
  lreq.set_participant_id(a);
  v1::ListLegsResponse legs;
  ASSERT_TRUE(core_->ListLegs(lreq, &legs).ok());
  EXPECT_TRUE(legs.legs(0).muted());
  EXPECT_FALSE(legs.legs(0).send());
  EXPECT_TRUE(legs.legs(0).recv());

  v1::UpdateMeetingRequest upd;
  upd.set_meeting_id(m);
  upd.set_presenter_only(true);
  v1::Meeting mm;
  ASSERT_TRUE(core_->UpdateMeeting(upd, &mm).ok());
  uint64_t b = out.participants(1).participant_id();
  lreq.set_participant_id(b);
  legs.Clear();
  ASSERT_TRUE(core_->ListLegs(lreq, &legs).ok());
  EXPECT_FALSE(legs.legs(0).send());  // attendee in a presenter-only meeting
  v1::SetRoleRequest role;
  role.set_participant_id(b);
  role.set_role(v1::PRESENTER);
  v1::Participant p;
  ASSERT_TRUE(core_->SetRole(role, &p).ok());
  legs.Clear();
  ASSERT_TRUE(core_->ListLegs(lreq, &legs).ok());
  EXPECT_TRUE(legs.legs(0).send());
}

TEST_F(CoreTest, RestartAdoptsLegsAndKeepsIdsUnique) {
  uint64_t m = LiveMeeting(Site("acme"));
  v1::JoinResponse out;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1", "198.18.0.10:2"})}, &out).ok());
  uint64_t leg1 = out.participants(0).legs(0).leg_id();
  Restart();
  EXPECT_EQ(LegCount(), 2u);
  // The adopted legs still own their local ports: new legs get others.
  v1::JoinResponse more;
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.11:1"})}, &more).ok());
  EXPECT_EQ(more.participants(0).legs(0).local(), "198.18.0.100:20002");
  EXPECT_GT(more.participants(0).legs(0).leg_id(), leg1 + 1);
  EXPECT_GT(more.participants(0).participant_id(), out.participants(0).participant_id());
  // And they can be changed.
  v1::LeaveRequest leave;
  leave.add_leg_ids(leg1);
  v1::LeaveResponse lr;
  ASSERT_TRUE(core_->Leave(leave, &lr).ok());
  EXPECT_EQ(LegCount(), 2u);
}

TEST_F(CoreTest, RestartDropsLegsTheStoreDoesNotKnow) {
  uint64_t m = LiveMeeting(Site("acme"));
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"})}).ok());
  core_.reset();
  {
    // A join interrupted between the tables and the store commit.
    auto w = tables::TablesWriter::Open(tables::TablesPath(dir_.path(), "t"), {64, 8});
    ASSERT_TRUE(w.ok());
    tables::LegSpec spec;
    spec.leg_id = 999;
    spec.participant_id = 777;
    spec.meeting_id = m;
    spec.key.remote = *IpAddr::Parse("198.18.0.50");
    spec.key.remote_port = 1;
    spec.key.local = *IpAddr::Parse("198.18.0.100");
    spec.key.local_port = 20003;
    ASSERT_TRUE((*w)->AddLeg(spec).ok());
    ASSERT_TRUE((*w)->AddMeeting(4242, 1).ok());  // a meeting the store does not call live
  }
  Restart();
  EXPECT_EQ(LegCount(), 1u);
  v1::NodeStatus status;
  ASSERT_TRUE(core_->GetStatus(v1::GetStatusRequest(), &status).ok());
  EXPECT_EQ(status.meetings(), 1u);
  EXPECT_EQ(status.role(), "active");
  EXPECT_EQ(status.epoch(), 1u);
  EXPECT_EQ(status.vips_size(), 2);
}

TEST_F(CoreTest, EndedMeetingKeepsUsageAndParticipants) {
  uint64_t site = Site("acme");
  uint64_t m = LiveMeeting(site);
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"}), Joiner(m, {"198.18.0.11:1"})}).ok());
  v1::EndMeetingRequest end;
  end.set_meeting_id(m);
  v1::Meeting ended;
  ASSERT_TRUE(core_->EndMeeting(end, &ended).ok());
  EXPECT_EQ(ended.state(), v1::ENDED);
  EXPECT_GT(ended.usage().participant_minutes(), 0);
  EXPECT_EQ(LegCount(), 0u);
  Restart();
  v1::ListParticipantsRequest lp;
  lp.set_meeting_id(m);
  lp.set_include_left(true);
  v1::ListParticipantsResponse parts;
  ASSERT_TRUE(core_->ListParticipants(lp, &parts).ok());
  EXPECT_EQ(parts.participants_size(), 2);
  EXPECT_NE(parts.participants(0).left_unix_ns(), 0u);
  v1::GetUsageRequest ureq;
  ureq.set_meeting_id(m);
  v1::GetUsageResponse usage;
  ASSERT_TRUE(core_->GetUsage(ureq, &usage).ok());
  EXPECT_DOUBLE_EQ(usage.usage().participant_minutes(), ended.usage().participant_minutes());
  v1::StartMeetingRequest start;
  start.set_meeting_id(m);
  EXPECT_TRUE(absl::IsFailedPrecondition(core_->StartMeeting(start, &ended)));
}

TEST_F(CoreTest, ChangesCarrySequenceNumbers) {
  uint64_t before = core_->changes().last_seq();
  uint64_t m = LiveMeeting(Site("acme"));
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"})}).ok());
  std::vector<v1::Change> out;
  ASSERT_TRUE(core_->changes().Read(before + 1, 100, absl::ZeroDuration(), &out).ok());
  ASSERT_EQ(out.size(), 5u);  // site, meeting scheduled, started, participant, leg
  EXPECT_EQ(out[0].kind(), v1::Change::SITE_PUT);
  EXPECT_EQ(out[2].meeting().state(), v1::LIVE);
  EXPECT_EQ(out[3].kind(), v1::Change::PARTICIPANT_PUT);
  EXPECT_EQ(out[4].kind(), v1::Change::LEG_PUT);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].seq(), before + 1 + i);
}

// Found by scripts/soak.sh: the pair stops the sink only after the node
// became active, and a record still in flight then opened a store
// transaction that nothing committed, so every write after the takeover
// failed with INTERNAL "store: nested transaction".
// A standby applies the meeting's cap the active fixed, not its own default.
// The pair thread decides the roles between writes. A write whose commit
// waits (here on another connection's lock; on a loaded host, on the disk's
// fdatasync, for seconds) holds the core, and the pair's reads of the role,
// its hints to the switch and a step-down must not wait for it: the
// witness's deadline does not. A write refused from the step-down on.
TEST_F(CoreTest, ThePairThreadDoesNotWaitForAWriteInProgress) {
  Site("acme");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("store.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::atomic<bool> written{false};
  absl::Status first;
  std::thread writer([&] {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name("slow");
    v1::Site out;
    first = core_->CreateSite(req, &out);
    written = true;
  });
  // Until the writer holds the core (it waits on the store's lock inside).
  while (core_->TryUsageDelta().has_value()) std::this_thread::yield();
  EXPECT_EQ(core_->node_role(), tables::Role::kActive);
  EXPECT_EQ(core_->node_epoch(), 1u);
  core_->SetPairHints(7, false);
  core_->SetActiveUntil(12345);
  EXPECT_FALSE(core_->TryAppendDigest().has_value());
  core_->BeginStepDown(1);
  EXPECT_FALSE(written) << "the pair's calls waited for the write";
  auto t = tables::AttachTables(tables::TablesPath(dir_.path(), "t"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->second.role(), tables::Role::kStandby) << "the switch serves on";
  ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  writer.join();
  EXPECT_TRUE(first.ok()) << first;  // admitted before the step-down

  v1::CreateSiteRequest req;
  req.mutable_site()->set_name("late");
  v1::Site out;
  absl::Status st = core_->CreateSite(req, &out);
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("is standby (stepping down)"), std::string::npos) << st;
  core_->SetNodeRole(tables::Role::kStandby, 1, "test: witness");
  st = core_->CreateSite(req, &out);
  EXPECT_NE(st.message().find("is standby"), std::string::npos) << st;
  core_->SetNodeRole(tables::Role::kActive, 2, "test: takeover");
  EXPECT_TRUE(core_->CreateSite(req, &out).ok()) << "the step-down outlived its role change";
}

TEST_F(CoreTest, AReplicatedMeetingKeepsItsCopiesCap) {
  core_->SetNodeRole(tables::Role::kStandby, 2, "test: the peer is active");
  uint64_t seq = core_->changes().last_seq();
  auto change = [&](v1::Change::Kind kind, uint64_t id) {
    v1::Change c;
    c.set_kind(kind);
    c.set_id(id);
    c.set_log_id(core_->changes().log_id());
    c.set_seq(++seq);
    return c;
  };
  v1::Change site = change(v1::Change::SITE_PUT, 7);
  site.mutable_site()->set_site_id(7);
  site.mutable_site()->set_name("replicated");
  ASSERT_TRUE(core_->ApplyReplicated(site, site.SerializeAsString(), false).ok());
  v1::Change meeting = change(v1::Change::MEETING_PUT, 9);
  v1::Meeting* m = meeting.mutable_meeting();
  m->set_meeting_id(9);
  m->set_site_id(7);
  m->set_title("t");
  m->set_state(v1::LIVE);
  m->set_copies_per_s_limit(4321);
  ASSERT_TRUE(core_->ApplyReplicated(meeting, meeting.SerializeAsString(), false).ok());
  ASSERT_TRUE(core_->CommitReplicated().ok());
  EXPECT_EQ(TablesCopiesLimit(9), 4321u);
}

TEST_F(CoreTest, AReplicatedChangeInFlightAtTakeoverIsNotApplied) {
  core_->SetNodeRole(tables::Role::kStandby, 2, "test: the peer is active");
  auto site_put = [&](uint64_t id, const std::string& name) {
    v1::Change c;
    c.set_kind(v1::Change::SITE_PUT);
    c.set_id(id);
    c.set_log_id(core_->changes().log_id());
    c.set_seq(core_->changes().last_seq() + 1);
    c.mutable_site()->set_site_id(id);
    c.mutable_site()->set_name(name);
    return c;
  };
  v1::Change first = site_put(7, "replicated");
  ASSERT_TRUE(core_->ApplyReplicated(first, first.SerializeAsString(), false).ok());
  ASSERT_TRUE(core_->CommitReplicated().ok());
  core_->SetNodeRole(tables::Role::kActive, 3, "test: takeover");
  uint64_t position = core_->changes().last_seq();
  v1::Change late = site_put(8, "late");
  EXPECT_TRUE(absl::IsFailedPrecondition(
      core_->ApplyReplicated(late, late.SerializeAsString(), false)));
  EXPECT_EQ(core_->changes().last_seq(), position);
  // The new active's own writes go on.
  v1::CreateSiteRequest req;
  req.mutable_site()->set_name("own");
  v1::Site s;
  ASSERT_TRUE(core_->CreateSite(req, &s).ok());
  v1::ListSitesResponse sites;
  ASSERT_TRUE(core_->ListSites(v1::ListSitesRequest(), &sites).ok());
  std::vector<std::string> names;
  for (const auto& site : sites.sites()) names.push_back(site.name());
  EXPECT_EQ(names, (std::vector<std::string>{"replicated", "own"}));
  Restart();  // committed, and nothing else
  v1::ListSitesResponse stored;
  ASSERT_TRUE(core_->ListSites(v1::ListSitesRequest(), &stored).ok());
  EXPECT_EQ(stored.sites_size(), 2);
}

// A takeover from an active peer: the ids the old active handed out in
// writes that never reached us are not handed out again, and the position
// returned is the one before the takeover's ROLE change.
TEST_F(CoreTest, TakeoverFromAnActivePeerSkipsTheIdsItMayHaveUsed) {
  uint64_t site = Site("acme");
  uint64_t meeting = LiveMeeting(site);
  core_->SetNodeRole(tables::Role::kStandby, 2, "test: the peer is active");
  uint64_t before = core_->changes().last_seq();
  uint64_t at = core_->SetNodeRole(tables::Role::kActive, 3, "test: takeover", true);
  EXPECT_EQ(at, before);
  EXPECT_EQ(core_->changes().last_seq(), before + 1) << "the ROLE change";
  uint64_t site2 = Site("after");
  EXPECT_GE(site2, site + Core::kTakeoverIdGap);
  EXPECT_GE(LiveMeeting(site2), meeting + Core::kTakeoverIdGap);
  v1::JoinResponse joined;
  ASSERT_TRUE(Join({Joiner(meeting, {"198.18.0.10:1000"})}, &joined).ok());
  EXPECT_GE(joined.participants(0).participant_id(), Core::kTakeoverIdGap);
  EXPECT_GE(joined.participants(0).legs(0).leg_id(), Core::kTakeoverIdGap);
}

// Found by scripts/soak.sh: after an asynchronous takeover the new active
// hands out again the ids of the legs and participants the old active had
// joined in the writes it lost. When the old active resyncs as the standby,
// a snapshot PUT of such an id must replace its own leg or participant (it
// used to keep the old one's remote, local and meeting, so that the standby
// held a leg the active did not have, and took it over with it).
// The legs of a node's tables as the switch reads them: id -> (flags, channel, limits).
std::map<uint64_t, std::tuple<uint32_t, uint8_t, uint32_t, uint32_t>> TablesLegs(
    const std::string& dir, const std::string& node) {
  std::map<uint64_t, std::tuple<uint32_t, uint8_t, uint32_t, uint32_t>> out;
  auto t = tables::AttachTables(tables::TablesPath(dir, node));
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return out;
  const tables::TablesView& v = t->second;
  for (uint32_t s = 0; s < v.leg_capacity(); ++s) {
    const tables::LegEntry& e = v.leg(s);
    if (e.state.load() != uint8_t(tables::EntryState::kLive)) continue;
    out[e.leg_id] = {e.flags.load(), e.channel, e.pps_limit.load(), e.kbps_limit.load()};
  }
  return out;
}

// The active's changes, recorded from its change log and applied by a
// standby, give the standby the active's tables: same legs, flags, channels
// and limits. A muted presenter and an attendee of a presenter-only meeting
// are the cases where the standby once computed flags its own way (a muted
// leg lost kLegSend there, so the tables of the pair differed).
TEST_F(CoreTest, AStandbyReplayingTheChangeStreamHoldsTheActivesTables) {
  uint64_t m = LiveMeeting(Site("acme"));
  v1::JoinResponse out;
  v1::ParticipantJoin video = Joiner(m, {"198.18.0.12:1"});
  video.mutable_legs(0)->set_channel(v1::VIDEO);
  video.mutable_legs(0)->set_recv_only(true);
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.10:1"}), Joiner(m, {"198.18.0.11:1"}), video}, &out).ok());
  v1::SetMuteRequest mute;
  mute.add_participant_ids(out.participants(0).participant_id());
  mute.set_muted(true);
  v1::SetMuteResponse mr;
  ASSERT_TRUE(core_->SetMute(mute, &mr).ok());
  v1::UpdateMeetingRequest upd;
  upd.set_meeting_id(m);
  upd.set_presenter_only(true);
  v1::Meeting mm;
  ASSERT_TRUE(core_->UpdateMeeting(upd, &mm).ok());
  v1::JoinResponse late;  // joins the presenter-only meeting as an attendee
  ASSERT_TRUE(Join({Joiner(m, {"198.18.0.13:1"})}, &late).ok());
  v1::SetRoleRequest role;  // the muted one presents: sends once unmuted
  role.set_participant_id(out.participants(0).participant_id());
  role.set_role(v1::PRESENTER);
  v1::Participant presenter;
  ASSERT_TRUE(core_->SetRole(role, &presenter).ok());

  std::vector<v1::Change> stream;
  ASSERT_TRUE(core_->changes().Read(1, 1000, absl::ZeroDuration(), &stream).ok());
  ASSERT_GT(stream.size(), 5u);

  TempDir standby_dir;
  Config sc = MakeConfig();
  sc.node = "s";
  sc.shm_dir = standby_dir.path();
  sc.store_path = standby_dir.File("store.db");
  auto standby = Core::Start(sc);
  ASSERT_TRUE(standby.ok()) << standby.status();
  (*standby)->SetNodeRole(tables::Role::kStandby, 2, "test: the peer is active");
  for (const v1::Change& c : stream) {
    if (c.kind() == v1::Change::ROLE) continue;
    ASSERT_TRUE((*standby)->ApplyReplicated(c, c.SerializeAsString(), false).ok()) << c.seq();
  }
  ASSERT_TRUE((*standby)->CommitReplicated().ok());

  auto active_legs = TablesLegs(dir_.path(), "t");
  ASSERT_EQ(active_legs.size(), 4u);
  EXPECT_EQ(TablesLegs(standby_dir.path(), "s"), active_legs);
}

TEST_F(CoreTest, AResyncReplacesALegAndParticipantUnderAReusedId) {
  uint64_t site = Site("acme");
  uint64_t m1 = LiveMeeting(site);
  uint64_t m2 = LiveMeeting(site);
  v1::JoinResponse mine;
  ASSERT_TRUE(Join({Joiner(m1, {"198.18.0.10:1000"})}, &mine).ok());  // lost at the takeover
  const v1::Participant lost = mine.participants(0);
  const v1::Leg lost_leg = lost.legs(0);
  core_->SetNodeRole(tables::Role::kStandby, 3, "test: the peer took over without the join");

  // The new active's state: the same site and meetings, and another
  // participant (in the other meeting) with another leg, under the same ids.
  core_->BeginResync();
  auto put = [&](const v1::Change& c) {
    ASSERT_TRUE(core_->ApplyReplicated(c, c.SerializeAsString(), true).ok());
  };
  v1::ListSitesResponse sites;
  ASSERT_TRUE(core_->ListSites(v1::ListSitesRequest(), &sites).ok());
  for (const v1::Site& s : sites.sites()) {
    v1::Change c;
    c.set_kind(v1::Change::SITE_PUT);
    c.set_id(s.site_id());
    *c.mutable_site() = s;
    put(c);
  }
  v1::ListMeetingsResponse meetings;
  ASSERT_TRUE(core_->ListMeetings(v1::ListMeetingsRequest(), &meetings).ok());
  for (const v1::Meeting& mt : meetings.meetings()) {
    v1::Change c;
    c.set_kind(v1::Change::MEETING_PUT);
    c.set_id(mt.meeting_id());
    *c.mutable_meeting() = mt;
    put(c);
  }
  v1::Change pc;
  pc.set_kind(v1::Change::PARTICIPANT_PUT);
  pc.set_id(lost.participant_id());
  v1::Participant* theirs = pc.mutable_participant();
  theirs->set_participant_id(lost.participant_id());
  theirs->set_meeting_id(m2);
  theirs->set_name("theirs");
  theirs->set_role(v1::ATTENDEE);
  theirs->set_joined_unix_ns(lost.joined_unix_ns() + 1);
  put(pc);
  v1::Change lc;
  lc.set_kind(v1::Change::LEG_PUT);
  lc.set_id(lost_leg.leg_id());
  v1::Leg* leg = lc.mutable_leg();
  leg->set_leg_id(lost_leg.leg_id());
  leg->set_participant_id(lost.participant_id());
  leg->set_meeting_id(m2);
  leg->set_channel(v1::AUDIO);
  leg->set_remote("198.18.0.11:2000");
  leg->set_local("198.18.0.100:20003");
  leg->set_send(true);
  leg->set_recv(true);
  leg->set_requested(3);
  put(lc);
  ASSERT_TRUE(core_->EndResync(core_->changes().log_id(), core_->changes().last_seq()).ok());

  v1::ListLegsResponse legs;
  ASSERT_TRUE(core_->ListLegs(v1::ListLegsRequest(), &legs).ok());
  ASSERT_EQ(legs.legs_size(), 1);
  EXPECT_EQ(legs.legs(0).remote(), "198.18.0.11:2000");
  EXPECT_EQ(legs.legs(0).local(), "198.18.0.100:20003");
  EXPECT_EQ(legs.legs(0).meeting_id(), m2);
  for (uint64_t m : {m1, m2}) {
    v1::ListParticipantsRequest req;
    req.set_meeting_id(m);
    v1::ListParticipantsResponse out;
    ASSERT_TRUE(core_->ListParticipants(req, &out).ok());
    ASSERT_EQ(out.participants_size(), m == m2 ? 1 : 0) << "meeting " << m;
    if (m == m2) {
      EXPECT_EQ(out.participants(0).name(), "theirs");
      ASSERT_EQ(out.participants(0).legs_size(), 1);
      EXPECT_EQ(out.participants(0).legs(0).remote(), "198.18.0.11:2000");
    }
  }
}

// Found by test_pair_clients: an old active that rejoins as the standby held
// a meeting it scheduled while cut off; the resync swept sites, participants
// and legs the snapshot lacked, but not meetings, so the meeting stayed (and
// would come back at the next takeover). It must leave memory, the tables
// and the store, with its participants and legs.
TEST_F(CoreTest, AResyncSweepsAMeetingTheActiveNeverHad) {
  uint64_t site = Site("acme");
  uint64_t kept = LiveMeeting(site);
  uint64_t lost = LiveMeeting(site);
  v1::JoinResponse joined;
  ASSERT_TRUE(Join({Joiner(lost, {"198.18.0.10:1000"})}, &joined).ok());
  v1::Site held_site;
  v1::Meeting held_meeting;
  {
    v1::ListSitesResponse sites;
    ASSERT_TRUE(core_->ListSites(v1::ListSitesRequest(), &sites).ok());
    held_site = sites.sites(0);
    v1::ListMeetingsResponse meetings;
    ASSERT_TRUE(core_->ListMeetings(v1::ListMeetingsRequest(), &meetings).ok());
    for (const v1::Meeting& m : meetings.meetings()) {
      if (m.meeting_id() == kept) held_meeting = m;
    }
  }
  core_->SetNodeRole(tables::Role::kStandby, 3, "test: the peer took over without the meeting");
  core_->BeginResync();
  v1::Change sc;
  sc.set_kind(v1::Change::SITE_PUT);
  sc.set_id(site);
  *sc.mutable_site() = held_site;
  ASSERT_TRUE(core_->ApplyReplicated(sc, sc.SerializeAsString(), true).ok());
  v1::Change mc;
  mc.set_kind(v1::Change::MEETING_PUT);
  mc.set_id(kept);
  *mc.mutable_meeting() = held_meeting;
  ASSERT_TRUE(core_->ApplyReplicated(mc, mc.SerializeAsString(), true).ok());
  ASSERT_TRUE(core_->EndResync(core_->changes().log_id(), core_->changes().last_seq()).ok());

  auto meeting_ids = [&] {
    v1::ListMeetingsResponse out;
    EXPECT_TRUE(core_->ListMeetings(v1::ListMeetingsRequest(), &out).ok());
    std::vector<uint64_t> ids;
    for (const v1::Meeting& m : out.meetings()) ids.push_back(m.meeting_id());
    return ids;
  };
  EXPECT_EQ(meeting_ids(), std::vector<uint64_t>{kept});
  v1::ListLegsResponse legs;
  ASSERT_TRUE(core_->ListLegs(v1::ListLegsRequest(), &legs).ok());
  EXPECT_EQ(legs.legs_size(), 0);
  // What the store holds: a restart loads it.
  Restart();
  EXPECT_EQ(meeting_ids(), std::vector<uint64_t>{kept});
  v1::ListParticipantsRequest req;
  req.set_meeting_id(lost);
  v1::ListParticipantsResponse out;
  absl::Status listed = core_->ListParticipants(req, &out);
  EXPECT_TRUE(!listed.ok() || out.participants_size() == 0) << out.DebugString();
}

}  // namespace
}  // namespace tandem::control
