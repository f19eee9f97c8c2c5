/*
 * hnxdp_shim.h - C shim for what Swift cannot call or express directly:
 * the BPF<->Swift contract header, tcx links through libbpf 1.1.2, libbpf's
 * variadic print callback, BPF_PROG_TEST_RUN with its option struct.
 * Every function returns >= 0 on success and -errno on failure.
 */
#ifndef HNXDP_SHIM_H
#define HNXDP_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include "../../../bpf/hnxdp_shared.h"
/* The kernel's netlink numbers for Swift. Named here as well as by the module's
 * umbrella directory so that a module cache made before the header existed is
 * made again (a new file in an umbrella directory does not invalidate it). */
#include "hnxdp_netlink.h"

/* Route libbpf's messages into a buffer (echoed to stderr when verbose). */
void hnxdp_libbpf_capture(int verbose);
/* The last warning/error libbpf printed ("" if none); cleared by the call. */
const char *hnxdp_libbpf_last_message(void);

/* Attach prog_fd as a tcx program on ifindex (ingress != 0: ingress). Returns a link fd. */
int hnxdp_tcx_attach(int prog_fd, int ifindex, int ingress);

/* Whether the kernel has tcx: 1 yes, 0 no, <0 -errno of an unexpected failure. */
int hnxdp_tcx_supported(void);

/*
 * Classic tc (clsact + cls_bpf direct-action), through libbpf's bpf_tc_*.
 * hnxdp_tc_hook_create: 1 when it created the clsact qdisc, 0 when one existed.
 * hnxdp_tc_attach: replace != 0 replaces a filter at handle/priority.
 * hnxdp_tc_query: the program id at handle/priority (-ENOENT: no such filter).
 */
int hnxdp_tc_hook_create(int ifindex);
int hnxdp_tc_hook_destroy(int ifindex);
int hnxdp_tc_attach(int ifindex, int ingress, int prog_fd, uint32_t handle, uint32_t priority, int replace);
int hnxdp_tc_query(int ifindex, int ingress, uint32_t handle, uint32_t priority, uint32_t *prog_id);
int hnxdp_tc_detach(int ifindex, int ingress, uint32_t handle, uint32_t priority);

/* Whether vmlinux BTF (/sys/kernel/btf/vmlinux) has functions named `name1` and
 * `name2`: 1 yes, 0 no, <0 -errno when the BTF cannot be read. One parse of the
 * BTF (several MB) for both. */
int hnxdp_kernel_btf_has_funcs(const char *name1, const char *name2);

/* Insert/replace key -> device ifindex in a DEVMAP/DEVMAP_HASH. */
int hnxdp_devmap_set(int map_fd, uint32_t key, uint32_t ifindex);

/* Run a tc program once (or `repeat` times) on `data` as received on ifindex.
 * Fills *retval and the average *duration_ns; *data_size_out gets the output length. */
int hnxdp_test_run_skb(int prog_fd, const void *data, uint32_t size, uint32_t ifindex,
		       uint32_t repeat, uint32_t *retval, uint32_t *duration_ns, uint32_t *data_size_out);

/* Same for an XDP program (no ifindex: XDP test runs use loopback's rxq). */
int hnxdp_test_run_xdp(int prog_fd, const void *data, uint32_t size, uint32_t repeat,
		       uint32_t *retval, uint32_t *duration_ns);

/* 1 when path is on a BPF filesystem, 0 when not, -errno when it cannot be checked. */
int hnxdp_is_bpffs(const char *path);

/* Move the calling thread into the network namespace of fd (setns CLONE_NEWNET). */
int hnxdp_setns_net(int fd);

/* Blocks SIGINT, SIGTERM and SIGHUP for the process and returns a non-blocking
 * signalfd that reports them (the control plane's event loop polls it). */
int hnxdp_termination_signalfd(void);
/* Reads one signal from that fd: the signal number, 0 when none, -errno. */
int hnxdp_read_signal(int fd);
/* Blocks the `count` signals for the process and returns a non-blocking signalfd
 * that reports them (`hnxdp monitor`: SIGINT, SIGTERM, SIGHUP, SIGWINCH); -errno. */
int hnxdp_signalfd(const int *signals, unsigned int count);

/* Adds (add != 0) or deletes a link-layer multicast address on ifname
 * (SIOCADDMULTI / SIOCDELMULTI, what `ip maddr add|del` does). */
int hnxdp_link_multicast(const char *ifname, const uint8_t mac[6], int add);

/* Sends `repeat` live copies of `frame` through an XDP program that redirects
 * them (BPF_F_TEST_XDP_LIVE_FRAMES), `batch` at a time (0: the kernel's default). */
int hnxdp_test_run_xdp_live(int prog_fd, const void *frame, uint32_t size, uint32_t repeat, uint32_t batch);

/* rtnetlink groups of multicast address notifications (kernel 6.13+; the
 * Debian 6.1 headers predate them). */
#define HNXDP_RTNLGRP_IPV4_MCADDR 37
#define HNXDP_RTNLGRP_IPV6_MCADDR 38

/* A non-blocking NETLINK_ROUTE socket joined to `count` groups (by number).
 * Returns the fd or -errno (a kernel without a group answers -EINVAL). */
int hnxdp_netlink_group_socket(const uint32_t *groups, uint32_t count);
/* Reads and discards every queued datagram; returns how many, or -errno
 * (-ENOBUFS: some were dropped by the kernel, which also means "changed"). */
int hnxdp_netlink_drain(int fd);

#endif
