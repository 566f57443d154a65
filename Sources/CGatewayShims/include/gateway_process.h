/* Process calls Swift cannot make directly (variadic in C): a pidfd for the supervisor to poll,
 * and the parent-death signal for its worker. Each returns 0 (or a descriptor) or -errno. */
#ifndef GATEWAY_PROCESS_H
#define GATEWAY_PROCESS_H
#include <sys/types.h>

/* pidfd_open(2): a descriptor that becomes readable when process `pid` exits. */
int gw_pidfd_open(pid_t pid);
/* prctl(PR_SET_PDEATHSIG, signal): the calling process gets `signal` when its parent exits. */
int gw_set_parent_death_signal(int signal);

#endif
