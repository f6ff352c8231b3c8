// control/api_access.h: the socket group lookup, the checks of the TLS files
// of a TCP listener and the socket's mode and group.
#include "control/api_access.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/unit/control/test_dir.h"

namespace tandem::control {
namespace {

using testing::TempDir;

std::string Pem(int (*write)(BIO*, void*), void* what) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio, what);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// A self-signed P-256 certificate valid from `from_s` to `to_s` seconds from
// now, and its key, in PEM.
struct KeyCert {
  std::string cert, key;
};
KeyCert MakeCert(long from_s = -60, long to_s = 3600) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), from_s);
  X509_gmtime_adj(X509_getm_notAfter(x), to_s);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("tandem test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  KeyCert kc;
  kc.cert = Pem([](BIO* b, void* p) { return PEM_write_bio_X509(b, static_cast<X509*>(p)); }, x);
  kc.key = Pem(
      [](BIO* b, void* p) {
        return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(p), nullptr, nullptr, 0, nullptr,
                                        nullptr);
      },
      key);
  X509_free(x);
  EVP_PKEY_free(key);
  return kc;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A TCP listener whose TLS files are in `dir`.
Config TcpConfig(const TempDir& dir) {
  Config c;
  c.api_listen = "unix:" + dir.File("api.sock");
  c.api_tcp = "127.0.0.1:7443";
  c.api_tls_cert = dir.File("server.crt");
  c.api_tls_key = dir.File("server.key");
  c.api_tls_ca = dir.File("ca.crt");
  return c;
}

TEST(ApiAccessTest, LooksUpGroupsByNameOrNumber) {
  EXPECT_EQ(*LookupGroup("root"), 0u);
  EXPECT_EQ(*LookupGroup("4242"), 4242u);
  auto g = LookupGroup("tandem-no-such-group");
  EXPECT_TRUE(absl::IsNotFound(g.status())) << g.status();
  EXPECT_NE(g.status().message().find("tandem-no-such-group"), std::string::npos);
}

TEST(ApiAccessTest, UnixOnlyNeedsNoTlsFiles) {
  Config c;
  c.api_listen = "unix:/tmp/x.sock";
  c.api_socket_mode = "0660";
  c.api_socket_group = "root";
  auto a = LoadApiAccess(c);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a->socket_mode, 0660u);
  EXPECT_EQ(*a->socket_group, 0u);
  EXPECT_TRUE(a->tls_cert.empty());
  c.api_socket_group = "tandem-no-such-group";
  a = LoadApiAccess(c);
  EXPECT_TRUE(absl::IsInvalidArgument(a.status()));
  EXPECT_NE(a.status().message().find("socket_group"), std::string::npos) << a.status();
}

TEST(ApiAccessTest, ReadsAndChecksTheTlsFiles) {
  TempDir dir;
  Config c = TcpConfig(dir);
  KeyCert server = MakeCert(), ca = MakeCert(), other = MakeCert();
  auto refused = [&](const char* key, const std::string& what) {
    auto a = LoadApiAccess(c);
    EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << a.status();
    EXPECT_NE(a.status().message().find(absl::StrCat("[api] ", key)), std::string::npos)
        << a.status();
    EXPECT_NE(a.status().message().find(what), std::string::npos) << a.status();
  };
  refused("tls_cert", "cannot read " + c.api_tls_cert);
  Write(c.api_tls_cert, server.cert);
  refused("tls_key", "cannot read " + c.api_tls_key);
  Write(c.api_tls_key, server.key);
  refused("tls_ca", "cannot read " + c.api_tls_ca);
  Write(c.api_tls_ca, ca.cert);
  auto a = LoadApiAccess(c);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->tls_cert, server.cert);
  EXPECT_EQ(a->tls_key, server.key);
  EXPECT_EQ(a->tls_ca, ca.cert);
  EXPECT_NE(MutualTlsCredentials(*a), nullptr);

  Write(c.api_tls_key, other.key);
  refused("tls_key", "is not the key of the certificate in " + c.api_tls_cert);
  Write(c.api_tls_key, "not a key\n");
  refused("tls_key", "no unencrypted PEM private key");
  Write(c.api_tls_key, server.key);
  Write(c.api_tls_ca, "");
  refused("tls_ca", "is empty");
  Write(c.api_tls_ca, server.key);
  refused("tls_ca", "holds no PEM certificate");
  Write(c.api_tls_ca, ca.cert);
  Write(c.api_tls_cert, server.key);
  refused("tls_cert", "holds no PEM certificate");
  KeyCert expired = MakeCert(-7200, -3600);
  Write(c.api_tls_cert, expired.cert);
  Write(c.api_tls_key, expired.key);
  refused("tls_cert", "has expired");
  KeyCert future = MakeCert(3600, 7200);
  Write(c.api_tls_cert, future.cert);
  Write(c.api_tls_key, future.key);
  refused("tls_cert", "not valid yet");

  // listen itself on TCP needs the same files.
  c.api_tcp.clear();
  c.api_listen = "127.0.0.1:7443";
  Write(c.api_tls_cert, server.cert);
  Write(c.api_tls_key, server.key);
  EXPECT_TRUE(LoadApiAccess(c).ok());
  unlink(c.api_tls_ca.c_str());
  refused("tls_ca", "cannot read");
}

TEST(ApiAccessTest, SetsTheSocketModeAndGroup) {
  TempDir dir;
  std::string path = dir.File("api.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ApiAccess a;
  a.socket_mode = 0640;
  a.socket_group = getgid();  // a group we may give it to, root or not
  ASSERT_TRUE(SecureSocket(path, a).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, getgid());
  a.socket_mode = 0600;
  a.socket_group.reset();
  ASSERT_TRUE(SecureSocket(path, a).ok());
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  close(fd);
  unlink(path.c_str());
  absl::Status gone = SecureSocket(path, a);
  EXPECT_FALSE(gone.ok());
  EXPECT_NE(gone.message().find(path), std::string::npos) << gone;
}

}  // namespace
}  // namespace tandem::control
