// A tc classifier (direct action) that drops the pair's heartbeat frames
// (EtherType 0x88b5): the partition test puts it on a bridge port, so that the
// two nodes stop hearing each other while both still reach the participants.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

__attribute__((section("classifier"), used)) int drop_heartbeats(struct __sk_buff* skb) {
  return skb->protocol == __builtin_bswap16(0x88b5) ? TC_ACT_SHOT : TC_ACT_OK;
}

char drop_license[] __attribute__((section("license"), used)) = "GPL";
