// The session tables library: mapping of the two shared-memory regions, the
// single writer (tandem-control, tandem-tables) and the lock-free readers
// (tandem-switch workers). The layout and its concurrency contract are in
// layout.h; docs/tables.md describes them for operators.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tables/layout.h"

namespace tandem::tables {

struct Capacity {
  uint32_t legs = 1u << 20;
  uint32_t meetings = 1u << 18;
};

// A mapped region file. Move-only; unmaps on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, size_t size, int fd) : base_(base), size_(size), fd_(fd) {}
  Mapping(Mapping&& o) noexcept { *this = std::move(o); }
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();
  void* base() const { return base_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  void* base_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

// Paths of a node's regions: <dir>/tandem.<node>.tables and .state
std::string TablesPath(const std::string& dir, const std::string& node);
std::string StatePath(const std::string& dir, const std::string& node);

// Views of a mapped tables region, shared by the writer and the readers.
class TablesView {
 public:
  TablesView() = default;
  explicit TablesView(void* base);

  TablesHeader& header() const { return *hdr_; }
  LegEntry& leg(uint32_t i) const { return legs_[i]; }
  MeetingEntry& meeting(uint32_t i) const { return meetings_[i]; }
  std::atomic<uint32_t>& bucket(uint64_t hash) const { return buckets_[hash & bucket_mask_]; }
  ReaderSlot& reader(uint32_t i) const { return readers_[i]; }
  uint32_t leg_capacity() const { return hdr_->leg_capacity; }
  uint32_t meeting_capacity() const { return hdr_->meeting_capacity; }

  // Lock-free lookup; returns the leg slot or kNil. Safe for readers between
  // quiescent points.
  uint32_t Find(const LegKey& key, uint64_t hash) const {
    return FindFrom(key, bucket(hash).load(std::memory_order_acquire));
  }
  uint32_t Find(const LegKey& key) const { return Find(key, HashLegKey(key)); }
  // Find from a chain head the caller has already loaded (acquire) from the
  // key's bucket. Inline: the switch calls it for every packet, and an empty
  // bucket (the common case of a flood from unknown sources) is one compare.
  uint32_t FindFrom(const LegKey& key, uint32_t head) const {
    // Bounded: a region corrupted after it was attached must not send a
    // reader out of the mapping or around a loop forever.
    uint32_t capacity = hdr_->leg_capacity;
    for (uint32_t i = head, hops = 0; i != kNil; ++hops) {
      if (i >= capacity || hops > capacity) return kNil;
      const LegEntry& e = legs_[i];
      if (e.key == key) {
        return e.state.load(std::memory_order_acquire) == uint8_t(EntryState::kLive) ? i : kNil;
      }
      i = e.hash_next.load(std::memory_order_acquire);
    }
    return kNil;
  }

  Role role() const { return static_cast<Role>(hdr_->role.load(std::memory_order_acquire)); }
  uint64_t epoch() const { return hdr_->epoch.load(std::memory_order_acquire); }
  // A consistent copy of the VIP list (sequence lock).
  std::vector<IpAddr> Vips() const;

 private:
  TablesHeader* hdr_ = nullptr;
  std::atomic<uint32_t>* buckets_ = nullptr;
  LegEntry* legs_ = nullptr;
  MeetingEntry* meetings_ = nullptr;
  ReaderSlot* readers_ = nullptr;
  uint64_t bucket_mask_ = 0;
};

// Maps an existing tables region read-write (readers update their QSBR slot).
// Refuses a region with a wrong magic, version, layout or a truncated file.
absl::StatusOr<std::pair<Mapping, TablesView>> AttachTables(const std::string& path);

// Maps the region, creating it with `cap` when it does not exist. Creation is
// atomic (written to a temporary file, then renamed), so no process ever maps
// a half-initialised region. An existing region keeps its own capacity.
absl::StatusOr<std::pair<Mapping, TablesView>> OpenOrCreateTables(const std::string& path,
                                                                  const Capacity& cap);

// The reader side of QSBR, one per worker thread. Not thread-safe: each
// worker owns one. Register() claims a slot for this process.
class ReaderHandle {
 public:
  ReaderHandle() = default;
  // Claims slot `index` (the worker number); any previous owner is replaced.
  static absl::StatusOr<ReaderHandle> Register(const TablesView& view, uint32_t index);
  // Called between bursts: the worker holds no entry pointer across it.
  void Quiescent() {
    uint64_t t = hdr_->qsbr_token.load(std::memory_order_acquire);
    slot_->seen.store(t, std::memory_order_release);
  }
  // Before sleeping: the writer need not wait for this reader.
  void Offline() { slot_->seen.store(0, std::memory_order_release); }
  // After waking, before touching any entry.
  void Online() {
    uint64_t t = hdr_->qsbr_token.load(std::memory_order_acquire);
    slot_->seen.store(t, std::memory_order_seq_cst);
    // Orders the store above before this reader's next loads of entries; pairs
    // with the writer's fence before it reads reader slots (GracePassed).
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  void Unregister();

 private:
  TablesHeader* hdr_ = nullptr;
  ReaderSlot* slot_ = nullptr;
};

struct LegSpec {
  uint64_t leg_id = 0;
  uint64_t participant_id = 0;
  uint64_t meeting_id = 0;
  Channel channel = Channel::kAudio;
  LegKey key;
  uint32_t flags = kLegSend | kLegRecv;
  uint32_t pps_limit = 0;
  uint32_t kbps_limit = 0;
};

struct LegInfo {
  LegSpec spec;
  uint32_t slot = kNil;
  uint32_t gen = 0;
  uint64_t created_unix_ns = 0;
};

// The single writer. Holds an exclusive lock on the region file for its
// lifetime, so a second writer fails with FailedPrecondition. On open it
// adopts whatever the region holds (legs, meetings, retired entries), so a
// restarted writer continues where the previous one stopped.
// Not thread-safe: callers serialise (the control plane has one writer thread).
class TablesWriter {
 public:
  static absl::StatusOr<std::unique_ptr<TablesWriter>> Open(const std::string& path,
                                                            const Capacity& cap);
  ~TablesWriter();

  // Errors: AlreadyExists (meeting id), ResourceExhausted (table full).
  // copies_limit: the meeting's output cap, copies per second (0 = none).
  absl::Status AddMeeting(uint64_t meeting_id, uint64_t site_id, uint32_t flags = 0,
                          uint32_t copies_limit = 0);
  // Removes the meeting and every leg in it. NotFound if unknown.
  absl::Status RemoveMeeting(uint64_t meeting_id);
  absl::Status SetMeetingFlags(uint64_t meeting_id, uint32_t flags);
  absl::Status SetMeetingCopiesLimit(uint64_t meeting_id, uint32_t copies_limit);
  bool HasMeeting(uint64_t meeting_id) const { return meetings_.contains(meeting_id); }

  // Errors: NotFound (meeting), AlreadyExists (leg id or key), InvalidArgument
  // (families of remote and local differ, port 0), ResourceExhausted (full).
  absl::Status AddLeg(const LegSpec& spec);
  // Adds all or none: on the first error nothing of the batch stays.
  absl::Status AddLegs(const std::vector<LegSpec>& specs);
  absl::Status RemoveLeg(uint64_t leg_id);
  absl::Status SetLegFlags(uint64_t leg_id, uint32_t flags);
  absl::Status SetLegLimits(uint64_t leg_id, uint32_t pps, uint32_t kbps);
  absl::StatusOr<LegInfo> GetLeg(uint64_t leg_id) const;
  // The leg id holding a key, or NotFound.
  absl::StatusOr<uint64_t> FindLegByKey(const LegKey& key) const;
  void ForEachLeg(const std::function<void(const LegInfo&)>& fn) const;
  std::vector<uint64_t> LegsOfMeeting(uint64_t meeting_id) const;
  void ForEachMeeting(const std::function<void(uint64_t meeting_id, uint64_t site_id,
                                               uint32_t flags)>& fn) const;

  void SetRole(Role role, uint64_t epoch);
  // The end of this node's hold on the pair's key (CLOCK_MONOTONIC ns, 0 = none).
  void SetActiveUntil(uint64_t mono_ns);
  absl::Status SetVips(const std::vector<IpAddr>& vips);

  // Frees retired entries whose grace period has passed; returns how many.
  // Called by every mutating call; also call it periodically when idle.
  size_t Reclaim();
  size_t retired() const { return retired_legs_.size() + retired_meetings_.size(); }

  uint32_t leg_count() const { return static_cast<uint32_t>(legs_.size()); }
  uint32_t meeting_count() const { return static_cast<uint32_t>(meetings_.size()); }
  const TablesView& view() const { return view_; }

 private:
  TablesWriter(Mapping m, TablesView v) : map_(std::move(m)), view_(v) {}
  void Adopt();
  uint64_t Retire();  // returns the QSBR token to wait for (advanced by Reclaim)
  bool GracePassed(uint64_t token) const;
  // Waits (bounded) for retired entries so that a full table can take more.
  void ReclaimBlocking();
  uint32_t AllocLeg();
  void LinkLeg(uint32_t slot);
  void UnlinkFromHash(uint32_t slot);
  void UnlinkLeg(uint32_t slot);
  void RemoveLegSlot(uint32_t slot);
  void Commit() { view_.header().change_count.fetch_add(1, std::memory_order_release); }

  Mapping map_;
  TablesView view_;
  absl::flat_hash_map<uint64_t, uint32_t> legs_;      // leg id -> slot
  absl::flat_hash_map<uint64_t, uint32_t> meetings_;  // meeting id -> slot
  std::vector<uint32_t> free_legs_, free_meetings_;
  std::vector<uint32_t> retired_legs_, retired_meetings_;
  bool token_pending_ = false;  // entries retired since the QSBR token last advanced
  size_t reclaim_at_ = 256;     // RemoveLeg sweeps when this many legs are retired
};

// ---- State region (written by the switch) ----

class StateView {
 public:
  StateView() = default;
  explicit StateView(void* base);
  StateHeader& header() const { return *hdr_; }
  WorkerCounters& worker_counters(uint32_t w) const { return wc_[w]; }
  WorkerHealth& health(uint32_t w) const { return health_[w]; }
  PortState& port(uint32_t p) const { return ports_[p]; }
  NeighEntry& neigh(uint32_t i) const { return neigh_[i]; }
  LegCounters& leg_counters(uint32_t worker, uint32_t slot) const {
    return lc_[static_cast<size_t>(worker) * hdr_->leg_capacity + slot];
  }
  uint32_t max_workers() const { return hdr_->max_workers; }

 private:
  StateHeader* hdr_ = nullptr;
  WorkerCounters* wc_ = nullptr;
  WorkerHealth* health_ = nullptr;
  PortState* ports_ = nullptr;
  NeighEntry* neigh_ = nullptr;
  LegCounters* lc_ = nullptr;
};

// For the switch: maps the state region, creating it if missing, or anew if
// its layout does not fit (leg capacity of the tables, number of workers);
// usage counters survive a switch restart with the same shape.
absl::StatusOr<std::pair<Mapping, StateView>> OpenOrCreateState(const std::string& path,
                                                                uint32_t leg_capacity,
                                                                uint32_t workers);
// For readers of the state (control, tools): maps an existing region.
absl::StatusOr<std::pair<Mapping, StateView>> AttachState(const std::string& path);

// A reader's mapping of the state region that follows the switch: a switch
// that made its region anew (another layout) replaced the file, so a new
// inode is mapped again; a missing file is no region.
class StateFollower {
 public:
  bool Attach(const std::string& path);  // true while a region is mapped
  bool attached() const { return attached_; }
  const StateView& view() const { return view_; }
  const Mapping& mapping() const { return map_; }  // for StateLocked

 private:
  Mapping map_;
  StateView view_;
  bool attached_ = false;
  uint64_t ino_ = 0;
};

// The switch holds a write lock on its state region for as long as it runs:
// an open-file-description lock, which the kernel drops the moment the process
// exits (killed or not, reaped or not), so tandem-control learns at once that
// its switch is gone. FailedPrecondition if another switch holds it.
absl::Status LockState(const Mapping& state, const std::string& path);
// True while some process holds that lock (tests the lock, never takes it).
bool StateLocked(const Mapping& state);

// Usage of one leg, summed over workers (only blocks of the leg's generation).
struct LegUsage {
  uint64_t packets_in = 0, bytes_in = 0, packets_out = 0, bytes_out = 0;
  uint64_t drop_not_allowed = 0, drop_policed = 0, drop_other = 0;
  uint64_t first_unix_ns = 0, last_unix_ns = 0;
};
LegUsage SumLegUsage(const StateView& state, uint32_t slot, uint32_t gen);

// A consistent copy of what the switch heard from the peer on a path
// (0 = access, 1 = backbone), read under the entry's sequence lock.
struct PeerSnapshot {
  uint32_t node_id = 0;
  uint64_t last_heard_ns = 0;  // CLOCK_MONOTONIC; 0 = never
  uint64_t epoch = 0, position = 0;
  uint32_t flags = 0;  // kHb*
  uint64_t frames_ok = 0, frames_refused = 0, frames_other = 0;
  int64_t clock_skew_ns = 0;
  uint8_t mac[6] = {};
};
// The one reader of a PeerPath (sequence lock): true when `out` is one
// consistent copy; false when the switch kept writing for `attempts` tries
// (or died mid-write, leaving the sequence odd), `out` then holding the
// last, possibly torn, copy.
bool ReadPeerPath(const PeerPath& p, PeerSnapshot* out, int attempts);
// For tools: a copy after at most 10,000 tries, never a hang.
PeerSnapshot ReadPeer(const StateView& state, uint32_t path);

// A consistent copy of the switch's neighbour statistics (NeighStats).
struct NeighStatsSnapshot {
  uint32_t entries = 0;
  uint64_t conflicts = 0, moves = 0, evictions = 0, refused = 0;
  uint64_t last_conflict_ns = 0;  // CLOCK_MONOTONIC; 0 = none since the switch started
  IpAddr last_conflict_ip;
  uint8_t last_conflict_mac[6] = {};
  uint8_t last_conflict_owner[6] = {};
};
NeighStatsSnapshot ReadNeighStats(const StateView& state);

// Totals over workers.
WorkerCounters SumWorkerCounters(const StateView& state);

}  // namespace tandem::tables
