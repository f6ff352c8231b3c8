// Files and directories that only this node's own processes may change: the
// session-table regions and their directory, the store, the pair key. A local
// user who could create or replace one of them first would write the live
// tables, forge the peer's heartbeat records or read the pair key
// (docs/hardening.md, "Local files").
//
// "Trusted owner" means root or this process's effective user. Every refusal
// is PermissionDenied and names the path, its owner and its mode.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem {

// A directory (not a symlink to one) with a trusted owner that no one else
// may write to, and that others (neither owner nor group) cannot enter.
absl::Status CheckPrivateDir(const std::string& dir);

// Creates `dir` when missing: mode 0700, or 0750 with `group` as its group
// (so that a process of that group can read what is in it). Its parent must
// exist. Then checks it with CheckPrivateDir: an existing directory is never
// loosened or tightened, only refused.
absl::Status PreparePrivateDir(const std::string& dir, std::optional<gid_t> group);

// Checks an open file: a regular file with a trusted owner and none of the
// permission bits in `forbidden` (e.g. S_IWGRP | S_IRWXO).
absl::Status CheckPrivateFile(const struct stat& st, const std::string& path, mode_t forbidden);

// "owned by uid 1000, mode 0666" for messages.
std::string DescribeOwnerAndMode(const struct stat& st);

// A group name or number; NotFound when the system has no such group.
absl::StatusOr<gid_t> LookupGroup(const std::string& name);

// The directory part of a path ("." when it has none).
std::string DirName(const std::string& path);

}  // namespace tandem
