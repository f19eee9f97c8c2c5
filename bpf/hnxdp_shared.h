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

/*
 * tcx verdicts (the 6.1 UAPI headers predate them). They are the same numbers
 * as classic tc's TC_ACT_UNSPEC and TC_ACT_REDIRECT, so the datapath serves
 * both attachments. TCX_NEXT lets any tcx program behind ours run, and is
 * "pass" when ours is the last.
 */
#define HNXDP_TCX_NEXT (-1)
#define HNXDP_TCX_REDIRECT 7

/*
 * The BPF objects embedded in the binary, by source file (bpf/<name>.bpf.c).
 * Every program and map of hnxdp is named HNXDP_NAME_PREFIX...: a tc filter or
 * program with that prefix is hnxdp's.
 */
#define HNXDP_OBJ_DATAPATH "hnxdp"               /* the datapath (kfuncs, Linux 6.2+) */
#define HNXDP_OBJ_DATAPATH_COMPAT "hnxdp_compat" /* the same without kfuncs (Linux < 6.2) */
#define HNXDP_OBJ_XSK "hnxdp_xsk"                /* AF_XDP steering, one copy per pair */
#define HNXDP_OBJ_GEN "hnxdp_gen"                /* `hnxdp gen`'s traffic generator */
#define HNXDP_NAME_PREFIX "hnxdp_"

/*
 * In bpf/<name>.bpf.c, after a program or map: a compile error unless a
 * program or map `ident` exists and the name given here (the name Swift and
 * the pins use) is its name.
 */
