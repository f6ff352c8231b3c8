// The durable store of a node's setup data: sites, meetings, participants and
// the usage records of ended meetings, in SQLite (WAL, synchronous=FULL, so a
// committed transaction survives kill -9 and power loss). Rows hold the API's
// protobuf messages serialised, keyed by id, so the store and the wire agree.
// Live legs are NOT stored here: they live in the shared-memory tables.
//
// Not thread-safe: the control core calls it under its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tandem::control {

class Store {
 public:
  // Opens or creates the database at `path` (":memory:" for tests).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  // One write transaction at a time; changes between Begin and Commit are
  // applied together or not at all.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();  // no-op when no transaction is open
  // Runs `body` in one transaction: committed if it returns OK, rolled back
  // (and its error returned) otherwise.
  absl::Status Transaction(const std::function<absl::Status()>& body);
  bool in_transaction() const { return in_txn_; }

  absl::Status PutSite(const v1::Site& site);
  absl::Status DeleteSite(uint64_t site_id);  // with its meetings and participants
  absl::StatusOr<std::vector<v1::Site>> LoadSites();

  absl::Status PutMeeting(const v1::Meeting& meeting);
  absl::StatusOr<std::vector<v1::Meeting>> LoadMeetings();
  absl::Status DeleteMeeting(uint64_t meeting_id);  // with its participants

  absl::Status PutParticipant(const v1::Participant& participant);  // stored without legs
  absl::StatusOr<std::vector<v1::Participant>> LoadParticipants(uint64_t meeting_id);
  absl::StatusOr<v1::Participant> GetParticipant(uint64_t participant_id);  // NotFound
  absl::Status DeleteParticipant(uint64_t participant_id);
  absl::StatusOr<uint64_t> MaxParticipantId();

  // Small named integers (epoch, id counters).
  absl::StatusOr<uint64_t> GetMeta(const std::string& key, uint64_t fallback);
  absl::Status SetMeta(const std::string& key, uint64_t value);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql);
  absl::Status Error(const char* what) const;
  absl::Status PutBlob(sqlite3_stmt* stmt, uint64_t id, uint64_t parent, const std::string& blob);
  absl::Status DeleteById(std::initializer_list<const char*> sqls, uint64_t id, const char* what);

  sqlite3* db_;
  bool in_txn_ = false;
  sqlite3_stmt* put_site_ = nullptr;
  sqlite3_stmt* put_meeting_ = nullptr;
  sqlite3_stmt* put_participant_ = nullptr;
};

}  // namespace tandem::control
