// The pair key (common/keys.h): a secret of >= 32 bytes from a file only its
// owner reads, and two keys derived from it with HKDF-SHA256.
#include "common/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::keys {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class KeyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/dev/shm/tandem-keys-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string dir_;
};

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes

// RFC 5869, appendix A.1: this is HKDF-SHA256 as the RFC defines it.
TEST(Hkdf, MatchesRfc5869TestCase1) {
  std::string ikm(22, '\x0b');
  std::string salt = absl::HexStringToBytes("000102030405060708090a0b0c");
  std::string info = absl::HexStringToBytes("f0f1f2f3f4f5f6f7f8f9");
  auto okm = Hkdf(ikm, salt, info, 42);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(absl::BytesToHexString(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(PairKeys, TheTwoKeysDifferFromEachOtherAndFromTheSecret) {
  auto k = DerivePairKeys(kSecret);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->heartbeat.size(), 32u);
  EXPECT_EQ(k->replication.size(), 32u);
  EXPECT_NE(k->heartbeat, k->replication);
  EXPECT_NE(k->heartbeat, kSecret);
  EXPECT_NE(k->replication, kSecret);
  EXPECT_EQ(k->heartbeat.find(kSecret), std::string::npos);
  // Each node derives the same keys from the same secret, and other keys
  // from another.
  auto again = DerivePairKeys(kSecret);
  EXPECT_EQ(again->heartbeat, k->heartbeat);
  EXPECT_EQ(again->replication, k->replication);
  auto other = DerivePairKeys(kSecret + "x");
  EXPECT_NE(other->heartbeat, k->heartbeat);
  EXPECT_NE(other->replication, k->replication);
}

TEST(PairKeys, ShortSecretIsRefused) {
  auto k = DerivePairKeys(kSecret.substr(0, 31));
  ASSERT_TRUE(absl::IsInvalidArgument(k.status())) << k.status();
  EXPECT_THAT(k.status().message(), AllOf(HasSubstr("31 bytes"), HasSubstr("at least 32")));
  auto inline_short = LoadPairSecret("0123456789abcdef", "", "t.toml");
  ASSERT_TRUE(absl::IsInvalidArgument(inline_short.status())) << inline_short.status();
  EXPECT_THAT(inline_short.status().message(), AllOf(HasSubstr("t.toml"), HasSubstr("pair.key")));
}

TEST_F(KeyFiles, OwnerOnlyFileIsRead) {
  std::string path = Write("pair.key", kSecret + "\n", 0600);
  auto s = ReadPairKeyFile(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, kSecret);
  EXPECT_EQ(*LoadPairSecret("", path, "t.toml"), kSecret);
  EXPECT_TRUE(ReadPairKeyFile(Write("ro.key", kSecret, 0400)).ok());
}

TEST_F(KeyFiles, FileOthersMayReadIsRefusedNamingItsMode) {
  for (mode_t mode : {0640, 0604, 0644, 0660, 0606}) {
    std::string path = Write("pair.key", kSecret, mode);
    auto s = ReadPairKeyFile(path);
    ASSERT_TRUE(absl::IsPermissionDenied(s.status())) << std::oct << mode << " " << s.status();
    char want[16];
    snprintf(want, sizeof want, "mode %04o", mode);
    EXPECT_THAT(s.status().message(), AllOf(HasSubstr(path), HasSubstr(want)));
    auto loaded = LoadPairSecret("", path, "t.toml");
    EXPECT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.status().message(), AllOf(HasSubstr("t.toml"), HasSubstr("pair.key_file")));
  }
}

TEST_F(KeyFiles, ShortFileIsRefused) {
  std::string path = Write("short.key", "0123456789abcdef\n", 0600);
  auto s = ReadPairKeyFile(path);
  ASSERT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr(path), HasSubstr("16 bytes")));
}

TEST_F(KeyFiles, KeygenWritesANewOwnerOnlyKeyAndNeverOverwrites) {
  std::string path = dir_ + "/new.key";
  ASSERT_TRUE(WriteNewPairKeyFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto s = ReadPairKeyFile(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->size(), 64u);
  EXPECT_EQ(s->find_first_not_of("0123456789abcdef"), std::string::npos) << *s;
  EXPECT_TRUE(absl::IsAlreadyExists(WriteNewPairKeyFile(path)));
  EXPECT_EQ(*ReadPairKeyFile(path), *s) << "an existing key was overwritten";
  std::string other = dir_ + "/other.key";
  ASSERT_TRUE(WriteNewPairKeyFile(other).ok());
  EXPECT_NE(*ReadPairKeyFile(other), *s);
}

}  // namespace
}  // namespace tandem::keys
