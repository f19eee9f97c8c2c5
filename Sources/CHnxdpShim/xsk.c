/*
 * xsk.c - AF_XDP sockets over libxdp for Swift (see include/hnxdp_xsk.h).
 */
#include "hnxdp_xsk.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_OPTIONS
#define XDP_OPTIONS 8
struct xdp_options {
	__u32 flags;
};
#define XDP_OPTIONS_ZEROCOPY (1 << 0)
#endif

_Static_assert(sizeof(struct hnxdp_xsk_desc) == sizeof(struct xdp_desc), "hnxdp_xsk_desc mirrors xdp_desc");
_Static_assert(sizeof(struct hnxdp_xsk_socket_stats) == sizeof(struct xdp_statistics),
	       "hnxdp_xsk_socket_stats mirrors xdp_statistics");

struct hnxdp_xsk_umem {
	struct xsk_umem *umem;
	struct xsk_ring_prod fill; /* the UMEM's own rings, taken over by its first socket */
	struct xsk_ring_cons comp;
	void *area;
	uint64_t size;
	uint32_t frame_size;
	uint32_t ring_size;
	int sockets;
};

struct hnxdp_xsk_socket {
	struct xsk_socket *xsk;
	struct hnxdp_xsk_umem *umem;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	int fd;
};

static int umem_register(struct hnxdp_xsk_umem *u)
{
	struct xsk_umem_config cfg = {
		.fill_size = u->ring_size,
		.comp_size = u->ring_size,
		.frame_size = u->frame_size,
		.frame_headroom = 0,
		.flags = 0,
	};
	memset(&u->fill, 0, sizeof(u->fill));
	memset(&u->comp, 0, sizeof(u->comp));
	return xsk_umem__create(&u->umem, u->area, u->size, &u->fill, &u->comp, &cfg);
}

int hnxdp_xsk_umem_create(void *area, uint64_t size, uint32_t frame_size, uint32_t ring_size,
			  struct hnxdp_xsk_umem **out)
{
	struct hnxdp_xsk_umem *u;
	int err;

	if (!area || !out || !frame_size || (ring_size & (ring_size - 1)) || !ring_size)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->area = area;
	u->size = size;
	u->frame_size = frame_size;
	u->ring_size = ring_size;
	err = umem_register(u);
	if (err) {
		free(u);
		return err;
	}
	*out = u;
	return 0;
}

int hnxdp_xsk_umem_destroy(struct hnxdp_xsk_umem *u)
{
	int err;

	if (!u)
		return 0;
	if (u->sockets)
		return -EBUSY;
	err = xsk_umem__delete(u->umem);
	if (err)
		return err;
	free(u);
	return 0;
}

static int socket_is_zerocopy(int fd)
{
	struct xdp_options opts = { 0 };
	socklen_t len = sizeof(opts);

	if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len))
		return 0;
	return !!(opts.flags & XDP_OPTIONS_ZEROCOPY);
}

static int socket_bind(struct hnxdp_xsk_umem *u, struct hnxdp_xsk_socket *s, const char *ifname,
		       uint32_t queue, uint32_t ring_size, uint16_t bind_flags)
{
	struct xsk_socket_config cfg = {
		.rx_size = ring_size,
		.tx_size = ring_size,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = 0,
		.bind_flags = bind_flags,
	};
	return xsk_socket__create_shared(&s->xsk, ifname, queue, u->umem, &s->rx, &s->tx, &s->fill, &s->comp,
					 &cfg);
}

int hnxdp_xsk_socket_create(struct hnxdp_xsk_umem *u, const char *ifname, uint32_t queue,
			    uint32_t ring_size, int zerocopy, struct hnxdp_xsk_socket **out,
			    int *bound_zerocopy)
{
	struct hnxdp_xsk_socket *s;
	uint16_t flags;
	int err;

	if (!u || !ifname || !out || !ring_size || (ring_size & (ring_size - 1)))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->umem = u;
	/* Shared UMEM: the kernel ignores mode flags and uses the first socket's. */
	flags = u->sockets ? 0 : ((zerocopy ? XDP_ZEROCOPY : XDP_COPY) | XDP_USE_NEED_WAKEUP);
	err = socket_bind(u, s, ifname, queue, ring_size, flags);
	if (err) {
		free(s);
		if (u->sockets == 0) {
			/* libxdp leaves the UMEM's first socket half set up after a failed
			 * bind (its rings exist); register the UMEM afresh so the caller can
			 * bind again (e.g. in copy mode). */
			struct xsk_umem *old = u->umem;
			int rerr;

			u->umem = NULL;
			xsk_umem__delete(old);
			rerr = umem_register(u);
			if (rerr)
				return rerr;
		}
		return err;
	}
	s->fd = xsk_socket__fd(s->xsk);
	u->sockets++;
	if (bound_zerocopy)
		*bound_zerocopy = socket_is_zerocopy(s->fd);
	*out = s;
	return 0;
}

