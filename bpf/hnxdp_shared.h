/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * hnxdp_shared.h - the one contract between the BPF datapath (bpf/)
 * and the Swift control plane (via Sources/CHnxdpShim).
 *
 * Everything both sides must agree on lives here: map and program names,
 * pin names, key/value layouts (fixed width, explicit padding), states and
 * flags. Each layout is pinned with a _Static_assert so a change on one side
 * cannot silently break the other.
 */
#ifndef HNXDP_SHARED_H
#define HNXDP_SHARED_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <linux/types.h>
#endif

/* tcx attach types; the Debian 6.1 UAPI headers predate them (kernel 6.6). */
#define HNXDP_BPF_TCX_INGRESS 46
#define HNXDP_BPF_TCX_EGRESS 47
/* BPF link type reported for tcx links (bpftool 7.1 prints "type 11"). */
#define HNXDP_BPF_LINK_TYPE_TCX 11

/* Capacity: pairs per network namespace (stats slots). */
#define HNXDP_MAX_PAIRS 1024
/* ethtool feature bitmap words (64 bits each); the kernel has < 128 features. */
#define HNXDP_FEATURE_WORDS 2

/* Map names (also their pin file names inside the namespace directory). */
#define HNXDP_MAP_PAIRS "hnxdp_pairs"   /* HASH  u32 synthetic ifindex -> struct hnxdp_pair */
#define HNXDP_MAP_VFS "hnxdp_vfs"       /* HASH  u32 VF ifindex -> struct hnxdp_vf_entry */
#define HNXDP_MAP_TXDEV "hnxdp_txdev"   /* DEVMAP_HASH u32 synthetic ifindex -> VF device */
#define HNXDP_MAP_STATS "hnxdp_stats"   /* PERCPU_ARRAY u32 slot -> struct hnxdp_stats */

/* Program names (also their pin file names inside the namespace directory). */
#define HNXDP_PROG_VF_INGRESS "hnxdp_vf_ingress"   /* tcx ingress on the VF */
#define HNXDP_PROG_SYN_EGRESS "hnxdp_syn_egress"   /* tcx egress on the synthetic */
#define HNXDP_PROG_SYN_INGRESS "hnxdp_syn_ingress" /* tcx ingress on the synthetic */

/* Link pin names inside the per-pair directory. */
#define HNXDP_LINK_VF_INGRESS "link_vf_ingress"
#define HNXDP_LINK_SYN_EGRESS "link_syn_egress"
#define HNXDP_LINK_SYN_INGRESS "link_syn_ingress"

/*
 * skb->tc_index value the VF ingress program stamps on frames it hands to the
 * synthetic, so the synthetic's ingress program neither counts them twice nor
 * lets them loop. tc_index has no other user since cls_tcindex and dsmark
 * left the kernel (6.3); the synthetic's program clears it again.
 */
#define HNXDP_REDIRECT_MARK 0x4858 /* "HX" */

/* Pair state, as shown by `dump` ("idle", "settling", ...). */
enum hnxdp_pair_state {
	HNXDP_STATE_IDLE = 0,      /* no VF joined: synthetic path */
	HNXDP_STATE_SETTLING = 1,  /* VF seen, waiting for the settle delay */
	HNXDP_STATE_ACTIVE = 2,    /* VF joined: datapath through the VF */
	HNXDP_STATE_HELD_DOWN = 3, /* VF flapping: not joined until stable */
	HNXDP_STATE_DISABLED = 4,  /* transparent mode off: report only */
};

/* struct hnxdp_pair.flags */
#define HNXDP_PAIR_F_TRANSPARENT (1u << 0)  /* transparent mode on for this pair */
#define HNXDP_PAIR_F_VF_WAS_UP (1u << 1)    /* VF was admin up before the join */
#define HNXDP_PAIR_F_MTU_FALLBACK (1u << 2) /* VF refused the MTU; synthetic fell back */
#define HNXDP_PAIR_F_EXPLICIT (1u << 3)     /* made by `attach`, not by `run` */
#define HNXDP_PAIR_F_HAS_GSO_IPV4 (1u << 4) /* gso_ipv4_max_size saved/changed */

/*
 * Value of HNXDP_MAP_PAIRS, key: synthetic ifindex. Written only by the
 * control plane; the datapath reads state, vf_ifindex and slot. Holds what
 * `detach` needs to undo the join exactly (saved_*), so the undo works from
 * any process, after a crash too.
 */
struct hnxdp_pair {
	__u32 syn_ifindex;
	__u32 vf_ifindex;  /* 0 when no VF */
	__u32 state;       /* enum hnxdp_pair_state */
	__u32 flags;       /* HNXDP_PAIR_F_* */
	__u32 slot;        /* index into HNXDP_MAP_STATS */
	__u32 mtu;         /* MTU pushed to the VF */
	__u32 saved_syn_mtu;
	__u32 saved_vf_mtu;
	__u32 saved_gso_max_size;
	__u32 saved_gso_max_segs;
	__u32 saved_gso_ipv4_max_size;
	__u32 gso_max_size; /* effective limits set on the synthetic */
	__u32 gso_max_segs;
	__u32 gso_ipv4_max_size;
	__u32 switches;    /* datapath switches (VF <-> synthetic) */
	__u32 feature_count; /* number of valid bits in the feature words */
	__u64 last_switch_ns; /* CLOCK_REALTIME of the last switch */
	__u64 saved_features[HNXDP_FEATURE_WORDS];     /* synthetic's requested features before join */
	__u64 saved_active[HNXDP_FEATURE_WORDS];       /* synthetic's active features before join */
	__u64 vf_features[HNXDP_FEATURE_WORDS];        /* VF's active features at join */
	__u64 effective_features[HNXDP_FEATURE_WORDS]; /* synthetic's active features after join */
};

/* Value of HNXDP_MAP_VFS, key: VF ifindex. */
struct hnxdp_vf_entry {
	__u32 syn_ifindex;
	__u32 slot;
};

/* Value of HNXDP_MAP_STATS (per CPU), index: pair slot. */
struct hnxdp_stats {
	__u64 vf_rx_packets;  /* received on the VF, handed to the synthetic */
	__u64 vf_rx_bytes;
	__u64 vf_tx_packets;  /* sent on the synthetic, left through the VF */
	__u64 vf_tx_bytes;
	__u64 syn_rx_packets; /* received on the synthetic's own path */
	__u64 syn_rx_bytes;
	__u64 syn_tx_packets; /* sent on the synthetic's own path */
	__u64 syn_tx_bytes;
	__u64 tx_fallback_packets; /* pair joined but VF gone/no carrier: synthetic path */
	__u64 drops;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct hnxdp_pair) == 136, "struct hnxdp_pair layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_vf_entry) == 8, "struct hnxdp_vf_entry layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_stats) == 80, "struct hnxdp_stats layout is part of the contract");
#endif

#endif /* HNXDP_SHARED_H */
