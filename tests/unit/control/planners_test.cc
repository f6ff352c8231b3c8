// The API's planners (control/sites.h, meetings.h, participants.h) on an
// in-memory model: no store, no tables. Each case is a request against a
// small model, and the records planned or the error returned.
#include <gtest/gtest.h>

#include "control/meetings.h"
#include "control/participants.h"
#include "control/sites.h"

namespace tandem::control {
namespace {

constexpr uint64_t kNow = 1'000'000'000;

class PlannersTest : public ::testing::Test {
 protected:
  PlannersTest() {
    config_.access_vips = {*IpAddr::Parse("198.18.0.100")};
    pool_ = LocalPool(config_.access_vips, 20000, 20001);
    v1::Site site;
    site.set_site_id(1);
    site.set_name("acme");
    site.mutable_policy()->set_max_legs(3);
    ix_.sites[1] = site;
    ix_.next_site_id = 2;
    Meeting(10, v1::LIVE);
    Meeting(11, v1::SCHEDULED);
    ix_.next_meeting_id = 12;
    Present(100, 10, v1::ATTENDEE, {1000});
    ix_.next_participant_id = 101;
    ix_.next_leg_id = 1001;
  }
  void Meeting(uint64_t id, v1::MeetingState state) {
    v1::Meeting m;
    m.set_meeting_id(id);
    m.set_site_id(1);
    m.set_title("m");
    m.set_state(state);
    ix_.meetings[id] = m;
    if (state == v1::LIVE) ix_.live[id];
  }
  void Present(uint64_t pid, uint64_t meeting, v1::ParticipantRole role,
               std::vector<uint64_t> legs) {
    ParticipantRec& pr = ix_.participants[pid];
    pr.p.set_participant_id(pid);
    pr.p.set_meeting_id(meeting);
    pr.p.set_role(role);
    pr.legs = legs;
    LiveMeeting& live = ix_.live[meeting];
    live.participants.push_back(pid);
    live.present++;
    for (uint64_t id : legs) {
      LegRec& l = ix_.legs[id];
      l.participant_id = pid;
      l.meeting_id = meeting;
      l.requested = tables::kLegSend | tables::kLegRecv;
      l.channel = v1::AUDIO;
      l.remote = *IpAddr::Parse("198.18.0.9");
      l.remote_port = 9;
      l.local = *IpAddr::Parse("198.18.0.100");
      l.local_port = 20001;
      live.legs++;
      ASSERT_TRUE(pool_.Reserve(l.local, l.local_port, id).ok());
    }
  }
  static v1::JoinRequest JoinOf(uint64_t meeting, std::vector<std::string> remotes) {
    v1::JoinRequest req;
    v1::ParticipantJoin* pj = req.add_participants();
    pj->set_meeting_id(meeting);
    for (const std::string& r : remotes) {
      v1::LegRequest* l = pj->add_legs();
      l->set_channel(v1::AUDIO);
      l->set_remote(r);
    }
    return req;
  }
  static std::vector<v1::Change::Kind> Kinds(const Plan& plan) {
    std::vector<v1::Change::Kind> out;
    for (const v1::Change& c : plan) out.push_back(c.kind());
    return out;
  }

