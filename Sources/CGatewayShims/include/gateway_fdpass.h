/* One message with at most one file descriptor beside it (SCM_RIGHTS), on a SOCK_SEQPACKET
 * socket: the CMSG_* macros that build the control message cannot be written in Swift. */
#ifndef GATEWAY_FDPASS_H
#define GATEWAY_FDPASS_H
#include <stddef.h>
#include <sys/types.h>

/* Sends `length` bytes of `bytes` and, when fd >= 0, that descriptor with them. Returns the
 * bytes sent or -errno; retries EINTR. */
ssize_t gw_send_with_fd(int socket, const void *bytes, size_t length, int fd);
/* Receives one message into `buffer`; a descriptor that came with it is stored in *fd (else -1),
 * close-on-exec. Returns the bytes received (0: the peer has gone) or -errno; a message longer
 * than `capacity` or more than one descriptor is -EMSGSIZE (any descriptors are closed). */
ssize_t gw_receive_with_fd(int socket, void *buffer, size_t capacity, int *fd);

#endif
