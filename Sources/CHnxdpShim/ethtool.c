/*
 * ethtool.c - thin SIOCETHTOOL helpers; see include/hnxdp_ethtool.h.
 */
#include "hnxdp_ethtool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

_Static_assert(HNXDP_ETHTOOL_NAME_LEN == ETH_GSTRING_LEN, "ETH_GSTRING_LEN");
_Static_assert(HNXDP_ETHTOOL_F_UNSUPPORTED == ETHTOOL_F_UNSUPPORTED, "ETHTOOL_F_UNSUPPORTED");
_Static_assert(HNXDP_ETHTOOL_F_WISH == ETHTOOL_F_WISH, "ETHTOOL_F_WISH");
_Static_assert(HNXDP_ETHTOOL_F_COMPAT == ETHTOOL_F_COMPAT, "ETHTOOL_F_COMPAT");

/* Upper bound on the blocks we ask for: the kernel has well under 128 features. */
#define HNXDP_ETHTOOL_MAX_BLOCKS 64u

/* One SIOCETHTOOL ioctl with `data` as ifr_data; returns the ioctl's result or -errno. */
static int ethtool_ioctl(int fd, const char *ifname, void *data)
{
	struct ifreq ifr;
	size_t len;
	int ret;

	if (!ifname)
		return -EINVAL;
	len = strlen(ifname);
	if (len == 0 || len >= IFNAMSIZ)
		return -EINVAL;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, len);
	ifr.ifr_data = data;
	do {
		ret = ioctl(fd, SIOCETHTOOL, &ifr);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

int hnxdp_ethtool_feature_count(int fd, const char *ifname, uint32_t *count)
{
	/* struct ethtool_sset_info followed by one data[] entry, 8-byte aligned. */
	uint64_t buf[(sizeof(struct ethtool_sset_info) + sizeof(uint32_t) + 7) / 8];
	struct ethtool_sset_info *info = (struct ethtool_sset_info *)buf;
	int ret;

	memset(buf, 0, sizeof(buf));
	info->cmd = ETHTOOL_GSSET_INFO;
	info->sset_mask = 1ULL << ETH_SS_FEATURES;
	ret = ethtool_ioctl(fd, ifname, info);
	if (ret < 0)
		return ret;
	if (!(info->sset_mask & (1ULL << ETH_SS_FEATURES)))
		return -EOPNOTSUPP;
	if (count)
		*count = info->data[0];
	return 0;
}

int hnxdp_ethtool_feature_names(int fd, const char *ifname, uint32_t count, char *names)
{
	struct ethtool_gstrings *gs;
	uint32_t now;
	int ret;

	if (!names && count)
		return -EINVAL;
	if (count > HNXDP_ETHTOOL_MAX_BLOCKS * 32)
		return -E2BIG;
	/* The kernel writes as many strings as it has now, whatever len says. */
	ret = hnxdp_ethtool_feature_count(fd, ifname, &now);
	if (ret < 0)
		return ret;
	if (now != count)
		return -EPROTO;
	gs = calloc(1, sizeof(*gs) + (size_t)count * ETH_GSTRING_LEN);
	if (!gs)
		return -ENOMEM;
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = ETH_SS_FEATURES;
	gs->len = count;
	ret = ethtool_ioctl(fd, ifname, gs);
	if (ret >= 0 && gs->len != count)
		ret = -EPROTO;
	if (ret >= 0) {
		memcpy(names, gs->data, (size_t)count * ETH_GSTRING_LEN);
		ret = 0;
	}
	free(gs);
	return ret;
}

/*
 * A zeroed ETHTOOL_GFEATURES or ETHTOOL_SFEATURES request for `blocks` blocks:
 * both are { cmd, size, features[size] } and differ only in the block type.
 * NULL with errno EINVAL (blocks out of range) or ENOMEM.
 */
_Static_assert(offsetof(struct ethtool_gfeatures, size) == offsetof(struct ethtool_sfeatures, size) &&
	       offsetof(struct ethtool_gfeatures, features) == offsetof(struct ethtool_sfeatures, features),
	       "ethtool_gfeatures and ethtool_sfeatures no longer share their header");
static void *features_request(uint32_t cmd, uint32_t blocks, size_t block_size)
{
	struct ethtool_gfeatures *req;

	if (blocks == 0 || blocks > HNXDP_ETHTOOL_MAX_BLOCKS) {
		errno = EINVAL;
		return NULL;
	}
	req = calloc(1, sizeof(*req) + blocks * block_size);
	if (!req)
		return NULL;
	req->cmd = cmd;
	req->size = blocks;
	return req;
}

int hnxdp_ethtool_get_features(int fd, const char *ifname, uint32_t blocks,
                               uint32_t *available, uint32_t *requested,
                               uint32_t *active, uint32_t *never_changed,
                               uint32_t *kernel_blocks)
{
	struct ethtool_gfeatures *gf;
	uint32_t i, copied;
	int ret;

	gf = features_request(ETHTOOL_GFEATURES, blocks, sizeof(gf->features[0]));
	if (!gf)
		return -errno;
	ret = ethtool_ioctl(fd, ifname, gf);
	if (ret >= 0) {
		/* On return size is the kernel's block count; it copied min(ours, its). */
		copied = gf->size < blocks ? gf->size : blocks;
		for (i = 0; i < blocks; i++) {
			const struct ethtool_get_features_block *b = &gf->features[i];
			int have = i < copied;

			if (available)
				available[i] = have ? b->available : 0;
			if (requested)
				requested[i] = have ? b->requested : 0;
			if (active)
				active[i] = have ? b->active : 0;
			if (never_changed)
				never_changed[i] = have ? b->never_changed : 0;
		}
		if (kernel_blocks)
			*kernel_blocks = gf->size;
		ret = 0;
	}
	free(gf);
	return ret;
}

int hnxdp_ethtool_set_features(int fd, const char *ifname, uint32_t blocks,
                               const uint32_t *valid, const uint32_t *requested,
                               uint32_t *result_flags)
{
	struct ethtool_sfeatures *sf;
	uint32_t i;
	int ret;

	if (!valid || !requested)
		return -EINVAL;
	sf = features_request(ETHTOOL_SFEATURES, blocks, sizeof(sf->features[0]));
	if (!sf)
		return -errno;
	for (i = 0; i < blocks; i++) {
		sf->features[i].valid = valid[i];
		sf->features[i].requested = requested[i];
	}
	ret = ethtool_ioctl(fd, ifname, sf);
	free(sf);
	if (ret < 0)
		return ret;
	if (result_flags)
		*result_flags = (uint32_t)ret;
	return 0;
}

/* One ethtool command on a throwaway socket of the current namespace. */
static int ethtool_oneshot(const char *ifname, void *data)
{
	int fd, ret;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = ethtool_ioctl(fd, ifname, data);
	close(fd);
	return ret < 0 ? ret : 0;
}

int hnxdp_ethtool_driver(const char *ifname, char *driver, size_t len, char *bus_info, size_t bus_len)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	int rc;

	if (!len || !bus_len)
		return -EINVAL;
	rc = ethtool_oneshot(ifname, &info);
	if (!rc) {
		snprintf(driver, len, "%s", info.driver);
		snprintf(bus_info, bus_len, "%s", info.bus_info);
	}
	return rc;
}

int hnxdp_ethtool_rx_queues(const char *ifname)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	int rc, n;

	rc = ethtool_oneshot(ifname, &ch);
	if (rc)
		return rc == -EOPNOTSUPP ? 1 : rc;
	n = ch.rx_count > ch.combined_count ? ch.rx_count : ch.combined_count;
	return n > 0 ? n : 1;
}
