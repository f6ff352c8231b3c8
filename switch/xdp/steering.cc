#include "switch/xdp/steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/xdp_diag.h>
#include <net/if.h>
#include <rte_telemetry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"

namespace tandem::sw::xdp {
namespace {

SharedNic* g_shared_nic = nullptr;  // for the telemetry callback

std::string Errno(int err) { return std::strerror(err < 0 ? -err : err); }

void Log(const std::string& line) {
  std::fprintf(stderr, "tandem-switch: %s\n", line.c_str());
  std::fflush(stderr);
}

struct ProgInfo {
  std::string name;
  std::vector<uint32_t> map_ids;
};

absl::StatusOr<ProgInfo> ProgramInfo(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("XDP program ", prog_id, ": ", Errno(errno)));
  }
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  std::vector<uint32_t> ids(16);
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  close(fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("XDP program ", prog_id, " info: ", Errno(errno)));
  }
  ids.resize(std::min<uint32_t>(info.nr_map_ids, 16));
  return ProgInfo{info.name, ids};
}

// This process's sockets: inode -> fd.
std::map<uint32_t, int> OwnSockets() {
  std::map<uint32_t, int> out;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      char target[64];
      std::string path = absl::StrCat("/proc/self/fd/", e->d_name);
      ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = 0;
      unsigned long ino;
      if (std::sscanf(target, "socket:[%lu]", &ino) == 1) {
        out[static_cast<uint32_t>(ino)] = std::atoi(e->d_name);
      }
    }
    closedir(d);
  }
  return out;
}

void SetMode(AttachInfo& out, bool any_copy, bool any_zc) {
  out.socket_mode = any_zc ? (any_copy ? "mixed" : "zero-copy") : any_copy ? "copy" : "unknown";
}

// Without sock_diag for AF_XDP (CONFIG_XDP_SOCKETS_DIAG): asks each AF_XDP
// socket of this process. It cannot tell interfaces apart, so with several
// steered ports each reports the mode of all.
AttachInfo SocketModesOfProcess() {
  AttachInfo out;
  bool any_copy = false, any_zc = false;
  for (const auto& [ino, fd] : OwnSockets()) {
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_XDP) continue;
    xdp_options opts{};
    len = sizeof opts;
    if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len) != 0) continue;
    out.sockets++;
    if (opts.flags & XDP_OPTIONS_ZEROCOPY) {
      any_zc = true;
    } else {
      any_copy = true;
    }
  }
  SetMode(out, any_copy, any_zc);
  return out;
}

// The AF_XDP sockets on `ifindex` that belong to this process, and whether
// they run in zero-copy mode (sock_diag, as `ss --xdp` shows them).
AttachInfo SocketModes(int ifindex) {
  AttachInfo out;
  std::map<uint32_t, int> own_inodes = OwnSockets();
  out.socket_mode = "unknown";
  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return SocketModesOfProcess();
  struct {
    nlmsghdr nlh;
    xdp_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_XDP;
  msg.req.xdiag_show = XDP_SHOW_INFO | XDP_SHOW_UMEM;
  if (send(nl, &msg, sizeof msg, 0) < 0) {
    close(nl);
    return out;
  }
  bool any_copy = false, any_zc = false, diag_error = false;
  alignas(nlmsghdr) char buf[16384];
  for (bool done = false; !done;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n <= 0) break;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<uint32_t>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        diag_error = h->nlmsg_type == NLMSG_ERROR;
        done = true;
        break;
      }
      auto* m = static_cast<xdp_diag_msg*>(NLMSG_DATA(h));
      int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      uint32_t sock_ifindex = 0;
      int zero_copy = -1;
      for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, attr_len);
           a = RTA_NEXT(a, attr_len)) {
        if (a->rta_type == XDP_DIAG_INFO) {
          sock_ifindex = static_cast<xdp_diag_info*>(RTA_DATA(a))->ifindex;
        } else if (a->rta_type == XDP_DIAG_UMEM) {
          zero_copy = (static_cast<xdp_diag_umem*>(RTA_DATA(a))->flags & XDP_DU_F_ZEROCOPY) != 0;
        }
      }
      if (static_cast<int>(sock_ifindex) != ifindex || !own_inodes.count(m->xdiag_ino)) continue;
      out.sockets++;
      if (zero_copy == 1) any_zc = true;
      if (zero_copy == 0) any_copy = true;
    }
  }
  close(nl);
  // The kernel lacks AF_XDP sock_diag (ENOENT): ask the sockets themselves.
  if (diag_error) return SocketModesOfProcess();
  SetMode(out, any_copy, any_zc);
  return out;
}

