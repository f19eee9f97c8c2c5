// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * hnxdp.bpf.c - the transparent-VF datapath.
 *
 * Three tcx programs make a VF and its synthetic interface one interface:
 *   hnxdp_vf_ingress  (VF ingress)         B8: every frame the VF receives is
 *                                          handed to the stack as received on
 *                                          the synthetic, while the VF is
 *                                          in the pair's network namespace.
 *   hnxdp_syn_egress  (synthetic egress)   B9: every frame sent on the
 *                                          synthetic leaves through the VF
 *                                          while the pair is active and the
 *                                          VF exists and has carrier.
 *   hnxdp_syn_ingress (synthetic ingress)  B20: counts the synthetic's own
 *                                          receive path.
 *
 * None of them parses the frame: the decision depends only on the device
 * and the pair, so runt, truncated or otherwise malformed frames are handled
 * exactly like good ones and can never make a program misbehave. Anything
 * unexpected fails open (HNXDP_TCX_NEXT: the frame takes its normal path).
 *
 * Neither redirects to an ifindex that is not the pair's any more. The egress
 * program sends only to the pair's entry in the DEVMAP hnxdp_txdev
 * (joined_vf()), which the kernel deletes when the VF is unregistered or
 * leaves the namespace. A tcx link moves with its device, so a VF that left
 * for another namespace still runs hnxdp_vf_ingress there, where the pair's
 * ifindexes name other devices: the program compares the frame's namespace
 * with the one it was loaded for (hnxdp_netns_inum) and passes every frame
 * elsewhere. That costs three guarded loads where a devmap lookup would cost a
 * helper call (about 20 ns per frame here).
 *
 * Built twice (see hnxdp_compat.bpf.c): with HNXDP_COMPAT defined the object
 * uses no kfunc, for kernels before 6.2 (Debian 12's 6.1): the namespace
 * guard is the devmap lookup and the carrier read is bpf_probe_read_kernel.
 * The programs' verdicts are the same numbers in tcx and in classic tc
 * (cls_bpf direct-action), so the same code serves both attachments.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <asm-generic/errno-base.h>

#include "hnxdp_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct hnxdp_pair);
} hnxdp_pairs SEC(".maps");
HNXDP_NAMED(hnxdp_pairs, HNXDP_MAP_PAIRS);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct hnxdp_vf_entry);
} hnxdp_vfs SEC(".maps");
HNXDP_NAMED(hnxdp_vfs, HNXDP_MAP_VFS);

/* The per-frame view of pairs and VFs for small ifindexes (see hnxdp_shared.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HNXDP_FAST_IFINDEXES);
	__type(key, __u32);
	__type(value, struct hnxdp_dev);
} hnxdp_devs SEC(".maps");
HNXDP_NAMED(hnxdp_devs, HNXDP_MAP_DEVS);

/*
 * The VF as a device reference, by pair slot: the kernel deletes the entry
 * itself when the VF is unregistered, so a vanished VF is noticed here even
 * with no control plane running.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} hnxdp_txdev SEC(".maps");
HNXDP_NAMED(hnxdp_txdev, HNXDP_MAP_TXDEV);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HNXDP_MAX_PAIRS);
	__type(key, __u32);
	__type(value, struct hnxdp_stats);
} hnxdp_stats SEC(".maps");
HNXDP_NAMED(hnxdp_stats, HNXDP_MAP_STATS);

/* Who made the namespace's pins (pin layout, hnxdp version); written by the
 * control plane, never read here. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hnxdp_meta);
} hnxdp_meta SEC(".maps");
HNXDP_NAMED(hnxdp_meta, HNXDP_MAP_META);

/*
 * The inode of the network namespace this copy of the datapath was loaded
 * for (set by the control plane at load; its pins live under that inode).
 * A tcx link moves with its device: a VF moved to another namespace keeps
 * running hnxdp_vf_ingress there, where the pair's ifindexes mean other
 * devices.
 */
const volatile __u32 hnxdp_netns_inum SEC(HNXDP_NETNS_SECTION) = 0;

#ifndef HNXDP_COMPAT
/* Read-only view of a kernel object by BTF id: plain loads the JIT guards. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
/* The kernel's struct sk_buff behind a __sk_buff (the verifier turns it into a move). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
#endif

/*
 * Kernel-internal layouts, relocated by libbpf against the running kernel's
 * BTF (CO-RE): a devmap value lives inside struct bpf_dtab_netdev, next to
 * the net_device it holds. Reading the device's state bits is how the
 * datapath sees carrier loss without waiting for the control plane.
 */
