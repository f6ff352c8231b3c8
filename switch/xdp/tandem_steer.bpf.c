// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tandem_steer: the XDP program of shared-NIC mode (docs/shared-nic.md).
//
// It runs on an interface that Tandem shares with the host's own traffic and
// redirects to the switch's AF_XDP socket of the receiving queue only what is
// Tandem's:
//   - the pair's heartbeats (EtherType 0x88b5), whatever the role, so that a
//     standby switch hears its peer;
//   - while the node is active: UDP to a VIP with a destination port in the
//     media range, ARP whose target is a VIP, ICMPv6 neighbour solicitations
//     and advertisements whose target (or destination) is a VIP, and
//     ICMP/ICMPv6 echo requests to a VIP.
// Everything else goes to the kernel untouched (XDP_PASS), as if no program
// were attached. Frames of another VLAN than the configured one are the
// kernel's too.
//
// net_af_xdp (DPDK 22.11, devargs xdp_prog=) loads the first program of this
// object, attaches it and inserts each queue's socket into `xsks_map` under
// the queue index. tandem-switch (switch/xdp/steering.cc) finds the maps by
// name through the attached program and keeps `tandem_vips` and `tandem_cfg`
// in step with its tables.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "switch/xdp/steer_maps.h"

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, TANDEM_XDP_MAX_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TANDEM_XDP_MAX_VIPS);
  __type(key, struct tandem_vip_key);
  __type(value, __u32);
} tandem_vips SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tandem_steer_cfg);
} tandem_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TANDEM_VERDICT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} tandem_counts SEC(".maps");

#define ETH_P_8021Q_ 0x8100
#define ETH_P_HEARTBEAT 0x88b5
#define ICMP_ECHO_ 8
#define ICMPV6_ECHO_REQUEST_ 128
#define NDISC_NS 135
#define NDISC_NA 136

static __always_inline void count(__u32 verdict) {
  __u64* c = bpf_map_lookup_elem(&tandem_counts, &verdict);
  if (c) *c += 1;
}

static __always_inline int pass(__u32 verdict) {
  count(verdict);
  return XDP_PASS;
}

