// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * redirect_egress_only.bpf.c - benchmark baseline (P4b): the least a
 * synthetic egress program can do, send every frame out of the VF. No
 * counting, no checks, no map, no fallback. The target is a `const volatile`
 * global, set by the loader (scripts/bench/tcxattach.c) before load.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 redirect_ifindex = 0;

SEC("tc")
int redirect_egress_only(struct __sk_buff *skb)
{
	return bpf_redirect(redirect_ifindex, 0);
}