struct ns_common___hnxdp {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net___hnxdp {
	struct ns_common___hnxdp ns;
} __attribute__((preserve_access_index));

struct net_device___hnxdp {
	unsigned long state;
	struct {
		struct net___hnxdp *net;
	} nd_net;
} __attribute__((preserve_access_index));

struct bpf_dtab_netdev___hnxdp {
	struct net_device___hnxdp *dev;
	struct bpf_devmap_val val;
} __attribute__((preserve_access_index));

struct sk_buff___hnxdp {
	struct net_device___hnxdp *dev;
} __attribute__((preserve_access_index));

enum netdev_state_t___hnxdp {
	__LINK_STATE_NOCARRIER___hnxdp = 2,
};

/* The device a devmap value belongs to (NULL only if the entry is being torn down). */
static __always_inline struct net_device___hnxdp *devmap_dev(struct bpf_devmap_val *val)
{
	__u64 base = (__u64)(unsigned long)val -
		     bpf_core_field_offset(struct bpf_dtab_netdev___hnxdp, val);
#ifdef HNXDP_COMPAT
	/* No bpf_rdonly_cast (Linux < 6.2): a checked read of the pointer. */
	struct net_device___hnxdp *dev = NULL;

	bpf_core_read(&dev, sizeof(dev), &((struct bpf_dtab_netdev___hnxdp *)base)->dev);
	return dev;
#else
	struct bpf_dtab_netdev___hnxdp *entry =
		bpf_rdonly_cast((void *)base, bpf_core_type_id_kernel(struct bpf_dtab_netdev___hnxdp));

	return entry->dev;
#endif
}

/* True when the devmap entry's device has carrier (admin down implies no carrier on veth and NIC drivers). */
static __always_inline int vf_has_carrier(struct bpf_devmap_val *val)
{
	struct net_device___hnxdp *dev = devmap_dev(val);
	__u64 nocarrier = bpf_core_enum_value(enum netdev_state_t___hnxdp,
					      __LINK_STATE_NOCARRIER___hnxdp);
	unsigned long state;

	if (!dev)
		return 0;
#ifdef HNXDP_COMPAT
	if (bpf_core_read(&state, sizeof(state), &dev->state))
		return 0;
#else
	state = dev->state;
#endif
	return !(state & (1UL << nocarrier));
}

#ifndef HNXDP_COMPAT
/*
 * The devmap itself (struct bpf_dtab, kernel/bpf/devmap.c): its array of
 * entries by key, which the kernel's own lookup (__dev_map_lookup_elem) reads.
 */
struct bpf_dtab___hnxdp {
	struct bpf_dtab_netdev___hnxdp **netdev_map;
} __attribute__((preserve_access_index));

/*
 * One pointer-sized cell of that array, read as a kernel type whose first
 * member is a pointer (the verifier reads through typed pointers only).
 */
struct callback_head___hnxdp {
	struct callback_head___hnxdp *next;
} __attribute__((preserve_access_index));
#endif

/*
 * The VF joined to the pair of `slot`, if that is still the device `vf_ifindex`:
 * its entry in hnxdp_txdev, or NULL. The entry vanishes with the VF (unregister,
 * namespace change); a stale one (new VF, same slot) names another ifindex.
 *
 * With kfuncs this is the kernel's own lookup done inline: the array's cell for
 * `slot`, read with guarded loads, instead of a call to bpf_map_lookup_elem
 * (about 2 ns per frame in a test run with one skb, 15 ns with a fresh skb each
 * time; docs/benchmarks.md P6). The entries are freed after an RCU grace period
 * and the program runs in an RCU read-side section, as the helper does.
 */
static __always_inline struct bpf_devmap_val *joined_vf(__u32 slot, __u32 vf_ifindex)
{
#ifdef HNXDP_COMPAT
	struct bpf_devmap_val *vf = bpf_map_lookup_elem(&hnxdp_txdev, &slot);

	if (!vf || vf->ifindex != vf_ifindex)
		return NULL;
	return vf;
#else
	struct bpf_dtab___hnxdp *dtab =
		bpf_rdonly_cast(&hnxdp_txdev, bpf_core_type_id_kernel(struct bpf_dtab___hnxdp));
	struct callback_head___hnxdp *cell;
	struct bpf_dtab_netdev___hnxdp *entry;

	if (slot >= HNXDP_MAX_PAIRS) /* the map's max_entries */
		return NULL;
	cell = bpf_rdonly_cast((void *)((__u64)dtab->netdev_map + (__u64)slot * sizeof(void *)),
			       bpf_core_type_id_kernel(struct callback_head___hnxdp));
	entry = bpf_rdonly_cast(cell->next, bpf_core_type_id_kernel(struct bpf_dtab_netdev___hnxdp));
	if (!entry || entry->val.ifindex != vf_ifindex)
		return NULL;
	return &entry->val;
#endif
}

/*
 * The per-frame view of `ifindex` in `role`: from the ARRAY for small
 * ifindexes, else from the HASH maps. Returns 0 when it is not hnxdp's.
 */
static __always_inline int lookup_dev(__u32 ifindex, __u32 role, struct hnxdp_dev *out)
{
	if (ifindex < HNXDP_FAST_IFINDEXES) {
		struct hnxdp_dev *d = bpf_map_lookup_elem(&hnxdp_devs, &ifindex);

		if (!d || d->role != role)
			return 0;
		*out = *d;
		return 1;
	}
	if (role == HNXDP_ROLE_VF) {
		struct hnxdp_vf_entry *vf = bpf_map_lookup_elem(&hnxdp_vfs, &ifindex);

		if (!vf)
			return 0;
		out->role = role;
		out->peer_ifindex = vf->syn_ifindex;
		out->slot = vf->slot;
		out->state = HNXDP_STATE_ACTIVE;
		return 1;
	} else {
		struct hnxdp_pair *pair = bpf_map_lookup_elem(&hnxdp_pairs, &ifindex);

		if (!pair)
			return 0;
		out->role = role;
		out->peer_ifindex = pair->vf_ifindex;
		out->slot = pair->slot;
		out->state = pair->state;
		return 1;
	}
}

static __always_inline struct hnxdp_stats *stats_for(__u32 slot)
{
	return bpf_map_lookup_elem(&hnxdp_stats, &slot);
}

/* ---- capture (`hnxdp capture`; the contract is in hnxdp_shared.h) ----
 * Off (token 0) unless a capture runs: the cost per frame is then one load
 * of the flag from this object's data section (no lookup, no helper call).
 * Each path copies its frame at most once: frames the VF handed to the
 * synthetic are captured on the VF (vf-rx), not again on the synthetic.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
} hnxdp_capture SEC(".maps");
HNXDP_NAMED(hnxdp_capture, HNXDP_MAP_CAPTURE);

struct hnxdp_capture_ctl hnxdp_capture_ctl SEC(HNXDP_CAPTURE_CTL_SECTION) = {};

/* Copies the frame with its path to the capture of `token`, if it is this pair's. */
static __always_inline void capture(struct __sk_buff *skb, __u64 token, __u32 syn_ifindex, __u32 path, __u32 dev)
{
	struct hnxdp_capture_hdr hdr;
	__u32 caplen = hnxdp_capture_ctl.snaplen;
	long rc;

	if ((__u32)token != syn_ifindex)
		return;
	if (caplen > HNXDP_CAPTURE_MAX_SNAPLEN)
		caplen = HNXDP_CAPTURE_MAX_SNAPLEN;
	if (caplen > skb->len)
		caplen = skb->len;
	hdr.tstamp_ns = bpf_ktime_get_ns();
	hdr.path = path;
	hdr.ifindex = dev;
	hdr.len = skb->len;
	hdr.caplen = caplen;
	rc = bpf_perf_event_output(skb, &hnxdp_capture, BPF_F_CURRENT_CPU | ((__u64)caplen << 32), &hdr, sizeof(hdr));
	/* No perf event on this CPU: the capture is gone without switching off (crash). */
	if (rc == -ENOENT && hnxdp_capture_ctl.token == token)
		hnxdp_capture_ctl.token = 0;
}

/* The flag, checked first: nothing else happens while no capture runs. */
static __always_inline void maybe_capture(struct __sk_buff *skb, __u32 syn_ifindex, __u32 path, __u32 dev)
{
	__u64 token = hnxdp_capture_ctl.token;

	if (token)
		capture(skb, token, syn_ifindex, path, dev);
}
/* ---- end of capture ---- */

/* tcx ingress on the VF: hand every frame to the synthetic (B8). */
SEC("tc")
int hnxdp_vf_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct hnxdp_stats *st;
	struct hnxdp_dev vf;

