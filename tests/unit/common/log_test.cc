#include "common/log.h"

#include <sys/stat.h>

#include <cstdlib>
#include <regex>

#include "gtest/gtest.h"

namespace tandem::log {
namespace {

TEST(Log, JournalLinesCarryTheSyslogPriority) {
  Init("tandem-test");
  SetJournalFormat(true);
  EXPECT_EQ(Format(Level::kNotice, "role active epoch 2"),
            "<5>tandem-test: role active epoch 2\n");
  EXPECT_EQ(Format(Level::kErr, "x"), "<3>tandem-test: x\n");
  EXPECT_EQ(Format(Level::kDebug, "x"), "<7>tandem-test: x\n");
}

TEST(Log, OtherLinesCarryATimeStampAndTheLevel) {
  Init("tandem-test");
  SetJournalFormat(false);
  std::string line = Format(Level::kWarning, "pair alarm raised: peer_lost");
  EXPECT_TRUE(std::regex_match(
      line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning tandem-test: )"
                       R"(pair alarm raised: peer_lost\n)")))
      << line;
}

TEST(Log, LevelsParseByTheirSyslogNames) {
  Level l;
  EXPECT_TRUE(ParseLevel("notice", &l));
  EXPECT_EQ(l, Level::kNotice);
  EXPECT_TRUE(ParseLevel("warn", &l));
  EXPECT_EQ(l, Level::kWarning);
  EXPECT_TRUE(ParseLevel("error", &l));
  EXPECT_EQ(l, Level::kErr);
  EXPECT_FALSE(ParseLevel("loud", &l));
}

TEST(Log, JournalIsDetectedFromJournalStreamOnly) {
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(StderrIsJournal());
  setenv("JOURNAL_STREAM", "1:2", 1);  // not stderr's device and inode
  EXPECT_FALSE(StderrIsJournal());
  struct stat st;
  ASSERT_EQ(fstat(2, &st), 0);
  setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(),
         1);
  EXPECT_TRUE(StderrIsJournal());
  unsetenv("JOURNAL_STREAM");
}

}  // namespace
}  // namespace tandem::log
