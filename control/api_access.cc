#include "control/api_access.h"

#include <errno.h>
#include <grp.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::control {
namespace {

absl::Status Bad(const char* key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("[api] ", key, ": ", why));
}

// The whole file, or InvalidArgument naming the key, the file and why.
absl::StatusOr<std::string> ReadPem(const char* key, const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return Bad(key, absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool failed = ferror(f);
  int err = errno;
  fclose(f);
  if (failed) return Bad(key, absl::StrCat("cannot read ", path, ": ", strerror(err)));
  if (text.empty()) return Bad(key, absl::StrCat(path, " is empty"));
  return text;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;

Bio MemBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate of a PEM text, in order.
std::vector<Cert> ReadCerts(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
  ERR_clear_error();  // the read that ends the loop leaves an error queued
  return certs;
}

// Refuses a certificate outside its validity period: no client would accept it.
absl::Status CheckValidity(const char* key, const std::string& path, X509* cert) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    return Bad(key, absl::StrCat("the certificate in ", path, " has expired"));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
    return Bad(key, absl::StrCat("the certificate in ", path, " is not valid yet"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ApiAccess> LoadApiAccess(const Config& c) {
  ApiAccess a;
  if (!c.api_socket_mode.empty()) {
    auto m = ParseSocketMode(c.api_socket_mode);
    if (!m.ok()) return Bad("socket_mode", std::string(m.status().message()));
    a.socket_mode = *m;
  }
  if (!c.api_socket_group.empty()) {
    auto g = LookupGroup(c.api_socket_group);
    if (!g.ok()) return Bad("socket_group", std::string(g.status().message()));
    a.socket_group = *g;
  }
  bool tcp = !c.api_tcp.empty() || !IsUnixAddress(c.api_listen);
  if (!tcp) return a;  // ValidateConfig made sure a TCP listener has all three keys

  auto cert_pem = ReadPem("tls_cert", c.api_tls_cert);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadPem("tls_key", c.api_tls_key);
  if (!key_pem.ok()) return key_pem.status();
  auto ca_pem = ReadPem("tls_ca", c.api_tls_ca);
  if (!ca_pem.ok()) return ca_pem.status();

  std::vector<Cert> chain = ReadCerts(*cert_pem);
  if (chain.empty()) {
    return Bad("tls_cert", absl::StrCat(c.api_tls_cert, " holds no PEM certificate"));
  }
  if (auto st = CheckValidity("tls_cert", c.api_tls_cert, chain[0].get()); !st.ok()) return st;
  Bio kb = MemBio(*key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, const_cast<char*>("")));
  ERR_clear_error();
  if (!key) {
    return Bad("tls_key", absl::StrCat(c.api_tls_key, " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return Bad("tls_key", absl::StrCat(c.api_tls_key, " is not the key of the certificate in ",
                                       c.api_tls_cert));
  }
  std::vector<Cert> cas = ReadCerts(*ca_pem);
  if (cas.empty()) {
    return Bad("tls_ca", absl::StrCat(c.api_tls_ca, " holds no PEM certificate"));
  }
  a.tls_cert = *std::move(cert_pem);
  a.tls_key = *std::move(key_pem);
  a.tls_ca = *std::move(ca_pem);
  return a;
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsCredentials(const ApiAccess& a) {
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = a.tls_ca;
  opts.pem_key_cert_pairs.push_back({a.tls_key, a.tls_cert});
  return grpc::SslServerCredentials(opts);
}

absl::Status SecureSocket(const std::string& path, const ApiAccess& a) {
  if (a.socket_group && chown(path.c_str(), static_cast<uid_t>(-1), *a.socket_group) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot give socket ", path, " to group ",
                                                    *a.socket_group, ": ", strerror(errno)));
  }
  if (a.socket_mode && chmod(path.c_str(), static_cast<mode_t>(*a.socket_mode)) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat("cannot set mode %04o on socket %s: %s",
                                                       *a.socket_mode, path, strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tandem::control
