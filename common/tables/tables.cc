#include "common/tables/tables.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/secure_file.h"
#include "absl/container/flat_hash_set.h"

namespace tandem::tables {
namespace {

uint64_t Align(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Capacities beyond these are refused (a corrupted header must not make the
// layout arithmetic overflow).
constexpr uint32_t kMaxLegCapacity = 1u << 30;
constexpr uint32_t kMaxMeetingCapacity = 1u << 28;

uint32_t NextPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v && p < (1u << 31)) p <<= 1;
  return p;
}

struct TablesLayout {
  uint32_t bucket_count;
  uint64_t buckets_offset, legs_offset, meetings_offset, readers_offset, size;
};

TablesLayout ComputeTablesLayout(uint32_t legs, uint32_t meetings) {
  TablesLayout l;
  l.bucket_count = NextPow2(legs);
  l.buckets_offset = 4096;
  l.legs_offset = Align(l.buckets_offset + uint64_t{l.bucket_count} * 4, 4096);
  l.meetings_offset = Align(l.legs_offset + uint64_t{legs} * sizeof(LegEntry), 4096);
  l.readers_offset = Align(l.meetings_offset + uint64_t{meetings} * sizeof(MeetingEntry), 4096);
  l.size = Align(l.readers_offset + kMaxReaders * sizeof(ReaderSlot), 4096);
  return l;
}

struct StateLayout {
  uint64_t wc, health, ports, neigh, lc, size;
};

StateLayout ComputeStateLayout(uint32_t legs, uint32_t workers) {
  StateLayout l;
  l.wc = 4096;
  l.health = Align(l.wc + uint64_t{workers} * sizeof(WorkerCounters), 4096);
  l.ports = Align(l.health + uint64_t{workers} * sizeof(WorkerHealth), 4096);
  l.neigh = Align(l.ports + kMaxPorts * sizeof(PortState), 4096);
  l.lc = Align(l.neigh + uint64_t{kNeighCapacity} * sizeof(NeighEntry), 4096);
  l.size = Align(l.lc + uint64_t{workers} * legs * sizeof(LegCounters), 4096);
  return l;
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// Region files: group members may read them (a 0750 directory), no one but
// the owner writes them.
constexpr mode_t kRegionForbidden = S_IWGRP | S_IRWXO;

// Maps a whole file read-write after checking that it is at least `min` bytes
// and that no one else could have made or changed it: its directory and the
// file itself (no symlink, a trusted owner, not writable by others).
absl::StatusOr<Mapping> MapFile(const std::string& path, int flags, size_t min_size) {
  if (auto st = CheckPrivateDir(DirName(path)); !st.ok()) {
    if (absl::IsNotFound(st)) return absl::NotFoundError(absl::StrCat("no region at ", path));
    return st;
  }
  int fd = open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no region at ", path));
    if (errno == ELOOP) {
      return absl::PermissionDeniedError(
          absl::StrCat("refusing region ", path, ": it is a symbolic link"));
    }
    return Errno("open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Errno("stat", path);
  }
  if (auto bad = CheckPrivateFile(st, path, kRegionForbidden); !bad.ok()) {
    close(fd);
    return bad;
  }
  if (static_cast<size_t>(st.st_size) < min_size) {
    close(fd);
    return absl::DataLossError(absl::StrCat("region ", path, " is truncated (", st.st_size,
                                            " bytes)"));
  }
  void* base = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    close(fd);
    return Errno("mmap", path);
  }
  return Mapping(base, st.st_size, fd);
}

// Writes a new region to a temporary file and links it into place, so that no
// process can map it half-initialised. Returns AlreadyExists if another
// process created `path` first. The file is 0600, or 0640 with the
// directory's group when the directory lets its group in.
absl::Status CreateAtomically(const std::string& path, uint64_t size,
                              const std::function<void(void*)>& init) {
  const std::string dir = DirName(path);
  // Made owner-only when missing; the daemons prepare it first with its group.
  if (auto st = PreparePrivateDir(dir, std::nullopt); !st.ok()) return st;
  struct stat dst;
  if (stat(dir.c_str(), &dst) != 0) return Errno("stat", dir);
  std::string tmp = absl::StrCat(path, ".new.", getpid());
  unlink(tmp.c_str());  // left by a process of the same pid that died mid-way
  int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp);
  if ((dst.st_mode & S_IRGRP) &&
      (fchown(fd, static_cast<uid_t>(-1), dst.st_gid) != 0 || fchmod(fd, 0640) != 0)) {
    close(fd);
    unlink(tmp.c_str());
    return Errno("give to the directory's group", tmp);
  }
  // On hugetlbfs (shm_dir = a directory under /dev/hugepages) a file is a
  // whole number of huge pages: a million legs' entries and usage blocks
  // then cost a TLB entry per 2 MB instead of per 4 KB.
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC && fs.f_bsize > 0) {
    uint64_t page = uint64_t(fs.f_bsize);
    size = (size + page - 1) / page * page;
  }
  if (ftruncate(fd, size) != 0) {
    close(fd);
    unlink(tmp.c_str());
    return Errno("size", tmp);
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    close(fd);
    unlink(tmp.c_str());
    return Errno("mmap", tmp);
  }
  init(base);
  munmap(base, size);
  close(fd);
  int rc = link(tmp.c_str(), path.c_str());
  int err = errno;
  unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(path);
    errno = err;
    return Errno("link", path);
  }
  return absl::OkStatus();
}

