/*
 * hnxdp_xsk.h - AF_XDP through libxdp's <xdp/xsk.h> for Swift: UMEM and
 * socket life cycle (zero-copy first, copy mode as fallback), and batched
 * ring operations over the static inline ring helpers Swift cannot call.
 * Functions returning int return >= 0 on success and -errno on failure.
 */
#ifndef HNXDP_XSK_H
#define HNXDP_XSK_H

#include <stdint.h>

/* A UMEM registered with the kernel (libxdp's xsk_umem and its first fill/completion rings). */
struct hnxdp_xsk_umem;
/* One AF_XDP socket bound to (device, queue) on a UMEM, with its RX/TX and fill/completion rings. */
struct hnxdp_xsk_socket;

/* Same layout as the kernel's struct xdp_desc. */
struct hnxdp_xsk_desc {
	uint64_t addr;
	uint32_t len;
	uint32_t options;
};

/* The kernel's per-socket drop counters (XDP_STATISTICS). */
struct hnxdp_xsk_socket_stats {
	uint64_t rx_dropped;
	uint64_t rx_invalid_descs;
	uint64_t tx_invalid_descs;
	uint64_t rx_ring_full;
	uint64_t rx_fill_ring_empty_descs;
	uint64_t tx_ring_empty_descs;
};

/* Registers `area` (page aligned, `size` bytes) as a UMEM of `frame_size` chunks. */
int hnxdp_xsk_umem_create(void *area, uint64_t size, uint32_t frame_size, uint32_t ring_size,
			  struct hnxdp_xsk_umem **out);
/* Unregisters the UMEM; -EBUSY while sockets use it. */
int hnxdp_xsk_umem_destroy(struct hnxdp_xsk_umem *umem);

/*
 * Creates a socket on ifname/queue with RX and TX rings of ring_size. The
 * first socket of a UMEM binds in zero-copy mode when `zerocopy` is set,
 * else in copy mode; later sockets share the UMEM (own fill/completion rings)
 * and get the mode of the first (the kernel's rule; `zerocopy` is ignored).
 * When the first socket's bind fails the UMEM is registered again, so the
 * caller may try another mode. *bound_zerocopy tells the mode the kernel
 * reports for the bound socket. No XDP program is loaded
 * (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD): hnxdp steers with its own.
 */
int hnxdp_xsk_socket_create(struct hnxdp_xsk_umem *umem, const char *ifname, uint32_t queue,
			    uint32_t ring_size, int zerocopy, struct hnxdp_xsk_socket **out,
			    int *bound_zerocopy);
void hnxdp_xsk_socket_destroy(struct hnxdp_xsk_socket *sock);
int hnxdp_xsk_socket_fd(const struct hnxdp_xsk_socket *sock);

/* Free slots in the fill ring (up to `max`). */
uint32_t hnxdp_xsk_fill_free(struct hnxdp_xsk_socket *sock, uint32_t max);
/* Puts up to n frame addresses in the fill ring; returns how many went in. */
uint32_t hnxdp_xsk_fill(struct hnxdp_xsk_socket *sock, const uint64_t *addrs, uint32_t n);
/* Takes up to max received descriptors off the RX ring. */
uint32_t hnxdp_xsk_rx(struct hnxdp_xsk_socket *sock, struct hnxdp_xsk_desc *out, uint32_t max);
/* Puts up to n descriptors on the TX ring; returns how many went in. */
uint32_t hnxdp_xsk_tx(struct hnxdp_xsk_socket *sock, const struct hnxdp_xsk_desc *descs, uint32_t n);
/* Takes up to max completed TX addresses off the completion ring. */
uint32_t hnxdp_xsk_completions(struct hnxdp_xsk_socket *sock, uint64_t *out, uint32_t max);
/* Descriptors the kernel has not yet taken off the TX ring. */
uint32_t hnxdp_xsk_tx_pending(struct hnxdp_xsk_socket *sock);

/* need_wakeup flags of the fill and TX rings (1: the kernel wants a syscall). */
int hnxdp_xsk_fill_needs_wakeup(const struct hnxdp_xsk_socket *sock);
int hnxdp_xsk_tx_needs_wakeup(const struct hnxdp_xsk_socket *sock);
/* Wakes the kernel for TX (sendto) / RX (recvfrom); 0 or -errno (EAGAIN, EBUSY, ENOBUFS: try again). */
int hnxdp_xsk_kick_tx(struct hnxdp_xsk_socket *sock);
int hnxdp_xsk_kick_rx(struct hnxdp_xsk_socket *sock);
/* Pending socket error (SO_ERROR, positive errno; ENETDOWN once the device is gone), 0 when none. */
int hnxdp_xsk_socket_error(const struct hnxdp_xsk_socket *sock);
int hnxdp_xsk_socket_statistics(const struct hnxdp_xsk_socket *sock, struct hnxdp_xsk_socket_stats *out);

/* Attaches an XDP program to ifindex through a BPF link (native mode where the driver has it). Returns the link fd. */
int hnxdp_xdp_link_create(int prog_fd, int ifindex);

#endif
