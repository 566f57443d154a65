/* Linux system headers that the Glibc module does not export to Swift (epoll, eventfd, sendmmsg). */
#ifndef GATEWAY_SYS_H
#define GATEWAY_SYS_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif
