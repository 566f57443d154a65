/* TUN/TAP ioctls (TUNSETIFF and friends) wrapped as plain functions, because Swift cannot
 * import the request macros or the struct ifreq union. Each returns 0 or -errno. */
#ifndef GATEWAY_TUN_H
#define GATEWAY_TUN_H
#include <stdint.h>

/* Flags for gw_tun_create, mirroring IFF_* so Swift need not see <linux/if_tun.h>. */
enum {
    GW_TUN_TAP = 1 << 0,
    GW_TUN_VNET_HDR = 1 << 1,
    GW_TUN_MULTI_QUEUE = 1 << 2,
};

/* Offload bits for gw_tun_set_offload (TUN_F_*). */
enum {
    GW_TUN_F_CSUM = 0x01,
    GW_TUN_F_TSO4 = 0x02,
    GW_TUN_F_TSO6 = 0x04,
    GW_TUN_F_TSO_ECN = 0x08,
    GW_TUN_F_UFO = 0x10,
};

/* Opens /dev/net/tun and attaches it to interface `name` (created if missing) with IFF_NO_PI
 * always set. On success returns the fd and writes the kernel's chosen name (IFNAMSIZ bytes)
 * into name_out; on failure returns -errno. */
int gw_tun_create(const char *name, int flags, char *name_out);
int gw_tun_set_offload(int fd, unsigned int offload);
int gw_tun_set_persist(int fd, int persist);
int gw_tun_set_owner(int fd, int64_t uid);
int gw_tun_set_group(int fd, int64_t gid);
int gw_tun_set_vnet_hdr_size(int fd, int size);
int gw_tun_get_vnet_hdr_size(int fd, int *size);
/* TUNGETIFF: the flags the device was opened with (IFF_* values). */
int gw_tun_get_flags(int fd, int *flags);
/* IFNAMSIZ, for length checks in Swift. */
int gw_ifnamsiz(void);

#endif
