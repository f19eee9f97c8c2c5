// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * hnxdp_xsk.bpf.c - AF_XDP steering and XDP pass-through for one pair (B17, B18).
 *
 * hnxdp_xsk_steer runs as the XDP program of both devices of a pair (the
 * synthetic and the current VF). One copy of this object is loaded per pair.
 *
 *   1. Frames the pair's AF_XDP sockets want (a socket is bound to this
 *      device's receive queue and the frame matches the configured filter)
 *      are redirected to that socket through the XSKMAP. The key says which
 *      device: role * HNXDP_XSK_MAX_QUEUES + queue, because the kernel drops
 *      a frame redirected to a socket bound to another device or queue.
 *      Neighbour resolution is never the sockets' (not even with
 *      HNXDP_XSK_MATCH_ALL): ARP and IPv6 neighbour discovery go on to the
 *      stack, which owns the pair's addresses and must keep answering them.
 *      Taken by a socket, they go unanswered: peers find the guest's MAC
 *      unreachable after their next neighbour probe (5-8 s with Linux's
 *      defaults) and stop sending to it at all, sockets included (issue 14).
 *   2. Everything else is handed to the user's XDP program, if one is
 *      attached (tail call through a one-slot program array); its verdict
 *      is final.
 *   3. Otherwise XDP_PASS: the frame takes the stack path as before (on the
 *      VF, the tcx ingress program then hands it to the synthetic).
 *
 * Why sockets before the user program: a tail call never returns, so the
 * steering cannot run *after* the user's program; and freplace (the only
 * way to call another program and get its verdict back) is refused on this
 * platform. Frames a socket asked for therefore bypass the user program.
 *
 * Fail open: no configuration, no socket for the queue (the application
 * exited or was killed: the kernel removes its sockets from the XSKMAP), an
 * empty program array: XDP_PASS. bpf_redirect_map's XDP_PASS fallback
 * covers a socket that disappears between lookup and redirect.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "hnxdp_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, HNXDP_XSK_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} hnxdp_xsks SEC(".maps");
HNXDP_NAMED(hnxdp_xsks, HNXDP_XSK_MAP_XSKS);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hnxdp_xsk_config);
} hnxdp_xsk_cfg SEC(".maps");
HNXDP_NAMED(hnxdp_xsk_cfg, HNXDP_XSK_MAP_CONFIG);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hnxdp_xsk_stats);
} hnxdp_xsk_stats SEC(".maps");
HNXDP_NAMED(hnxdp_xsk_stats, HNXDP_XSK_MAP_STATS);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} hnxdp_xdp_user SEC(".maps");
HNXDP_NAMED(hnxdp_xdp_user, HNXDP_XDP_MAP_USER);

/* True when the frame is IPv4/IPv6 UDP to `port` (no IPv6 extension headers). */
static __always_inline int is_udp_to(struct xdp_md *ctx, __u16 port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
			return 0;
		/* Only the first fragment carries the UDP header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		udp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return 0;
		udp = (void *)(ip6 + 1);
	} else {
		return 0;
	}
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(port);
}

/* RFC 4861 message types (ICMPv6): router solicitation .. redirect. */
#define HNXDP_ND_FIRST 133
#define HNXDP_ND_LAST 137

/* True for neighbour resolution: ARP, and IPv6 neighbour discovery (router
 * and neighbour solicitations and advertisements, redirects; ICMPv6 right
 * after the IPv6 header, as RFC 4861 messages are). */
static __always_inline int is_neighbour_resolution(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	struct icmp6hdr *icmp6;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return 1;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return 0;
	ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	icmp6 = (void *)(ip6 + 1);
	if ((void *)(icmp6 + 1) > end)
		return 0;
	return icmp6->icmp6_type >= HNXDP_ND_FIRST && icmp6->icmp6_type <= HNXDP_ND_LAST;
}

/* Whether the sockets want the frame (the configured filter). */
static __always_inline int wanted_by_sockets(struct xdp_md *ctx, const struct hnxdp_xsk_config *cfg)
{
	if (cfg->match == HNXDP_XSK_MATCH_UDP_PORT)
		return is_udp_to(ctx, cfg->udp_port);
	return !is_neighbour_resolution(ctx);
}

SEC("xdp")
int hnxdp_xsk_steer(struct xdp_md *ctx)
{
	struct hnxdp_xsk_config *cfg;
	struct hnxdp_xsk_stats *st;
	__u32 zero = 0, role, queue, key;

	cfg = bpf_map_lookup_elem(&hnxdp_xsk_cfg, &zero);
	if (!cfg || !cfg->syn_ifindex)
		return XDP_PASS;
	st = bpf_map_lookup_elem(&hnxdp_xsk_stats, &zero);
	role = ctx->ingress_ifindex == cfg->syn_ifindex ? HNXDP_XSK_ROLE_SYN : HNXDP_XSK_ROLE_VF;
	if (st)
		st->rx_packets[role & 1]++;

	queue = ctx->rx_queue_index;
	if (queue < HNXDP_XSK_MAX_QUEUES && wanted_by_sockets(ctx, cfg)) {
		key = role * HNXDP_XSK_MAX_QUEUES + queue;
		if (bpf_map_lookup_elem(&hnxdp_xsks, &key)) {
			if (st)
				st->xsk_packets[role & 1]++;
			return bpf_redirect_map(&hnxdp_xsks, key, XDP_PASS);
		}
	}

	if (cfg->flags & HNXDP_XDP_F_USER_PROG) {
		if (st)
			st->user_packets[role & 1]++;
		bpf_tail_call(ctx, &hnxdp_xdp_user, HNXDP_XDP_USER_SLOT);
		/* Slot emptied under us: the frame just goes on. */
		if (st)
			st->user_packets[role & 1]--;
	}
	if (st)
		st->pass_packets[role & 1]++;
	return XDP_PASS;
}
HNXDP_NAMED(hnxdp_xsk_steer, HNXDP_XSK_PROG_STEER);
