/* The kernel's own word on a failed rtnetlink request: its errno and, when it sent one, the
 * extended-ack text (NLMSGERR_ATTR_MSG, e.g. "The interface netns is immutable"). libnl folds
 * both into coarser NLE_* codes ("Unspecific failure"), so a socket records them here. */
#ifndef GATEWAY_CNETLINK_KERNEL_FAILURE_H
#define GATEWAY_CNETLINK_KERNEL_FAILURE_H
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/handlers.h>
#include <netlink/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct gw_nl_failure {
    int error;          /* positive errno, 0 when nothing was recorded */
    char message[256];  /* NUL-terminated extended-ack message, or empty */
};

/* libnl error callback: records, then NL_STOP so libnl returns its usual code. */
static inline int gw_nl_failure_record(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg) {
    (void)nla;
    struct gw_nl_failure *out = (struct gw_nl_failure *)arg;
    out->error = -e->error;
    out->message[0] = 0;
    /* libnl hands over nlmsg_data() of the NLMSG_ERROR message; its header sits just before. */
    const struct nlmsghdr *h = (const struct nlmsghdr *)((const char *)e - NLMSG_HDRLEN);
    if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return NL_STOP;
    /* Layout (linux/netlink.h, netlink_ack): nlmsgerr, then the request's payload unless
     * capped, padded to NLMSG_ALIGNTO, then the TLVs. */
    size_t payload = sizeof(*e);
    if (!(h->nlmsg_flags & NLM_F_CAPPED) && e->msg.nlmsg_len > NLMSG_HDRLEN) payload += e->msg.nlmsg_len - NLMSG_HDRLEN;
    size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(payload);
    size_t total = h->nlmsg_len;
    while (offset + sizeof(struct nlattr) <= total) {
        const struct nlattr *a = (const struct nlattr *)((const char *)h + offset);
        size_t len = a->nla_len;
        if (len < sizeof(struct nlattr) || offset + len > total) break;
        if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            size_t text = len - sizeof(struct nlattr);
            if (text >= sizeof(out->message)) text = sizeof(out->message) - 1;
            memcpy(out->message, (const char *)a + sizeof(struct nlattr), text);
            out->message[text] = 0;
            break;
        }
        offset += NLA_ALIGN(len);
    }
    return NL_STOP;
}

/* After nl_connect: ask for extended acks with the request capped off, and record failures into
 * `out`, which must outlive the socket. Returns 0 or a negative NLE_* code. */
static inline int gw_nl_record_failures(struct nl_sock *sk, struct gw_nl_failure *out) {
    int one = 1;
    int fd = nl_socket_get_fd(sk);
    /* Both are best effort: without them the errno is still recorded. */
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, gw_nl_failure_record, out);
}

#endif