absl::Status ValidateTables(const TablesHeader& h, size_t file_size, const std::string& path) {
  if (h.magic != kTablesMagic) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a Tandem tables region"));
  }
  if (h.version != kTablesVersion || h.header_size != sizeof(TablesHeader) ||
      h.leg_size != sizeof(LegEntry) || h.meeting_size != sizeof(MeetingEntry)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has tables layout version ", h.version, ", this build uses ", kTablesVersion));
  }
  if (h.leg_capacity == 0 || h.meeting_capacity == 0 || h.leg_capacity > kMaxLegCapacity ||
      h.meeting_capacity > kMaxMeetingCapacity || h.max_readers != kMaxReaders) {
    return absl::DataLossError(absl::StrCat(path, " has an invalid capacity"));
  }
  TablesLayout l = ComputeTablesLayout(h.leg_capacity, h.meeting_capacity);
  if (h.bucket_count != l.bucket_count || h.buckets_offset != l.buckets_offset ||
      h.legs_offset != l.legs_offset || h.meetings_offset != l.meetings_offset ||
      h.readers_offset != l.readers_offset || h.region_size != l.size) {
    return absl::DataLossError(absl::StrCat(path, " has inconsistent offsets"));
  }
  if (file_size < l.size) {
    return absl::DataLossError(
        absl::StrCat(path, " is truncated: ", file_size, " of ", l.size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* ChannelName(Channel c) {
  switch (c) {
    case Channel::kAudio: return "audio";
    case Channel::kVideo: return "video";
    case Channel::kShare: return "share";
  }
  return "?";
}

const char* DropName(Drop d) {
  static const char* const kNames[] = {
      "malformed", "not_for_us", "unsupported", "unknown_leg", "not_allowed",
      "policed",   "no_neighbour", "tx_full",   "no_buffer",   "not_active",
      "slow_path_full", "ttl_exceeded", "bad_checksum", "meeting_capped",
      "slow_path_limited", "neighbour_conflict"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == kDropCount);
  auto i = static_cast<uint32_t>(d);
  return i < kDropCount ? kNames[i] : "?";
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    this->~Mapping();
    base_ = o.base_;
    size_ = o.size_;
    fd_ = o.fd_;
    o.base_ = nullptr;
    o.fd_ = -1;
  }
  return *this;
}

Mapping::~Mapping() {
  if (base_) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

std::string TablesPath(const std::string& dir, const std::string& node) {
  return absl::StrCat(dir, "/tandem.", node, ".tables");
}
std::string StatePath(const std::string& dir, const std::string& node) {
  return absl::StrCat(dir, "/tandem.", node, ".state");
}

TablesView::TablesView(void* base) {
  auto* p = static_cast<uint8_t*>(base);
  hdr_ = reinterpret_cast<TablesHeader*>(p);
  buckets_ = reinterpret_cast<std::atomic<uint32_t>*>(p + hdr_->buckets_offset);
  legs_ = reinterpret_cast<LegEntry*>(p + hdr_->legs_offset);
  meetings_ = reinterpret_cast<MeetingEntry*>(p + hdr_->meetings_offset);
  readers_ = reinterpret_cast<ReaderSlot*>(p + hdr_->readers_offset);
  bucket_mask_ = hdr_->bucket_count - 1;
}

std::vector<IpAddr> TablesView::Vips() const {
  std::vector<IpAddr> out;
  // A writer killed inside SetVips leaves the sequence odd for good: after a
  // while, take what is there rather than spin.
  for (int attempt = 0;; ++attempt) {
    uint32_t s1 = hdr_->vip_seq.load(std::memory_order_acquire);
    if ((s1 & 1) && attempt < 10000) continue;
    uint32_t n = std::min(hdr_->vip_count, kMaxVips);
    out.assign(n, IpAddr{});
    for (uint32_t i = 0; i < n; ++i) std::memcpy(&out[i], &hdr_->vips[i].addr, sizeof(IpAddr));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (hdr_->vip_seq.load(std::memory_order_relaxed) == s1 || attempt >= 10000) return out;
  }
}

namespace {
// Every link of the region points inside it: a corrupted region is refused
// here rather than followed by a reader.
absl::Status ValidateLinks(const TablesView& v, const std::string& path) {
  const TablesHeader& h = v.header();
  auto ok = [&](uint32_t i) { return i == kNil || i < h.leg_capacity; };
  // Each leg is in at most one lookup chain and one fan-out list, so all
  // chains together, and all lists together, hold at most leg_capacity
  // entries: more steps than that means a loop.
  uint64_t steps = 0;
  for (uint64_t b = 0; b < h.bucket_count; ++b) {
    uint32_t i = v.bucket(b).load(std::memory_order_relaxed);
    if (!ok(i)) {
      return absl::DataLossError(absl::StrCat(path, ": hash bucket ", b, " points outside the legs"));
    }
    for (; i != kNil; i = v.leg(i).hash_next.load(std::memory_order_relaxed)) {
      if (!ok(v.leg(i).hash_next.load(std::memory_order_relaxed)) || ++steps > h.leg_capacity) {
        return absl::DataLossError(absl::StrCat(path, ": the lookup chains loop or leave the legs"));
      }
    }
  }
  steps = 0;
  for (uint32_t m = 0; m < h.meeting_capacity; ++m) {
    const MeetingEntry& e = v.meeting(m);
    if (e.state.load(std::memory_order_relaxed) == uint8_t(EntryState::kFree)) continue;
    for (uint32_t c = 0; c < kChannels; ++c) {
      uint32_t i = e.head[c].load(std::memory_order_relaxed);
      for (; ok(i) && i != kNil; i = v.leg(i).group_next.load(std::memory_order_relaxed)) {
        if (++steps > h.leg_capacity) {
          return absl::DataLossError(absl::StrCat(path, ": the meeting lists loop"));
        }
      }
    }
  }
  for (uint32_t m = 0; m < h.meeting_capacity; ++m) {
    const MeetingEntry& e = v.meeting(m);
    if (e.state.load(std::memory_order_relaxed) == uint8_t(EntryState::kFree)) continue;
    for (uint32_t c = 0; c < kChannels; ++c) {
      if (!ok(e.head[c].load(std::memory_order_relaxed))) {
        return absl::DataLossError(
            absl::StrCat(path, ": meeting slot ", m, " lists a leg outside the legs"));
      }
    }
  }
  for (uint32_t i = 0; i < h.leg_capacity; ++i) {
    const LegEntry& e = v.leg(i);
    if (e.state.load(std::memory_order_relaxed) == uint8_t(EntryState::kFree)) continue;
    if (!ok(e.hash_next.load(std::memory_order_relaxed)) ||
        !ok(e.group_next.load(std::memory_order_relaxed)) || e.meeting >= h.meeting_capacity ||
        e.channel >= kChannels) {
      return absl::DataLossError(absl::StrCat(path, ": leg slot ", i, " has a link outside the region"));
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::pair<Mapping, TablesView>> AttachTables(const std::string& path) {
  auto m = MapFile(path, O_RDWR, sizeof(TablesHeader));
  if (!m.ok()) return m.status();
  auto* h = static_cast<TablesHeader*>(m->base());
  if (auto st = ValidateTables(*h, m->size(), path); !st.ok()) return st;
  TablesView v(m->base());
  if (auto st = ValidateLinks(v, path); !st.ok()) return st;
  return std::make_pair(std::move(*m), v);
}

absl::StatusOr<std::pair<Mapping, TablesView>> OpenOrCreateTables(const std::string& path,
                                                                  const Capacity& cap) {
  auto existing = AttachTables(path);
  if (existing.ok() || !absl::IsNotFound(existing.status())) return existing;
  if (cap.legs == 0 || cap.meetings == 0 || cap.legs > kMaxLegCapacity ||
      cap.meetings > kMaxMeetingCapacity) {
    return absl::InvalidArgumentError("table capacity must be 1..2^30 legs and 1..2^28 meetings");
  }
  TablesLayout l = ComputeTablesLayout(cap.legs, cap.meetings);
  auto st = CreateAtomically(path, l.size, [&](void* base) {
    auto* p = static_cast<uint8_t*>(base);
    auto* h = new (p) TablesHeader{};
    h->magic = kTablesMagic;
    h->version = kTablesVersion;
    h->header_size = sizeof(TablesHeader);
    h->region_size = l.size;
    h->leg_size = sizeof(LegEntry);
    h->meeting_size = sizeof(MeetingEntry);
    h->leg_capacity = cap.legs;
    h->bucket_count = l.bucket_count;
    h->meeting_capacity = cap.meetings;
    h->max_readers = kMaxReaders;
    h->buckets_offset = l.buckets_offset;
    h->legs_offset = l.legs_offset;
    h->meetings_offset = l.meetings_offset;
    h->readers_offset = l.readers_offset;
    h->created_unix_ns = UnixNs();
    h->qsbr_token.store(1);
    h->role.store(uint32_t(Role::kStandby));
    // Buckets start empty (kNil); legs, meetings and reader slots start zeroed,
    // which is their free state.
    std::memset(p + l.buckets_offset, 0xff, uint64_t{l.bucket_count} * 4);
  });
  if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
  return AttachTables(path);
}

// ---- Readers ----

absl::StatusOr<ReaderHandle> ReaderHandle::Register(const TablesView& view, uint32_t index) {
  if (index >= kMaxReaders) {
    return absl::InvalidArgumentError(absl::StrCat("reader slot ", index, " >= ", kMaxReaders));
  }
  ReaderHandle r;
  r.hdr_ = &view.header();
  r.slot_ = &view.reader(index);
  r.slot_->worker = index;
  r.slot_->seen.store(r.hdr_->qsbr_token.load(), std::memory_order_seq_cst);
  r.slot_->pid.store(getpid(), std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see Online()
  return r;
}

void ReaderHandle::Unregister() {
  if (!slot_) return;
  slot_->seen.store(0);
  slot_->pid.store(0);
  slot_ = nullptr;
}

// ---- Writer ----

absl::StatusOr<std::unique_ptr<TablesWriter>> TablesWriter::Open(const std::string& path,
                                                                 const Capacity& cap) {
  auto m = OpenOrCreateTables(path, cap);
  if (!m.ok()) return m.status();
  if (flock(m->first.fd(), LOCK_EX | LOCK_NB) != 0) {
    int pid = m->second.header().writer_pid.load();
    return absl::FailedPreconditionError(absl::StrCat(
        "another writer (pid ", pid, ") holds the tables at ", path));
  }
  std::unique_ptr<TablesWriter> w(new TablesWriter(std::move(m->first), m->second));
  w->view_.header().writer_pid.store(getpid());
  w->Adopt();
  return w;
}

TablesWriter::~TablesWriter() {
  if (map_.base()) view_.header().writer_pid.store(0);
}

// Rebuilds the writer's private indexes from the region. An earlier writer may
// have died in the middle of a change; the lists are always consistent (each
// link is one atomic store) but an entry can be live and unreachable, which is
// then retired: its change was never acknowledged.
void TablesWriter::Adopt() {
  const TablesHeader& h = view_.header();
  absl::flat_hash_set<uint32_t> in_hash, in_group;
  for (uint64_t b = 0; b < h.bucket_count; ++b) {
    for (uint32_t i = view_.bucket(b).load(); i != kNil; i = view_.leg(i).hash_next.load()) {
      in_hash.insert(i);
    }
  }
  for (uint32_t m = 0; m < h.meeting_capacity; ++m) {
    MeetingEntry& e = view_.meeting(m);
    auto st = EntryState(e.state.load());
    if (st == EntryState::kFree) {
      free_meetings_.push_back(m);
    } else if (st == EntryState::kRetired) {
      retired_meetings_.push_back(m);
    } else {
      meetings_[e.meeting_id] = m;
      for (uint32_t c = 0; c < kChannels; ++c) {
        uint32_t prev = kNil, n = 0;
        for (uint32_t i = e.head[c].load(); i != kNil; i = view_.leg(i).group_next.load()) {
          view_.leg(i).group_prev = prev;
          in_group.insert(i);
          prev = i;
          ++n;
        }
        e.count[c] = n;
      }
    }
  }
  for (uint32_t i = 0; i < h.leg_capacity; ++i) {
    LegEntry& e = view_.leg(i);
    auto st = EntryState(e.state.load());
    if (st == EntryState::kFree) {
      free_legs_.push_back(i);
      continue;
    }
    if (st == EntryState::kRetired) {
      retired_legs_.push_back(i);
      continue;
    }
    // group_prev is the writer's private back link and only those of listed
    // legs were rebuilt above; a live leg outside every list (its writer died
    // between marking it live and linking it, or while unlinking it) keeps a
    // stale one that UnlinkLeg would follow into another leg's list.
    if (!in_group.contains(i)) e.group_prev = kNil;
    if (e.meeting >= h.meeting_capacity ||
        EntryState(view_.meeting(e.meeting).state.load()) != EntryState::kLive) {
      // Its meeting is gone, so no fan-out list holds it; a lookup chain might.
      UnlinkFromHash(i);
      e.retire_token = Retire();
      e.state.store(uint8_t(EntryState::kRetired));
      retired_legs_.push_back(i);
    } else if (!in_hash.contains(i) || legs_.contains(e.leg_id)) {
      RemoveLegSlot(i);
    } else {
      legs_[e.leg_id] = i;
    }
  }
  // Reclaim frees a prefix of each retired list, so keep them in token order.
  auto by_token = [](auto&& entry) {
    return [entry](uint32_t a, uint32_t b) { return entry(a).retire_token < entry(b).retire_token; };
  };
  std::stable_sort(retired_legs_.begin(), retired_legs_.end(),
                   by_token([this](uint32_t s) -> LegEntry& { return view_.leg(s); }));
  std::stable_sort(retired_meetings_.begin(), retired_meetings_.end(),
                   by_token([this](uint32_t s) -> MeetingEntry& { return view_.meeting(s); }));
  // Hand out low slots first: denser tables are friendlier to caches.
  std::reverse(free_legs_.begin(), free_legs_.end());
  std::reverse(free_meetings_.begin(), free_meetings_.end());
  view_.header().leg_count.store(legs_.size());
  view_.header().meeting_count.store(meetings_.size());
  // The previous writer may have retired entries without advancing the token.
  if (retired() > 0) token_pending_ = true;
  Reclaim();
}

// Entries retired since the last advance of the token share the next token:
// a reader can only report a token it has read, and the token is advanced
// (in Reclaim) after all of their unlinks, so a reader that reports it has
// passed a quiescent point after them. One atomic add per sweep instead of
// one per removal keeps the token's cache line from bouncing between the
// writer and every worker.
uint64_t TablesWriter::Retire() {
  token_pending_ = true;
  return view_.header().qsbr_token.load(std::memory_order_relaxed) + 1;
}

bool TablesWriter::GracePassed(uint64_t token) const {
  // Pairs with the reader's store of `seen` before it reads entries (Online):
  // either this sees the reader's token or the reader sees the unlinks made
  // before the token was advanced.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t r = 0; r < kMaxReaders; ++r) {
    ReaderSlot& s = view_.reader(r);
    int32_t pid = s.pid.load(std::memory_order_acquire);
    if (pid == 0) continue;
    uint64_t seen = s.seen.load(std::memory_order_acquire);
    if (seen == 0 || seen >= token) continue;
    if (kill(pid, 0) != 0 && errno == ESRCH) continue;  // a dead reader holds nothing
    return false;
  }
  return true;
}

size_t TablesWriter::Reclaim() {
  if (token_pending_) {
    view_.header().qsbr_token.fetch_add(1, std::memory_order_seq_cst);
    token_pending_ = false;
  }
  size_t freed = 0;
  // Each retired list is in the order of retirement, so tokens rise along it:
  // free the prefix whose grace period has passed, checking each distinct
  // token once, and stop at the first that has not.
  auto sweep = [&](std::vector<uint32_t>& retired, auto&& entry, std::vector<uint32_t>& free) {
    size_t done = 0;
    uint64_t passed_upto = 0;
    for (; done < retired.size(); ++done) {
      auto& e = entry(retired[done]);
      if (e.retire_token > passed_upto) {
        if (!GracePassed(e.retire_token)) break;
        passed_upto = e.retire_token;
      }
      e.state.store(uint8_t(EntryState::kFree), std::memory_order_release);
      free.push_back(retired[done]);
    }
    retired.erase(retired.begin(), retired.begin() + done);
    freed += done;
  };
  if (!retired_legs_.empty()) {
    sweep(retired_legs_, [&](uint32_t s) -> LegEntry& { return view_.leg(s); }, free_legs_);
  }
  if (!retired_meetings_.empty()) {
    sweep(retired_meetings_, [&](uint32_t s) -> MeetingEntry& { return view_.meeting(s); },
          free_meetings_);
  }
  return freed;
}

void TablesWriter::ReclaimBlocking() {
  // Workers pass a quiescent point every loop (microseconds) or go offline to
  // sleep, so a grace period is short; a stuck worker must not hang the writer.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  while (retired() > 0 && std::chrono::steady_clock::now() < deadline) {
    if (Reclaim() > 0) return;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

absl::Status TablesWriter::AddMeeting(uint64_t meeting_id, uint64_t site_id, uint32_t flags,
                                      uint32_t copies_limit) {
  if (meetings_.contains(meeting_id)) {
    return absl::AlreadyExistsError(absl::StrCat("meeting ", meeting_id, " exists"));
  }
  if (free_meetings_.empty()) ReclaimBlocking();
  if (free_meetings_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "meeting table full (capacity ", view_.meeting_capacity(), ")"));
  }
  uint32_t slot = free_meetings_.back();
  free_meetings_.pop_back();
  MeetingEntry& e = view_.meeting(slot);
  e.meeting_id = meeting_id;
  e.site_id = site_id;
  e.flags.store(flags, std::memory_order_relaxed);
  e.copies_limit.store(copies_limit, std::memory_order_relaxed);
  for (uint32_t c = 0; c < kChannels; ++c) {
    e.head[c].store(kNil, std::memory_order_relaxed);
    e.count[c] = 0;
  }
  e.gen++;
  e.state.store(uint8_t(EntryState::kLive), std::memory_order_release);
  meetings_[meeting_id] = slot;
  view_.header().meeting_count.store(meetings_.size(), std::memory_order_relaxed);
  Commit();
  return absl::OkStatus();
}

absl::Status TablesWriter::RemoveMeeting(uint64_t meeting_id) {
  auto it = meetings_.find(meeting_id);
  if (it == meetings_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", meeting_id));
  }
  uint32_t slot = it->second;
  for (uint64_t leg : LegsOfMeeting(meeting_id)) RemoveLegSlot(legs_[leg]);
  MeetingEntry& e = view_.meeting(slot);
  e.retire_token = Retire();
  e.state.store(uint8_t(EntryState::kRetired), std::memory_order_release);
  retired_meetings_.push_back(slot);
  meetings_.erase(it);
  view_.header().meeting_count.store(meetings_.size(), std::memory_order_relaxed);
  view_.header().leg_count.store(legs_.size(), std::memory_order_relaxed);
  Commit();
  Reclaim();
  return absl::OkStatus();
}

absl::Status TablesWriter::SetMeetingFlags(uint64_t meeting_id, uint32_t flags) {
  auto it = meetings_.find(meeting_id);
  if (it == meetings_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", meeting_id));
  }
  view_.meeting(it->second).flags.store(flags, std::memory_order_release);
  Commit();
  return absl::OkStatus();
}

absl::Status TablesWriter::SetMeetingCopiesLimit(uint64_t meeting_id, uint32_t copies_limit) {
  auto it = meetings_.find(meeting_id);
  if (it == meetings_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown meeting ", meeting_id));
  }
  view_.meeting(it->second).copies_limit.store(copies_limit, std::memory_order_release);
  Commit();
  return absl::OkStatus();
}

namespace {
absl::Status CheckSpec(const LegSpec& s) {
  if (s.key.remote.is_v4() != s.key.local.is_v4()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "leg ", s.leg_id, ": remote ", s.key.remote.ToString(), " and local ",
        s.key.local.ToString(), " are of different address families"));
  }
  if (s.key.remote.is_unspecified() || s.key.local.is_unspecified() || s.key.remote_port == 0 ||
      s.key.local_port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("leg ", s.leg_id, ": addresses and ports must be set"));
  }
  if (static_cast<uint32_t>(s.channel) >= kChannels) {
    return absl::InvalidArgumentError(absl::StrCat("leg ", s.leg_id, ": invalid channel"));
  }
  return absl::OkStatus();
}
}  // namespace

uint32_t TablesWriter::AllocLeg() {
  if (free_legs_.empty()) ReclaimBlocking();
  if (free_legs_.empty()) return kNil;
  uint32_t slot = free_legs_.back();
  free_legs_.pop_back();
  return slot;
}

void TablesWriter::LinkLeg(uint32_t slot) {
  LegEntry& e = view_.leg(slot);
  MeetingEntry& m = view_.meeting(e.meeting);
  uint32_t c = e.channel;
  // Fan-out list first, then the lookup chain: once a packet from this leg can
  // be found, its meeting list already holds it.
  uint32_t head = m.head[c].load(std::memory_order_relaxed);
  e.group_next.store(head, std::memory_order_relaxed);
  e.group_prev = kNil;
  if (head != kNil) view_.leg(head).group_prev = slot;
  m.head[c].store(slot, std::memory_order_release);
  m.count[c]++;
  auto& bucket = view_.bucket(HashLegKey(e.key));
  e.hash_next.store(bucket.load(std::memory_order_relaxed), std::memory_order_relaxed);
  bucket.store(slot, std::memory_order_release);
}

void TablesWriter::UnlinkFromHash(uint32_t slot) {
  LegEntry& e = view_.leg(slot);
  // Find the link that points at us. Chains are short.
  auto* link = &view_.bucket(HashLegKey(e.key));
  while (link->load(std::memory_order_relaxed) != slot) {
    uint32_t i = link->load(std::memory_order_relaxed);
    if (i == kNil) break;  // not in the chain (adoption of a half-made entry)
    link = &view_.leg(i).hash_next;
  }
  if (link->load(std::memory_order_relaxed) == slot) {
    link->store(e.hash_next.load(std::memory_order_relaxed), std::memory_order_release);
  }
}

void TablesWriter::UnlinkLeg(uint32_t slot) {
  LegEntry& e = view_.leg(slot);
  UnlinkFromHash(slot);
  // Fan-out list: doubly linked on the writer side. The entry keeps its own
  // next link, so a reader standing on it walks on correctly.
  MeetingEntry& m = view_.meeting(e.meeting);
  uint32_t c = e.channel;
  uint32_t next = e.group_next.load(std::memory_order_relaxed);
  bool linked = m.head[c].load(std::memory_order_relaxed) == slot || e.group_prev != kNil;
  if (!linked) return;
  if (e.group_prev == kNil) {
    m.head[c].store(next, std::memory_order_release);
  } else {
    view_.leg(e.group_prev).group_next.store(next, std::memory_order_release);
  }
  if (next != kNil) view_.leg(next).group_prev = e.group_prev;
  e.group_prev = kNil;
  m.count[c]--;
}

void TablesWriter::RemoveLegSlot(uint32_t slot) {
  LegEntry& e = view_.leg(slot);
  UnlinkLeg(slot);
  e.retire_token = Retire();
  e.state.store(uint8_t(EntryState::kRetired), std::memory_order_release);
  retired_legs_.push_back(slot);
  auto it = legs_.find(e.leg_id);
  if (it != legs_.end() && it->second == slot) legs_.erase(it);
}

absl::Status TablesWriter::AddLeg(const LegSpec& spec) { return AddLegs({spec}); }

absl::Status TablesWriter::AddLegs(const std::vector<LegSpec>& specs) {
  // Validate the whole batch before touching the region: all or nothing.
  absl::flat_hash_set<uint64_t> ids;
  absl::flat_hash_map<uint64_t, uint32_t> key_seen;
  for (const LegSpec& s : specs) {
    if (auto st = CheckSpec(s); !st.ok()) return st;
    if (!meetings_.contains(s.meeting_id)) {
      return absl::NotFoundError(absl::StrCat("leg ", s.leg_id, ": unknown meeting ",
                                              s.meeting_id));
    }
    if (legs_.contains(s.leg_id) || !ids.insert(s.leg_id).second) {
      return absl::AlreadyExistsError(absl::StrCat("leg ", s.leg_id, " exists"));
    }
    if (view_.Find(s.key) != kNil) {
      return absl::AlreadyExistsError(absl::StrCat(
          "leg ", s.leg_id, ": ", FormatEndpoint(s.key.remote, s.key.remote_port), " -> ",
          FormatEndpoint(s.key.local, s.key.local_port), " is already in use"));
    }
  }
  if (specs.size() > 1) {
    absl::flat_hash_set<std::string> keys;
    for (const LegSpec& s : specs) {
      std::string k(reinterpret_cast<const char*>(&s.key), sizeof(LegKey));
      if (!keys.insert(k).second) {
        return absl::AlreadyExistsError(
            absl::StrCat("leg ", s.leg_id, ": the same address appears twice in the batch"));
      }
    }
  }
  if (free_legs_.size() < specs.size()) ReclaimBlocking();
  if (free_legs_.size() < specs.size()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "leg table full (capacity ", view_.leg_capacity(), ", ", legs_.size(), " in use)"));
  }
  uint64_t now = UnixNs();
  for (const LegSpec& s : specs) {
    uint32_t slot = AllocLeg();
    LegEntry& e = view_.leg(slot);
    e.key = s.key;
    e.sums = SumEndpoints(s.key);
    e.meeting = meetings_[s.meeting_id];
    e.channel = static_cast<uint8_t>(s.channel);
    e.flags.store(s.flags, std::memory_order_relaxed);
    e.pps_limit.store(s.pps_limit, std::memory_order_relaxed);
    e.kbps_limit.store(s.kbps_limit, std::memory_order_relaxed);
    e.limited.store(s.pps_limit || s.kbps_limit, std::memory_order_relaxed);
    e.leg_id = s.leg_id;
    e.participant_id = s.participant_id;
    e.created_unix_ns = now;
    e.retire_token = 0;
    e.gen.fetch_add(1, std::memory_order_relaxed);
    e.state.store(uint8_t(EntryState::kLive), std::memory_order_release);
    LinkLeg(slot);
    legs_[s.leg_id] = slot;
  }
  view_.header().leg_count.store(legs_.size(), std::memory_order_relaxed);
  Commit();
  if (!retired_legs_.empty() && free_legs_.size() < 64) Reclaim();
  return absl::OkStatus();
}

absl::Status TablesWriter::RemoveLeg(uint64_t leg_id) {
  auto it = legs_.find(leg_id);
  if (it == legs_.end()) return absl::NotFoundError(absl::StrCat("unknown leg ", leg_id));
  RemoveLegSlot(it->second);
  view_.header().leg_count.store(legs_.size(), std::memory_order_relaxed);
  Commit();
  // Sweep every 256 removals, not at every removal while a reader lags: a
  // sweep costs an atomic add and, for a lagging reader, a kill(2).
  if (retired_legs_.size() >= reclaim_at_) {
    Reclaim();
    reclaim_at_ = retired_legs_.size() + 256;
  }
  return absl::OkStatus();
}

absl::Status TablesWriter::SetLegFlags(uint64_t leg_id, uint32_t flags) {
  auto it = legs_.find(leg_id);
  if (it == legs_.end()) return absl::NotFoundError(absl::StrCat("unknown leg ", leg_id));
  view_.leg(it->second).flags.store(flags, std::memory_order_release);
  Commit();
  return absl::OkStatus();
}

absl::Status TablesWriter::SetLegLimits(uint64_t leg_id, uint32_t pps, uint32_t kbps) {
  auto it = legs_.find(leg_id);
  if (it == legs_.end()) return absl::NotFoundError(absl::StrCat("unknown leg ", leg_id));
  LegEntry& e = view_.leg(it->second);
  e.pps_limit.store(pps, std::memory_order_release);
  e.kbps_limit.store(kbps, std::memory_order_release);
  e.limited.store(pps || kbps, std::memory_order_release);
  Commit();
  return absl::OkStatus();
}

absl::StatusOr<LegInfo> TablesWriter::GetLeg(uint64_t leg_id) const {
  auto it = legs_.find(leg_id);
  if (it == legs_.end()) return absl::NotFoundError(absl::StrCat("unknown leg ", leg_id));
  const LegEntry& e = view_.leg(it->second);
  LegInfo info;
  info.slot = it->second;
  info.gen = e.gen.load();
  info.created_unix_ns = e.created_unix_ns;
  info.spec.leg_id = e.leg_id;
  info.spec.participant_id = e.participant_id;
  info.spec.meeting_id = view_.meeting(e.meeting).meeting_id;
  info.spec.channel = static_cast<Channel>(e.channel);
  info.spec.key = e.key;
  info.spec.flags = e.flags.load();
  info.spec.pps_limit = e.pps_limit.load();
  info.spec.kbps_limit = e.kbps_limit.load();
  return info;
}

absl::StatusOr<uint64_t> TablesWriter::FindLegByKey(const LegKey& key) const {
  uint32_t slot = view_.Find(key);
  if (slot == kNil) return absl::NotFoundError("no leg with that address");
  return view_.leg(slot).leg_id;
}

void TablesWriter::ForEachLeg(const std::function<void(const LegInfo&)>& fn) const {
  for (const auto& [id, slot] : legs_) fn(*GetLeg(id));
}

std::vector<uint64_t> TablesWriter::LegsOfMeeting(uint64_t meeting_id) const {
  std::vector<uint64_t> out;
  auto it = meetings_.find(meeting_id);
  if (it == meetings_.end()) return out;
  const MeetingEntry& m = view_.meeting(it->second);
  for (uint32_t c = 0; c < kChannels; ++c) {
    for (uint32_t i = m.head[c].load(); i != kNil; i = view_.leg(i).group_next.load()) {
      out.push_back(view_.leg(i).leg_id);
    }
  }
  return out;
}

void TablesWriter::ForEachMeeting(
    const std::function<void(uint64_t, uint64_t, uint32_t)>& fn) const {
  for (const auto& [id, slot] : meetings_) {
    const MeetingEntry& m = view_.meeting(slot);
    fn(m.meeting_id, m.site_id, m.flags.load());
  }
}

void TablesWriter::SetActiveUntil(uint64_t mono_ns) {
  view_.header().active_until_ns.store(mono_ns, std::memory_order_release);
}

void TablesWriter::SetRole(Role role, uint64_t epoch) {
  // Epoch first: a reader that sees the new role also sees its epoch.
  view_.header().epoch.store(epoch, std::memory_order_release);
  view_.header().role.store(uint32_t(role), std::memory_order_release);
  Commit();
}

absl::Status TablesWriter::SetVips(const std::vector<IpAddr>& vips) {
  if (vips.size() > kMaxVips) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", kMaxVips, " VIPs"));
  }
  TablesHeader& h = view_.header();
  uint32_t s = h.vip_seq.load(std::memory_order_relaxed) & ~1u;  // even if a writer died mid-way
  h.vip_seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  h.vip_count = vips.size();
  for (size_t i = 0; i < vips.size(); ++i) h.vips[i].addr = vips[i];
  h.vip_seq.store(s + 2, std::memory_order_release);
  Commit();
  return absl::OkStatus();
}

