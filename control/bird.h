// BIRD 2 as Tandem drives it (docs/routed.md): the configuration file Tandem
// generates from [routing], and a client of BIRD's control socket (the text
// protocol birdc speaks: a command line in; reply lines "NNNN-text"
// continued, " text" continued, "NNNN text" last; 0xxx done, 1xxx/2xxx
// data, 8xxx/9xxx errors).
//
// Threads: a BirdSocket is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/routing_config.h"

namespace tandem::control {

// What the pair asks this node to announce.
enum class Announcement { kWithdrawn, kStandby, kActive };
const char* AnnouncementName(Announcement a);

// BIRD's whole configuration for this node: device and BFD protocols, one
// static protocol per family holding the announced prefixes, one BGP
// session per neighbour (BFD on, add-path receive), an import filter that
// keeps only paths to our own prefixes (the competing announcements the best
// path report looks at) and an export filter that carries `a`: every prefix
// as is (active), less preferred (standby) or none (withdrawn). Names start
// with "tandem_"; BGP sessions are tandem_n1, tandem_n2, ... in the order of
// [[routing.neighbor]].
std::string GenerateBirdConfig(const RoutingConfig& r, const std::vector<IpAddr>& vips,
                               Announcement a);

// The BGP protocol name of neighbour i (0-based).
std::string BirdSessionName(size_t i);

struct BirdReply {
  int code = 0;                    // the last line's code
  std::vector<std::string> lines;  // every line's text, codes stripped
};

class BirdSocket {
 public:
  // Connects and reads BIRD's greeting ("0001 BIRD 2.0.12 ready.").
  static absl::StatusOr<BirdSocket> Connect(const std::string& path, absl::Duration timeout);
  BirdSocket(BirdSocket&& o) noexcept;
  BirdSocket& operator=(BirdSocket&& o) noexcept;
  BirdSocket(const BirdSocket&) = delete;
  BirdSocket& operator=(const BirdSocket&) = delete;
  ~BirdSocket();

  // Sends one command and reads its whole reply. A reply of code 8000 or
  // more is an error status carrying BIRD's text; a broken or silent socket
  // is Unavailable (connect again).
  absl::StatusOr<BirdReply> Command(const std::string& line, absl::Duration timeout);

 private:
  explicit BirdSocket(int fd) : fd_(fd) {}
  absl::StatusOr<std::string> ReadLine(absl::Time deadline);

  int fd_ = -1;
  std::string buf_;
};

// Writes `text` to `path` through a temporary file and a rename, so BIRD
// never reads half a configuration.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text);

// A BGP session as `show protocols` lists it.
struct BirdSession {
  std::string name;
  bool established = false;
  std::string info;  // BIRD's state text ("Established", "Active", "Idle ...")
};
std::vector<BirdSession> ParseBirdProtocols(const BirdReply& reply);

// A path to one of our prefixes that a neighbour offers (from
// `show route protocol tandem_nN all`).
struct CompetingPath {
  std::string prefix;
  std::string session;
  std::string as_path;  // BGP.as_path, as BIRD prints it
};
std::vector<CompetingPath> ParseBirdRoutes(const BirdReply& reply, const std::string& session);

}  // namespace tandem::control