int Telemetry(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (!g_shared_nic) return 0;
  for (const PortSteering& p : g_shared_nic->ports()) {
    rte_tel_data* pd = rte_tel_data_alloc();
    rte_tel_data_start_dict(pd);
    rte_tel_data_add_dict_string(pd, "iface", p.iface().c_str());
    rte_tel_data_add_dict_u64(pd, "prog_id", p.info().prog_id);
    rte_tel_data_add_dict_string(pd, "attach_mode", p.info().attach_mode.c_str());
    rte_tel_data_add_dict_string(pd, "socket_mode", p.info().socket_mode.c_str());
    if (auto c = p.ReadCounters(); c.ok()) {
      for (uint32_t v = 0; v < TANDEM_VERDICT_COUNT; ++v) {
        rte_tel_data_add_dict_u64(pd, VerdictName(v), c->v[v]);
      }
    }
    rte_tel_data_add_dict_container(d, p.port_name().c_str(), pd, 0);
  }
  return 0;
}

}  // namespace

const char* VerdictName(uint32_t verdict) {
  switch (verdict) {
    case TANDEM_PASS_OTHER:
      return "pass_other";
    case TANDEM_PASS_STANDBY:
      return "pass_standby";
    case TANDEM_STEER_MEDIA:
      return "steer_media";
    case TANDEM_STEER_ARP:
      return "steer_arp";
    case TANDEM_STEER_ND:
      return "steer_nd";
    case TANDEM_STEER_ICMP:
      return "steer_icmp";
    case TANDEM_STEER_HEARTBEAT:
      return "steer_heartbeat";
    default:
      return "unknown";
  }
}

std::string IfaceOf(const std::string& devargs) {
  size_t pos = 0;
  while ((pos = devargs.find(',', pos)) != std::string::npos) {
    ++pos;
    if (devargs.compare(pos, 6, "iface=") == 0) {
      size_t end = devargs.find(',', pos);
      return devargs.substr(pos + 6, end == std::string::npos ? end : end - pos - 6);
    }
  }
  return "";
}

std::string ProgramPath(const SwitchConfig& cfg) {
  if (!cfg.xdp_prog.empty()) return cfg.xdp_prog;
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "tandem_steer.bpf.o";
  std::filesystem::path dir = exe.parent_path();
  // Beside the binary (a build tree), its xdp/ folder, or the installed
  // PREFIX/lib/tandem beside PREFIX/bin (the package: /usr/lib/tandem).
  for (const auto& p : {dir / "tandem_steer.bpf.o", dir / "xdp" / "tandem_steer.bpf.o",
                        dir.parent_path() / "lib" / "tandem" / "tandem_steer.bpf.o"}) {
    if (std::filesystem::exists(p, ec)) return p.string();
  }
  return (dir / "tandem_steer.bpf.o").string();
}

PortSteering::PortSteering(PortSteering&& o) noexcept
    : port_name_(std::move(o.port_name_)),
      iface_(std::move(o.iface_)),
      ifindex_(o.ifindex_),
      vips_fd_(o.vips_fd_),
      cfg_fd_(o.cfg_fd_),
      counts_fd_(o.counts_fd_),
      cfg_(o.cfg_),
      synced_(o.synced_),
      active_(o.active_),
      vips_(std::move(o.vips_)),
      info_(std::move(o.info_)) {
  o.vips_fd_ = o.cfg_fd_ = o.counts_fd_ = -1;
}