void hnxdp_xsk_socket_destroy(struct hnxdp_xsk_socket *s)
{
	if (!s)
		return;
	xsk_socket__delete(s->xsk);
	s->umem->sockets--;
	free(s);
}

int hnxdp_xsk_socket_fd(const struct hnxdp_xsk_socket *s)
{
	return s->fd;
}

uint32_t hnxdp_xsk_fill_free(struct hnxdp_xsk_socket *s, uint32_t max)
{
	return xsk_prod_nb_free(&s->fill, max);
}

/* Up to n slots of a producer ring at *idx; how many (0: full). libbpf's
 * reserve is all-or-nothing, so a ring with fewer free slots gives what fits. */
static uint32_t reserve_what_fits(struct xsk_ring_prod *ring, uint32_t n, uint32_t *idx)
{
	uint32_t got;

	if (!n)
		return 0;
	got = xsk_ring_prod__reserve(ring, n, idx);
	if (got)
		return got;
	got = xsk_prod_nb_free(ring, n);
	if (!got || xsk_ring_prod__reserve(ring, got, idx) != got)
		return 0;
	return got;
}

uint32_t hnxdp_xsk_fill(struct hnxdp_xsk_socket *s, const uint64_t *addrs, uint32_t n)
{
	uint32_t idx = 0, got, i;

	got = reserve_what_fits(&s->fill, n, &idx);
	for (i = 0; i < got; i++)
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = addrs[i];
	xsk_ring_prod__submit(&s->fill, got);
	return got;
}

uint32_t hnxdp_xsk_rx(struct hnxdp_xsk_socket *s, struct hnxdp_xsk_desc *out, uint32_t max)
{
	uint32_t idx = 0, got, i;

	got = xsk_ring_cons__peek(&s->rx, max, &idx);
	for (i = 0; i < got; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&s->rx, idx + i);

		out[i].addr = d->addr;
		out[i].len = d->len;
		out[i].options = d->options;
	}
	if (got)
		xsk_ring_cons__release(&s->rx, got);
	return got;
}

uint32_t hnxdp_xsk_tx(struct hnxdp_xsk_socket *s, const struct hnxdp_xsk_desc *descs, uint32_t n)
{
	uint32_t idx = 0, got, i;

	got = reserve_what_fits(&s->tx, n, &idx);
	for (i = 0; i < got; i++) {
		struct xdp_desc *d = xsk_ring_prod__tx_desc(&s->tx, idx + i);

		d->addr = descs[i].addr;
		d->len = descs[i].len;
		d->options = 0;
	}
	xsk_ring_prod__submit(&s->tx, got);
	return got;
}

uint32_t hnxdp_xsk_completions(struct hnxdp_xsk_socket *s, uint64_t *out, uint32_t max)
{
	uint32_t idx = 0, got, i;

	got = xsk_ring_cons__peek(&s->comp, max, &idx);
	for (i = 0; i < got; i++)
		out[i] = *xsk_ring_cons__comp_addr(&s->comp, idx + i);
	if (got)
		xsk_ring_cons__release(&s->comp, got);
	return got;
}

uint32_t hnxdp_xsk_tx_pending(struct hnxdp_xsk_socket *s)
{
	return s->tx.size - xsk_prod_nb_free(&s->tx, s->tx.size);
}

int hnxdp_xsk_fill_needs_wakeup(const struct hnxdp_xsk_socket *s)
{
	return xsk_ring_prod__needs_wakeup(&s->fill);
}

int hnxdp_xsk_tx_needs_wakeup(const struct hnxdp_xsk_socket *s)
{
	return xsk_ring_prod__needs_wakeup(&s->tx);
}

int hnxdp_xsk_kick_tx(struct hnxdp_xsk_socket *s)
{
	if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
		return 0;
	return -errno;
}

int hnxdp_xsk_kick_rx(struct hnxdp_xsk_socket *s)
{
	if (recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) >= 0)
		return 0;
	return -errno;
}

int hnxdp_xsk_socket_error(const struct hnxdp_xsk_socket *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

int hnxdp_xsk_socket_statistics(const struct hnxdp_xsk_socket *s, struct hnxdp_xsk_socket_stats *out)
{
	struct xdp_statistics st;
	socklen_t len = sizeof(st);

	memset(&st, 0, sizeof(st));
	if (getsockopt(s->fd, SOL_XDP, XDP_STATISTICS, &st, &len))
		return -errno;
	memcpy(out, &st, sizeof(*out));
	return 0;
}

int hnxdp_xdp_link_create(int prog_fd, int ifindex)
{
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, NULL);

	return fd < 0 ? -errno : fd;
}