  Config config_;
  LocalPool pool_;
  Indexes ix_;
};

TEST_F(PlannersTest, CreateSiteTakesTheNextIdAndRefusesATakenName) {
  v1::CreateSiteRequest req;
  req.mutable_site()->set_name("beta");
  auto plan = PlanCreateSite(ix_, req, kNow);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(Kinds(*plan), std::vector{v1::Change::SITE_PUT});
  EXPECT_EQ(plan->front().site().site_id(), 2u);
  EXPECT_EQ(plan->front().site().created_unix_ns(), kNow);
  req.mutable_site()->set_name("acme");
  EXPECT_EQ(PlanCreateSite(ix_, req, kNow).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(PlannersTest, DeleteSiteDeletesItsMeetingsButNotALiveOne) {
  v1::DeleteSiteRequest req;
  req.set_site_id(1);
  EXPECT_EQ(PlanDeleteSite(ix_, req).status().code(), absl::StatusCode::kFailedPrecondition);
  ix_.meetings.erase(10);
  ix_.live.erase(10);
  auto plan = PlanDeleteSite(ix_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Kinds(*plan), (std::vector{v1::Change::MEETING_DELETED, v1::Change::SITE_DELETED}));
  EXPECT_EQ(plan->front().id(), 11u);
}

TEST_F(PlannersTest, JoinPlansTheParticipantThenItsLegsOnPoolEndpoints) {
  auto join = PlanJoin(ix_, JoinOf(10, {"198.18.0.10:5000"}), config_, kNow, pool_);
  ASSERT_TRUE(join.ok()) << join.status();
  ASSERT_EQ(Kinds(join->plan), (std::vector{v1::Change::PARTICIPANT_PUT, v1::Change::LEG_PUT}));
  const v1::Leg& leg = join->plan[1].leg();
  EXPECT_EQ(leg.leg_id(), 1001u);
  EXPECT_EQ(leg.participant_id(), 101u);
  EXPECT_EQ(leg.local(), "198.18.0.100:20000");  // 20001 is held by leg 1000
  EXPECT_EQ(leg.requested(), tables::kLegSend | tables::kLegRecv);
  ASSERT_EQ(join->replies.size(), 1u);
  EXPECT_EQ(join->replies[0].legs(0).leg_id(), 1001u);
  EXPECT_TRUE(pool_.InUse(*IpAddr::Parse("198.18.0.100"), 20000));
  ReleaseLocals(join->plan, pool_);
  EXPECT_FALSE(pool_.InUse(*IpAddr::Parse("198.18.0.100"), 20000));
}

TEST_F(PlannersTest, AFailedJoinPlansNothingAndReleasesItsEndpoints) {
  struct Case {
    v1::JoinRequest req;
    absl::StatusCode code;
  };
  v1::JoinRequest too_many = JoinOf(10, {"198.18.0.10:1", "198.18.0.10:2", "198.18.0.10:3"});
  v1::JoinRequest second_bad = JoinOf(10, {"198.18.0.10:1", "198.18.0.10:0"});
  const Case cases[] = {
      {JoinOf(11, {"198.18.0.10:1"}), absl::StatusCode::kFailedPrecondition},  // scheduled
      {JoinOf(99, {"198.18.0.10:1"}), absl::StatusCode::kNotFound},
      {too_many, absl::StatusCode::kResourceExhausted},  // site policy: 3 legs
      {second_bad, absl::StatusCode::kInvalidArgument},
      {JoinOf(10, {"198.18.0.100:1"}), absl::StatusCode::kInvalidArgument},  // a VIP
      {JoinOf(10, {"0.0.0.0:5000"}), absl::StatusCode::kInvalidArgument},  // no host's address
      {JoinOf(10, {"[::]:5000"}), absl::StatusCode::kInvalidArgument},
  };
  for (const Case& c : cases) {
    auto join = PlanJoin(ix_, c.req, config_, kNow, pool_);
    EXPECT_EQ(join.status().code(), c.code) << c.req.ShortDebugString() << " " << join.status();
    EXPECT_EQ(pool_.pool_free(), 1u) << c.req.ShortDebugString();
  }
}

TEST_F(PlannersTest, PresenterOnlyReplansTheLegsOfALiveMeeting) {
  v1::UpdateMeetingRequest req;
  req.set_meeting_id(10);
  req.set_presenter_only(true);
  auto plan = PlanUpdateMeeting(ix_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(Kinds(*plan), (std::vector{v1::Change::MEETING_PUT, v1::Change::LEG_PUT}));
  EXPECT_EQ((*plan)[1].leg().remote(), "198.18.0.9:9");
  req.set_presenter_only(false);  // no change of fan-out: the meeting only
  plan = PlanUpdateMeeting(ix_, req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->size(), 1u);
}

TEST_F(PlannersTest, LeaveRemovesLegsAndFoldsTheirUsage) {
  v1::LeaveRequest req;
  req.add_leg_ids(1000);
  auto usage = [](uint64_t) {
    v1::Usage u;
    u.set_packets_in(7);
    return u;
  };
  auto plan = PlanLeave(ix_, req, kNow, usage);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // The participant stays: a PUT with the left leg's usage, not a LEFT.
  ASSERT_EQ(Kinds(*plan), (std::vector{v1::Change::LEG_REMOVED, v1::Change::PARTICIPANT_PUT}));
  EXPECT_EQ((*plan)[1].participant().usage().packets_in(), 7u);
  EXPECT_EQ((*plan)[1].participant().left_unix_ns(), 0u);
  req.clear_leg_ids();
  req.add_participant_ids(100);
  plan = PlanLeave(ix_, req, kNow, usage);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(Kinds(*plan), (std::vector{v1::Change::LEG_REMOVED, v1::Change::PARTICIPANT_LEFT}));
  EXPECT_EQ((*plan)[1].participant().left_unix_ns(), kNow);
}

TEST_F(PlannersTest, EndMeetingRemovesLegsThenParticipantsThenEnds) {
  v1::EndMeetingRequest req;
  req.set_meeting_id(10);
  auto usage = [](const ParticipantRec&) {
    v1::Usage u;
    u.set_bytes_out(5);
    return u;
  };
  auto plan = PlanEndMeeting(ix_, req, kNow, usage);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(Kinds(*plan), (std::vector{v1::Change::LEG_REMOVED, v1::Change::PARTICIPANT_LEFT,
                                       v1::Change::MEETING_PUT}));
  const v1::Meeting& m = plan->back().meeting();
  EXPECT_EQ(m.state(), v1::ENDED);
  EXPECT_EQ(m.usage().bytes_out(), 5u);
  EXPECT_EQ(m.ended_unix_ns(), kNow);
}

TEST_F(PlannersTest, SetMuteAndSetRolePlanTheParticipantAndItsLegs) {
  v1::SetMuteRequest mute;
  mute.add_participant_ids(100);
  mute.set_muted(true);
  auto plan = PlanSetMute(ix_, mute);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(Kinds(*plan), (std::vector{v1::Change::PARTICIPANT_PUT, v1::Change::LEG_PUT}));
  EXPECT_TRUE((*plan)[0].participant().muted());
  EXPECT_TRUE((*plan)[1].leg().muted());
  v1::SetRoleRequest role;
  role.set_participant_id(100);
  role.set_role(v1::PRESENTER);
  plan = PlanSetRole(ix_, role);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ((*plan)[0].participant().role(), v1::PRESENTER);
  role.set_participant_id(999);
  EXPECT_EQ(PlanSetRole(ix_, role).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem::control
