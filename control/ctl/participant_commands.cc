// tandemctl participant join|leave|role|mute|unmute|list, and their legs and
// usage: show legs, show usage.
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control/client/json.h"
#include "control/ctl/command.h"
#include "control/ctl/output.h"

namespace tandem::control {
namespace {

v1::ParticipantRole ParseRole(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "host") return v1::HOST;
  if (t == "presenter") return v1::PRESENTER;
  if (t == "attendee") return v1::ATTENDEE;
  throw UsageError{absl::StrCat("invalid role '", text, "' (want host, presenter or attendee)")};
}

v1::Channel ParseChannel(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "audio") return v1::AUDIO;
  if (t == "video") return v1::VIDEO;
  if (t == "share") return v1::SHARE;
  throw UsageError{absl::StrCat("invalid channel '", text, "' (want audio, video or share)")};
}

// --leg CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only]
v1::LegRequest ParseLeg(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts.size() < 2) {
    throw UsageError{absl::StrCat(
        "invalid leg '", text, "' (want CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only])")};
  }
  v1::LegRequest leg;
  leg.set_channel(ParseChannel(parts[0]));
  leg.set_remote(parts[1]);
  for (size_t i = 2; i < parts.size(); ++i) {
    if (absl::StartsWith(parts[i], "local=")) {
      leg.set_local(parts[i].substr(6));
    } else if (parts[i] == "recv-only") {
      leg.set_recv_only(true);
    } else if (parts[i] == "send-only") {
      leg.set_send_only(true);
    } else {
      throw UsageError{absl::StrCat("invalid leg option '", parts[i], "' in '", text, "'")};
    }
  }
  return leg;
}

std::string LegFlags(const v1::Leg& l) {
  std::vector<std::string> f;
  if (l.send()) f.push_back("send");
  if (l.recv()) f.push_back("recv");
  if (l.muted()) f.push_back("muted");
  return f.empty() ? "-" : absl::StrJoin(f, ",");
}

void PrintLegs(const std::vector<const v1::Leg*>& legs, bool usage) {
  std::vector<std::string> h = {"LEG",    "PARTICIPANT", "MEETING", "CHANNEL",
                                "REMOTE", "LOCAL",       "FLAGS",   "PPS/KBPS"};
  if (usage) {
    for (const char* s : {"PKTS_IN", "BYTES_IN", "PKTS_OUT", "BYTES_OUT", "DROPS"}) h.push_back(s);
  }
  Table t(h);
  for (const v1::Leg* l : legs) {
    std::vector<std::string> row = {
        absl::StrCat(l->leg_id()),
        absl::StrCat(l->participant_id()),
        absl::StrCat(l->meeting_id()),
        Lower(v1::Channel_Name(l->channel())),
        l->remote(),
        l->local(),
        LegFlags(*l),
        absl::StrCat(Limit(l->pps_limit()), "/", Limit(l->kbps_limit()))};
    if (usage) {
      const v1::Usage& u = l->usage();
      row.push_back(absl::StrCat(u.packets_in()));
      row.push_back(absl::StrCat(u.bytes_in()));
      row.push_back(absl::StrCat(u.packets_out()));
      row.push_back(absl::StrCat(u.bytes_out()));
      row.push_back(absl::StrCat(u.drop_not_allowed() + u.drop_policed() + u.drop_other()));
    }
    t.Add(std::move(row));
  }
  t.Print();
}

void PrintParticipants(const Context& c, const google::protobuf::Message& whole,
                       const google::protobuf::RepeatedPtrField<v1::Participant>& ps) {
  if (PrintIfJson(c, whole)) return;
  Table t({"PARTICIPANT", "MEETING", "NAME", "ROLE", "MUTED", "LEGS", "JOINED", "LEFT", "PKTS_IN",
           "PKTS_OUT"});
  std::vector<const v1::Leg*> legs;
  for (const v1::Participant& p : ps) {
    t.Add({absl::StrCat(p.participant_id()), absl::StrCat(p.meeting_id()),
           p.name().empty() ? "-" : p.name(), Lower(v1::ParticipantRole_Name(p.role())),
           p.muted() ? "yes" : "no", absl::StrCat(p.legs_size()), FormatTime(p.joined_unix_ns()),
           FormatTime(p.left_unix_ns()), absl::StrCat(p.usage().packets_in()),
           absl::StrCat(p.usage().packets_out())});
    for (const v1::Leg& l : p.legs()) legs.push_back(&l);
  }
  t.Print();
  if (!legs.empty()) {
    printf("\n");
    PrintLegs(legs, false);
  }
}

void ParticipantJoin(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  if (!a.Has("meeting")) throw UsageError{"missing --meeting"};
  v1::JoinRequest req;
  v1::ParticipantJoin* pj = req.add_participants();
  pj->set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
  pj->set_name(a.Get("name"));
  if (a.Has("role")) pj->set_role(ParseRole(a.Get("role")));
  if (a.Has("participant")) pj->set_participant_id(ParseId(a.Get("participant"), "participant id"));
  for (const auto& l : a.All("leg")) *pj->add_legs() = ParseLeg(l);
  v1::JoinResponse out;
  Check(c.Run(&Stub::Join, req, &out));
  PrintParticipants(c, out, out.participants());
}

// The targets of leave, mute and unmute: participants (all their legs) by the
// positional arguments, legs by --leg; at least one.
template <class Req>
void SetTargets(const Args& a, Req* req) {
  for (const auto& p : a.positional) req->add_participant_ids(ParseId(p, "participant id"));
  for (const auto& l : a.All("leg")) req->add_leg_ids(ParseId(l, "leg id"));
  if (req->participant_ids_size() == 0 && req->leg_ids_size() == 0) {
    throw UsageError{"missing PARTICIPANT_ID or --leg"};
  }
}

