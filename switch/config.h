// tandem-switch configuration, loaded from TOML. docs/config.md is the
// reference for operators; every field below is listed there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/log.h"
#include "common/net/addr.h"
#include "common/tables/tables.h"

namespace tandem::sw {

enum class PortRole { kAccess, kBackbone };

struct PortConfig {
  std::string name;  // "access" or "backbone"
  PortRole role = PortRole::kAccess;
  std::string devargs;  // a vdev ("net_af_packet0,iface=x") or a PCI address
  // Shared-NIC mode (net_af_xdp only): steer only Tandem's traffic to the
  // switch with switch/xdp/tandem_steer.bpf.c; see docs/shared-nic.md.
  bool xdp_steering = false;
};

struct SwitchConfig {
  std::string node = "a";
  // The region files' directory: made 0700 (0750 with shm_group) when
  // missing; refused when anyone else could write to it (common/secure_file.h).
  std::string shm_dir = "/dev/shm/tandem";
  std::string shm_group;
  tables::Capacity capacity;
  log::Level log_level = log::Level::kInfo;  // the least important level logged

  std::vector<std::string> eal_args;
  unsigned main_lcore = 0;
  std::vector<unsigned> worker_lcores = {1};
  // The CPU of the main lcore, then of each worker lcore; empty: lcore N
  // runs on CPU N. Lets more lcores than CPUs run (EAL --lcores), e.g. two
  // workers on a two-CPU test machine; never for measuring speed.
  std::vector<unsigned> cpus;

  uint16_t burst = 32;
  uint16_t rx_ring = 1024;
  uint16_t tx_ring = 1024;
  uint32_t mbufs = 16383;
  uint32_t idle_sleep_us = 200;
  uint32_t idle_polls = 100;
  uint32_t zero_copy_min = 512;
  uint16_t mtu = 1500;

  std::vector<PortConfig> ports;

  std::vector<IpPrefix> prefixes;  // on-link subnets of the access network
  IpAddr gateway4, gateway6;       // zero when unset
  uint16_t vlan = 0;
  uint32_t neigh_reachable_s = 30;
  uint32_t neigh_probe_ms = 1000;
  // ARP, ND and echo frames a worker hands to the main thread per second from
  // one source MAC (switch/handoff.h); more are dropped (slow_path_limited).
  uint32_t slow_path_pps_per_source = 200;

  bool telemetry = true;

  // Pair heartbeats (see switch/heartbeat.h); off while node_id is 0.
  uint32_t pair_node_id = 0;
  uint32_t pair_peer_node_id = 0;  // the only node whose heartbeats count
  // The heartbeats' HMAC key, derived from the pair key (pair.key_file, or
  // pair.key inline) by common/keys.h; empty while node_id is 0.
  std::string heartbeat_key;
  uint32_t heartbeat_ms = 10;
  // A worker whose heartbeat is older than this counts as dead: the switch
  // reports its data plane down and the standby takes over. Raise it where
  // the workers share their cores with other busy processes.
  uint32_t worker_stall_ms = 100;

  // Shared-NIC mode ([shared_nic], docs/shared-nic.md).
  std::string xdp_prog;  // the BPF object; empty: beside the binary
  uint16_t media_port_low = 20000;  // UDP ports steered to the VIPs, inclusive
  uint16_t media_port_high = 59999;
};

// Parses and validates; errors name the file, the key and what is wrong.
absl::StatusOr<SwitchConfig> LoadSwitchConfig(const std::string& path);
absl::StatusOr<SwitchConfig> ParseSwitchConfig(const std::string& toml_text,
                                               const std::string& source_name);

}  // namespace tandem::sw
