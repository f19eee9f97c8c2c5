// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * redirect_only.bpf.c - benchmark baseline (P1b): the least a VF ingress
 * program can do, hand every frame to the synthetic's ingress. No counting,
 * no checks, no map. The target is a `const volatile` global, set by the
 * loader (scripts/bench/tcxattach.c) before load, so the verifier sees a
 * constant exactly as if it were written into the code.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 redirect_ifindex = 0;

SEC("tc")
int redirect_only(struct __sk_buff *skb)
{
	return bpf_redirect(redirect_ifindex, BPF_F_INGRESS);
}
