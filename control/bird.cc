#include "control/bird.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tandem::control {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string PrefixSet(const std::vector<IpPrefix>& prefixes, bool v4) {
  std::vector<std::string> items;
  // "+": the prefix and every more specific one, so a neighbour's path to a
  // part of a covering prefix counts as competing too.
  for (const IpPrefix& p : prefixes) {
    if (p.addr.is_v4() == v4) items.push_back(p.ToString() + "+");
  }
  return "[ " + absl::StrJoin(items, ", ") + " ]";
}

// Keeps paths to our own prefixes only: what a neighbour offers instead of us.
std::string ImportFilter(const std::vector<IpPrefix>& prefixes, bool v4) {
  const char* name = v4 ? "tandem_import4" : "tandem_import6";
  bool any = false;
  for (const IpPrefix& p : prefixes) any |= p.addr.is_v4() == v4;
  // BIRD has no empty prefix set: a family without prefixes takes nothing.
  if (!any) return absl::StrCat("filter ", name, " {\n  reject;\n}\n");
  return absl::StrCat("filter ", name, " {\n  if net ~ ", PrefixSet(prefixes, v4),
                      " then accept;\n  reject;\n}\n");
}

std::string ExportFilter(const RoutingConfig& r, Announcement a) {
  std::string body;
  switch (a) {
    case Announcement::kWithdrawn:
      return "filter tandem_export {\n  reject;\n}\n";
    case Announcement::kActive:
      if (r.standby == StandbyPolicy::kLocalPref) {
        body = absl::StrCat("  bgp_local_pref = ", r.local_pref_active, ";\n");
      }
      break;
    case Announcement::kStandby:
      if (r.standby == StandbyPolicy::kWithdraw) return "filter tandem_export {\n  reject;\n}\n";
      if (r.standby == StandbyPolicy::kLocalPref) {
        body = absl::StrCat("  bgp_local_pref = ", r.local_pref_standby, ";\n");
      } else {
        for (uint32_t i = 0; i < r.prepend; ++i) {
          absl::StrAppend(&body, "  bgp_path.prepend(", r.local_as, ");\n");
        }
      }
      break;
  }
  return absl::StrCat("filter tandem_export {\n",
                      "  if proto != \"tandem_vips4\" && proto != \"tandem_vips6\" then reject;\n",
                      body, "  accept;\n}\n");
}

std::string StaticProtocol(const std::vector<IpPrefix>& prefixes, bool v4) {
  std::string routes;
  for (const IpPrefix& p : prefixes) {
    if (p.addr.is_v4() == v4) absl::StrAppend(&routes, "  route ", p.ToString(), " blackhole;\n");
  }
  if (routes.empty()) return "";
  return absl::StrCat("protocol static tandem_vips", v4 ? "4" : "6", " {\n  ", v4 ? "ipv4" : "ipv6",
                      ";\n", routes, "}\n");
}

std::string Session(const RoutingConfig& r, const RoutingNeighbor& n, size_t i) {
  bool v4 = n.address.is_v4();
  std::string local = n.local.is_zero() ? "" : n.local.ToString() + " ";
  std::string iface =
      n.interface.empty() ? "" : absl::StrCat("  interface ", Quote(n.interface), ";\n");
  return absl::StrCat(
      "protocol bgp ", BirdSessionName(i), " {\n", "  local ", local, "as ", r.local_as, ";\n",
      "  neighbor ", n.address.ToString(), " as ", n.as, ";\n", iface,
      // One hop, also toward an iBGP router, so BFD runs single-hop.
      "  direct;\n", "  bfd on;\n",
      // A node that dies must lose its routes at once, not be kept as stale.
      "  graceful restart off;\n", "  hold time ", r.hold_time_s, ";\n", "  keepalive time ",
      std::max<uint32_t>(1, r.hold_time_s / 3), ";\n", "  connect delay time 1;\n",
      "  connect retry time ", r.connect_retry_s, ";\n", "  error wait time 1, 16;\n", "  ",
      v4 ? "ipv4" : "ipv6", " {\n", "    import filter tandem_import", v4 ? "4" : "6", ";\n",
      "    export filter tandem_export;\n", "    add paths rx;\n", "  };\n}\n");
}

}  // namespace

const char* AnnouncementName(Announcement a) {
  switch (a) {
    case Announcement::kWithdrawn:
      return "withdrawn";
    case Announcement::kStandby:
      return "standby";
    case Announcement::kActive:
      return "active";
  }
  return "?";
}

std::optional<Announcement> AnnouncementInFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  for (int i = 0; i < 2 && std::getline(in, line); ++i) {
    constexpr absl::string_view kTag = "# do not edit. Announcement: ";
    if (!absl::StartsWith(line, kTag)) continue;
    absl::string_view name = absl::string_view(line).substr(kTag.size());
    for (Announcement a :
         {Announcement::kWithdrawn, Announcement::kStandby, Announcement::kActive}) {
      if (name == AnnouncementName(a)) return a;
    }
  }
  return std::nullopt;
}

std::string BirdSessionName(size_t i) { return absl::StrCat("tandem_n", i + 1); }

