/*
 * hnxdp_ethtool.h - thin SIOCETHTOOL helpers for the ethtool commands whose
 * structs end in flexible arrays (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS,
 * ETHTOOL_GFEATURES, ETHTOOL_SFEATURES), which Swift cannot express.
 *
 * Each helper does one ioctl on the caller's socket (any AF_INET/AF_NETLINK
 * socket of the current network namespace) for interface `ifname` and copies
 * the result into the caller's buffers. They return 0 or -errno (-ENODEV: no
 * such interface; -EINVAL: a name of IFNAMSIZ bytes or more).
 *
 * Feature bitmaps are arrays of 32-bit blocks, bit i in block i / 32, bit
 * i % 32, as in struct ethtool_get_features_block.
 */
#ifndef HNXDP_ETHTOOL_H
#define HNXDP_ETHTOOL_H

#include <stddef.h>
#include <stdint.h>

/* ETH_GSTRING_LEN: each feature name occupies this many bytes, NUL-padded. */
#define HNXDP_ETHTOOL_NAME_LEN 32

/* ETHTOOL_SFEATURES result bits (enum ethtool_sfeatures_retval_bits). */
#define HNXDP_ETHTOOL_F_UNSUPPORTED 1u /* bits in valid were not changeable, ignored */
#define HNXDP_ETHTOOL_F_WISH 2u        /* recorded, but the result differs from the request */
#define HNXDP_ETHTOOL_F_COMPAT 4u      /* done through legacy driver callbacks */

/* Number of ETH_SS_FEATURES strings (= feature bits) the kernel reports for ifname. */
int hnxdp_ethtool_feature_count(int fd, const char *ifname, uint32_t *count);

/*
 * The ETH_SS_FEATURES strings: `count` names (from hnxdp_ethtool_feature_count)
 * of HNXDP_ETHTOOL_NAME_LEN bytes each into `names` (count * 32 bytes). Returns
 * -EPROTO (nothing copied) if the kernel's count is no longer `count`.
 */
int hnxdp_ethtool_feature_names(int fd, const char *ifname, uint32_t count, char *names);

/*
 * ETHTOOL_GFEATURES with `blocks` 32-bit blocks: copies available (hw_features),
 * requested (wanted), active and never_changed, `blocks` entries each. Any
 * output pointer may be NULL. `kernel_blocks` (may be NULL) receives the
 * number of blocks the kernel has; blocks beyond what it copied are zeroed.
 */
int hnxdp_ethtool_get_features(int fd, const char *ifname, uint32_t blocks,
                               uint32_t *available, uint32_t *requested,
                               uint32_t *active, uint32_t *never_changed,
                               uint32_t *kernel_blocks);

/*
 * ETHTOOL_SFEATURES with `blocks` 32-bit blocks (must be exactly the kernel's
 * number, or the kernel answers -EINVAL): sets the `valid` bits to the values
 * in `requested`. `result_flags` (may be NULL) receives HNXDP_ETHTOOL_F_* bits.
 */
int hnxdp_ethtool_set_features(int fd, const char *ifname, uint32_t blocks,
                               const uint32_t *valid, const uint32_t *requested,
                               uint32_t *result_flags);

/* Driver name and bus of ifname (ETHTOOL_GDRVINFO), e.g. "e1000e" and "0000:01:00.0". */
int hnxdp_ethtool_driver(const char *ifname, char *driver, size_t len, char *bus_info, size_t bus_len);

/* Receive queues of a device (ETHTOOL_GCHANNELS; 1 when the driver has none), or -errno. */
int hnxdp_ethtool_rx_queues(const char *ifname);

#endif
