#define _GNU_SOURCE
#include "hnxdp_shim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>

_Static_assert(HNXDP_BPF_TCX_INGRESS == 46, "tcx ingress attach type");
_Static_assert(HNXDP_BPF_TCX_EGRESS == 47, "tcx egress attach type");

static int hnxdp_verbose;
static char hnxdp_last[1024];

static int hnxdp_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level == LIBBPF_DEBUG && !hnxdp_verbose)
		return 0;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return n;
	if (level != LIBBPF_DEBUG) {
		size_t len = strnlen(line, sizeof(line));
		while (len && (line[len - 1] == '\n'))
			line[--len] = 0;
		if (len)
			memcpy(hnxdp_last, line, len + 1);
	}
	if (hnxdp_verbose)
		fputs(line, stderr);
	return n;
}

void hnxdp_libbpf_capture(int verbose)
{
	hnxdp_verbose = verbose;
	libbpf_set_print(hnxdp_print);
}

const char *hnxdp_libbpf_last_message(void)
{
	static char out[sizeof(hnxdp_last)];
	memcpy(out, hnxdp_last, sizeof(out));
	hnxdp_last[0] = 0;
	return out;
}

int hnxdp_tcx_attach(int prog_fd, int ifindex, int ingress)
{
	int fd = bpf_link_create(prog_fd, ifindex,
				 ingress ? HNXDP_BPF_TCX_INGRESS : HNXDP_BPF_TCX_EGRESS, NULL);
	return fd < 0 ? -errno : fd;
}

int hnxdp_tcx_supported(void)
{
	/* Querying tcx ingress of lo: EINVAL where the attach type is unknown. */
	LIBBPF_OPTS(bpf_prog_query_opts, opts);

	if (bpf_prog_query_opts(1, HNXDP_BPF_TCX_INGRESS, &opts) == 0)
		return 1;
	return errno == EINVAL ? 0 : -errno;
}

int hnxdp_tc_hook_create(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	int rc = bpf_tc_hook_create(&hook);

	if (rc == -EEXIST)
		return 0;
	return rc < 0 ? rc : 1;
}

int hnxdp_tc_hook_destroy(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	int rc = bpf_tc_hook_destroy(&hook);

	return rc == -ENOENT || rc == -EINVAL ? 0 : rc;
}

int hnxdp_tc_attach(int ifindex, int ingress, int prog_fd, uint32_t handle, uint32_t priority, int replace)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = handle, .priority = priority,
		    .flags = replace ? BPF_TC_F_REPLACE : 0);

	return bpf_tc_attach(&hook, &opts);
}

int hnxdp_tc_query(int ifindex, int ingress, uint32_t handle, uint32_t priority, uint32_t *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
	int rc = bpf_tc_query(&hook, &opts);

	if (rc == 0)
		*prog_id = opts.prog_id;
	return rc;
}

int hnxdp_tc_detach(int ifindex, int ingress, uint32_t handle, uint32_t priority)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);

	return bpf_tc_detach(&hook, &opts);
}

int hnxdp_kernel_btf_has_funcs(const char *name1, const char *name2)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int found;

	if (!btf)
		return -errno;
	found = btf__find_by_name_kind(btf, name1, BTF_KIND_FUNC) > 0 &&
		btf__find_by_name_kind(btf, name2, BTF_KIND_FUNC) > 0;
	btf__free(btf);
	return found;
}

int hnxdp_devmap_set(int map_fd, uint32_t key, uint32_t ifindex)
{
	struct bpf_devmap_val val = { .ifindex = ifindex };
	return bpf_map_update_elem(map_fd, &key, &val, BPF_ANY) ? -errno : 0;
}

int hnxdp_test_run_skb(int prog_fd, const void *data, uint32_t size, uint32_t ifindex,
		       uint32_t repeat, uint32_t *retval, uint32_t *duration_ns, uint32_t *data_size_out)
{
	struct __sk_buff ctx = { .ifindex = ifindex };
	static unsigned char out[65536 + 256];
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = data,
		    .data_size_in = size,
		    .data_out = out,
		    .data_size_out = sizeof(out),
		    .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx),
		    .repeat = repeat);
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return -errno;
	*retval = opts.retval;
	*duration_ns = opts.duration;
	if (data_size_out)
		*data_size_out = opts.data_size_out;
	return 0;
}

int hnxdp_test_run_xdp(int prog_fd, const void *data, uint32_t size, uint32_t repeat,
		       uint32_t *retval, uint32_t *duration_ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = data,
		    .data_size_in = size,
		    .repeat = repeat);
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return -errno;
	*retval = opts.retval;
	*duration_ns = opts.duration;
	return 0;
}

int hnxdp_is_bpffs(const char *path)
{
	struct statfs fs;

	if (statfs(path, &fs))
		return -errno;
	return fs.f_type == BPF_FS_MAGIC;
}

int hnxdp_setns_net(int fd)
{
	return setns(fd, CLONE_NEWNET) ? -errno : 0;
}

int hnxdp_termination_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int hnxdp_read_signal(int fd)
{
	struct signalfd_siginfo info;
	ssize_t n = read(fd, &info, sizeof(info));

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	return n == sizeof(info) ? (int)info.ssi_signo : 0;
}

int hnxdp_signalfd(const int *signals, unsigned int count)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	for (unsigned int i = 0; i < count; i++)
		sigaddset(&set, signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* One ioctl on ifname through a throwaway socket of the current namespace. */
static int ifreq_ioctl(const char *ifname, unsigned long request, struct ifreq *ifr)
{
	int fd, rc = 0;

	if (strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(ifr->ifr_name, ifname);
	if (ioctl(fd, request, ifr))
		rc = -errno;
	close(fd);
	return rc;
}

int hnxdp_link_multicast(const char *ifname, const uint8_t mac[6], int add)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_hwaddr.sa_family = AF_UNSPEC;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	return ifreq_ioctl(ifname, add ? SIOCADDMULTI : SIOCDELMULTI, &ifr);
}

int hnxdp_test_run_xdp_live(int prog_fd, const void *frame, uint32_t size, uint32_t repeat, uint32_t batch)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = frame,
		    .data_size_in = size,
		    .repeat = (int)repeat,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = batch);
	return bpf_prog_test_run_opts(prog_fd, &opts) ? -errno : 0;
}

int hnxdp_netlink_group_socket(const uint32_t *groups, uint32_t count)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
	uint32_t i;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)))
		goto fail;
	for (i = 0; i < count; i++) {
		unsigned int group = groups[i];
		if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)))
			goto fail;
	}
	return fd;
fail:
	i = errno;
	close(fd);
	return -(int)i;
}

int hnxdp_netlink_drain(int fd)
{
	char buf[8192];
	int n = 0;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return n;
			return -errno;
		}
		n++;
	}
}
