#include "control/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/secure_file.h"

namespace tandem::control {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sites(site_id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meetings(meeting_id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL,
                                    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS meetings_site ON meetings(site_id);
CREATE TABLE IF NOT EXISTS participants(participant_id INTEGER PRIMARY KEY,
                                        meeting_id INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS participants_meeting ON participants(meeting_id);
)sql";

// SQLite stores signed 64-bit integers; ids round-trip through the same bits.
int64_t ToDb(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t FromDb(int64_t v) { return static_cast<uint64_t>(v); }

// The store and its -wal and -shm files are the owner's alone (0600): they
// hold every site's data. A file from an older version with a looser mode is
// tightened; a symlink or a file someone else owns is refused.
absl::Status SecureStoreFiles(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string p = absl::StrCat(path, suffix);
    int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | (*suffix ? 0 : O_CREAT);
    int fd = open(p.c_str(), flags, 0600);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      if (errno == ELOOP) {
        return absl::PermissionDeniedError(
            absl::StrCat("refusing store ", p, ": it is a symbolic link"));
      }
      return absl::UnavailableError(absl::StrCat("cannot open store ", p, ": ", strerror(errno)));
    }
    struct stat st;
    absl::Status bad = fstat(fd, &st) == 0 ? CheckPrivateFile(st, p, 0) : absl::OkStatus();
    if (bad.ok() && (st.st_mode & 077) != 0) {
      fprintf(stderr, "tandem-control: store %s was %s: now 0600\n", p.c_str(),
              DescribeOwnerAndMode(st).c_str());
      if (fchmod(fd, 0600) != 0) {
        bad = absl::PermissionDeniedError(
            absl::StrCat("cannot set mode 0600 on store ", p, ": ", strerror(errno)));
      }
    }
    close(fd);
    if (!bad.ok()) return bad;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  // SQLite gives the -wal and -shm files the database file's mode.
  if (auto st = SecureStoreFiles(path); !st.ok()) return st;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open store ", path, ": ", msg));
  }
  std::unique_ptr<Store> s(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL with synchronous=FULL: every commit is fsynced before it returns, so
  // an acknowledged change survives kill -9 and a crash of the host.
  if (auto st = s->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"); !st.ok()) return st;
  if (auto st = s->Exec(kSchema); !st.ok()) return st;
  auto prep = [&](const char* sql, sqlite3_stmt** out) -> absl::Status {
    auto p = s->Prepare(sql);
    if (!p.ok()) return p.status();
    *out = *p;
    return absl::OkStatus();
  };
  if (auto st = prep("INSERT OR REPLACE INTO sites(site_id, data) VALUES(?1, ?3)", &s->put_site_);
      !st.ok()) {
    return st;
  }
  if (auto st = prep("INSERT OR REPLACE INTO meetings(meeting_id, site_id, data) VALUES(?1,?2,?3)",
                     &s->put_meeting_);
      !st.ok()) {
    return st;
  }
  if (auto st = prep("INSERT OR REPLACE INTO participants(participant_id, meeting_id, data) "
                     "VALUES(?1,?2,?3)",
                     &s->put_participant_);
      !st.ok()) {
    return st;
  }
  return s;
}

Store::~Store() {
  if (in_txn_) Rollback();
  sqlite3_finalize(put_site_);
  sqlite3_finalize(put_meeting_);
  sqlite3_finalize(put_participant_);
  sqlite3_close(db_);
}

absl::Status Store::Error(const char* what) const {
  return absl::InternalError(absl::StrCat("store: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("store: ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3_stmt*> Store::Prepare(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) return Error("prepare");
  return stmt;
}

absl::Status Store::Begin() {
  if (in_txn_) return absl::InternalError("store: nested transaction");
  if (auto st = Exec("BEGIN IMMEDIATE"); !st.ok()) return st;
  in_txn_ = true;
  return absl::OkStatus();
}

absl::Status Store::Commit() {
  if (!in_txn_) return absl::InternalError("store: commit without transaction");
  auto st = Exec("COMMIT");
  if (!st.ok()) {
    Rollback();
    return st;
  }
  in_txn_ = false;
  return absl::OkStatus();
}

absl::Status Store::Transaction(const std::function<absl::Status()>& body) {
  if (auto st = Begin(); !st.ok()) return st;
  if (auto st = body(); !st.ok()) {
    Rollback();
    return st;
  }
  return Commit();
}

void Store::Rollback() {
  if (!in_txn_) return;
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  in_txn_ = false;
}

absl::Status Store::PutBlob(sqlite3_stmt* stmt, uint64_t id, uint64_t parent,
                            const std::string& blob) {
  sqlite3_reset(stmt);
  sqlite3_bind_int64(stmt, 1, ToDb(id));
  sqlite3_bind_int64(stmt, 2, ToDb(parent));
  sqlite3_bind_blob(stmt, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return Error("write");
  return absl::OkStatus();
}

absl::Status Store::PutSite(const v1::Site& site) {
  return PutBlob(put_site_, site.site_id(), 0, site.SerializeAsString());
}

absl::Status Store::DeleteById(std::initializer_list<const char*> sqls, uint64_t id,
                               const char* what) {
  for (const char* sql : sqls) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.status();
    sqlite3_bind_int64(*s, 1, ToDb(id));
    int rc = sqlite3_step(*s);
    sqlite3_finalize(*s);
    if (rc != SQLITE_DONE) return Error(what);
  }
  return absl::OkStatus();
}

absl::Status Store::DeleteSite(uint64_t site_id) {
  return DeleteById({"DELETE FROM participants WHERE meeting_id IN "
                     "(SELECT meeting_id FROM meetings WHERE site_id = ?1)",
                     "DELETE FROM meetings WHERE site_id = ?1",
                     "DELETE FROM sites WHERE site_id = ?1"},
                    site_id, "delete site");
}

absl::Status Store::DeleteMeeting(uint64_t meeting_id) {
  return DeleteById({"DELETE FROM participants WHERE meeting_id = ?1",
                     "DELETE FROM meetings WHERE meeting_id = ?1"},
                    meeting_id, "delete meeting");
}

absl::Status Store::DeleteParticipant(uint64_t participant_id) {
  return DeleteById({"DELETE FROM participants WHERE participant_id = ?1"}, participant_id,
                    "delete participant");
}

namespace {
template <typename Msg>
absl::StatusOr<std::vector<Msg>> LoadAll(sqlite3* db, sqlite3_stmt* stmt) {
  std::vector<Msg> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Msg m;
    const void* data = sqlite3_column_blob(stmt, 0);
    int n = sqlite3_column_bytes(stmt, 0);
    if (!m.ParseFromArray(data, n)) {
      sqlite3_finalize(stmt);
      return absl::DataLossError("store: a row does not parse");
    }
    out.push_back(std::move(m));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) {
    return absl::InternalError(absl::StrCat("store: read: ", sqlite3_errmsg(db)));
  }
  return out;
}
}  // namespace

absl::StatusOr<std::vector<v1::Site>> Store::LoadSites() {
  auto s = Prepare("SELECT data FROM sites ORDER BY site_id");
  if (!s.ok()) return s.status();
  return LoadAll<v1::Site>(db_, *s);
}

absl::Status Store::PutMeeting(const v1::Meeting& meeting) {
  return PutBlob(put_meeting_, meeting.meeting_id(), meeting.site_id(),
                 meeting.SerializeAsString());
}

absl::StatusOr<std::vector<v1::Meeting>> Store::LoadMeetings() {
  auto s = Prepare("SELECT data FROM meetings ORDER BY meeting_id");
  if (!s.ok()) return s.status();
  return LoadAll<v1::Meeting>(db_, *s);
}

absl::Status Store::PutParticipant(const v1::Participant& participant) {
  if (participant.legs_size() == 0) {
    return PutBlob(put_participant_, participant.participant_id(), participant.meeting_id(),
                   participant.SerializeAsString());
  }
  v1::Participant copy = participant;
  copy.clear_legs();
  return PutBlob(put_participant_, copy.participant_id(), copy.meeting_id(),
                 copy.SerializeAsString());
}

absl::StatusOr<std::vector<v1::Participant>> Store::LoadParticipants(uint64_t meeting_id) {
  auto s = Prepare("SELECT data FROM participants WHERE meeting_id = ?1 ORDER BY participant_id");
  if (!s.ok()) return s.status();
  sqlite3_bind_int64(*s, 1, ToDb(meeting_id));
  return LoadAll<v1::Participant>(db_, *s);
}

absl::StatusOr<v1::Participant> Store::GetParticipant(uint64_t participant_id) {
  auto s = Prepare("SELECT data FROM participants WHERE participant_id = ?1");
  if (!s.ok()) return s.status();
  sqlite3_bind_int64(*s, 1, ToDb(participant_id));
  auto all = LoadAll<v1::Participant>(db_, *s);
  if (!all.ok()) return all.status();
  if (all->empty()) {
    return absl::NotFoundError(absl::StrCat("unknown participant ", participant_id));
  }
  return std::move(all->front());
}

absl::StatusOr<uint64_t> Store::MaxParticipantId() {
  auto s = Prepare("SELECT COALESCE(MAX(participant_id), 0) FROM participants");
  if (!s.ok()) return s.status();
  uint64_t v = 0;
  if (sqlite3_step(*s) == SQLITE_ROW) v = FromDb(sqlite3_column_int64(*s, 0));
  sqlite3_finalize(*s);
  return v;
}

absl::StatusOr<uint64_t> Store::GetMeta(const std::string& key, uint64_t fallback) {
  auto s = Prepare("SELECT value FROM meta WHERE key = ?1");
  if (!s.ok()) return s.status();
  sqlite3_bind_text(*s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  uint64_t v = fallback;
  if (sqlite3_step(*s) == SQLITE_ROW) v = FromDb(sqlite3_column_int64(*s, 0));
  sqlite3_finalize(*s);
  return v;
}

absl::Status Store::SetMeta(const std::string& key, uint64_t value) {
  auto s = Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  if (!s.ok()) return s.status();
  sqlite3_bind_text(*s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(*s, 2, ToDb(value));
  int rc = sqlite3_step(*s);
  sqlite3_finalize(*s);
  if (rc != SQLITE_DONE) return Error("write meta");
  return absl::OkStatus();
}

}  // namespace tandem::control