	/* Loop guard: never move a frame twice, never redirect to ourselves. */
	if (skb->tc_index == HNXDP_REDIRECT_MARK)
		return HNXDP_TCX_NEXT;
	if (!lookup_dev(ifindex, HNXDP_ROLE_VF, &vf) || !vf.peer_ifindex || vf.peer_ifindex == ifindex)
		return HNXDP_TCX_NEXT;
	/*
	 * Only in the pair's namespace: a VF moved elsewhere keeps this program,
	 * and there the pair's ifindexes name other devices. Three guarded loads
	 * (skb->dev->nd_net.net->ns.inum), no helper call: this is the hot path.
	 * Without bpf_cast_to_kern_ctx (Linux < 6.2) the pair's devmap entry is
	 * the proof: the kernel deletes it when the VF leaves the namespace.
	 */
#ifdef HNXDP_COMPAT
	if (!joined_vf(vf.slot, ifindex))
		return HNXDP_TCX_NEXT;
#else
	if (((struct sk_buff___hnxdp *)bpf_cast_to_kern_ctx(skb))->dev->nd_net.net->ns.inum != hnxdp_netns_inum)
		return HNXDP_TCX_NEXT;
#endif

	st = stats_for(vf.slot);
	if (st) {
		st->vf_rx_packets++;
		st->vf_rx_bytes += skb->len;
	}
	maybe_capture(skb, vf.peer_ifindex, HNXDP_CAPTURE_PATH_VF_RX, ifindex);
	skb->tc_index = HNXDP_REDIRECT_MARK;
	return bpf_redirect(vf.peer_ifindex, BPF_F_INGRESS);
}
HNXDP_NAMED(hnxdp_vf_ingress, HNXDP_PROG_VF_INGRESS);