PortSteering::~PortSteering() { CloseFds(); }

void PortSteering::CloseFds() {
  for (int* fd : {&vips_fd_, &cfg_fd_, &counts_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

absl::Status PortSteering::Attach(const SwitchConfig& cfg) {
  std::string where = absl::StrCat("port '", port_name_, "' (", iface_, "): ");
  ifindex_ = static_cast<int>(if_nametoindex(iface_.c_str()));
  if (ifindex_ == 0) return absl::NotFoundError(absl::StrCat(where, "no such interface"));
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (int rc = bpf_xdp_query(ifindex_, 0, &q); rc != 0) {
    return absl::InternalError(absl::StrCat(where, "XDP query: ", Errno(rc)));
  }
  if (q.prog_id == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, "net_af_xdp attached no XDP program (is xdp_prog= in the devargs?)"));
  }
  info_.prog_id = q.prog_id;
  info_.attach_mode = q.attach_mode == XDP_ATTACHED_DRV   ? "native"
                      : q.attach_mode == XDP_ATTACHED_SKB ? "generic"
                      : q.attach_mode == XDP_ATTACHED_HW  ? "offloaded"
                                                          : "multi";
  auto prog = ProgramInfo(q.prog_id);
  if (!prog.ok()) return absl::InternalError(absl::StrCat(where, prog.status().message()));
  if (prog->name != TANDEM_XDP_PROG_NAME) {
    return absl::FailedPreconditionError(absl::StrCat(where, "the attached XDP program is '",
                                                      prog->name, "', not ", TANDEM_XDP_PROG_NAME));
  }
  CloseFds();
  for (uint32_t id : prog->map_ids) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info mi{};
    uint32_t len = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd, &mi, &len) != 0) {
      close(fd);
      continue;
    }
    std::string name = mi.name;
    if (name == TANDEM_XDP_VIPS_MAP && vips_fd_ < 0) {
      vips_fd_ = fd;
    } else if (name == TANDEM_XDP_CFG_MAP && cfg_fd_ < 0) {
      cfg_fd_ = fd;
    } else if (name == TANDEM_XDP_COUNTS_MAP && counts_fd_ < 0) {
      counts_fd_ = fd;
    } else {
      close(fd);
    }
  }
  if (vips_fd_ < 0 || cfg_fd_ < 0 || counts_fd_ < 0) {
    CloseFds();
    return absl::NotFoundError(absl::StrCat(where, "program ", q.prog_id, " lacks the maps ",
                                            TANDEM_XDP_VIPS_MAP, ", ", TANDEM_XDP_CFG_MAP, ", ",
                                            TANDEM_XDP_COUNTS_MAP));
  }
  cfg_.port_low = cfg.media_port_low;
  cfg_.port_high = cfg.media_port_high;
  cfg_.vlan = cfg.vlan;
  cfg_.active = 0;
  synced_ = false;
  AttachInfo socks = SocketModes(ifindex_);
  info_.socket_mode = socks.socket_mode;
  info_.sockets = socks.sockets;
  return absl::OkStatus();
}

