// tandemctl site create|get|list|update|delete: sites (tenants) with their
// look and feel, preferences and policy (docs/control.md).
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/client/json.h"
#include "control/ctl/command.h"
#include "control/ctl/output.h"

namespace tandem::control {
namespace {

std::string Join(const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(absl::StrCat(k, "=", v));
  std::sort(parts.begin(), parts.end());
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

// A rate limit of a site's policy that may be left to the node's default.
std::string Rate(bool set, uint32_t v, const char* unit) {
  if (!set) return "node default";
  return v == 0 ? "unlimited" : absl::StrCat(v, unit);
}
std::string Rates(const v1::LegLimits& l) {
  return absl::StrCat(Rate(l.has_pps(), l.pps(), " pps"), ", ",
                      Rate(l.has_kbps(), l.kbps(), " kbit/s"));
}

void PrintSite(const Context& c, const v1::Site& s) {
  if (PrintIfJson(c, s)) return;
  const v1::Policy& p = s.policy();
  PrintKeyValues(
      {{"site", absl::StrCat(s.site_id())},
       {"name", s.name()},
       {"look and feel", Join(s.look_and_feel())},
       {"preferences", Join(s.preferences())},
       {"live meetings", Limit(p.max_live_meetings())},
       {"participants per meeting", Limit(p.max_participants_per_meeting())},
       {"legs", Limit(p.max_legs())},
       {"leg packet rate", Rate(p.has_leg_pps(), p.leg_pps(), " pps")},
       {"leg bit rate", Rate(p.has_leg_kbps(), p.leg_kbps(), " kbit/s")},
       {"audio legs", Rates(p.audio())},
       {"video legs", Rates(p.video())},
       {"share legs", Rates(p.share())},
       {"meeting copies", Rate(p.has_meeting_copies_per_s(), p.meeting_copies_per_s(), "/s")},
       {"created", FormatTime(s.created_unix_ns())},
       {"updated", FormatTime(s.updated_unix_ns())}});
}

void SetPolicyFromArgs(const Args& a, v1::Policy* p) {
  if (a.Has("max-meetings"))
    p->set_max_live_meetings(ParseU32(a.Get("max-meetings"), "--max-meetings"));
  if (a.Has("max-participants")) {
    p->set_max_participants_per_meeting(ParseU32(a.Get("max-participants"), "--max-participants"));
  }
  if (a.Has("max-legs")) p->set_max_legs(ParseU32(a.Get("max-legs"), "--max-legs"));
  // Rate limits: a number (0 = unlimited) or "default" (the node's).
  auto rate = [&](const char* name, auto set, auto clear) {
    if (!a.Has(name)) return;
    if (a.Get(name) == "default") {
      clear();
    } else {
      set(ParseU32(a.Get(name), absl::StrCat("--", name)));
    }
  };
  rate(
      "leg-pps", [&](uint32_t v) { p->set_leg_pps(v); }, [&] { p->clear_leg_pps(); });
  rate(
      "leg-kbps", [&](uint32_t v) { p->set_leg_kbps(v); }, [&] { p->clear_leg_kbps(); });
  rate(
      "meeting-copies", [&](uint32_t v) { p->set_meeting_copies_per_s(v); },
      [&] { p->clear_meeting_copies_per_s(); });
  for (const auto& channel : {std::pair{"audio", p->mutable_audio()},
                              {"video", p->mutable_video()},
                              {"share", p->mutable_share()}}) {
    // Named copies, not a structured binding: clang before 16 cannot capture
    // those in a lambda.
    const char* ch = channel.first;
    auto* l = channel.second;
    rate(
        absl::StrCat(ch, "-pps").c_str(), [&](uint32_t v) { l->set_pps(v); },
        [&] { l->clear_pps(); });
    rate(
        absl::StrCat(ch, "-kbps").c_str(), [&](uint32_t v) { l->set_kbps(v); },
        [&] { l->clear_kbps(); });
  }
}

const std::set<std::string> kPolicyOptions = {
    "max-meetings", "max-participants", "max-legs",   "leg-pps",   "leg-kbps",   "audio-pps",
    "audio-kbps",   "video-pps",        "video-kbps", "share-pps", "share-kbps", "meeting-copies"};
// The usage text of the policy options.
constexpr const char* kPolicyUsage =
    "    [--max-meetings N] [--max-participants N] [--max-legs N]\n"
    "    [--leg-pps R] [--leg-kbps R] [--audio-pps R] [--audio-kbps R] [--video-pps R]\n"
    "    [--video-kbps R] [--share-pps R] [--share-kbps R] [--meeting-copies R]";

// Each KEY=VALUE of the repeated option `name` into `out`.
void SetEntries(const Args& a, const char* name,
                google::protobuf::Map<std::string, std::string>* out) {
  for (const auto& kv : a.All(name)) {
    auto [k, v] = ParseKeyValue(kv);
    (*out)[k] = v;
  }
}

// The one positional argument of get, update and delete.
uint64_t SiteIdArgument(const Args& a) {
  Need(a, 1, 1, "SITE_ID");
  return ParseId(a.positional[0], "site id");
}

void SiteCreate(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::CreateSiteRequest req;
  v1::Site* s = req.mutable_site();
  s->set_name(a.Get("name"));
  if (a.Has("id")) s->set_site_id(ParseId(a.Get("id"), "site id"));
  SetEntries(a, "look", s->mutable_look_and_feel());
  SetEntries(a, "pref", s->mutable_preferences());
  SetPolicyFromArgs(a, s->mutable_policy());
  v1::Site out;
  Check(c.Run(&Stub::CreateSite, req, &out));
  PrintSite(c, out);
}

v1::Site FetchSite(const Context& c, uint64_t site_id) {
  v1::GetSiteRequest req;
  req.set_site_id(site_id);
  v1::Site site;
  Check(c.Run(&Stub::GetSite, req, &site));
  return site;
}

void SiteGet(Context& c, const Args& a) { PrintSite(c, FetchSite(c, SiteIdArgument(a))); }

void SiteList(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::ListSitesResponse out;
  Check(c.Run(&Stub::ListSites, v1::ListSitesRequest(), &out));
  if (PrintIfJson(c, out)) return;
  Table t({"SITE", "NAME", "MEETINGS", "PARTICIPANTS", "LEGS", "LEG_PPS", "LEG_KBPS"});
  for (const auto& s : out.sites()) {
    const auto& p = s.policy();
    t.Add({absl::StrCat(s.site_id()), s.name(), Limit(p.max_live_meetings()),
           Limit(p.max_participants_per_meeting()), Limit(p.max_legs()),
           Rate(p.has_leg_pps(), p.leg_pps(), ""), Rate(p.has_leg_kbps(), p.leg_kbps(), "")});
  }
  t.Print();
}

void SiteUpdate(Context& c, const Args& a) {
  v1::UpdateSiteRequest req;
  req.set_site_id(SiteIdArgument(a));
  if (a.Has("name")) req.set_name(a.Get("name"));
  SetEntries(a, "look", req.mutable_set_look_and_feel());
  for (const auto& k : a.All("unset-look")) req.add_remove_look_and_feel(k);
  SetEntries(a, "pref", req.mutable_set_preferences());
  for (const auto& k : a.All("unset-pref")) req.add_remove_preferences(k);
  bool policy = false;
  for (const auto& o : kPolicyOptions) policy |= a.Has(o);
  if (policy) {
    // The API replaces the whole policy: start from the current one.
    *req.mutable_policy() = FetchSite(c, req.site_id()).policy();
    SetPolicyFromArgs(a, req.mutable_policy());
  }
  v1::Site out;
  Check(c.Run(&Stub::UpdateSite, req, &out));
  PrintSite(c, out);
}

void SiteDelete(Context& c, const Args& a) {
  v1::DeleteSiteRequest req;
  req.set_site_id(SiteIdArgument(a));
  v1::DeleteSiteResponse out;
  Check(c.Run(&Stub::DeleteSite, req, &out));
  if (c.json) {
    printf("{\"deleted\":%lu}\n", static_cast<unsigned long>(req.site_id()));
  } else {
    printf("site %lu deleted\n", static_cast<unsigned long>(req.site_id()));
  }
}

}  // namespace

std::vector<Command> SiteCommands() {
  return {
      {"site create",
       absl::StrCat("--name NAME [--id ID] [--look KEY=VALUE]... [--pref KEY=VALUE]...\n",
                    kPolicyUsage),
       "Create a site (tenant). Limits of 0 mean unlimited; a rate R is a number\n"
       "or \"default\" (the node's, the default; see docs/control.md).",
       Merge({"name", "id", "look", "pref"}, kPolicyOptions),
       {},
       SiteCreate},
      {"site get", "SITE_ID", "Show a site.", {}, {}, SiteGet},
      {"site list", "", "List sites.", {}, {}, SiteList},
      {"site update",
       absl::StrCat("SITE_ID [--name NAME] [--look KEY=VALUE]... [--unset-look KEY]...\n"
                    "    [--pref KEY=VALUE]... [--unset-pref KEY]...\n",
                    kPolicyUsage),
       "Change a site; limits not given keep their value.",
       Merge({"name", "look", "unset-look", "pref", "unset-pref"}, kPolicyOptions),
       {},
       SiteUpdate},
      {"site delete",
       "SITE_ID",
       "Delete a site and its meetings (none may be live).",
       {},
       {},
       SiteDelete},
  };
}

}  // namespace tandem::control
