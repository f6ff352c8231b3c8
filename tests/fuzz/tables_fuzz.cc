// Fuzz target: the shared-memory region loaders (common/tables/tables.h
// AttachTables, AttachState) on a file holding fuzzed bytes.
//
// Input byte 0: bit 0 picks the region (0 tables, 1 state); bit 1 picks how
// the file is made:
//  - raw (bit 1 clear): the rest of the input is the whole file;
//  - patched (bit 1 set): a real region made by the library (a small tables
//    region with VIPs, a meeting and legs; a state region) is corrupted by the
//    input: byte 1 bit 7 truncates the file to (bytes 1-2 & 0x7fff)/32768 of
//    its size, then every 4 bytes are a patch (24-bit offset, value).
// Attach must refuse what is not a whole, consistent region with a clear
// status (a code and a message naming the file) and never crash. When it
// accepts, the harness reads the region as the switch and the tools do, but
// with every index checked and every walk bounded; the library's own readers
// (Find, Vips, ReadPeer, SumLegUsage) are called only where those checks say
// a reader would not be led outside the region or into a loop. What Attach
// accepts but a reader cannot safely follow is reported by the regression
// tests in region_regression_test.cc, not here, so that fuzzing goes on.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/tables/tables.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace tandem::tables;  // NOLINT: a harness over the whole library

std::string ReadWhole(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  FUZZ_CHECK(f != nullptr, "cannot read %s", path.c_str());
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// Real regions, made once by the library itself.
struct Templates {
  std::string tables, state;
};

const Templates& GetTemplates() {
  static const Templates* t = [] {
    char dir[] = "/tmp/tandem-fuzz-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != nullptr, "mkdtemp");
    std::string tp = TablesPath(dir, "f"), sp = StatePath(dir, "f");
    auto* out = new Templates;
    {
      auto w = TablesWriter::Open(tp, Capacity{8, 4});
      FUZZ_CHECK(w.ok(), "writer: %s", w.status().ToString().c_str());
      (*w)->SetRole(Role::kActive, 3);
      auto v4 = *tandem::IpAddr::Parse("198.18.0.100");
      auto v6 = *tandem::IpAddr::Parse("2001:db8:1::100");
      FUZZ_CHECK((*w)->SetVips({v4, v6}).ok(), "vips");
      FUZZ_CHECK((*w)->AddMeeting(1, 1).ok(), "meeting");
      for (uint32_t i = 0; i < 3; ++i) {
        LegSpec s;
        s.leg_id = 101 + i;
        s.meeting_id = 1;
        s.participant_id = i + 1;
        s.channel = i == 2 ? Channel::kVideo : Channel::kAudio;
        s.key.remote = *tandem::IpAddr::Parse("198.18.0." + std::to_string(10 + i));
        s.key.local = v4;
        s.key.remote_port = 5000;
        s.key.local_port = static_cast<uint16_t>(20000 + i);
        s.pps_limit = 100;
        FUZZ_CHECK((*w)->AddLeg(s).ok(), "leg");
      }
    }
    {
      auto st = OpenOrCreateState(sp, 8, 1);
      FUZZ_CHECK(st.ok(), "state: %s", st.status().ToString().c_str());
    }
    out->tables = ReadWhole(tp);
    out->state = ReadWhole(sp);
    unlink(tp.c_str());
    unlink(sp.c_str());
    unlink((tp + ".lock").c_str());
    rmdir(dir);
    return out;
  }();
  return *t;
}

// A region file with the fuzzed bytes, in a private directory on tmpfs (the
// loaders refuse a symlink such as /proc/self/fd/N, and any directory others
// could write to).
class MemFile {
 public:
  explicit MemFile(const std::string& bytes) {
    static const std::string* dir = [] {
      char tmpl[] = "/dev/shm/tandem-fuzz-tables-XXXXXX";
      FUZZ_CHECK(mkdtemp(tmpl) != nullptr, "mkdtemp");
      std::atexit([] { rmdir(dir->c_str()); });
      return new std::string(tmpl);
    }();
    path_ = *dir + "/region";
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0, "create %s", path_.c_str());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
      FUZZ_CHECK(n > 0, "write");
      done += static_cast<size_t>(n);
    }
    close(fd);
  }
  ~MemFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void CheckRefusal(const absl::Status& st, const std::string& path) {
  FUZZ_CHECK(absl::IsFailedPrecondition(st) || absl::IsDataLoss(st) || absl::IsNotFound(st) ||
                 absl::IsInternal(st),
             "unexpected refusal code: %s", st.ToString().c_str());
  FUZZ_CHECK(st.message().find(path) != absl::string_view::npos,
             "refusal does not name the file: %s", st.ToString().c_str());
}

