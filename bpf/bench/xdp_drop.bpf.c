// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdp_drop.bpf.c - benchmark receiver (G1): the cheapest sink there is. Counts
 * every frame in a per-CPU array (slot 0) and drops it (XDP_DROP), so a
 * generator sending into the veth whose peer runs this is not held back by
 * the receiver. Loaded and read by scripts/bench/xdpdrop.c.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drop_count SEC(".maps");

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&drop_count, &k);

	if (n)
		*n += 1;
	return XDP_DROP;
}
