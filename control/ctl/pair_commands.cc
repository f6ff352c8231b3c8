// tandemctl pair compare|switchover|keygen|lost: the hot-standby pair
// (docs/pair.md).
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/keys.h"
#include "control/client/json.h"
#include "control/ctl/command.h"

namespace tandem::control {
namespace {

void PairCompare(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::ComparePairResponse r;
  Check(c.Run(&Stub::ComparePair, v1::ComparePairRequest(), &r));
  if (PrintIfJson(c, r)) return;
  printf("digest %s at change %llu sent to the standby\n", r.digest().c_str(),
         static_cast<unsigned long long>(r.position()));
}

void PairSwitchover(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::SwitchoverRequest req;
  req.set_force(a.flags.contains("force"));
  v1::SwitchoverResponse r;
  Check(c.Run(&Stub::Switchover, req, &r));
  if (PrintIfJson(c, r)) return;
  printf("switchover requested: this node is %s, epoch %llu\n", r.role().c_str(),
         static_cast<unsigned long long>(r.epoch()));
}

void PairKeygen(Context&, const Args& a) {
  Need(a, 1, 1, "FILE");
  if (absl::Status st = keys::WriteNewPairKeyFile(a.positional[0]); !st.ok()) {
    fprintf(stderr, "tandemctl: %s\n", std::string(st.message()).c_str());
    std::exit(1);
  }
  printf("wrote a new pair key to %s (mode 0600)\n", a.positional[0].c_str());
}

void PairLost(Context& c, const Args& a) {
  Need(a, 0, 0, "");
  v1::LostWritesResponse r;
  if (a.flags.contains("ack")) {
    Check(c.Run(&Stub::AcknowledgeLostWrites, v1::AcknowledgeLostWritesRequest(), &r));
  } else {
    Check(c.Run(&Stub::LostWrites, v1::LostWritesRequest(), &r));
  }
  if (PrintIfJson(c, r)) return;
  if (r.state() == "none") {
    printf("no takeover from a peer\n");
    return;
  }
  printf("taken over after change %llu of log %llu (the old active was heard at %llu): %s\n",
         static_cast<unsigned long long>(r.after_seq()),
         static_cast<unsigned long long>(r.log_id()),
         static_cast<unsigned long long>(r.last_heard_seq()),
         r.state() == "pending"   ? "the old active has not returned yet"
         : r.state() == "unknown" ? "the old active returned without them (it had restarted)"
                                  : absl::StrCat(r.changes_size(), " lost changes").c_str());
  if (r.acknowledged()) printf("acknowledged: the writes_lost alarm is cleared\n");
  for (const v1::Change& ch : r.changes()) printf("%s\n", ToJson(ch).c_str());
}

}  // namespace

std::vector<Command> PairCommands() {
  return {
      {"pair compare",
       "",
       "Compare site data (sites, look-and-feel, preferences, meetings) with the\n"
       "standby now, by digest; the standby repairs any drift by a full resync and\n"
       "shows the result in its status. Run it on the active node.",
       {},
       {},
       PairCompare},
      {"pair switchover",
       "[--force]",
       "Hand the active role to the other node (on the active node: once the standby\n"
       "is caught up; on the standby: take it now). --force skips the checks.",
       {},
       {"force"},
       PairSwitchover},
      {"pair keygen",
       "FILE",
       "Write a new random pair key (32 bytes, as 64 hex digits) to FILE, a new file\n"
       "of mode 0600; never overwrites. Copy it to both nodes and name it in their\n"
       "switch and control configurations as pair.key_file (docs/pair.md).",
       {},
       {},
       PairKeygen,
       /*local=*/true},
      {"pair lost",
       "[--ack]",
       "The writes lost at the last takeover (asynchronous mode): the changes the old\n"
       "active acknowledged after the new one's takeover position, as the old active\n"
       "handed them over when it returned as standby. Redo them. Ask the active node.\n"
       "They raise the writes_lost alarm; --ack clears it once they are dealt with.",
       {},
       {"ack"},
       PairLost},
  };
}

}  // namespace tandem::control