absl::Status PortSteering::Sync(const std::vector<IpAddr>& vips, bool active) {
  if (vips_fd_ < 0) return absl::FailedPreconditionError("not attached");
  if (synced_ && active == active_ && vips == vips_) return absl::OkStatus();
  // VIPs first, the active flag last: a takeover steers a complete set.
  for (const IpAddr& old : vips_) {
    if (std::find(vips.begin(), vips.end(), old) == vips.end()) {
      bpf_map_delete_elem(vips_fd_, old.b);  // ENOENT is fine
    }
  }
  uint32_t one = 1;
  for (const IpAddr& v : vips) {
    if (bpf_map_update_elem(vips_fd_, v.b, &one, BPF_ANY) != 0) {
      return absl::InternalError(
          absl::StrCat(iface_, ": VIP map update for ", v.ToString(), ": ", Errno(errno)));
    }
  }
  if (!synced_) {
    // A map written by an earlier start may hold VIPs we no longer have.
    tandem_vip_key key, next;
    std::vector<tandem_vip_key> stale;
    void* prev = nullptr;
    while (bpf_map_get_next_key(vips_fd_, prev, &next) == 0) {
      IpAddr a;
      std::memcpy(a.b, next.addr, 16);
      if (std::find(vips.begin(), vips.end(), a) == vips.end()) stale.push_back(next);
      key = next;
      prev = &key;
    }
    for (const auto& k : stale) bpf_map_delete_elem(vips_fd_, &k);
  }
  tandem_steer_cfg c = cfg_;
  c.active = active ? 1 : 0;
  uint32_t zero = 0;
  if (bpf_map_update_elem(cfg_fd_, &zero, &c, BPF_ANY) != 0) {
    return absl::InternalError(absl::StrCat(iface_, ": config map update: ", Errno(errno)));
  }
  std::string list;
  for (const IpAddr& v : vips) absl::StrAppend(&list, list.empty() ? "" : " ", v.ToString());
  Log(absl::StrCat("xdp steering on ", iface_, ": ", active ? "active" : "standby", ", VIPs [",
                   list, "], media ports ", cfg_.port_low, "-", cfg_.port_high,
                   active ? "" : " (only heartbeats steered)"));
  vips_ = vips;
  active_ = active;
  synced_ = true;
  return absl::OkStatus();
}

absl::StatusOr<Counters> PortSteering::ReadCounters() const {
  if (counts_fd_ < 0) return absl::FailedPreconditionError("not attached");
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return absl::InternalError("cannot count CPUs");
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  Counters c;
  for (uint32_t v = 0; v < TANDEM_VERDICT_COUNT; ++v) {
    if (bpf_map_lookup_elem(counts_fd_, &v, per_cpu.data()) != 0) {
      return absl::InternalError(absl::StrCat(iface_, ": counters: ", Errno(errno)));
    }
    for (uint64_t x : per_cpu) c.v[v] += x;
  }
  return c;
}

absl::Status SharedNic::Prepare(SwitchConfig& cfg) {
  for (PortConfig& p : cfg.ports) {
    if (!p.xdp_steering) continue;
    std::string iface = IfaceOf(p.devargs);
    if (iface.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("port '", p.name, "': xdp_steering needs iface= in the devargs"));
    }
    std::string prog = ProgramPath(cfg);
    if (access(prog.c_str(), R_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("port '", p.name, "': XDP program ", prog,
                                              " cannot be read (set shared_nic.xdp_prog)"));
    }
    if (prog.find(',') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("XDP program path ", prog, " must not contain ','"));
    }
    int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex == 0) {
      return absl::NotFoundError(absl::StrCat("port '", p.name, "': no interface ", iface));
    }
    // net_af_xdp attaches with XDP_FLAGS_UPDATE_IF_NOEXIST: a program left by
    // a switch that was killed (SIGKILL, crash) would make the start fail.
    bpf_xdp_query_opts q{};
    q.sz = sizeof q;
    if (bpf_xdp_query(ifindex, 0, &q) == 0 && q.prog_id != 0) {
      auto info = ProgramInfo(q.prog_id);
      if (!info.ok() || info->name != TANDEM_XDP_PROG_NAME) {
        return absl::FailedPreconditionError(
            absl::StrCat("port '", p.name, "': interface ", iface, " already has XDP program ",
                         q.prog_id, info.ok() ? absl::StrCat(" (", info->name, ")") : "",
                         "; shared-NIC mode needs the interface free of other XDP programs"));
      }
      uint32_t mode = q.attach_mode == XDP_ATTACHED_SKB  ? XDP_FLAGS_SKB_MODE
                      : q.attach_mode == XDP_ATTACHED_HW ? XDP_FLAGS_HW_MODE
                                                         : XDP_FLAGS_DRV_MODE;
      if (int rc = bpf_xdp_detach(ifindex, mode, nullptr); rc != 0) {
        return absl::InternalError(absl::StrCat("port '", p.name, "': cannot detach stale ",
                                                TANDEM_XDP_PROG_NAME, " from ", iface, ": ",
                                                Errno(rc)));
      }
      Log(absl::StrCat("port '", p.name, "': detached a stale ", TANDEM_XDP_PROG_NAME, " (id ",
                       q.prog_id, ") left on ", iface, " by an earlier switch"));
    }
    absl::StrAppend(&p.devargs, ",xdp_prog=", prog);
    ports_.emplace_back(p.name, iface);
  }
  return absl::OkStatus();
}

