// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdpdrop.c - attach the counting XDP_DROP sink (bpf/bench/xdp_drop.bpf.c) and
 * read its counter (bench G1).
 *
 *   xdpdrop attach OBJECT IFINDEX MAP_PIN   native XDP on IFINDEX (caller's netns:
 *                                           run under nsenter --net=...), pin the
 *                                           counter map at MAP_PIN
 *   xdpdrop count MAP_PIN                   print the frames counted so far (all CPUs)
 *
 * The XDP program stays attached (netlink attachment) until the device goes or
 * `ip link set DEV xdp off`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int count(const char *pin)
{
	int fd = bpf_obj_get(pin), ncpu = libbpf_num_possible_cpus(), i;
	unsigned long long *v, sum = 0;
	__u32 k = 0;

	if (fd < 0 || ncpu <= 0 || !(v = calloc(ncpu, sizeof(*v)))) {
		fprintf(stderr, "xdpdrop: open %s: %s\n", pin, strerror(errno));
		return 1;
	}
	if (bpf_map_lookup_elem(fd, &k, v)) {
		fprintf(stderr, "xdpdrop: read %s: %s\n", pin, strerror(errno));
		return 1;
	}
	for (i = 0; i < ncpu; i++)
		sum += v[i];
	printf("%llu\n", sum);
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	int ifindex;

	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	if (argc == 3 && !strcmp(argv[1], "count"))
		return count(argv[2]);
	if (argc != 5 || strcmp(argv[1], "attach")) {
		fprintf(stderr, "usage: xdpdrop attach OBJECT IFINDEX MAP_PIN | xdpdrop count MAP_PIN\n");
		return 2;
	}
	ifindex = atoi(argv[3]);
	obj = bpf_object__open_file(argv[2], NULL);
	if (!obj || libbpf_get_error(obj) || bpf_object__load(obj)) {
		fprintf(stderr, "xdpdrop: load %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	prog = bpf_object__next_program(obj, NULL);
	map = bpf_object__next_map(obj, NULL);
	if (!prog || !map) {
		fprintf(stderr, "xdpdrop: %s: no program or map\n", argv[2]);
		return 1;
	}
	if (bpf_xdp_attach(ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL)) {
		fprintf(stderr, "xdpdrop: attach XDP on ifindex %d: %s\n", ifindex, strerror(errno));
		return 1;
	}
	if (bpf_map__pin(map, argv[4])) {
		fprintf(stderr, "xdpdrop: pin map at %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	return 0;
}
