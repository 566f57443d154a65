/* Named network namespaces as `ip netns` keeps them: a bind mount of a namespace file under
 * /run/netns, so both tools see the same names. Each returns 0 or -errno. */
#ifndef GATEWAY_NETNS_H
#define GATEWAY_NETNS_H

/* Makes `dir` exist and be a shared mount point, so namespace mounts made under it are
 * visible from other mount namespaces (what iproute2 does before its first `netns add`). */
int gw_netns_prepare_dir(const char *dir);
/* unshare(CLONE_NEWNET) for the calling thread only. */
int gw_unshare_net(void);
/* Bind-mounts the calling thread's network namespace (/proc/thread-self/ns/net) onto `path`,
 * which must already exist as a file. */
int gw_netns_bind_current_thread(const char *path);
/* Lazily unmounts a namespace bind mount (MNT_DETACH); the namespace dies with its last user. */
int gw_netns_unmount(const char *path);

/* Whether fd is a network namespace file: 0 yes, 1 not a namespace file at all (say, a leftover
 * plain file under /run/netns), 2 a namespace of another kind; or -errno. */
int gw_netns_check_fd(int fd);

#endif
