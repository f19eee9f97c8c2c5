// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * hnxdp_proto.bpf.c - benchmark prototype of a cheaper hnxdp datapath (not
 * the product: bpf/hnxdp.bpf.c is). Same decisions and counters as the three
 * hnxdp programs, with the per-frame costs the benchmark measured taken out:
 *
 *  1. Per-frame lookups keyed by ifindex use ARRAY maps indexed by ifindex
 *     (the verifier inlines an array lookup: a bounds check and an add)
 *     instead of HASH maps (a jhash and a bucket walk through a call, about
 *     30 ns per lookup on the benchmark machine). Ifindexes at or above
 *     PROTO_MAX_IFINDEX would need a HASH fallback (not prototyped: the
 *     frame just takes its normal path here).
 *  2. The VF's carrier is read with two direct loads through
 *     bpf_rdonly_cast() (PROBE_MEM loads, inlined by the JIT) instead of two
 *     bpf_probe_read_kernel() helper calls (about 50 ns together).
 *  3. The VF's device reference is a DEVMAP (array, indexed by the pair's
 *     slot) instead of a DEVMAP_HASH keyed by the synthetic's ifindex. The
 *     kernel still deletes the entry when the VF is unregistered.
 *  4. The VF program checks the loop-guard mark before any lookup.
 *
 * Maps are filled by scripts/bench/protoattach.c.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "../hnxdp_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCX_NEXT (-1)
#define PROTO_MAX_IFINDEX 4096

/* What the per-frame paths need of a pair, keyed by the synthetic's ifindex. */
struct proto_pair {
	__u32 state;      /* enum hnxdp_pair_state */
	__u32 vf_ifindex;
	__u32 slot;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROTO_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct hnxdp_vf_entry); /* syn_ifindex 0: not a VF */
} proto_vfs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROTO_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct proto_pair); /* vf_ifindex 0 and state idle: not a pair */
} proto_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} proto_txdev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct hnxdp_stats);
} proto_stats SEC(".maps");

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct net_device___proto {
	unsigned long state;
} __attribute__((preserve_access_index));

struct bpf_dtab_netdev___proto {
	struct net_device___proto *dev;
	struct bpf_devmap_val val;
} __attribute__((preserve_access_index));

enum netdev_state_t___proto {
	__LINK_STATE_NOCARRIER___proto = 2,
};

static __always_inline int vf_has_carrier(struct bpf_devmap_val *val)
{
	__u64 base = (__u64)(unsigned long)val -
		     bpf_core_field_offset(struct bpf_dtab_netdev___proto, val);
	struct bpf_dtab_netdev___proto *d =
		bpf_rdonly_cast((void *)base, bpf_core_type_id_kernel(struct bpf_dtab_netdev___proto));
	struct net_device___proto *dev = d->dev;
	__u64 nocarrier = bpf_core_enum_value(enum netdev_state_t___proto,
					      __LINK_STATE_NOCARRIER___proto);

	if (!dev)
		return 0;
	return !(dev->state & (1UL << nocarrier));
}

SEC("tc")
int proto_vf_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct hnxdp_vf_entry *vf;
	struct hnxdp_stats *st;
	__u32 slot;

	if (skb->tc_index == HNXDP_REDIRECT_MARK)
		return TCX_NEXT;
	vf = bpf_map_lookup_elem(&proto_vfs, &ifindex);
	if (!vf || !vf->syn_ifindex || vf->syn_ifindex == ifindex)
		return TCX_NEXT;
	slot = vf->slot;
	st = bpf_map_lookup_elem(&proto_stats, &slot);
	if (st) {
		st->vf_rx_packets++;
		st->vf_rx_bytes += skb->len;
	}
	skb->tc_index = HNXDP_REDIRECT_MARK;
	return bpf_redirect(vf->syn_ifindex, BPF_F_INGRESS);
}

SEC("tc")
int proto_syn_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct proto_pair *pair;
	struct hnxdp_stats *st;
	__u32 slot;

	if (skb->tc_index == HNXDP_REDIRECT_MARK) {
		skb->tc_index = 0;
		return TCX_NEXT;
	}
	pair = bpf_map_lookup_elem(&proto_pairs, &ifindex);
	if (!pair || pair->state == HNXDP_STATE_IDLE && !pair->vf_ifindex)
		return TCX_NEXT;
	slot = pair->slot;
	st = bpf_map_lookup_elem(&proto_stats, &slot);
	if (st) {
		st->syn_rx_packets++;
		st->syn_rx_bytes += skb->len;
	}
	return TCX_NEXT;
}

SEC("tc")
int proto_syn_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct bpf_devmap_val *vf;
	struct proto_pair *pair;
	struct hnxdp_stats *st;
	__u32 slot;

	pair = bpf_map_lookup_elem(&proto_pairs, &ifindex);
	if (!pair || pair->state == HNXDP_STATE_IDLE && !pair->vf_ifindex)
		return TCX_NEXT;
	slot = pair->slot;
	st = bpf_map_lookup_elem(&proto_stats, &slot);

	if (pair->state == HNXDP_STATE_ACTIVE && pair->vf_ifindex) {
		vf = bpf_map_lookup_elem(&proto_txdev, &slot);
		if (vf && vf->ifindex == pair->vf_ifindex && vf->ifindex != ifindex &&
		    vf_has_carrier(vf)) {
			if (st) {
				st->vf_tx_packets++;
				st->vf_tx_bytes += skb->len;
			}
			return bpf_redirect(vf->ifindex, 0);
		}
		if (st)
			st->tx_fallback_packets++;
	}
	if (st) {
		st->syn_tx_packets++;
		st->syn_tx_bytes += skb->len;
	}
	return TCX_NEXT;
}
