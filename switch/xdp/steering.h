// Shared-NIC mode (docs/shared-nic.md): tandem-switch's side of the XDP
// program switch/xdp/tandem_steer.bpf.c.
//
// net_af_xdp loads and attaches the program (devargs `xdp_prog=`) and puts its
// AF_XDP sockets into the program's `xsks_map`; this module prepares the
// devargs, finds the attached program's other maps by name and keeps them in
// step with the tables (VIPs, role), and checks on exit that the interface is
// left without a program.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/net/addr.h"
#include "common/tables/tables.h"
#include "switch/config.h"
#include "switch/xdp/steer_maps.h"

namespace tandem::sw::xdp {

// How the program and the sockets got attached.
struct AttachInfo {
  uint32_t prog_id = 0;
  std::string attach_mode;  // "native" (driver) or "generic" (skb)
  std::string socket_mode;  // "zero-copy", "copy", or "unknown"
  uint32_t sockets = 0;     // AF_XDP sockets of this process on the interface
};

// Per-verdict packet counts, summed over CPUs (index: enum tandem_verdict).
struct Counters {
  uint64_t v[TANDEM_VERDICT_COUNT] = {};
};
const char* VerdictName(uint32_t verdict);

// The interface named by `iface=` in net_af_xdp devargs ("" when absent).
std::string IfaceOf(const std::string& devargs);

// The program object: cfg.xdp_prog when set, else tandem_steer.bpf.o beside
// the running binary (installed) or in xdp/ below it (build tree).
std::string ProgramPath(const SwitchConfig& cfg);

// One steered interface.
class PortSteering {
 public:
  PortSteering(std::string port_name, std::string iface)
      : port_name_(std::move(port_name)), iface_(std::move(iface)) {}
  PortSteering(PortSteering&& o) noexcept;
  PortSteering& operator=(PortSteering&&) = delete;
  PortSteering(const PortSteering&) = delete;
  ~PortSteering();

  // Finds the program attached to the interface and its maps.
  absl::Status Attach(const SwitchConfig& cfg);
  // Writes VIPs and role into the maps if they differ from what they hold.
  absl::Status Sync(const std::vector<IpAddr>& vips, bool active);
  absl::StatusOr<Counters> ReadCounters() const;

  const std::string& port_name() const { return port_name_; }
  const std::string& iface() const { return iface_; }
  const AttachInfo& info() const { return info_; }

 private:
  void CloseFds();

  std::string port_name_, iface_;
  int ifindex_ = 0;
  int vips_fd_ = -1, cfg_fd_ = -1, counts_fd_ = -1;
  tandem_steer_cfg cfg_{};
  bool synced_ = false;
  bool active_ = false;
  std::vector<IpAddr> vips_;  // what the map holds
  AttachInfo info_;
};

// Every steered port of the switch; main.cc drives it.
class SharedNic {
 public:
  // Before rte_eal_init: adds `xdp_prog=` to the devargs of every port with
  // xdp_steering and detaches a tandem_steer program that a killed switch
  // left on its interface (another program there is an error).
  absl::Status Prepare(SwitchConfig& cfg);
  // After the ports started: finds the maps and logs how each port attached.
  absl::Status Attach(const SwitchConfig& cfg);
  // From the main loop: every few ms, pushes VIP and role changes.
  void Tick(const tables::TablesView& tables, uint64_t now_ns);
  // After the ports closed: logs the counters' last values beforehand
  // (call LogCounters before closing) and checks that no program remains.
  void LogCounters() const;
  void CheckDetached();
  // Registers /tandem/xdp with DPDK telemetry.
  void RegisterTelemetry();

  bool empty() const { return ports_.empty(); }
  const std::vector<PortSteering>& ports() const { return ports_; }

 private:
  std::vector<PortSteering> ports_;
  uint64_t next_sync_ns_ = 0;
};

inline constexpr uint64_t kSyncIntervalNs = 5'000'000;  // 5 ms

}  // namespace tandem::sw::xdp