#define HNXDP_NAMED(ident, name) \
	_Static_assert(sizeof(&ident) && __builtin_strcmp(#ident, name) == 0, #ident " must be named " name " (hnxdp_shared.h)")

/* Capacity: pairs per network namespace (stats slots). */
#define HNXDP_MAX_PAIRS 1024
/* ethtool feature bitmap words (64 bits each); the kernel has < 128 features. */
#define HNXDP_FEATURE_WORDS 2

/*
 * Per-frame lookups by ifindex use an ARRAY indexed by ifindex (inlined by
 * the verifier: a bounds check and an add) for ifindexes below this bound,
 * and the HASH maps above it (correct for any ifindex, about 30 ns slower).
 */
#define HNXDP_FAST_IFINDEXES 4096

/* Map names (also their pin file names inside the namespace directory). */
#define HNXDP_MAP_PAIRS "hnxdp_pairs"   /* HASH  u32 synthetic ifindex -> struct hnxdp_pair */
#define HNXDP_MAP_VFS "hnxdp_vfs"       /* HASH  u32 VF ifindex -> struct hnxdp_vf_entry */
#define HNXDP_MAP_DEVS "hnxdp_devs"     /* ARRAY u32 ifindex (< HNXDP_FAST_IFINDEXES) -> struct hnxdp_dev */
#define HNXDP_MAP_TXDEV "hnxdp_txdev"   /* DEVMAP u32 pair slot -> VF device */
#define HNXDP_MAP_STATS "hnxdp_stats"   /* PERCPU_ARRAY u32 slot -> struct hnxdp_stats */

/*
 * Pin layout (ABI) number of this hnxdp. Raise it whenever a pinned map's key
 * or value layout, a pin's name or type, or the set of pins changes (here or
 * in the per-pair directories). The namespace's pins carry the number of the
 * hnxdp that made them (HNXDP_MAP_META, pinned with the others through the
 * staging directory): a binary meeting pins of another layout refuses to use
 * them and names `hnxdp migrate`. Pins without HNXDP_MAP_META were made before
 * versioning; their maps have the layout of pin layout 1.
 */
#define HNXDP_PIN_LAYOUT 1
#define HNXDP_MAP_META "hnxdp_meta"   /* ARRAY [1] u32 0 -> struct hnxdp_meta: who made the pins */
#define HNXDP_META_VERSION_LEN 24

/*
 * Value of HNXDP_MAP_META[0], written once by the control plane before the
 * pins appear; the datapath never reads it. pin_layout stays at offset 0 and
 * version at offset 8 in every layout to come (a reader takes the value size
 * from the kernel), so any hnxdp can say whose pins it met.
 */
struct hnxdp_meta {
	__u32 pin_layout; /* HNXDP_PIN_LAYOUT of the hnxdp that made the pins */
	__u32 flags;      /* reserved, 0 */
	char version[HNXDP_META_VERSION_LEN]; /* its version (HnxdpVersion), NUL-padded */
};

/* Program names (also their pin file names inside the namespace directory). */
#define HNXDP_PROG_VF_INGRESS "hnxdp_vf_ingress"   /* tcx ingress on the VF */
#define HNXDP_PROG_SYN_EGRESS "hnxdp_syn_egress"   /* tcx egress on the synthetic */
#define HNXDP_PROG_SYN_INGRESS "hnxdp_syn_ingress" /* tcx ingress on the synthetic */

/*
 * The section of the datapath's one load-time constant (const volatile
 * __u32 hnxdp_netns_inum): the inode of the network namespace the copy serves.
 */
#define HNXDP_NETNS_SECTION ".rodata.netns"

/* Link pin names inside the per-pair directory. */
#define HNXDP_LINK_VF_INGRESS "link_vf_ingress"
#define HNXDP_LINK_SYN_EGRESS "link_syn_egress"
#define HNXDP_LINK_SYN_INGRESS "link_syn_ingress"

/*
 * Classic tc attachment (kernels without tcx, Linux < 6.6): the program runs
 * as a cls_bpf direct-action filter on the device's clsact qdisc, at this
 * handle and priority (priority 1: before filters added with tc's defaults).
 * A filter is not a link and cannot be pinned, so at the link's pin name the
 * pair directory holds a one-entry ARRAY map (HNXDP_MAP_TC_ATTACHMENT) that
 * says where the filter is: the record `run` adopts after a crash and
 * `detach` removes.
 */
#define HNXDP_TC_HANDLE 0x4858
#define HNXDP_TC_PRIORITY 1
#define HNXDP_MAP_TC_ATTACHMENT "hnxdp_tc_attach"

#define HNXDP_TC_F_INGRESS (1u << 0)       /* clsact ingress (else egress) */
#define HNXDP_TC_F_CREATED_QDISC (1u << 1) /* hnxdp created the clsact qdisc */

struct hnxdp_tc_attachment {
	__u32 ifindex;
	__u32 flags;    /* HNXDP_TC_F_* */
	__u32 handle;
	__u32 priority;
	__u32 prog_id;  /* the program the filter runs */
	__u32 pad;
};

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

/* struct hnxdp_dev.role */
#define HNXDP_ROLE_NONE 0
#define HNXDP_ROLE_SYNTHETIC 1
#define HNXDP_ROLE_VF 2

/*
 * Value of HNXDP_MAP_DEVS, index: ifindex. What the per-frame paths need,
 * mirrored by the control plane from HNXDP_MAP_PAIRS / HNXDP_MAP_VFS for
 * ifindexes below HNXDP_FAST_IFINDEXES. role NONE: not hnxdp's device.
 */
struct hnxdp_dev {
	__u32 role;         /* HNXDP_ROLE_* */
	__u32 peer_ifindex; /* synthetic: its joined VF (0: none); VF: its synthetic */
	__u32 slot;         /* stats slot, also the HNXDP_MAP_TXDEV index */
	__u32 state;        /* synthetic: enum hnxdp_pair_state */
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
_Static_assert(sizeof(struct hnxdp_dev) == 16, "struct hnxdp_dev layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_tc_attachment) == 24, "struct hnxdp_tc_attachment layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_meta) == 32, "struct hnxdp_meta layout is part of the contract (and never changes)");
#endif

/* ===================================================================
 * AF_XDP steering and XDP pass-through (bpf/hnxdp_xsk.bpf.c, B17/B18).
 * One copy of that object is loaded per pair; its objects are pinned in
 * the pair's directory (<netns inode>/<synthetic ifindex>/).
 * =================================================================== */

/* Queues per device that can have a socket (XSKMAP keys per role). */
#define HNXDP_XSK_MAX_QUEUES 64
/* Which device of the pair a frame came in on (XSKMAP key = role * MAX_QUEUES + queue). */
#define HNXDP_XSK_ROLE_SYN 0
#define HNXDP_XSK_ROLE_VF 1
#define HNXDP_XSK_ROLES 2
#define HNXDP_XSK_MAP_ENTRIES (HNXDP_XSK_ROLES * HNXDP_XSK_MAX_QUEUES)

/* Program and map names in hnxdp_xsk.bpf.c. */
#define HNXDP_XSK_PROG_STEER "hnxdp_xsk_steer" /* XDP on the synthetic and on the VF */
#define HNXDP_XSK_MAP_XSKS "hnxdp_xsks"        /* XSKMAP key -> AF_XDP socket */
#define HNXDP_XSK_MAP_CONFIG "hnxdp_xsk_cfg"   /* ARRAY [1] struct hnxdp_xsk_config */
#define HNXDP_XSK_MAP_STATS "hnxdp_xsk_stats"  /* PERCPU_ARRAY [1] struct hnxdp_xsk_stats */
#define HNXDP_XDP_MAP_USER "hnxdp_xdp_user"    /* PROG_ARRAY [1]: the user's XDP program */
#define HNXDP_XDP_USER_SLOT 0

/* Pin names inside the pair directory. */
#define HNXDP_XDP_PIN_PROG "xdp_steer"
#define HNXDP_XDP_PIN_XSKS "xdp_xsks"
#define HNXDP_XDP_PIN_CONFIG "xdp_config"
#define HNXDP_XDP_PIN_STATS "xdp_stats"
#define HNXDP_XDP_PIN_USER_ARRAY "xdp_user_array"
#define HNXDP_XDP_PIN_USER_PROG "xdp_user_prog"
#define HNXDP_XDP_LINK_SYN "link_xdp_syn"
#define HNXDP_XDP_LINK_VF "link_xdp_vf"

/* struct hnxdp_xsk_config.match: which frames go to a socket (when one is bound). */
#define HNXDP_XSK_MATCH_ALL 0      /* every frame of the queue but ARP and IPv6 ND (the stack's) */
#define HNXDP_XSK_MATCH_UDP_PORT 1 /* IPv4/IPv6 UDP to udp_port; the rest goes on */

/* struct hnxdp_xsk_config.flags */
#define HNXDP_XDP_F_USER_PROG (1u << 0) /* a user program is in HNXDP_XDP_MAP_USER */

/* Value of HNXDP_XSK_MAP_CONFIG[0]; written by the control plane. */
struct hnxdp_xsk_config {
	__u32 syn_ifindex; /* frames from any other device are the VF's */
	__u32 match;       /* HNXDP_XSK_MATCH_* */
	__u32 flags;       /* HNXDP_XDP_F_* */
	__u16 udp_port;    /* host byte order, for HNXDP_XSK_MATCH_UDP_PORT */
	__u16 pad;
};

/* Value of HNXDP_XSK_MAP_STATS[0] (per CPU); index: HNXDP_XSK_ROLE_*. */
struct hnxdp_xsk_stats {
	__u64 rx_packets[HNXDP_XSK_ROLES];   /* seen by the steering program */
	__u64 xsk_packets[HNXDP_XSK_ROLES];  /* redirected to an AF_XDP socket */
	__u64 user_packets[HNXDP_XSK_ROLES]; /* handed to the user's XDP program */
	__u64 pass_packets[HNXDP_XSK_ROLES]; /* passed on to the stack */
};

#ifndef __cplusplus
_Static_assert(sizeof(struct hnxdp_xsk_config) == 16, "struct hnxdp_xsk_config layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_xsk_stats) == 64, "struct hnxdp_xsk_stats layout is part of the contract");
#endif
/* ========================= end of AF_XDP section ==================== */


/* ===================================================================
 * Packet capture (`hnxdp capture`): the datapath's frames, with the path
 * each took, copied to user space through a perf event array (xdpdump's
 * method). Off unless a capture runs: each program loads one flag first.
 * =================================================================== */

/* PERF_EVENT_ARRAY (one slot per CPU) -> the capturing process's perf events.
 * Pin name = map name. A slot empties when the capture's fd closes (exit, crash). */
#define HNXDP_MAP_CAPTURE "hnxdp_capture"
/* The flag: a global variable in this data section of hnxdp.bpf.c, i.e. a
 * one-entry ARRAY map libbpf makes for the section, pinned under this name. */
#define HNXDP_CAPTURE_CTL_SECTION ".data.capture"
#define HNXDP_PIN_CAPTURE_CTL "hnxdp_capture_ctl"

/* Which way a frame went through the pair (pcapng: one interface per path). */
#define HNXDP_CAPTURE_PATH_VF_RX 0  /* received on the VF, handed to the synthetic */
#define HNXDP_CAPTURE_PATH_SYN_RX 1 /* received on the synthetic's own path */
#define HNXDP_CAPTURE_PATH_VF_TX 2  /* sent on the synthetic, leaves through the VF */
#define HNXDP_CAPTURE_PATH_SYN_TX 3 /* sent on the synthetic, leaves through the synthetic */
#define HNXDP_CAPTURE_PATHS 4
/* Most bytes of a frame one sample carries (a perf sample is below 64 KiB). */
#define HNXDP_CAPTURE_MAX_SNAPLEN 65000

/*
 * Value of the flag (section HNXDP_CAPTURE_CTL_SECTION). token 0: no capture.
 * Otherwise (capturing pid << 32) | synthetic ifindex: only that pair's frames
 * are copied. A program whose copy fails with -ENOENT (the capture's perf
 * events are gone: it crashed) puts token back to 0 if it is still the same.
 */
struct hnxdp_capture_ctl {
	__u64 token;
	__u32 snaplen; /* bytes of each frame copied at most (> 0) */
	__u32 pad;
};

/* What precedes each frame's bytes in a perf event sample. */
struct hnxdp_capture_hdr {
	__u64 tstamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 path;      /* HNXDP_CAPTURE_PATH_* */
	__u32 ifindex;   /* the device the frame was received on / leaves through */
	__u32 len;       /* the frame's length (skb->len) */
	__u32 caplen;    /* bytes of the frame that follow this header */
};

#ifndef __cplusplus
_Static_assert(sizeof(struct hnxdp_capture_ctl) == 16, "struct hnxdp_capture_ctl layout is part of the contract");
_Static_assert(sizeof(struct hnxdp_capture_hdr) == 24, "struct hnxdp_capture_hdr layout is part of the contract");
#endif
/* ========================= end of capture section =================== */


/* The traffic generator (bpf/hnxdp_gen.bpf.c, `hnxdp gen`); never pinned. */
#define HNXDP_GEN_PROG "hnxdp_gen"     /* XDP, run by BPF_PROG_TEST_RUN live frames */
#define HNXDP_GEN_MAP_TX "hnxdp_gen_tx" /* DEVMAP [1]: the device frames leave through */


#endif /* HNXDP_SHARED_H */
