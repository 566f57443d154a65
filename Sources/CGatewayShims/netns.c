/* Named network namespace plumbing (mounts and unshare); see gateway_netns.h. */
#define _GNU_SOURCE
#include "gateway_netns.h"

#include <errno.h>
#include <pthread.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

/* Two first-time callers racing could each turn the directory into a mount point and stack
 * two bind mounts; one lock keeps it to one. */
static pthread_mutex_t prepare_lock = PTHREAD_MUTEX_INITIALIZER;

int gw_netns_prepare_dir(const char *dir) {
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return -errno;
    pthread_mutex_lock(&prepare_lock);
    int rc = 0;
    int made_mount_point = 0;
    while (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
        /* EINVAL: not a mount point yet. Bind it onto itself once, then retry. */
        if (errno != EINVAL || made_mount_point) {
            rc = -errno;
            break;
        }
        if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) {
            rc = -errno;
            break;
        }
        made_mount_point = 1;
    }
    pthread_mutex_unlock(&prepare_lock);
    return rc;
}

int gw_unshare_net(void) { return unshare(CLONE_NEWNET) < 0 ? -errno : 0; }

int gw_netns_bind_current_thread(const char *path) {
    /* thread-self, not self: only this thread switched namespace. */
    return mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0 ? -errno : 0;
}

int gw_netns_unmount(const char *path) { return umount2(path, MNT_DETACH) < 0 ? -errno : 0; }

int gw_netns_check_fd(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0) return -errno;
    if (fs.f_type != NSFS_MAGIC) return 1;
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type < 0) return -errno;
    return type == CLONE_NEWNET ? 0 : 2;
}
