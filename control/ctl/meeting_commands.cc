// tandemctl meeting schedule|start|end|get|list|update.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "control/client/json.h"
#include "control/ctl/command.h"
#include "control/ctl/output.h"

namespace tandem::control {
namespace {

void PrintMeeting(const Context& c, const v1::Meeting& m) {
  if (PrintIfJson(c, m)) return;
  KeyValues kv = {
      {"meeting", absl::StrCat(m.meeting_id())},
      {"site", absl::StrCat(m.site_id())},
      {"title", m.title()},
      {"state", Lower(v1::MeetingState_Name(m.state()))},
      {"presenter only", m.presenter_only() ? "yes" : "no"},
      {"listed", m.listed() ? "yes" : "no"},
      {"scheduled start",
       m.scheduled_start_unix() ? FormatTime(m.scheduled_start_unix() * 1000000000ull) : "-"},
      {"duration", m.duration_minutes() ? absl::StrCat(m.duration_minutes(), " min") : "-"},
      {"started", FormatTime(m.started_unix_ns())},
      {"ended", FormatTime(m.ended_unix_ns())},
      {"participants", absl::StrCat(m.participants())},
      {"legs", absl::StrCat(m.legs())}};
  for (auto& line : UsageLines(m.usage())) kv.push_back(line);
  PrintKeyValues(kv);
}

v1::MeetingState ParseState(const std::string& text) {
  std::string t = Lower(text);
  if (t == "scheduled") return v1::SCHEDULED;
  if (t == "live") return v1::LIVE;
  if (t == "ended") return v1::ENDED;
  throw UsageError{absl::StrCat("invalid state '", text, "' (want scheduled, live or ended)")};
}

// The one positional argument of start, end, get and update.
uint64_t MeetingIdArgument(const Args& a) {
  Need(a, 1, 1, "MEETING_ID");
  return ParseId(a.positional[0], "meeting id");
}

void MeetingSchedule(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  if (!a.Has("site")) throw UsageError{"missing --site"};
  v1::ScheduleMeetingRequest req;
  v1::Meeting* m = req.mutable_meeting();
  m->set_site_id(ParseId(a.Get("site"), "site id"));
  m->set_title(a.Get("title"));
  if (a.Has("id")) m->set_meeting_id(ParseId(a.Get("id"), "meeting id"));
  if (a.Has("start")) m->set_scheduled_start_unix(ParseId(a.Get("start"), "start time"));
  if (a.Has("duration")) m->set_duration_minutes(ParseU32(a.Get("duration"), "duration"));
  m->set_presenter_only(a.flags.contains("presenter-only"));
  m->set_listed(!a.flags.contains("unlisted"));
  v1::Meeting out;
  Check(c.Run(&Stub::ScheduleMeeting, req, &out));
  PrintMeeting(c, out);
}

// meeting start, end and get: a call on one meeting that answers with it.
template <class Req>
Command OneMeetingCommand(const char* verb, const char* help,
                          client::Method<Req, v1::Meeting> call) {
  return {absl::StrCat("meeting ", verb),
          "MEETING_ID",
          help,
          {},
          {},
          [call](Context& c, const Args& a) {
            Req req;
            req.set_meeting_id(MeetingIdArgument(a));
            v1::Meeting out;
            Check(c.Run(call, req, &out));
            PrintMeeting(c, out);
          }};
}

void MeetingList(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::ListMeetingsRequest req;
  if (a.Has("site")) req.set_site_id(ParseId(a.Get("site"), "site id"));
  if (a.Has("state")) req.set_state(ParseState(a.Get("state")));
  req.set_listed_only(a.flags.contains("listed"));
  v1::ListMeetingsResponse out;
  Check(c.Run(&Stub::ListMeetings, req, &out));
  if (PrintIfJson(c, out)) return;
  Table t(
      {"MEETING", "SITE", "STATE", "TITLE", "PARTICIPANTS", "LEGS", "PRESENTER_ONLY", "STARTED"});
  for (const auto& m : out.meetings()) {
    t.Add({absl::StrCat(m.meeting_id()), absl::StrCat(m.site_id()),
           Lower(v1::MeetingState_Name(m.state())), m.title(), absl::StrCat(m.participants()),
           absl::StrCat(m.legs()), m.presenter_only() ? "yes" : "no",
           FormatTime(m.started_unix_ns())});
  }
  t.Print();
}

void MeetingUpdate(Context& c, const Args& a) {
  v1::UpdateMeetingRequest req;
  req.set_meeting_id(MeetingIdArgument(a));
  if (a.Has("title")) req.set_title(a.Get("title"));
  if (a.Has("presenter-only")) {
    req.set_presenter_only(ParseBool(a.Get("presenter-only"), "--presenter-only"));
  }
  if (a.Has("listed")) req.set_listed(ParseBool(a.Get("listed"), "--listed"));
  if (a.Has("start")) req.set_scheduled_start_unix(ParseId(a.Get("start"), "start"));
  if (a.Has("duration")) req.set_duration_minutes(ParseU32(a.Get("duration"), "duration"));
  v1::Meeting out;
  Check(c.Run(&Stub::UpdateMeeting, req, &out));
  PrintMeeting(c, out);
}

}  // namespace

std::vector<Command> MeetingCommands() {
  return {
      {"meeting schedule",
       "--site SITE_ID --title TITLE [--id ID] [--start UNIX_TIME]\n"
       "    [--duration MINUTES] [--presenter-only] [--unlisted]",
       "Schedule a meeting of a site.",
       {"site", "title", "id", "start", "duration"},
       {"presenter-only", "unlisted"},
       MeetingSchedule},
      OneMeetingCommand("start", "Start a scheduled meeting: participants can join.",
                        &Stub::StartMeeting),
      OneMeetingCommand("end", "End a meeting: every participant leaves; its usage is recorded.",
                        &Stub::EndMeeting),
      OneMeetingCommand("get", "Show a meeting with its usage.", &Stub::GetMeeting),
      {"meeting list",
       "[--site SITE_ID] [--state scheduled|live|ended] [--listed]",
       "List meetings.",
       {"site", "state"},
       {"listed"},
       MeetingList},
      {"meeting update",
       "MEETING_ID [--title T] [--presenter-only true|false]\n"
       "    [--listed true|false] [--start UNIX_TIME] [--duration MINUTES]",
       "Change a meeting's settings (presenter-only applies at once to live legs).",
       {"title", "presenter-only", "listed", "start", "duration"},
       {},
       MeetingUpdate},
  };
}

}  // namespace tandem::control
