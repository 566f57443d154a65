/* The libnl-3 and libnl-route-3 headers the link layer uses, gathered into one module. */
#ifndef GATEWAY_CNETLINK_SHIM_H
#define GATEWAY_CNETLINK_SHIM_H
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/socket.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include "kernel_failure.h"
#endif
