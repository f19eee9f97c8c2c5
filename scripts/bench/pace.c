// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * pace.c - evenly paced 64-byte UDP sender (bench P7): one frame every 1/RATE s.
 *
 *   pace DEV DST_MAC SRC_IP DST_IP RATE COUNT MAX_SECONDS
 *
 * Sends COUNT copies of a 64-byte Ethernet/IPv4/UDP frame (source MAC: DEV's,
 * ports 1024 -> 9, UDP checksum 0) on DEV (caller's network namespace) through
 * an AF_PACKET socket, frame i at t0 + i/RATE (busy-waits on the clock, so a
 * 100k frames/s stream has no bursts: trafgen's -b/-t cannot pace 64-byte
 * frames that finely here, and `hnxdp gen --rate` sends ~50 ms bursts).
 * Stops after MAX_SECONDS at the latest. Prints one JSON line:
 *   {"sender": "pace", "sent": N, "failed": F, "seconds": S}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
	unsigned char f[60] = { 0 }; /* + 4 bytes FCS = 64 on the wire */
	struct ethhdr *eth = (struct ethhdr *)f;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	struct sockaddr_ll ll = { .sll_family = AF_PACKET };
	unsigned long long count, i, failed = 0;
	unsigned int m[6];
	double rate, maxs, t0, t;
	struct ifreq ifr = { 0 };
	int fd, k;

	if (argc != 8 || sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6 ||
	    (rate = atof(argv[5])) <= 0 || !(count = strtoull(argv[6], NULL, 0)) || (maxs = atof(argv[7])) <= 0 || maxs > 600) {
		fprintf(stderr, "usage: pace DEV DST_MAC SRC_IP DST_IP RATE COUNT MAX_SECONDS (<= 600)\n");
		return 2;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror("pace: socket");
		return 1;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) || !(ll.sll_ifindex = if_nametoindex(argv[1]))) {
		fprintf(stderr, "pace: device %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (k = 0; k < 6; k++)
		eth->h_dest[k] = m[k];
	memcpy(eth->h_source, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->frag_off = htons(IP_DF);
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons(sizeof(f) - sizeof(*eth));
	if (inet_pton(AF_INET, argv[3], &ip->saddr) != 1 || inet_pton(AF_INET, argv[4], &ip->daddr) != 1) {
		fprintf(stderr, "pace: bad IPv4 address\n");
		return 2;
	}
	{ /* IPv4 header checksum */
		unsigned short *w = (unsigned short *)ip;
		unsigned int s = 0;

		for (k = 0; k < 10; k++)
			s += w[k];
		s = (s & 0xffff) + (s >> 16);
		s = (s & 0xffff) + (s >> 16);
		ip->check = ~s;
	}
	udp->source = htons(1024);
	udp->dest = htons(9);
	udp->len = htons(sizeof(f) - sizeof(*eth) - sizeof(*ip));
	ll.sll_halen = ETH_ALEN;
	memcpy(ll.sll_addr, eth->h_dest, ETH_ALEN);
	t0 = now();
	for (i = 0; i < count; i++) {
		double next = t0 + i / rate;

		while ((t = now()) < next)
			;
		if (t - t0 > maxs)
			break;
		if (sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&ll, sizeof(ll)) != sizeof(f))
			failed++;
	}
	printf("{\"sender\": \"pace\", \"sent\": %llu, \"failed\": %llu, \"seconds\": %.6f}\n", i - failed, failed, now() - t0);
	return 0;
}
