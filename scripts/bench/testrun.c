// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * testrun.c - per-frame cost of tc programs under BPF_PROG_TEST_RUN (bench P6).
 *
 *   testrun [-r REPEAT] [-n ROUNDS] [-f] PROG=IFINDEX...
 *
 * PROG is a pinned program (e.g. /sys/fs/bpf/hnxdp/<ino>/hnxdp_vf_ingress) or
 * a BPF object file (*.o; its first program is loaded as a tc classifier).
 * IFINDEX goes into the test-run context (__sk_buff.ifindex), so the program
 * sees that device; the kernel resolves it in the caller's network namespace,
 * so run this under `nsenter --net=/run/netns/NAME`.
 *
 * Each round runs every PROG in the order given, so programs are interleaved.
 * Default: one BPF_PROG_TEST_RUN per PROG with repeat=REPEAT; the kernel reuses
 * the same skb for all repeats, so state a program writes into the skb (e.g.
 * tc_index) is seen by the next repeat. -f ("fresh"): REPEAT separate test runs
 * of repeat=1 each (a new skb every time); the kernel's per-run duration is
 * averaged. Output, one line per round and PROG:
 *   ROUND NAME IFINDEX NS_PER_FRAME RETVAL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

struct subject {
	const char *spec;
	const char *name;
	int fd;
	unsigned int ifindex;
};

/* The 64-byte frame the traffic cases send: Ethernet/IPv4/UDP, 22 bytes payload. */
static void build_frame(unsigned char *f, size_t len)
{
	struct ethhdr *eth = (struct ethhdr *)f;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);

	memset(f, 0, len);
	memcpy(eth->h_dest, "\x02\x48\x4e\x00\x00\x01", ETH_ALEN);
	memcpy(eth->h_source, "\x02\x48\x4e\x00\x00\x02", ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons(len - sizeof(*eth));
	ip->saddr = htonl(0xc6120002); /* 198.18.0.2 */
	ip->daddr = htonl(0xc6120001); /* 198.18.0.1 */
	udp->source = htons(1024);
	udp->dest = htons(9);
	udp->len = htons(len - sizeof(*eth) - sizeof(*ip));
}

static int load_subject(struct subject *s)
{
	size_t n = strlen(s->spec);
	const char *slash = strrchr(s->spec, '/');

	s->name = slash ? slash + 1 : s->spec;
	if (n > 2 && strcmp(s->spec + n - 2, ".o") == 0) {
		struct bpf_object *obj = bpf_object__open_file(s->spec, NULL);
		struct bpf_program *prog;

		if (!obj || libbpf_get_error(obj)) {
			fprintf(stderr, "testrun: open %s: failed\n", s->spec);
			return -1;
		}
		prog = bpf_object__next_program(obj, NULL);
		if (!prog) {
			fprintf(stderr, "testrun: %s: no program\n", s->spec);
			return -1;
		}
		bpf_program__set_type(prog, BPF_PROG_TYPE_SCHED_CLS);
		if (bpf_object__load(obj)) {
			fprintf(stderr, "testrun: load %s: %s\n", s->spec, strerror(errno));
			return -1;
		}
		s->name = bpf_program__name(prog);
		s->fd = bpf_program__fd(prog);
		return 0; /* object kept open (and loaded) until exit */
	}
	s->fd = bpf_obj_get(s->spec);
	if (s->fd < 0) {
		fprintf(stderr, "testrun: open pinned %s: %s\n", s->spec, strerror(errno));
		return -1;
	}
	return 0;
}

/* Average ns per frame of one measurement, or -1. */
static double measure(struct subject *s, unsigned char *frame, size_t len,
		      unsigned long repeat, int fresh, int *retval)
{
	struct __sk_buff ctx = { .ifindex = s->ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = frame, .data_size_in = len,
		.ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		.repeat = fresh ? 1 : repeat);
	unsigned long runs = fresh ? repeat : 1, i;
	double total = 0;

	for (i = 0; i < runs; i++) {
		opts.duration = 0;
		if (bpf_prog_test_run_opts(s->fd, &opts)) {
			fprintf(stderr, "testrun: test run %s (ifindex %u): %s\n",
				s->name, s->ifindex, strerror(errno));
			return -1;
		}
		total += opts.duration;
	}
	*retval = (int)opts.retval;
	return total / runs;
}

int main(int argc, char **argv)
{
	unsigned long repeat = 1000000, rounds = 5, r;
	unsigned char frame[64];
	struct subject *subj;
	int fresh = 0, opt, i, n;

	while ((opt = getopt(argc, argv, "r:n:f")) != -1) {
		switch (opt) {
		case 'r': repeat = strtoul(optarg, NULL, 0); break;
		case 'n': rounds = strtoul(optarg, NULL, 0); break;
		case 'f': fresh = 1; break;
		default:
			fprintf(stderr, "usage: testrun [-r REPEAT] [-n ROUNDS] [-f] PROG=IFINDEX...\n");
			return 2;
		}
	}
	n = argc - optind;
	if (n < 1 || !repeat || !rounds) {
		fprintf(stderr, "usage: testrun [-r REPEAT] [-n ROUNDS] [-f] PROG=IFINDEX...\n");
		return 2;
	}
	subj = calloc(n, sizeof(*subj));
	if (!subj)
		return 1;
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	for (i = 0; i < n; i++) {
		char *spec = argv[optind + i], *eq = strrchr(spec, '=');

		if (!eq) {
			fprintf(stderr, "testrun: %s: expected PROG=IFINDEX\n", spec);
			return 2;
		}
		*eq = '\0';
		subj[i].spec = spec;
		subj[i].ifindex = strtoul(eq + 1, NULL, 0);
		if (load_subject(&subj[i]))
			return 1;
	}
	build_frame(frame, sizeof(frame));
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < n; i++) {
			int retval = 0;
			double ns = measure(&subj[i], frame, sizeof(frame), repeat, fresh, &retval);

			if (ns < 0)
				return 1;
			printf("%lu %s %u %.3f %d\n", r, subj[i].name, subj[i].ifindex, ns, retval);
			fflush(stdout);
		}
	}
	return 0;
}
