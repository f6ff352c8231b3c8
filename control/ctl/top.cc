#include "control/ctl/top.h"

#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace tandem::control {
namespace {

std::atomic<bool> g_quit{false};

void OnSignal(int) { g_quit = true; }

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

struct Sample {
  double at = 0;
  v1::NodeStatus status;
  v1::ListMeetingsResponse meetings;
};

// The terminal in raw mode while the view runs (keys arrive one at a time,
// unechoed); restored on every exit path.
class RawTerminal {
 public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

double Rate(uint64_t now, uint64_t before, double dt) {
  return dt > 0 && now >= before ? double(now - before) / dt : 0;
}

std::string Num(double v) {
  if (v >= 1e9) return absl::StrFormat("%.1fG", v / 1e9);
  if (v >= 1e6) return absl::StrFormat("%.1fM", v / 1e6);
  if (v >= 1e4) return absl::StrFormat("%.1fk", v / 1e3);
  return absl::StrFormat("%.0f", v);
}

// The local time of the sample ends the first line, as in top(1): a view
// whose figures hold steady still shows that it is live.
std::string ClockTime() {
  time_t t = time(nullptr);
  tm local{};
  char buf[16] = "";
  if (localtime_r(&t, &local)) strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

void Header(std::string& out, const Sample& s) {
  const v1::NodeStatus& st = s.status;
  absl::StrAppend(&out, "tandemctl top - node ", st.node(), ", ", st.role(), " epoch ", st.epoch(),
                  ", legs ", st.legs(), "/", st.leg_capacity(), ", meetings ", st.meetings(), "/",
                  st.meeting_capacity(), ", switch ",
                  st.switch_running() ? absl::StrCat("pid ", st.switch_pid()) : "DOWN", " - ",
                  ClockTime(), "\n");
  if (st.has_pair()) {
    const v1::PairStatus& p = st.pair();
    absl::StrAppend(&out, "pair: peer ", p.peer_state(), " (", p.peer_role(), " epoch ",
                    p.peer_epoch(), "), replication ", p.replication(), ", lag ", p.lag_changes(),
                    " changes ", absl::StrFormat("%.1f", p.lag_ms()), " ms, alarms ", p.alarms(),
                    "\n");
  } else {
    absl::StrAppend(&out, "pair: none\n");
  }
}

void Ports(std::string& out, const Sample& s, const Sample* prev, double dt) {
  absl::StrAppend(&out, "\n", absl::StrFormat("%-10s %-5s %10s %10s %10s %10s %9s %9s\n", "PORT",
                                              "LINK", "RX pps", "TX pps", "RX Mbit/s",
                                              "TX Mbit/s", "missed/s", "errors/s"));
  for (const v1::PortStatus& p : s.status.ports()) {
    const v1::PortStatus* q = nullptr;
    if (prev) {
      for (const auto& o : prev->status.ports()) {
        if (o.name() == p.name()) q = &o;
      }
    }
    auto r = [&](uint64_t now, uint64_t before) { return q ? Num(Rate(now, before, dt)) : "-"; };
    auto mbit = [&](uint64_t now, uint64_t before) {
      return q ? absl::StrFormat("%.2f", Rate(now, before, dt) * 8 / 1e6) : "-";
    };
    absl::StrAppend(
        &out, absl::StrFormat("%-10s %-5s %10s %10s %10s %10s %9s %9s\n", p.name(),
                              p.link_up() ? "up" : "DOWN", r(p.ipackets(), q ? q->ipackets() : 0),
                              r(p.opackets(), q ? q->opackets() : 0),
                              mbit(p.ibytes(), q ? q->ibytes() : 0),
                              mbit(p.obytes(), q ? q->obytes() : 0),
                              r(p.imissed(), q ? q->imissed() : 0),
                              r(p.ierrors() + p.oerrors(), q ? q->ierrors() + q->oerrors() : 0)));
  }
}

void Workers(std::string& out, const Sample& s, const Sample* prev, double dt) {
  absl::StrAppend(&out, "\n", absl::StrFormat("%-7s %5s %-8s %10s %10s %9s %10s\n", "WORKER",
                                              "LCORE", "STATE", "RX pps", "TX pps", "drops/s",
                                              "heartbeat"));
  for (const v1::WorkerStatus& w : s.status.workers()) {
    const v1::WorkerStatus* q = nullptr;
    if (prev) {
      for (const auto& o : prev->status.workers()) {
        if (o.index() == w.index()) q = &o;
      }
    }
    auto r = [&](uint64_t now, uint64_t before) { return q ? Num(Rate(now, before, dt)) : "-"; };
    std::string state = !w.healthy() ? "STALLED" : w.sleeping() ? "idle" : "polling";
    absl::StrAppend(&out, absl::StrFormat("%-7d %5d %-8s %10s %10s %9s %8dms\n", w.index(),
                                          w.lcore(), state, r(w.rx_packets(), q ? q->rx_packets() : 0),
                                          r(w.tx_packets(), q ? q->tx_packets() : 0),
                                          r(w.drops(), q ? q->drops() : 0), w.heartbeat_age_ms()));
  }
}

void Drops(std::string& out, const Sample& s, const Sample* prev, double dt) {
  std::vector<std::string> parts;
  std::map<std::string, uint64_t> sorted(s.status.drops().begin(), s.status.drops().end());
  for (const auto& [reason, n] : sorted) {
    if (n == 0) continue;
    uint64_t before = 0;
    if (prev) {
      auto it = prev->status.drops().find(reason);
      if (it != prev->status.drops().end()) before = it->second;
    }
    parts.push_back(absl::StrCat(reason, " ", prev ? Num(Rate(n, before, dt)) : "-", "/s (",
                                 Num(double(n)), ")"));
  }
  absl::StrAppend(&out, "\nDROPS: ", parts.empty() ? "none" : absl::StrJoin(parts, ", "), "\n");
}

void Meetings(std::string& out, const Sample& s, const Sample* prev, double dt, int rows) {
  struct Row {
    const v1::Meeting* m;
    double in, out;
  };
  std::vector<Row> list;
  for (const v1::Meeting& m : s.meetings.meetings()) {
    Row r{&m, -1, -1};
    if (prev) {
      for (const auto& o : prev->meetings.meetings()) {
        if (o.meeting_id() != m.meeting_id()) continue;
        r.in = Rate(m.usage().packets_in(), o.usage().packets_in(), dt);
        r.out = Rate(m.usage().packets_out(), o.usage().packets_out(), dt);
      }
    }
    list.push_back(r);
  }
  std::sort(list.begin(), list.end(), [](const Row& a, const Row& b) {
    return a.in != b.in ? a.in > b.in : a.m->meeting_id() < b.m->meeting_id();
  });
  absl::StrAppend(&out, "\n", absl::StrFormat("%-8s %-24s %6s %5s %10s %10s\n", "MEETING", "TITLE",
                                              "PEOPLE", "LEGS", "IN pps", "OUT pps"));
  int shown = 0;
  for (const Row& r : list) {
    if (shown++ == rows) break;
    absl::StrAppend(&out, absl::StrFormat("%-8d %-24.24s %6d %5d %10s %10s\n", r.m->meeting_id(),
                                          r.m->title(), r.m->participants(), r.m->legs(),
                                          r.in < 0 ? "-" : Num(r.in), r.out < 0 ? "-" : Num(r.out)));
  }
  if (list.empty()) absl::StrAppend(&out, "(no live meeting)\n");
  if (list.size() > static_cast<size_t>(rows)) {
    absl::StrAppend(&out, "... ", list.size() - rows, " more\n");
  }
}

grpc::Status Take(client::PairClient& c, Sample* s) {
  s->at = Now();
  grpc::Status st = c.Call(&v1::Control::Stub::GetStatus, v1::GetStatusRequest(), &s->status);
  if (!st.ok()) return st;
  v1::ListMeetingsRequest req;
  req.set_state(v1::LIVE);
  return c.Call(&v1::Control::Stub::ListMeetings, req, &s->meetings);
}

}  // namespace

int RunTop(client::PairClient& client, const TopOptions& o) {
  bool tty = isatty(STDOUT_FILENO);
  RawTerminal term;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Sample prev, cur;
  bool have_prev = false;
  for (int i = 0; !g_quit && (o.iterations == 0 || i < o.iterations); ++i) {
    grpc::Status st = Take(client, &cur);
    std::string screen;
    if (!st.ok()) {
      if (!have_prev) {
        fprintf(stderr, "tandemctl: UNAVAILABLE: %s\n", st.error_message().c_str());
        return 3;
      }
      screen = absl::StrCat("tandemctl top: ", st.error_message(), " (retrying)\n");
    } else {
      double dt = have_prev ? cur.at - prev.at : 0;
      const Sample* p = have_prev ? &prev : nullptr;
      Header(screen, cur);
      Ports(screen, cur, p, dt);
      Workers(screen, cur, p, dt);
      Drops(screen, cur, p, dt);
      Meetings(screen, cur, p, dt, o.meetings);
      prev = cur;
      have_prev = true;
    }
    if (tty) {
      // Home and clear, then the screen; the cursor's line last, for `q`.
      fputs("\x1b[H\x1b[2J", stdout);
      fputs(screen.c_str(), stdout);
      fputs(term.active() ? "\n[q] quit" : "", stdout);
    } else {
      fputs(screen.c_str(), stdout);
      fputs("--\n", stdout);
    }
    fflush(stdout);
    if (o.iterations && i + 1 == o.iterations) break;
    // Wait for the interval, or a key.
    double until = Now() + o.interval_s;
    while (!g_quit && Now() < until) {
      pollfd pfd{term.active() ? STDIN_FILENO : -1, POLLIN, 0};
      int ms = std::max(1, static_cast<int>((until - Now()) * 1000));
      if (poll(&pfd, 1, ms) > 0 && (pfd.revents & POLLIN)) {
        char ch = 0;
        if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q')) g_quit = true;
      }
    }
  }
  if (tty) fputs("\n", stdout);
  return 0;
}

}  // namespace tandem::control
