// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * protoattach.c - load bpf/bench/hnxdp_proto.bpf.c for one pair, fill its maps
 * and attach it like hnxdp does (tcx VF ingress, synthetic ingress and egress),
 * so the benchmark can compare the prototype with hnxdp on live traffic and
 * under BPF_PROG_TEST_RUN.
 *
 *   protoattach OBJECT VF_IFINDEX SYN_IFINDEX PIN_DIR
 *
 * Ifindexes are resolved in the caller's network namespace (run under
 * `nsenter --net=...`). Pins PIN_DIR/link_{vf_ingress,syn_ingress,syn_egress}
 * (remove them to detach) and PIN_DIR/proto_{vf_ingress,syn_ingress,syn_egress}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../bpf/hnxdp_shared.h"

struct proto_pair {
	__u32 state, vf_ifindex, slot, pad;
};

static int fail(const char *what, const char *name)
{
	fprintf(stderr, "protoattach: %s %s: %s\n", what, name, strerror(errno));
	return 1;
}

static int update(struct bpf_object *obj, const char *map, __u32 key, const void *val)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, map);

	if (!m || bpf_map_update_elem(bpf_map__fd(m), &key, val, BPF_ANY))
		return fail("fill map", map);
	return 0;
}

static int attach(struct bpf_object *obj, const char *prog, unsigned int ifindex, int type,
		  const char *dir, const char *what)
{
	struct bpf_program *p = bpf_object__find_program_by_name(obj, prog);
	char path[512];
	int link;

	if (!p)
		return fail("find program", prog);
	link = bpf_link_create(bpf_program__fd(p), ifindex, type, NULL);
	if (link < 0)
		return fail("attach", prog);
	snprintf(path, sizeof(path), "%s/link_%s", dir, what);
	if (bpf_obj_pin(link, path))
		return fail("pin", path);
	snprintf(path, sizeof(path), "%s/%s", dir, prog);
	if (bpf_obj_pin(bpf_program__fd(p), path))
		return fail("pin", path);
	return 0;
}

int main(int argc, char **argv)
{
	struct hnxdp_vf_entry vf = { 0 };
	struct proto_pair pair = { 0 };
	struct bpf_devmap_val dev = { 0 };
	unsigned int vfi, syn;
	struct bpf_object *obj;

	if (argc != 5) {
		fprintf(stderr, "usage: protoattach OBJECT VF_IFINDEX SYN_IFINDEX PIN_DIR\n");
		return 2;
	}
	vfi = strtoul(argv[2], NULL, 0);
	syn = strtoul(argv[3], NULL, 0);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || libbpf_get_error(obj))
		return fail("open", argv[1]);
	if (bpf_object__load(obj))
		return fail("load", argv[1]);
	vf.syn_ifindex = syn;
	vf.slot = 0;
	pair.state = HNXDP_STATE_ACTIVE;
	pair.vf_ifindex = vfi;
	pair.slot = 0;
	dev.ifindex = vfi;
	if (update(obj, "proto_vfs", vfi, &vf) || update(obj, "proto_pairs", syn, &pair) ||
	    update(obj, "proto_txdev", 0, &dev))
		return 1;
	if (attach(obj, "proto_vf_ingress", vfi, HNXDP_BPF_TCX_INGRESS, argv[4], "vf_ingress") ||
	    attach(obj, "proto_syn_ingress", syn, HNXDP_BPF_TCX_INGRESS, argv[4], "syn_ingress") ||
	    attach(obj, "proto_syn_egress", syn, HNXDP_BPF_TCX_EGRESS, argv[4], "syn_egress"))
		return 1;
	return 0;
}
