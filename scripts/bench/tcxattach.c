// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * tcxattach.c - attach a benchmark baseline program to tcx ingress (bench P1b)
 * or egress (P4b), the hooks hnxdp uses, and pin the link so it outlives this
 * process.
 *
 *   tcxattach OBJECT DEV_IFINDEX TARGET_IFINDEX LINK_PIN [egress]
 *
 * Loads OBJECT (its first program, as a tc classifier) with the `const volatile`
 * global `redirect_ifindex` set to TARGET_IFINDEX before load, attaches it at
 * tcx ingress (or egress) of DEV_IFINDEX (resolved in the caller's network namespace: run
 * under `nsenter --net=...`) and pins the link at LINK_PIN. Remove the pin (or
 * the device) to detach.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define BENCH_BPF_TCX_INGRESS 46 /* not named by the 6.1 UAPI headers */
#define BENCH_BPF_TCX_EGRESS 47

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	unsigned int dev, target;
	int link, egress;

	if (argc != 5 && !(argc == 6 && strcmp(argv[5], "egress") == 0)) {
		fprintf(stderr, "usage: tcxattach OBJECT DEV_IFINDEX TARGET_IFINDEX LINK_PIN [egress]\n");
		return 2;
	}
	egress = argc == 6;
	dev = strtoul(argv[2], NULL, 0);
	target = strtoul(argv[3], NULL, 0);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || libbpf_get_error(obj)) {
		fprintf(stderr, "tcxattach: open %s: failed\n", argv[1]);
		return 1;
	}
	prog = bpf_object__next_program(obj, NULL);
	if (!prog) {
		fprintf(stderr, "tcxattach: %s: no program\n", argv[1]);
		return 1;
	}
	bpf_program__set_type(prog, BPF_PROG_TYPE_SCHED_CLS);
	bpf_object__for_each_map(map, obj) {
		const void *init;
		size_t sz = 0;
		char *data;

		if (!strstr(bpf_map__name(map), ".rodata"))
			continue;
		init = bpf_map__initial_value(map, &sz);
		if (!init || sz < sizeof(target) || !(data = malloc(sz))) {
			fprintf(stderr, "tcxattach: %s: no redirect_ifindex\n", argv[1]);
			return 1;
		}
		memcpy(data, init, sz);
		memcpy(data, &target, sizeof(target)); /* redirect_ifindex is the only global */
		if (bpf_map__set_initial_value(map, data, sz)) {
			fprintf(stderr, "tcxattach: %s: set redirect_ifindex failed\n", argv[1]);
			return 1;
		}
		free(data);
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "tcxattach: load %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	link = bpf_link_create(bpf_program__fd(prog), dev, egress ? BENCH_BPF_TCX_EGRESS : BENCH_BPF_TCX_INGRESS, NULL);
	if (link < 0) {
		fprintf(stderr, "tcxattach: attach tcx %s on ifindex %u: %s\n", egress ? "egress" : "ingress", dev, strerror(errno));
		return 1;
	}
	if (bpf_obj_pin(link, argv[4])) {
		fprintf(stderr, "tcxattach: pin link at %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	return 0;
}
