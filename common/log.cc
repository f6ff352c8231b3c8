#include "common/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace tandem::log {
namespace {

constexpr const char* kNames[] = {"emerg",   "alert",  "crit", "err",
                                  "warning", "notice", "info", "debug"};

// Set once by Init before other threads start; read by every thread.
std::string g_program = "tandem";
std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_journal{false};

std::string TimeStamp() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
  return buf;
}

}  // namespace

const char* LevelName(Level l) {
  int i = static_cast<int>(l);
  return i >= 0 && i < 8 ? kNames[i] : "info";
}

bool ParseLevel(absl::string_view name, Level* out) {
  if (name == "warn") name = "warning";
  if (name == "error") name = "err";
  for (int i = 0; i < 8; ++i) {
    if (name == kNames[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

bool StderrIsJournal() {
  const char* env = getenv("JOURNAL_STREAM");
  if (!env || !*env) return false;
  unsigned long long dev = 0, ino = 0;
  if (sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void Init(absl::string_view program, Level min_level) {
  g_program = std::string(program);
  g_min_level.store(static_cast<int>(min_level));
  g_journal.store(StderrIsJournal());
}

void SetJournalFormat(bool journal) { g_journal.store(journal); }

Level MinLevel() { return static_cast<Level>(g_min_level.load(std::memory_order_relaxed)); }

std::string Format(Level level, absl::string_view message) {
  if (g_journal.load(std::memory_order_relaxed)) {
    return absl::StrCat("<", static_cast<int>(level), ">", g_program, ": ", message, "\n");
  }
  return absl::StrCat(TimeStamp(), " ", LevelName(level), " ", g_program, ": ", message, "\n");
}

void Write(Level level, absl::string_view message) {
  if (static_cast<int>(level) > static_cast<int>(MinLevel())) return;
  std::string line = Format(level, message);
  // One write: whole lines, never interleaved with another thread's.
  ssize_t rc = write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace tandem::log
