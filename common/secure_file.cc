#include "common/secure_file.h"

#include <errno.h>
#include <grp.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem {
namespace {

bool TrustedOwner(uid_t uid) { return uid == 0 || uid == geteuid(); }

std::string TrustedOwners() {
  return geteuid() == 0 ? "root" : absl::StrCat("root or uid ", geteuid());
}

}  // namespace

std::string DescribeOwnerAndMode(const struct stat& st) {
  return absl::StrFormat("owned by uid %u, mode %04o", st.st_uid, st.st_mode & 07777);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status CheckPrivateDir(const std::string& dir) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no directory ", dir));
    return absl::PermissionDeniedError(absl::StrCat("cannot stat ", dir, ": ", strerror(errno)));
  }
  if (S_ISLNK(st.st_mode)) {
    return absl::PermissionDeniedError(
        absl::StrCat("refusing directory ", dir, ": it is a symbolic link (",
                     DescribeOwnerAndMode(st), "); the region directory must be a real directory"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::PermissionDeniedError(absl::StrCat("refusing ", dir, ": not a directory"));
  }
  if (!TrustedOwner(st.st_uid) || (st.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing directory ", dir, ": ", DescribeOwnerAndMode(st), "; it must be owned by ",
        TrustedOwners(), " with mode 0700 or 0750 (no write for group, nothing for others)"));
  }
  return absl::OkStatus();
}

absl::Status PreparePrivateDir(const std::string& dir, std::optional<gid_t> group) {
  if (dir.empty()) return absl::InvalidArgumentError("empty directory name");
  // Created owner-only, then opened to the group: no one else can enter it
  // in between.
  if (mkdir(dir.c_str(), 0700) == 0) {
    if (group) {
      if (chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0 ||
          chmod(dir.c_str(), 0750) != 0) {
        return absl::PermissionDeniedError(absl::StrCat("cannot give directory ", dir, " to group ",
                                                        *group, ": ", strerror(errno)));
      }
    }
  } else if (errno != EEXIST) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create directory ", dir, ": ", strerror(errno)));
  }
  return CheckPrivateDir(dir);
}

absl::Status CheckPrivateFile(const struct stat& st, const std::string& path, mode_t forbidden) {
  if (!S_ISREG(st.st_mode)) {
    return absl::PermissionDeniedError(absl::StrCat("refusing ", path, ": not a regular file"));
  }
  if (!TrustedOwner(st.st_uid) || (st.st_mode & forbidden) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "refusing %s: %s; it must be owned by %s with none of the mode bits %04o set "
        "(remove it, or fix its owner and mode)",
        path, DescribeOwnerAndMode(st), TrustedOwners(), forbidden));
  }
  return absl::OkStatus();
}

absl::StatusOr<gid_t> LookupGroup(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("empty group name");
  uint32_t number = 0;
  if (absl::SimpleAtoi(name, &number)) return static_cast<gid_t>(number);
  std::vector<char> buf(16384);
  struct group gr, *found = nullptr;
  int err;
  while ((err = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1u << 24)) {
    buf.resize(buf.size() * 2);
  }
  if (err != 0) {
    return absl::UnavailableError(absl::StrCat("cannot look up group ", name, ": ", strerror(err)));
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no group named \"", name, "\""));
  return gr.gr_gid;
}

}  // namespace tandem