// ---- State region ----

StateView::StateView(void* base) {
  auto* p = static_cast<uint8_t*>(base);
  hdr_ = reinterpret_cast<StateHeader*>(p);
  wc_ = reinterpret_cast<WorkerCounters*>(p + hdr_->worker_counters_offset);
  health_ = reinterpret_cast<WorkerHealth*>(p + hdr_->health_offset);
  ports_ = reinterpret_cast<PortState*>(p + hdr_->ports_offset);
  neigh_ = reinterpret_cast<NeighEntry*>(p + hdr_->neigh_offset);
  lc_ = reinterpret_cast<LegCounters*>(p + hdr_->leg_counters_offset);
}

namespace {
absl::Status ValidateState(const StateHeader& h, size_t file_size, const std::string& path) {
  if (h.magic != kStateMagic) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a Tandem state region"));
  }
  if (h.version != kStateVersion || h.header_size != sizeof(StateHeader) ||
      h.leg_counters_size != sizeof(LegCounters) || h.neigh_capacity != kNeighCapacity) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has state layout version ", h.version));
  }
  if (h.max_workers == 0 || h.max_workers > kMaxWorkers || h.leg_capacity == 0) {
    return absl::DataLossError(absl::StrCat(path, " has an invalid shape"));
  }
  StateLayout l = ComputeStateLayout(h.leg_capacity, h.max_workers);
  if (h.worker_counters_offset != l.wc || h.health_offset != l.health ||
      h.ports_offset != l.ports || h.neigh_offset != l.neigh || h.leg_counters_offset != l.lc ||
      h.region_size != l.size || file_size < l.size) {
    return absl::DataLossError(absl::StrCat(path, " is truncated or inconsistent"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::pair<Mapping, StateView>> AttachState(const std::string& path) {
  auto m = MapFile(path, O_RDWR, sizeof(StateHeader));
  if (!m.ok()) return m.status();
  if (auto st = ValidateState(*static_cast<StateHeader*>(m->base()), m->size(), path); !st.ok()) {
    return st;
  }
  StateView v(m->base());
  return std::make_pair(std::move(*m), v);
}

absl::StatusOr<std::pair<Mapping, StateView>> OpenOrCreateState(const std::string& path,
                                                                uint32_t leg_capacity,
                                                                uint32_t workers) {
  if (workers == 0 || workers > kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrCat("workers must be 1..", kMaxWorkers));
  }
  auto existing = AttachState(path);
  if (existing.ok()) {
    const StateHeader& h = existing->second.header();
    if (h.leg_capacity == leg_capacity && h.max_workers == workers) return existing;
  } else if (absl::IsPermissionDenied(existing.status())) {
    return existing.status();  // someone else's file: refused, never replaced
  }
  // Missing, of another shape or corrupt: start a fresh one in its place.
  StateLayout l = ComputeStateLayout(leg_capacity, workers);
  unlink(path.c_str());
  auto st = CreateAtomically(path, l.size, [&](void* base) {
    auto* h = new (base) StateHeader{};
    h->magic = kStateMagic;
    h->version = kStateVersion;
    h->header_size = sizeof(StateHeader);
    h->region_size = l.size;
    h->leg_capacity = leg_capacity;
    h->max_workers = workers;
    h->neigh_capacity = kNeighCapacity;
    h->leg_counters_size = sizeof(LegCounters);
    h->worker_counters_offset = l.wc;
    h->health_offset = l.health;
    h->ports_offset = l.ports;
    h->neigh_offset = l.neigh;
    h->leg_counters_offset = l.lc;
  });
  if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
  return AttachState(path);
}

LegUsage SumLegUsage(const StateView& state, uint32_t slot, uint32_t gen) {
  LegUsage u;
  if (slot >= state.header().leg_capacity) return u;
  for (uint32_t w = 0; w < state.max_workers(); ++w) {
    const LegCounters& c = state.leg_counters(w, slot);
    if (c.gen.load(std::memory_order_acquire) != gen) continue;
    u.packets_in += c.packets_in;
    u.bytes_in += c.bytes_in;
    u.packets_out += c.packets_out;
    u.bytes_out += c.bytes_out;
    u.drop_not_allowed += c.drop_not_allowed;
    u.drop_policed += c.drop_policed;
    u.drop_other += c.drop_other;
    if (c.first_unix_ns && (!u.first_unix_ns || c.first_unix_ns < u.first_unix_ns)) {
      u.first_unix_ns = c.first_unix_ns;
    }
    u.last_unix_ns = std::max(u.last_unix_ns, c.last_unix_ns);
  }
  return u;
}

bool StateFollower::Attach(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return attached_ = false;
  if (attached_ && st.st_ino == ino_) return true;
  auto m = AttachState(path);
  if (!m.ok()) return attached_ = false;
  map_ = std::move(m->first);
  view_ = m->second;
  ino_ = st.st_ino;
  return attached_ = true;
}

bool ReadPeerPath(const PeerPath& p, PeerSnapshot* out, int attempts) {
  for (int attempt = 0; attempt < attempts; ++attempt) {
    uint32_t s1 = p.seq.load(std::memory_order_acquire);
    PeerSnapshot& s = *out;
    s.node_id = p.node_id;
    s.last_heard_ns = p.last_heard_ns;
    s.epoch = p.epoch;
    s.position = p.position;
    s.flags = p.flags;
    s.frames_ok = p.frames_ok;
    s.frames_refused = p.frames_refused;
    s.frames_other = p.frames_other;
    s.clock_skew_ns = p.clock_skew_ns;
    std::memcpy(s.mac, p.mac, 6);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (!(s1 & 1) && p.seq.load(std::memory_order_relaxed) == s1) return true;
  }
  return false;
}

PeerSnapshot ReadPeer(const StateView& state, uint32_t path) {
  PeerSnapshot s;
  (void)ReadPeerPath(state.header().peer[path & 1], &s, 10000);
  return s;
}

NeighStatsSnapshot ReadNeighStats(const StateView& state) {
  const NeighStats& n = state.header().neigh_stats;
  NeighStatsSnapshot s;
  for (int attempt = 0;; ++attempt) {
    uint32_t s1 = n.seq.load(std::memory_order_acquire);
    if ((s1 & 1) && attempt < 10000) continue;  // a switch killed mid-write leaves it odd
    s.entries = n.entries;
    s.conflicts = n.conflicts;
    s.moves = n.moves;
    s.evictions = n.evictions;
    s.refused = n.refused;
    s.last_conflict_ns = n.last_conflict_ns;
    s.last_conflict_ip = n.last_conflict_ip;
    std::memcpy(s.last_conflict_mac, n.last_conflict_mac, 6);
    std::memcpy(s.last_conflict_owner, n.last_conflict_owner, 6);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (n.seq.load(std::memory_order_relaxed) == s1 || attempt >= 10000) return s;
  }
}

WorkerCounters SumWorkerCounters(const StateView& state) {
  WorkerCounters t{};
  for (uint32_t w = 0; w < state.max_workers(); ++w) {
    const WorkerCounters& c = state.worker_counters(w);
    t.rx_packets += c.rx_packets;
    t.rx_bytes += c.rx_bytes;
    t.tx_packets += c.tx_packets;
    t.tx_bytes += c.tx_bytes;
    t.forwarded_in += c.forwarded_in;
    t.slow_path += c.slow_path;
    t.csum_completed += c.csum_completed;
    for (uint32_t d = 0; d < kDropCount; ++d) t.drops[d] += c.drops[d];
    t.loops += c.loops;
    t.idle_sleeps += c.idle_sleeps;
    for (uint32_t b = 0; b < kLatencyBuckets; ++b) t.latency_hist[b] += c.latency_hist[b];
  }
  return t;
}

absl::Status LockState(const Mapping& state, const std::string& path) {
  struct flock l = {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  if (fcntl(state.fd(), F_OFD_SETLK, &l) == 0) return absl::OkStatus();
  int pid = StateView(state.base()).header().switch_pid.load();
  return absl::FailedPreconditionError(
      absl::StrCat("another tandem-switch (pid ", pid, ") runs on ", path));
}

bool StateLocked(const Mapping& state) {
  struct flock l = {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  if (fcntl(state.fd(), F_OFD_GETLK, &l) != 0) return false;
  return l.l_type != F_UNLCK;
}

}  // namespace tandem::tables
