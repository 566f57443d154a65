/* CPU pinning, per-thread namespace switching and malloc trimming; see gateway_affinity.h. */
#define _GNU_SOURCE
#include "gateway_affinity.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int gw_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    return rc == 0 ? 0 : -rc;
}

int gw_current_thread_single_cpu(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0) return -1;
    if (CPU_COUNT(&set) != 1) return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set)) return i;
    return -1;
}

int gw_setns_net(int fd) { return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0; }

void gw_release_free_memory(void) { malloc_trim(0); }

int gw_current_thread_id(void) { return (int)syscall(SYS_gettid); }

int gw_set_thread_nice(int nice) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    return setpriority(PRIO_PROCESS, (id_t)tid, nice) == 0 ? 0 : -errno;
}

int gw_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name) == 0 ? 0 : -errno;
}

int gw_thread_nice(void) {
    return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
}
