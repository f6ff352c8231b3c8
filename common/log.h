// Logging of Tandem's daemons: one line per message on stderr, with a level.
//
// Under systemd (stderr connected to the journal, $JOURNAL_STREAM naming it)
// each line starts with the sd-daemon priority prefix "<N>" (syslog levels,
// sd-daemon(3)); journald strips it and records the priority, and adds its
// own time stamp. Elsewhere each line starts with a UTC time stamp and the
// level's name:
//   2026-12-01T10:00:00.123Z notice tandem-control: role active epoch 3 ...
// What an operator must see (role changes, takeovers, alarms, refused
// messages) is logged at notice or above; routine progress at info.
//
// Thread-safe: a line is written with one write(2), so lines of different
// threads never interleave.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/strings/str_format.h"

namespace tandem::log {

// syslog(3) priorities.
enum class Level : int {
  kEmerg = 0,
  kAlert = 1,
  kCrit = 2,
  kErr = 3,
  kWarning = 4,
  kNotice = 5,
  kInfo = 6,
  kDebug = 7,
};

const char* LevelName(Level l);
// "err" -> kErr, "warning" or "warn", ... ; false when unknown.
bool ParseLevel(absl::string_view name, Level* out);

// Whether stderr is the journal (sd_journal_stream_fd or StandardError=journal):
// $JOURNAL_STREAM holds "DEV:INODE" of the stream, compared with stderr's.
bool StderrIsJournal();

// Decided once at start: the program's name ("tandem-control") that opens
// every message, the least important level written (default info), and the
// format (journal or time stamps; default: StderrIsJournal()).
void Init(absl::string_view program, Level min_level = Level::kInfo);
void SetJournalFormat(bool journal);  // for tests
Level MinLevel();

// The whole line for `message` at `level`, as Write would print it (tests).
std::string Format(Level level, absl::string_view message);
// Writes a line (a trailing newline is added); lines below MinLevel() are dropped.
void Write(Level level, absl::string_view message);

template <typename... Args>
void Logf(Level level, const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  if (static_cast<int>(level) > static_cast<int>(MinLevel())) return;
  Write(level, absl::StrFormat(fmt, args...));
}

}  // namespace tandem::log