std::string GenerateBirdConfig(const RoutingConfig& r, const std::vector<IpAddr>& vips,
                               Announcement a) {
  std::vector<IpPrefix> prefixes = AnnouncedPrefixes(r, vips);
  std::string log = r.log == "syslog" || r.log == "stderr" ? r.log : Quote(r.log);
  std::string out = absl::StrCat(
      "# Generated by Tandem from [routing] (docs/routed.md) and rewritten at every change:\n"
      "# do not edit. Announcement: ",
      AnnouncementName(a), "\n", "router id ", r.router_id.ToString(), ";\n", "log ", log,
      " all;\n\n", "protocol device tandem_device {\n  scan time 10;\n}\n\n",
      "protocol bfd tandem_bfd {\n  interface \"*\" {\n", "    min rx interval ", r.bfd_interval_ms,
      " ms;\n", "    min tx interval ", r.bfd_interval_ms, " ms;\n",
      "    idle tx interval 1000 ms;\n", "    multiplier ", r.bfd_multiplier, ";\n  };\n}\n\n",
      StaticProtocol(prefixes, true), StaticProtocol(prefixes, false), "\n",
      ImportFilter(prefixes, true), ImportFilter(prefixes, false), "\n", ExportFilter(r, a), "\n");
  for (size_t i = 0; i < r.neighbors.size(); ++i) {
    absl::StrAppend(&out, Session(r, r.neighbors[i], i), "\n");
  }
  if (!r.include.empty()) absl::StrAppend(&out, "include ", Quote(r.include), ";\n");
  return out;
}

absl::StatusOr<BirdSocket> BirdSocket::Connect(const std::string& path, absl::Duration timeout) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("control socket path too long: ", path));
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to BIRD at ", path, ": ", std::strerror(e)));
  }
  BirdSocket s(fd);
  auto greeting = s.ReadLine(absl::Now() + timeout);
  if (!greeting.ok()) return greeting.status();
  if (greeting->rfind("0001 ", 0) != 0) {
    return absl::UnavailableError(absl::StrCat("unexpected greeting from ", path, ": ", *greeting));
  }
  return s;
}

BirdSocket::BirdSocket(BirdSocket&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) {
  o.fd_ = -1;
}

BirdSocket& BirdSocket::operator=(BirdSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    o.fd_ = -1;
  }
  return *this;
}

BirdSocket::~BirdSocket() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::string> BirdSocket::ReadLine(absl::Time deadline) {
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("BIRD did not answer");
    pollfd p{fd_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above ends the wait
    char chunk[4096];
    ssize_t got = read(fd_, chunk, sizeof(chunk));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return absl::UnavailableError("BIRD closed its control socket");
    buf_.append(chunk, static_cast<size_t>(got));
  }
}

absl::StatusOr<BirdReply> BirdSocket::Command(const std::string& line, absl::Duration timeout) {
  if (fd_ < 0) return absl::UnavailableError("not connected to BIRD");
  absl::Time deadline = absl::Now() + timeout;
  std::string out = line + "\n";
  for (size_t sent = 0; sent < out.size();) {
    ssize_t n = send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send to BIRD: ", std::strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  BirdReply reply;
  for (;;) {
    auto l = ReadLine(deadline);
    if (!l.ok()) {
      close(fd_);  // the rest of this reply would be read as the next one's
      fd_ = -1;
      return l.status();
    }
    bool coded = l->size() >= 5 && absl::ascii_isdigit((*l)[0]) && absl::ascii_isdigit((*l)[1]) &&
                 absl::ascii_isdigit((*l)[2]) && absl::ascii_isdigit((*l)[3]) &&
                 ((*l)[4] == ' ' || (*l)[4] == '-');
    if (coded) {
      reply.code = std::stoi(l->substr(0, 4));
      reply.lines.push_back(l->substr(5));
      if ((*l)[4] == ' ') break;
    } else {
      reply.lines.push_back(l->empty() ? "" : l->substr(1));  // " text": continued
    }
  }
  if (reply.code >= 8000) {
    return absl::FailedPreconditionError(
        absl::StrCat("BIRD refused '", line, "': ", absl::StrJoin(reply.lines, " ")));
  }
  return reply;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f)
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(e)));
  }
  return absl::OkStatus();
}

std::vector<BirdSession> ParseBirdProtocols(const BirdReply& reply) {
  // "tandem_n1  BGP  ---  up  17:33:06.710  Established"
  std::vector<BirdSession> out;
  for (const std::string& line : reply.lines) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 4 || f[1] != "BGP" || f[0].rfind("tandem_n", 0) != 0) continue;
    BirdSession s;
    s.name = f[0];
    std::vector<std::string> info(f.begin() + std::min<size_t>(f.size(), 5), f.end());
    s.info = absl::StrJoin(info, " ");
    s.established = f[3] == "up" && s.info.rfind("Established", 0) == 0;
    out.push_back(s);
  }
  return out;
}

std::vector<CompetingPath> ParseBirdRoutes(const BirdReply& reply, const std::string& session) {
  // "198.18.100.10/32  unicast [tandem_n1 17:33:06.874] * (100) [AS65102i]"
  // "                  unicast [tandem_n1 ...] (100) [AS65102i]"   (another path)
  // "\tBGP.as_path: 65010 65000 65020 65102"
  std::vector<CompetingPath> out;
  std::string prefix;
  for (const std::string& line : reply.lines) {
    if (line.empty() || line.rfind("Table ", 0) == 0) continue;
    if (line[0] == '\t') {
      constexpr absl::string_view kPath = "\tBGP.as_path:";
      if (!out.empty() && absl::StartsWith(line, kPath)) {
        out.back().as_path = std::string(absl::StripAsciiWhitespace(line.substr(kPath.size())));
      }
      continue;
    }
    if (line[0] != ' ') {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.empty() || f[0].find('/') == std::string::npos) continue;
      prefix = f[0];
    }
    if (line.find(" [" + session + " ") == std::string::npos || prefix.empty()) continue;
    out.push_back(CompetingPath{prefix, session, ""});
  }
  return out;
}

}  // namespace tandem::control
