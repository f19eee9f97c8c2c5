// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * tpacket_v3.c - AF_PACKET TPACKET_V3 ring reader (bench P5 baseline): count
 * the frames one device receives, the way a classic packet-capture reader does.
 *
 *   tpacket_v3 DEV SECONDS
 *
 * Opens an AF_PACKET socket (ETH_P_ALL, incoming frames only) bound to DEV (in
 * the caller's network namespace), maps a TPACKET_V3 receive ring (64 blocks
 * of 4 MiB, 2 KiB frames, blocks retired after 10 ms), and for SECONDS walks
 * every block the kernel hands over, counting its frames. Prints one JSON line:
 *   {"reader": "...", "dev": DEV, "frames": N, "seconds": S, "fps": N/S, "kernel_drops": D}
 * (kernel_drops: PACKET_STATISTICS tp_drops, frames the ring had no room for).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct tpacket_req3 req = {
		.tp_block_size = 1 << 22,
		.tp_block_nr = 64,
		.tp_frame_size = 1 << 11,
		.tp_retire_blk_tov = 10,
	};
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct tpacket_stats_v3 st = { 0 };
	socklen_t stlen = sizeof(st);
	int fd, ver = TPACKET_V3, one = 1;
	unsigned long long frames = 0, drops = 0;
	unsigned int blk = 0;
	double secs, t0, t1, end;
	uint8_t *ring;

	if (argc != 3 || (secs = atof(argv[2])) <= 0 || secs > 3600) {
		fprintf(stderr, "usage: tpacket_v3 DEV SECONDS (0 < SECONDS <= 3600)\n");
		return 2;
	}
	req.tp_frame_nr = req.tp_block_size / req.tp_frame_size * req.tp_block_nr;
	ll.sll_ifindex = if_nametoindex(argv[1]);
	if (!ll.sll_ifindex) {
		fprintf(stderr, "tpacket_v3: no device %s\n", argv[1]);
		return 1;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: nothing arrives before bind */
	if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))) {
		fprintf(stderr, "tpacket_v3: socket/ring: %s\n", strerror(errno));
		return 1;
	}
	(void)one;
	ring = mmap(NULL, (size_t)req.tp_block_size * req.tp_block_nr, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_LOCKED, fd, 0);
	if (ring == MAP_FAILED)
		ring = mmap(NULL, (size_t)req.tp_block_size * req.tp_block_nr, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		fprintf(stderr, "tpacket_v3: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&ll, sizeof(ll))) {
		fprintf(stderr, "tpacket_v3: bind %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* Frames queued before the window (none should be) are not counted: reset stats. */
	getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &stlen);
	t0 = now();
	end = t0 + secs;
	while ((t1 = now()) < end) {
		struct tpacket_block_desc *bd =
			(struct tpacket_block_desc *)(ring + (size_t)blk * req.tp_block_size);

		if (!(bd->hdr.bh1.block_status & TP_STATUS_USER)) {
			struct pollfd p = { .fd = fd, .events = POLLIN | POLLERR };
			int ms = (int)((end - t1) * 1000) + 1;

			poll(&p, 1, ms < 20 ? ms : 20);
			continue;
		}
		{
			struct tpacket3_hdr *h = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
			unsigned int i, n = bd->hdr.bh1.num_pkts;

			/* Touch each frame header, as a reader would. */
			for (i = 0; i < n; i++) {
				if (h->tp_snaplen)
					frames++;
				h = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
			}
		}
		__sync_synchronize();
		bd->hdr.bh1.block_status = TP_STATUS_KERNEL;
		blk = (blk + 1) % req.tp_block_nr;
	}
	t1 = now();
	stlen = sizeof(st);
	if (!getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &stlen))
		drops = st.tp_drops;
	printf("{\"reader\": \"AF_PACKET TPACKET_V3 ring (64 x 4 MiB blocks)\", \"dev\": \"%s\", "
	       "\"frames\": %llu, \"seconds\": %.6f, \"fps\": %.0f, \"kernel_drops\": %llu}\n",
	       argv[1], frames, t1 - t0, frames / (t1 - t0), drops);
	return 0;
}
