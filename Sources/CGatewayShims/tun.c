/* TUN/TAP ioctl wrappers; see gateway_tun.h. */
#include "gateway_tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int gw_ifnamsiz(void) { return IFNAMSIZ; }

int gw_tun_create(const char *name, int flags, char *name_out) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (name != NULL) {
        if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    }
    ifr.ifr_flags = IFF_NO_PI;
    ifr.ifr_flags |= (flags & GW_TUN_TAP) ? IFF_TAP : IFF_TUN;
    if (flags & GW_TUN_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
    if (flags & GW_TUN_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;

    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (name_out != NULL) {
        memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
        name_out[IFNAMSIZ - 1] = 0;
    }
    return fd;
}

static int simple_ioctl(int fd, unsigned long request, unsigned long arg) {
    return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

int gw_tun_set_offload(int fd, unsigned int offload) { return simple_ioctl(fd, TUNSETOFFLOAD, offload); }
int gw_tun_set_persist(int fd, int persist) { return simple_ioctl(fd, TUNSETPERSIST, persist ? 1 : 0); }
int gw_tun_set_owner(int fd, int64_t uid) { return simple_ioctl(fd, TUNSETOWNER, (unsigned long)uid); }
int gw_tun_set_group(int fd, int64_t gid) { return simple_ioctl(fd, TUNSETGROUP, (unsigned long)gid); }

int gw_tun_set_vnet_hdr_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int gw_tun_get_vnet_hdr_size(int fd, int *size) {
    return ioctl(fd, TUNGETVNETHDRSZ, size) < 0 ? -errno : 0;
}

int gw_tun_get_flags(int fd, int *flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) return -errno;
    *flags = ifr.ifr_flags;
    return 0;
}