/* tcx ingress on the synthetic: count its own receive path (B20). */
SEC("tc")
int hnxdp_syn_ingress(struct __sk_buff *skb)
{
	struct hnxdp_stats *st;
	struct hnxdp_dev syn;

	if (skb->tc_index == HNXDP_REDIRECT_MARK) {
		/* Came in through the VF; already counted there. */
		skb->tc_index = 0;
		return HNXDP_TCX_NEXT;
	}
	if (!lookup_dev(skb->ifindex, HNXDP_ROLE_SYNTHETIC, &syn))
		return HNXDP_TCX_NEXT;
	st = stats_for(syn.slot);
	if (st) {
		st->syn_rx_packets++;
		st->syn_rx_bytes += skb->len;
	}
	maybe_capture(skb, skb->ifindex, HNXDP_CAPTURE_PATH_SYN_RX, skb->ifindex);
	return HNXDP_TCX_NEXT;
}
HNXDP_NAMED(hnxdp_syn_ingress, HNXDP_PROG_SYN_INGRESS);

/* tcx egress on the synthetic: leave through the VF while it can carry (B9). */
SEC("tc")
int hnxdp_syn_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct bpf_devmap_val *vf;
	struct hnxdp_stats *st;
	struct hnxdp_dev syn;

	if (!lookup_dev(ifindex, HNXDP_ROLE_SYNTHETIC, &syn))
		return HNXDP_TCX_NEXT;
	st = stats_for(syn.slot);

	if (syn.state == HNXDP_STATE_ACTIVE && syn.peer_ifindex) {
		vf = joined_vf(syn.slot, syn.peer_ifindex);
		if (vf && vf->ifindex != ifindex && vf_has_carrier(vf)) {
			if (st) {
				st->vf_tx_packets++;
				st->vf_tx_bytes += skb->len;
			}
			maybe_capture(skb, ifindex, HNXDP_CAPTURE_PATH_VF_TX, vf->ifindex);
			return bpf_redirect(vf->ifindex, 0);
		}
		if (st)
			st->tx_fallback_packets++;
	}
	if (st) {
		st->syn_tx_packets++;
		st->syn_tx_bytes += skb->len;
	}
	maybe_capture(skb, ifindex, HNXDP_CAPTURE_PATH_SYN_TX, ifindex);
	return HNXDP_TCX_NEXT;
}
HNXDP_NAMED(hnxdp_syn_egress, HNXDP_PROG_SYN_EGRESS);