// True when the chain from `head` stays within the leg array and ends
// within `capacity` steps.
bool ChainSane(const TablesView& v, uint32_t head) {
  uint32_t i = head;
  for (uint32_t steps = 0; i != kNil; ++steps) {
    if (i >= v.leg_capacity() || steps > v.leg_capacity()) return false;
    i = v.leg(i).hash_next.load(std::memory_order_relaxed);
  }
  return true;
}

void ReadTables(const TablesView& v) {
  const TablesHeader& h = v.header();
  // Buckets and hash chains, then lookups of every key found in a sane chain.
  for (uint32_t b = 0; b < h.bucket_count; ++b) {
    uint32_t head = v.bucket(b).load(std::memory_order_relaxed);
    if (!ChainSane(v, head)) continue;
    for (uint32_t i = head; i != kNil; i = v.leg(i).hash_next.load(std::memory_order_relaxed)) {
      const LegKey key = v.leg(i).key;
      uint64_t hash = HashLegKey(key);
      if (!ChainSane(v, v.bucket(hash).load(std::memory_order_relaxed))) continue;
      uint32_t found = v.Find(key, hash);
      FUZZ_CHECK(found == kNil || (found < v.leg_capacity() && v.leg(found).key == key),
                 "Find returned slot %u for another key", found);
    }
  }
  // Meeting-channel lists, as the fan-out walks them: bounded, indices checked.
  for (uint32_t m = 0; m < v.meeting_capacity(); ++m) {
    const MeetingEntry& me = v.meeting(m);
    if (me.state.load(std::memory_order_relaxed) != uint8_t(EntryState::kLive)) continue;
    for (uint32_t c = 0; c < kChannels; ++c) {
      uint32_t i = me.head[c].load(std::memory_order_relaxed);
      for (uint32_t steps = 0; i != kNil && i < v.leg_capacity() && steps <= v.leg_capacity();
           ++steps) {
        const LegEntry& e = v.leg(i);
        (void)e.flags.load(std::memory_order_relaxed);
        i = e.group_next.load(std::memory_order_relaxed);
      }
    }
  }
  // The VIP list, when no writer is mid-update (an odd sequence would make
  // the reader wait for a writer that may never come).
  if ((h.vip_seq.load(std::memory_order_relaxed) & 1) == 0) {
    std::vector<tandem::IpAddr> vips = v.Vips();
    FUZZ_CHECK(vips.size() <= kMaxVips, "%zu VIPs", vips.size());
  }
  (void)v.role();
  (void)v.epoch();
}

void ReadState(const StateView& s) {
  const StateHeader& h = s.header();
  WorkerCounters t = SumWorkerCounters(s);
  (void)t;
  for (uint32_t path = 0; path < 2; ++path) {
    if ((h.peer[path].seq.load(std::memory_order_relaxed) & 1) == 0) (void)ReadPeer(s, path);
  }
  for (uint32_t slot = 0; slot < h.leg_capacity && slot < 64; ++slot) {
    (void)SumLegUsage(s, slot, s.leg_counters(0, slot).gen.load(std::memory_order_relaxed));
  }
  (void)SumLegUsage(s, h.leg_capacity, 1);  // out of range: zero, not a read past the end
  for (uint32_t w = 0; w < h.max_workers; ++w) (void)s.health(w).heartbeat_ns.load();
  for (uint32_t p = 0; p < kMaxPorts; ++p) (void)s.port(p).ipackets;
  for (uint32_t i = 0; i < kNeighCapacity; i += 997) (void)s.neigh(i).state.load();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool state = data[0] & 1;
  const bool patched = data[0] & 2;
  std::string bytes;
  if (!patched) {
    bytes.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    const Templates& t = GetTemplates();
    bytes = state ? t.state : t.tables;
    size_t i = 1;
    if (size >= 3) {
      if (data[1] & 0x80) {
        size_t frac = (static_cast<size_t>(data[1] & 0x7f) << 8) | data[2];
        bytes.resize(bytes.size() * frac / 32768);
      }
      i = 3;
    }
    for (; i + 4 <= size && !bytes.empty(); i += 4) {
      size_t off = (size_t{data[i]} | size_t{data[i + 1]} << 8 | size_t{data[i + 2]} << 16) %
                   bytes.size();
      bytes[off] = static_cast<char>(data[i + 3]);
    }
  }
  MemFile file(bytes);
  if (!state) {
    auto r = AttachTables(file.path());
    if (!r.ok()) {
      CheckRefusal(r.status(), file.path());
      return 0;
    }
    FUZZ_CHECK(r->first.size() >= r->second.header().region_size, "mapped less than the region");
    ReadTables(r->second);
  } else {
    auto r = AttachState(file.path());
    if (!r.ok()) {
      CheckRefusal(r.status(), file.path());
      return 0;
    }
    FUZZ_CHECK(r->first.size() >= r->second.header().region_size, "mapped less than the region");
    ReadState(r->second);
  }
  return 0;
}
