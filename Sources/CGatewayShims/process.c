/* pidfd_open for gatewayd's supervisor. */
#define _GNU_SOURCE
#include "gateway_process.h"
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

int gw_pidfd_open(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}