void ParticipantLeave(Context& c, const Args& a) {
  v1::LeaveRequest req;
  SetTargets(a, &req);
  v1::LeaveResponse out;
  Check(c.Run(&Stub::Leave, req, &out));
  if (PrintIfJson(c, out)) return;
  printf("%u participants left, %u legs removed\n", out.participants_left(), out.legs_removed());
}

void ParticipantRole(Context& c, const Args& a) {
  Need(a, 2, 2, "PARTICIPANT_ID and ROLE");
  v1::SetRoleRequest req;
  req.set_participant_id(ParseId(a.positional[0], "participant id"));
  req.set_role(ParseRole(a.positional[1]));
  v1::Participant out;
  Check(c.Run(&Stub::SetRole, req, &out));
  google::protobuf::RepeatedPtrField<v1::Participant> one;
  *one.Add() = out;
  PrintParticipants(c, out, one);
}

void SetMute(Context& c, const Args& a, bool mute) {
  v1::SetMuteRequest req;
  req.set_muted(mute);
  SetTargets(a, &req);
  v1::SetMuteResponse out;
  Check(c.Run(&Stub::SetMute, req, &out));
  if (PrintIfJson(c, out)) return;
  printf("%u legs %s\n", out.legs_changed(), mute ? "muted" : "unmuted");
}

void ParticipantList(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  if (!a.Has("meeting")) throw UsageError{"missing --meeting"};
  v1::ListParticipantsRequest req;
  req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
  req.set_include_left(a.flags.contains("all"));
  v1::ListParticipantsResponse out;
  Check(c.Run(&Stub::ListParticipants, req, &out));
  PrintParticipants(c, out, out.participants());
}

void ShowLegs(Context& c, const Args& a, bool usage) {
  Need(a, 0, 0, "");
  v1::ListLegsRequest req;
  if (a.Has("meeting")) req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id"));
  if (a.Has("participant")) req.set_participant_id(ParseId(a.Get("participant"), "participant id"));
  req.set_with_usage(usage);
  v1::ListLegsResponse out;
  Check(c.Run(&Stub::ListLegs, req, &out));
  if (PrintIfJson(c, out)) return;
  std::vector<const v1::Leg*> legs;
  for (const auto& l : out.legs()) legs.push_back(&l);
  PrintLegs(legs, usage);
}

void ShowUsage(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::GetUsageRequest req;
  int scopes = 0;
  if (a.Has("site")) req.set_site_id(ParseId(a.Get("site"), "site id")), ++scopes;
  if (a.Has("meeting")) req.set_meeting_id(ParseId(a.Get("meeting"), "meeting id")), ++scopes;
  if (a.Has("participant")) {
    req.set_participant_id(ParseId(a.Get("participant"), "participant id"));
    ++scopes;
  }
  if (a.Has("leg")) req.set_leg_id(ParseId(a.Get("leg"), "leg id")), ++scopes;
  if (scopes > 1) throw UsageError{"give one of --site, --meeting, --participant, --leg"};
  if (scopes == 0) {
    ShowLegs(c, a, true);
    return;
  }
  v1::GetUsageResponse out;
  Check(c.Run(&Stub::GetUsage, req, &out));
  if (PrintIfJson(c, out.usage())) return;
  PrintKeyValues(UsageLines(out.usage()));
}

}  // namespace

std::vector<Command> ParticipantCommands() {
  return {
      {"participant join",
       "--meeting MEETING_ID [--name NAME] [--role host|presenter|attendee]\n"
       "    [--participant ID] --leg CHANNEL,REMOTE[,local=VIP:PORT][,recv-only|send-only]...",
       "Join a participant with its legs (local addresses are allocated from the pool\n"
       "unless given). With --participant, adds legs to a present participant.\n"
       "Example: --leg audio,198.18.0.10:5000 --leg video,198.18.0.10:5002",
       {"meeting", "name", "role", "participant", "leg"},
       {},
       ParticipantJoin},
      {"participant leave",
       "[PARTICIPANT_ID...] [--leg LEG_ID]...",
       "Participants leave (with all their legs), or just the given legs.",
       {"leg"},
       {},
       ParticipantLeave},
      {"participant role",
       "PARTICIPANT_ID host|presenter|attendee",
       "Change a participant's role.",
       {},
       {},
       ParticipantRole},
      {"participant mute",
       "[PARTICIPANT_ID...] [--leg LEG_ID]...",
       "Stop forwarding the packets of participants (all their legs) or legs;\n"
       "they still receive.",
       {"leg"},
       {},
       [](Context& c, const Args& a) { SetMute(c, a, true); }},
      {"participant unmute",
       "[PARTICIPANT_ID...] [--leg LEG_ID]...",
       "Forward their packets again.",
       {"leg"},
       {},
       [](Context& c, const Args& a) { SetMute(c, a, false); }},
      {"participant list",
       "--meeting MEETING_ID [--all]",
       "List a meeting's participants (--all: also those who left).",
       {"meeting"},
       {"all"},
       ParticipantList},
      {"show legs",
       "[--meeting MEETING_ID] [--participant PARTICIPANT_ID] [--usage]",
       "List live legs.",
       {"meeting", "participant"},
       {"usage"},
       [](Context& c, const Args& a) { ShowLegs(c, a, a.flags.contains("usage")); }},
      {"show usage",
       "[--site ID | --meeting ID | --participant ID | --leg ID]",
       "Usage of a site, meeting (live or ended), participant or leg; without a scope,\n"
       "every live leg with its usage.",
       {"site", "meeting", "participant", "leg"},
       {},
       ShowUsage},
  };
}

}  // namespace tandem::control