static __always_inline int steer(struct xdp_md* ctx, __u32 verdict) {
  count(verdict);
  // No socket on this queue (e.g. the switch has fewer queues than the
  // NIC): the frame goes to the kernel rather than being lost.
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

static __always_inline int is_vip4(__be32 addr) {
  struct tandem_vip_key k = {};
  k.addr[10] = 0xff;
  k.addr[11] = 0xff;
  __builtin_memcpy(&k.addr[12], &addr, 4);
  return bpf_map_lookup_elem(&tandem_vips, &k) != 0;
}

static __always_inline int is_vip6(const void* addr) {
  struct tandem_vip_key k;
  __builtin_memcpy(k.addr, addr, 16);
  return bpf_map_lookup_elem(&tandem_vips, &k) != 0;
}

static __always_inline int media_port(const struct tandem_steer_cfg* cfg, __be16 port) {
  __u16 p = bpf_ntohs(port);
  return p >= cfg->port_low && p <= cfg->port_high;
}

SEC("xdp")
int tandem_steer(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct tandem_steer_cfg* cfg = bpf_map_lookup_elem(&tandem_cfg, &zero);
  if (!cfg) return XDP_PASS;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end) return pass(TANDEM_PASS_OTHER);
  __u16 type = bpf_ntohs(eth->h_proto);
  void* l3 = eth + 1;
  __u16 vlan = 0;
  if (type == ETH_P_8021Q_) {
    __be16* tag = l3;
    if ((void*)(tag + 2) > end) return pass(TANDEM_PASS_OTHER);
    vlan = bpf_ntohs(tag[0]) & 0x0fff;
    type = bpf_ntohs(tag[1]);
    l3 = tag + 2;
  }
  if (vlan != cfg->vlan) return pass(TANDEM_PASS_OTHER);

  if (type == ETH_P_HEARTBEAT) return steer(ctx, TANDEM_STEER_HEARTBEAT);

  // Below: the VIPs' traffic, which is the switch's only while active.
  if (type == ETH_P_ARP) {
    // Ethernet/IPv4 ARP: 8 bytes of header, then sender MAC, sender IP,
    // target MAC, target IP (offset 24).
    __u8* arp = l3;
    if ((void*)(arp + 28) > end) return pass(TANDEM_PASS_OTHER);
    __be32 target;
    __builtin_memcpy(&target, arp + 24, 4);
    if (!is_vip4(target)) return pass(TANDEM_PASS_OTHER);
    if (!cfg->active) return pass(TANDEM_PASS_STANDBY);
    return steer(ctx, TANDEM_STEER_ARP);
  }

  if (type == ETH_P_IP) {
    struct iphdr* ip = l3;
    if ((void*)(ip + 1) > end) return pass(TANDEM_PASS_OTHER);
    if (!is_vip4(ip->daddr)) return pass(TANDEM_PASS_OTHER);
    if (ip->protocol == IPPROTO_UDP) {
      // Fragments after the first carry no UDP header; the switch drops
      // fragments anyway, and the kernel does not own the VIP.
      if (ip->frag_off & bpf_htons(0x1fff)) return pass(TANDEM_PASS_OTHER);
      struct udphdr* udp = (void*)ip + ip->ihl * 4;
      if ((void*)(udp + 1) > end) return pass(TANDEM_PASS_OTHER);
      if (!media_port(cfg, udp->dest)) return pass(TANDEM_PASS_OTHER);
      if (!cfg->active) return pass(TANDEM_PASS_STANDBY);
      return steer(ctx, TANDEM_STEER_MEDIA);
    }
    if (ip->protocol == IPPROTO_ICMP) {
      __u8* icmp = (void*)ip + ip->ihl * 4;
      if ((void*)(icmp + 1) > end) return pass(TANDEM_PASS_OTHER);
      if (icmp[0] != ICMP_ECHO_) return pass(TANDEM_PASS_OTHER);
      if (!cfg->active) return pass(TANDEM_PASS_STANDBY);
      return steer(ctx, TANDEM_STEER_ICMP);
    }
    return pass(TANDEM_PASS_OTHER);
  }

  if (type == ETH_P_IPV6) {
    struct ipv6hdr* ip6 = l3;
    if ((void*)(ip6 + 1) > end) return pass(TANDEM_PASS_OTHER);
    if (ip6->nexthdr == IPPROTO_UDP) {
      if (!is_vip6(&ip6->daddr)) return pass(TANDEM_PASS_OTHER);
      struct udphdr* udp = (void*)(ip6 + 1);
      if ((void*)(udp + 1) > end) return pass(TANDEM_PASS_OTHER);
      if (!media_port(cfg, udp->dest)) return pass(TANDEM_PASS_OTHER);
      if (!cfg->active) return pass(TANDEM_PASS_STANDBY);
      return steer(ctx, TANDEM_STEER_MEDIA);
    }
    if (ip6->nexthdr == IPPROTO_ICMPV6) {
      __u8* icmp6 = (void*)(ip6 + 1);
      if ((void*)(icmp6 + 4) > end) return pass(TANDEM_PASS_OTHER);
      __u8 t = icmp6[0];
      int ours;
      if (t == NDISC_NS || t == NDISC_NA) {
        // Target address at offset 8. A solicitation for a VIP goes to its
        // solicited-node group, so the target decides; an advertisement
        // answering the switch's own solicitation names the neighbour as
        // target and a VIP as destination.
        if ((void*)(icmp6 + 24) > end) return pass(TANDEM_PASS_OTHER);
        ours = is_vip6(icmp6 + 8) || (t == NDISC_NA && is_vip6(&ip6->daddr));
      } else if (t == ICMPV6_ECHO_REQUEST_) {
        ours = is_vip6(&ip6->daddr);
      } else {
        ours = 0;
      }
      if (!ours) return pass(TANDEM_PASS_OTHER);
      if (!cfg->active) return pass(TANDEM_PASS_STANDBY);
      return steer(ctx, t == ICMPV6_ECHO_REQUEST_ ? TANDEM_STEER_ICMP : TANDEM_STEER_ND);
    }
    return pass(TANDEM_PASS_OTHER);
  }
  return pass(TANDEM_PASS_OTHER);
}

char _license[] SEC("license") = "Dual BSD/GPL";
