// One mutation path (docs/control.md): a change stream recorded from the
// active's API handlers, applied on a second node through the standby's path
// (Core::ApplyReplicated), leaves that node with the same store rows, the
// same table region and the same site digest, byte for byte. The stream
// covers sites, meetings, joins with legs, mutes, roles, leaves and ends.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "control/core.h"
#include "tests/unit/control/node_config.h"
#include "tests/unit/control/test_dir.h"

namespace tandem::control {
namespace {

using testing::NodeConfig;
using testing::TempDir;

// Every row of the store's object tables and its leg id reservation, as
// text (blobs hex-free: compared as raw bytes). The epoch is a node's own.
std::vector<std::string> StoreRows(const std::string& path) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  const char* queries[] = {
      "SELECT * FROM sites ORDER BY 1", "SELECT * FROM meetings ORDER BY 1",
      "SELECT * FROM participants ORDER BY 1",
      "SELECT * FROM meta WHERE key = 'leg_id_limit'"};
  for (const char* q : queries) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, q, -1, &stmt, nullptr), SQLITE_OK) << q;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row = q;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const char* b = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        int n = sqlite3_column_bytes(stmt, i);
        row += '|';
        if (b != nullptr) row.append(b, static_cast<size_t>(n));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return rows;
}

// The table region after its header (hash buckets, legs, meetings, reader
// slots), with each leg's creation time zeroed: the one field a node stamps
// with its own clock. The header holds the node's own role and epoch.
std::string TableBytes(const std::string& dir, const std::string& node) {
  std::string path = tables::TablesPath(dir, node);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto t = tables::AttachTables(path);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  const tables::TablesView& v = t->second;
  const tables::TablesHeader& h = v.header();
  const char* leg0 = reinterpret_cast<const char*>(&v.leg(0));
  const size_t created = reinterpret_cast<const char*>(&v.leg(0).created_unix_ns) - leg0;
  for (uint32_t s = 0; s < v.leg_capacity(); ++s) {
    size_t at = h.legs_offset + size_t{s} * sizeof(tables::LegEntry) + created;
    std::fill_n(bytes.begin() + at, sizeof(uint64_t), '\0');
  }
  return bytes.substr(h.buckets_offset, h.region_size - h.buckets_offset);
}

std::string Digest(Core& core) {
  uint64_t position = 0;
  return core.SiteDigest(&position);
}

class OnePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto core = Core::Start(NodeConfig(active_dir_, "a"));
    ASSERT_TRUE(core.ok()) << core.status();
    active_ = std::move(*core);
  }

  uint64_t Site(const std::string& name) {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name(name);
    (*req.mutable_site()->mutable_preferences())["lang"] = "fr";
    v1::Site s;
    EXPECT_TRUE(active_->CreateSite(req, &s).ok());
    return s.site_id();
  }
  uint64_t Meeting(uint64_t site, bool start) {
    v1::ScheduleMeetingRequest req;
    req.mutable_meeting()->set_site_id(site);
    req.mutable_meeting()->set_title("weekly");
    v1::Meeting m;
    EXPECT_TRUE(active_->ScheduleMeeting(req, &m).ok());
    if (start) {
      v1::StartMeetingRequest s;
      s.set_meeting_id(m.meeting_id());
      EXPECT_TRUE(active_->StartMeeting(s, &m).ok());
    }
    return m.meeting_id();
  }
  static v1::ParticipantJoin Joiner(uint64_t meeting, const std::vector<std::string>& remotes,
                                    v1::ParticipantRole role = v1::ATTENDEE) {
    v1::ParticipantJoin pj;
    pj.set_meeting_id(meeting);
    pj.set_name("p");
    pj.set_role(role);
    for (const auto& r : remotes) {
      v1::LegRequest* l = pj.add_legs();
      l->set_channel(v1::AUDIO);
      l->set_remote(r);
    }
    return pj;
  }
  v1::JoinResponse Join(const std::vector<v1::ParticipantJoin>& ps) {
    v1::JoinRequest req;
    for (const auto& p : ps) *req.add_participants() = p;
    v1::JoinResponse out;
    absl::Status st = active_->Join(req, &out);
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  // Drives the active through every kind of change the API makes.
  void RecordStream() {
    uint64_t acme = Site("acme");
    uint64_t gone = Site("gone");
    v1::UpdateSiteRequest us;
    us.set_site_id(acme);
    us.set_name("acme corp");
    us.mutable_set_look_and_feel()->insert({"colour", "teal"});
    v1::Site site;
    ASSERT_TRUE(active_->UpdateSite(us, &site).ok());
    Meeting(gone, false);
    v1::DeleteSiteRequest ds;
    ds.set_site_id(gone);
    v1::DeleteSiteResponse dr;
    ASSERT_TRUE(active_->DeleteSite(ds, &dr).ok());

    uint64_t m = Meeting(acme, true);
    uint64_t ended = Meeting(acme, true);
    Meeting(acme, false);  // stays scheduled
    v1::ParticipantJoin video = Joiner(m, {"198.18.0.12:1"});
    video.mutable_legs(0)->set_channel(v1::VIDEO);
    video.mutable_legs(0)->set_recv_only(true);
    v1::ParticipantJoin pinned = Joiner(m, {"[2001:db8:2::1]:7"}, v1::HOST);
    pinned.mutable_legs(0)->set_local("[2001:db8:1::100]:20050");
    v1::JoinResponse first = Join({Joiner(m, {"198.18.0.10:1", "198.18.0.10:2"}),
                                   Joiner(m, {"198.18.0.11:1"}, v1::PRESENTER), video, pinned});
    Join({Joiner(ended, {"198.18.0.20:1"}), Joiner(ended, {"198.18.0.21:1"})});
    const uint64_t muted = first.participants(0).participant_id();

    v1::SetMuteRequest mute;
    mute.add_participant_ids(muted);
    mute.set_muted(true);
    v1::SetMuteResponse mr;
    ASSERT_TRUE(active_->SetMute(mute, &mr).ok());
    v1::UpdateMeetingRequest um;
    um.set_meeting_id(m);
    um.set_presenter_only(true);
    v1::Meeting meeting;
    ASSERT_TRUE(active_->UpdateMeeting(um, &meeting).ok());
    Join({Joiner(m, {"198.18.0.13:1"})});  // an attendee of a presenter-only meeting
    v1::SetRoleRequest role;
    role.set_participant_id(muted);
    role.set_role(v1::PRESENTER);
    v1::Participant p;
    ASSERT_TRUE(active_->SetRole(role, &p).ok());

    v1::LeaveRequest leg_leaves;  // one leg goes, its participant stays
    leg_leaves.add_leg_ids(first.participants(0).legs(1).leg_id());
    v1::LeaveResponse lr;
    ASSERT_TRUE(active_->Leave(leg_leaves, &lr).ok());
    v1::LeaveRequest leaves;
    leaves.add_participant_ids(first.participants(1).participant_id());
    ASSERT_TRUE(active_->Leave(leaves, &lr).ok());
    Join({Joiner(m, {"198.18.0.11:1"})});  // the endpoint of a left leg, again
    v1::EndMeetingRequest end;
    end.set_meeting_id(ended);
    ASSERT_TRUE(active_->EndMeeting(end, &meeting).ok());
  }

  // The active's change log, applied through the standby's path.
  std::unique_ptr<Core> Replay() {
    std::vector<v1::Change> stream;
    EXPECT_TRUE(active_->changes().Read(1, 10000, absl::ZeroDuration(), &stream).ok());
    EXPECT_GT(stream.size(), 30u);
    auto standby = Core::Start(NodeConfig(standby_dir_, "s"));
    EXPECT_TRUE(standby.ok()) << standby.status();
    if (!standby.ok()) return nullptr;
    (*standby)->SetNodeRole(tables::Role::kStandby, 2, "test: the peer is active");
    for (const v1::Change& c : stream) {
      if (c.kind() == v1::Change::ROLE) continue;
      EXPECT_TRUE((*standby)->ApplyReplicated(c, c.SerializeAsString(), false).ok()) << c.seq();
    }
    EXPECT_TRUE((*standby)->CommitReplicated().ok());
    return std::move(*standby);
  }

  TempDir active_dir_, standby_dir_;
  std::unique_ptr<Core> active_;
};

TEST_F(OnePathTest, AReplayedStreamGivesTheSameStoreTablesAndDigest) {
  ASSERT_NO_FATAL_FAILURE(RecordStream());
  std::unique_ptr<Core> standby = Replay();
  ASSERT_NE(standby, nullptr);

  std::vector<std::string> rows = StoreRows(active_dir_.File("store.db"));
  EXPECT_GT(rows.size(), 12u);
  EXPECT_EQ(StoreRows(standby_dir_.File("store.db")), rows);

  std::string bytes = TableBytes(active_dir_.path(), "a");
  ASSERT_FALSE(bytes.empty());
  std::string standby_bytes = TableBytes(standby_dir_.path(), "s");
  ASSERT_EQ(standby_bytes.size(), bytes.size());
  size_t first_diff = 0;
  while (first_diff < bytes.size() && bytes[first_diff] == standby_bytes[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, bytes.size()) << "table regions differ at byte " << first_diff;

  EXPECT_EQ(Digest(*standby), Digest(*active_));

  // The same answers from either node's API.
  v1::ListLegsResponse active_legs, standby_legs;
  ASSERT_TRUE(active_->ListLegs(v1::ListLegsRequest(), &active_legs).ok());
  ASSERT_TRUE(standby->ListLegs(v1::ListLegsRequest(), &standby_legs).ok());
  ASSERT_EQ(standby_legs.legs_size(), active_legs.legs_size());
  EXPECT_EQ(active_legs.legs_size(), 5);
  for (int i = 0; i < active_legs.legs_size(); ++i) {
    v1::Leg a = active_legs.legs(i), s = standby_legs.legs(i);
    a.clear_created_unix_ns();
    s.clear_created_unix_ns();
    EXPECT_EQ(s.SerializeAsString(), a.SerializeAsString()) << a.leg_id();
  }
}

}  // namespace
}  // namespace tandem::control
