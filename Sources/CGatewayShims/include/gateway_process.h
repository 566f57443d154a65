/* A process call Swift cannot make directly (variadic in C): a pidfd for the supervisor to poll.
 * Returns a descriptor or -errno. */
#ifndef GATEWAY_PROCESS_H
#define GATEWAY_PROCESS_H
#include <sys/types.h>

/* pidfd_open(2): a descriptor that becomes readable when process `pid` exits. */
int gw_pidfd_open(pid_t pid);

#endif
