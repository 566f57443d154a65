/* libseccomp (pkg-config libseccomp) for the worker's system-call filter, and the prctl and raw
 * syscall calls Swift cannot make because their C declarations are variadic. */
#ifndef GATEWAY_CSECCOMP_SHIM_H
#define GATEWAY_CSECCOMP_SHIM_H
#include <errno.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

/* unistd.h declares these only under _GNU_SOURCE, which the Glibc module is built without. */
extern int setresuid(uid_t ruid, uid_t euid, uid_t suid);
extern int setresgid(gid_t rgid, gid_t egid, gid_t sgid);

/* setresgid(gid, gid, gid) through glibc, which applies it to every thread; 0 or -errno. */
static inline int gw_setresgid(gid_t gid) { return setresgid(gid, gid, gid) < 0 ? -errno : 0; }

/* setresuid(uid, uid, uid) likewise; 0 or -errno. */
static inline int gw_setresuid(uid_t uid) { return setresuid(uid, uid, uid) < 0 ? -errno : 0; }

/* prctl(PR_CAPBSET_DROP, cap); 0 or -errno. */
static inline int gw_capbset_drop(int cap) {
    return prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

/* prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL); 0 or -errno. */
static inline int gw_ambient_clear_all(void) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

/* prctl(PR_SET_NO_NEW_PRIVS, 1); 0 or -errno. */
static inline int gw_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

/* prctl(PR_SET_PDEATHSIG, signal); 0 or -errno. */
static inline int gw_set_parent_death_signal_after_drop(int signal) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

/* prctl(PR_GET_PDEATHSIG): the signal set, or -errno. */
static inline int gw_parent_death_signal(void) {
    int signal = 0;
    return prctl(PR_GET_PDEATHSIG, (unsigned long)&signal, 0UL, 0UL, 0UL) < 0 ? -errno : signal;
}

/* syscall(number, a0, a1, a2, a3) with errno folded in: the result, or -errno. */
static inline long gw_raw_syscall(long number, long a0, long a1, long a2, long a3) {
    long rc = syscall(number, a0, a1, a2, a3);
    return rc < 0 ? -errno : rc;
}

#endif
