// The maps of switch/xdp/tandem_steer.bpf.c as both sides see them: the BPF
// program and tandem-switch (switch/xdp/steering.cc). Plain C, fixed-width
// types only, so that clang -target bpf and the C++ compiler agree.
#ifndef TANDEM_SWITCH_XDP_STEER_MAPS_H_
#define TANDEM_SWITCH_XDP_STEER_MAPS_H_

#include <linux/types.h>

#define TANDEM_XDP_MAX_QUEUES 64
// Like tables::kMaxVips; a larger map costs nothing.
#define TANDEM_XDP_MAX_VIPS 256

// Names the switch looks the maps up by (at most 15 characters: the kernel
// keeps BPF_OBJ_NAME_LEN - 1).
#define TANDEM_XDP_PROG_NAME "tandem_steer"
#define TANDEM_XDP_VIPS_MAP "tandem_vips"
#define TANDEM_XDP_CFG_MAP "tandem_cfg"
#define TANDEM_XDP_COUNTS_MAP "tandem_counts"
#define TANDEM_XDP_XSKS_MAP "xsks_map"

// tandem_vips key: a VIP as the tables store it (IPv4 as ::ffff:a.b.c.d).
struct tandem_vip_key {
  __u8 addr[16];
};

// tandem_cfg[0].
struct tandem_steer_cfg {
  __u16 port_low;   // media ports, inclusive, host byte order
  __u16 port_high;
  __u16 vlan;       // 802.1Q id of the access network, 0 = untagged
  __u8 active;      // the node is active: steer the VIPs' traffic
  __u8 pad;
};

// tandem_counts indexes: one counter per verdict (per CPU, summed on read).
enum tandem_verdict {
  TANDEM_PASS_OTHER = 0,     // not Tandem's: to the kernel
  TANDEM_PASS_STANDBY = 1,   // a VIP's traffic while standby: to the kernel
  TANDEM_STEER_MEDIA = 2,
  TANDEM_STEER_ARP = 3,
  TANDEM_STEER_ND = 4,
  TANDEM_STEER_ICMP = 5,
  TANDEM_STEER_HEARTBEAT = 6,
  TANDEM_VERDICT_COUNT = 7,
};

#endif  // TANDEM_SWITCH_XDP_STEER_MAPS_H_