absl::Status SharedNic::Attach(const SwitchConfig& cfg) {
  for (PortSteering& p : ports_) {
    if (auto st = p.Attach(cfg); !st.ok()) return st;
    const AttachInfo& i = p.info();
    Log(absl::StrCat("port '", p.port_name(), "' (", p.iface(), "): XDP steering program ",
                     i.prog_id, " attached in ", i.attach_mode, " mode, ", i.sockets,
                     " AF_XDP socket(s) in ", i.socket_mode, " mode"));
  }
  return absl::OkStatus();
}

void SharedNic::Tick(const tables::TablesView& tables, uint64_t now_ns) {
  if (ports_.empty() || now_ns < next_sync_ns_) return;
  next_sync_ns_ = now_ns + kSyncIntervalNs;
  bool active = tables.role() == tables::Role::kActive;
  std::vector<IpAddr> vips = tables.Vips();
  for (PortSteering& p : ports_) {
    if (auto st = p.Sync(vips, active); !st.ok()) {
      // Retried at the next tick; a failing map write is logged each time
      // at most every 5 ms, which is loud on purpose.
      Log(absl::StrCat("xdp steering: ", st.message()));
    }
  }
}

void SharedNic::LogCounters() const {
  for (const PortSteering& p : ports_) {
    auto c = p.ReadCounters();
    if (!c.ok()) continue;
    std::string line = absl::StrCat("xdp steering on ", p.iface(), ":");
    for (uint32_t v = 0; v < TANDEM_VERDICT_COUNT; ++v) {
      absl::StrAppend(&line, " ", VerdictName(v), "=", c->v[v]);
    }
    Log(line);
  }
}

void SharedNic::CheckDetached() {
  for (const PortSteering& p : ports_) {
    int ifindex = static_cast<int>(if_nametoindex(p.iface().c_str()));
    if (ifindex == 0) continue;
    uint32_t id = 0;
    if (bpf_xdp_query_id(ifindex, 0, &id) != 0 || id == 0) {
      Log(absl::StrCat("port '", p.port_name(), "': ", p.iface(), " left with no XDP program"));
      continue;
    }
    if (id != p.info().prog_id) {
      Log(absl::StrCat("port '", p.port_name(), "': ", p.iface(), " has XDP program ", id,
                       " that is not ours; left in place"));
      continue;
    }
    int rc = bpf_xdp_detach(ifindex, 0, nullptr);
    Log(absl::StrCat("port '", p.port_name(), "': net_af_xdp left program ", id, " on ", p.iface(),
                     "; detached it", rc == 0 ? "" : absl::StrCat(" failed: ", Errno(rc))));
  }
  ports_.clear();
}

void SharedNic::RegisterTelemetry() {
  if (ports_.empty()) return;
  g_shared_nic = this;
  rte_telemetry_register_cmd("/tandem/xdp", Telemetry,
                             "Shared-NIC XDP steering: per port mode and verdict counters");
}

}  // namespace tandem::sw::xdp
