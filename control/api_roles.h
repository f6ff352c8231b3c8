// Who may make which API call (docs/control.md, "Roles"). Each caller has
// one role, the highest that [api.roles] gives its identity: on the Unix
// socket the uid, gid and groups the kernel reports for the connecting
// process (SO_PEERCRED, SO_PEERGROUPS), on TCP the client certificate's
// subject, common name and subject alternative names (mutual TLS). Root and
// the daemon's own user are always admin on the Unix socket (they own the
// tables and the store anyway). A caller that matches nothing has no role
// and is refused every call with PERMISSION_DENIED.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::control {

enum class ApiRole { kNone = 0, kReadOnly = 1, kOperator = 2, kAdmin = 3 };
const char* ApiRoleName(ApiRole role);  // "none", "read_only", "operator", "admin"

// The permission map: the role each call of the Control service needs.
// `force` is Switchover's flag (a forced switchover skips every check).
// Unknown methods need admin.
ApiRole RequiredRole(absl::string_view method, bool force = false);

// Every entry of the map, for the test that holds it against the service.
struct CallRule {
  const char* method;
  ApiRole role;
};
const std::vector<CallRule>& CallRules();

// The identity of one caller, as the transport proved it.
struct Caller {
  bool unix_socket = false;  // uid, gid and groups are set
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;       // supplementary groups
  bool certificate = false;        // subject and names are set
  std::string subject;             // e.g. "CN=ops,O=Example"
  std::vector<std::string> names;  // common name and every subject alternative name
  std::string Describe() const;    // for refusals and the log
};

// [api.roles]: for each role, a list of identities:
//   "uid:N" "user:NAME"     the calling process's uid (Unix socket)
//   "gid:N" "group:NAME"    its primary or a supplementary group (Unix socket)
//   "cert:NAME"             the certificate's common name or any SAN (TLS)
//   "subject:DN"            the certificate's whole subject, e.g. "CN=ops,O=Example" (TLS)
struct RolesConfig {
  std::vector<std::string> read_only, operator_, admin;
};

class RoleMap {
 public:
  // Resolves user and group names; InvalidArgument naming the entry otherwise.
  static absl::StatusOr<RoleMap> Create(const RolesConfig& config);
  ApiRole RoleOf(const Caller& caller) const;

 private:
  struct Entry {
    enum Kind { kUid, kGid, kCert, kSubject } kind;
    uint32_t id = 0;
    std::string name;
    ApiRole role;
  };
  std::vector<Entry> entries_;
};

}  // namespace tandem::control
