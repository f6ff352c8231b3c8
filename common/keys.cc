#include "common/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/secure_file.h"

namespace tandem::keys {
namespace {

// Fixed per purpose: a key derived for one use is never valid for another.
constexpr absl::string_view kSalt = "tandem pair key v1";
constexpr absl::string_view kHeartbeatInfo = "tandem heartbeat hmac-sha256";
constexpr absl::string_view kReplicationInfo = "tandem backbone replication";

struct KdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

absl::Status TooShort(const std::string& where, size_t n) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, " holds ", n, " bytes; the pair key must hold at least ",
                   kMinPairKeyBytes, " (make one with `tandemctl pair keygen FILE`)"));
}

}  // namespace

absl::StatusOr<std::string> Hkdf(absl::string_view secret, absl::string_view salt,
                                 absl::string_view info, size_t length) {
  std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
  if (!kdf) return absl::InternalError("OpenSSL has no HKDF");
  std::unique_ptr<EVP_KDF_CTX, KdfFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return absl::InternalError("cannot make an HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  std::string out(length, '\0');
  if (EVP_KDF_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), out.size(), params) !=
      1) {
    ERR_clear_error();
    return absl::InternalError("HKDF failed");
  }
  return out;
}

absl::StatusOr<PairKeys> DerivePairKeys(absl::string_view secret) {
  if (secret.size() < kMinPairKeyBytes) return TooShort("the pair key", secret.size());
  PairKeys k;
  auto hb = Hkdf(secret, kSalt, kHeartbeatInfo, 32);
  if (!hb.ok()) return hb.status();
  auto rep = Hkdf(secret, kSalt, kReplicationInfo, 32);
  if (!rep.ok()) return rep.status();
  k.heartbeat = *std::move(hb);
  k.replication = *std::move(rep);
  return k;
}

absl::StatusOr<std::string> ReadPairKeyFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot read key file ", path, ": ", strerror(errno)));
  }
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { close(*f); });
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot stat key file ", path, ": ", strerror(errno)));
  }
  if (auto bad = CheckPrivateFile(st, path, S_IRWXG | S_IRWXO); !bad.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("pair key: ", bad.message(), "; chmod 600 ", path));
  }
  std::string secret;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && secret.size() < (1u << 20)) secret.append(buf, n);
  if (n < 0) {
    return absl::NotFoundError(absl::StrCat("cannot read key file ", path, ": ", strerror(errno)));
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < kMinPairKeyBytes)
    return TooShort(absl::StrCat("key file ", path), secret.size());
  return secret;
}

absl::StatusOr<std::string> LoadPairSecret(const std::string& key, const std::string& key_file,
                                           const std::string& origin) {
  if (!key_file.empty()) {
    if (!key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": pair.key and pair.key_file are both given: keep key_file"));
    }
    auto s = ReadPairKeyFile(key_file);
    if (!s.ok()) {
      return absl::Status(s.status().code(),
                          absl::StrCat(origin, ": pair.key_file: ", s.status().message()));
    }
    return s;
  }
  if (key.size() < kMinPairKeyBytes)
    return TooShort(absl::StrCat(origin, ": pair.key"), key.size());
  fprintf(stderr,
          "WARNING: %s: the pair key is written inline (pair.key): anyone who can read this "
          "configuration holds it. Move it to a key file of mode 0600 (pair.key_file; "
          "`tandemctl pair keygen FILE` makes one).\n",
          origin.c_str());
  return key;
}

absl::Status WriteNewPairKeyFile(const std::string& path) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    ERR_clear_error();
    return absl::InternalError("no random bytes from OpenSSL");
  }
  std::string text = absl::StrCat(
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(raw), sizeof raw)), "\n");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(path, " exists: a key is never overwritten"));
    }
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  // The umask may have taken bits away, never added any; set exactly 0600.
  bool ok = fchmod(fd, 0600) == 0 &&
            write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace tandem::keys
