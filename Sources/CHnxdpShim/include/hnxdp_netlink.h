/*
 * hnxdp_netlink.h - the kernel's UAPI netlink headers, for Swift: message
 * types, flags, attribute numbers and fixed headers of netlink, rtnetlink
 * (links, addresses, routes), traffic control and generic netlink
 * (RTM_NEWLINK, NLM_F_DUMP, IFLA_MTU, struct ifinfomsg, TCA_KIND, TC_H_ROOT,
 * CTRL_CMD_GETFAMILY, ...) come from here, not from numbers retyped in Swift.
 * Nothing is declared here.
 *
 * Only headers that include no glibc header: a glibc header included here
 * would be read into this module, which would then own its declarations, and
 * Swift files that import Glibc but not CHnxdpShim would no longer see them
 * (SOCK_DGRAM, struct sockaddr, ...). So <linux/if.h> and <linux/if_arp.h>
 * (which includes it) are left out: it includes <sys/socket.h> whatever the
 * __UAPI_DEF_* guards say. The IFF_* flags glibc has come from Glibc's
 * <net/if.h>; the few numbers only <linux/if.h> or <linux/if_arp.h> would
 * give (IFF_LOWER_UP, IF_OPER_*, ARPHRD_*) are spelled out in LinkInfo.swift.
 *
 * Numbers newer than the build machine's headers (Debian's 6.1) are not here
 * either: the Swift side spells those out with the kernel version that added them.
 */
#ifndef HNXDP_NETLINK_H
#define HNXDP_NETLINK_H

#include <linux/netlink.h>
#include <linux/genetlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <linux/pkt_cls.h>

#endif
