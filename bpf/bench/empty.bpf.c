// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * empty.bpf.c - benchmark baseline (P6): a tc program that does nothing, so
 * BPF_PROG_TEST_RUN of it measures the test-run loop and program dispatch
 * alone. hnxdp's programs are measured against it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCX_NEXT (-1)

SEC("tc")
int empty(struct __sk_buff *skb)
{
	return TCX_NEXT;
}
