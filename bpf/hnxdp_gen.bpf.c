// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * hnxdp_gen.bpf.c - the traffic generator behind `hnxdp gen`.
 *
 * Run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: the kernel
 * builds real frames from the template and this program redirects each one
 * out of the device in hnxdp_gen_tx[0] (bulk devmap transmit). Several Mpps
 * into a veth on one core, without a packet socket or a qdisc in the way.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "hnxdp_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} hnxdp_gen_tx SEC(".maps");
HNXDP_NAMED(hnxdp_gen_tx, HNXDP_GEN_MAP_TX);

SEC("xdp")
int hnxdp_gen(struct xdp_md *ctx)
{
	/* XDP_ABORTED if the slot is empty: the kernel counts, nothing is sent. */
	return bpf_redirect_map(&hnxdp_gen_tx, 0, XDP_ABORTED);
}
HNXDP_NAMED(hnxdp_gen, HNXDP_GEN_PROG);
