// The worker's allow-list: each system call that gatewayd's unprivileged half was seen making under
// strace (Tools/README-confinement.md has the workloads), with why, grouped by what it is for.
#if canImport(Glibc)
    import Glibc
#endif

extension SyscallFilter {
    /// Sockets the worker opens: host sockets for guest flows and published ports (IPv4, IPv6, ping
    /// sockets too), the control API's Unix socket, and NETLINK_ROUTE, which glibc's getaddrinfo
    /// opens to see which address families the host has (swift-nio resolves the metrics address
    /// with it). Without CAP_NET_ADMIN a route-netlink socket can read addresses and links, not
    /// change them. Other netlink families (generic, audit, uevents) and packet sockets are not.
    static let socketKinds: [[ArgumentValue]] = [
        [ArgumentValue(0, UInt64(AF_UNIX))], [ArgumentValue(0, UInt64(AF_INET))], [ArgumentValue(0, UInt64(AF_INET6))],
        [ArgumentValue(0, UInt64(AF_NETLINK)), ArgumentValue(2, 0 /* NETLINK_ROUTE */)],
    ]
    /// TCGETS: stdio's isatty on the log streams, the only request the traces show the worker making.
    /// TUNSETIFF, TUNSETOFFLOAD and the rest are made by the supervisor before it passes a TAP over.
    static let ioctlRequests: [UInt64] = [0x5401]
    /// PR_SET_NAME: thread names (pthread_setname_np, swift-nio's loop names); PR_GET_NAME reads them
    /// back (pthread_getname_np on the calling thread).
    static let prctlOptions: [UInt64] = [15, 16]
    /// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
    static let namespaceFlags: UInt64 = 0x7E02_0000

    /// The worker's rules, grouped as in ``Group``.
    public static let workerRules: [Rule] = [
        // Memory
        Rule("brk", .memory, "malloc's main arena"),
        Rule("mmap", .memory, "malloc's large blocks and arenas, thread stacks, swift-nio buffers"),
        Rule("munmap", .memory, "freeing those"),
        Rule("mremap", .memory, "realloc of a large (mmapped) block: swift-nio grows ByteBuffers with realloc"),
        Rule("mprotect", .memory, "thread stack guard pages, malloc arenas growing"),
        Rule("madvise", .memory, "MADV_DONTNEED: free() and exiting threads giving pages back"),

        // Threads
        Rule(
            "clone", .threads, "pthread_create (after clone3 below fails)",
            .argumentWithout(0, mask: namespaceFlags, why: "no new namespaces: a thread, never a sandbox of its own")),
        Rule(
            "clone3", .threads, "glibc's first choice for pthread_create",
            .fails(errno: ENOSYS, why: "its flags sit in memory the filter cannot read; ENOSYS makes glibc use clone")),
        Rule("futex", .threads, "locks, condition variables, thread joins"),
        Rule("set_robust_list", .threads, "each new thread registers its robust mutex list"),
        Rule("rseq", .threads, "each new thread registers restartable sequences (glibc 2.35+)"),
        Rule("gettid", .threads, "thread ids for logs, pinning and swift-nio's loop checks"),
        Rule("exit", .threads, "a thread ending"),
        Rule("sched_yield", .threads, "spin locks backing off (Dispatch, the Swift runtime)"),
        Rule("sched_getaffinity", .threads, "swift-nio and Foundation counting usable CPUs"),
        Rule("sched_setaffinity", .threads, "pinning each shard thread to its CPU"),
        Rule("setpriority", .threads, "a shard thread's nice value (shard-nice)"),
        Rule(
            "prctl", .threads, "naming threads",
            .argument(0, oneOf: prctlOptions, why: "only PR_SET_NAME and PR_GET_NAME: nothing that changes privileges")),

        // Events
        Rule("epoll_create", .events, "an event loop's epoll set (older entry point)"),
        Rule("epoll_create1", .events, "an event loop's epoll set"),
        Rule("epoll_ctl", .events, "watching TAP, socket, eventfd and timerfd descriptors"),
        Rule("epoll_wait", .events, "the event loops waiting"),
        Rule("eventfd2", .events, "waking an event loop from another thread"),
        Rule("timerfd_create", .events, "an event loop's timer"),
        Rule("timerfd_settime", .events, "arming it for the next deadline"),
        Rule("pipe2", .events, "wake-up pipes (Foundation, swift-nio's fallback)"),

        // Sockets
        Rule(
            "socket", .sockets, "host sockets for guest flows, published ports, DNS upstreams, the control socket",
            .anyOf(
                socketKinds,
                why: "AF_INET, AF_INET6, AF_UNIX, and AF_NETLINK for NETLINK_ROUTE only (getaddrinfo): no packet sockets, no other netlink")),
        Rule("bind", .sockets, "published ports' listeners, DNS upstream sockets, the control socket"),
        Rule("listen", .sockets, "published TCP ports, the control socket, metrics"),
        Rule("accept", .sockets, "accepting (older entry point)"),
        Rule("accept4", .sockets, "accepting published-port clients and control requests"),
        Rule("connect", .sockets, "egress connections, connected UDP and ping sockets"),
        Rule("getsockname", .sockets, "the local address a socket was given"),
        Rule("getpeername", .sockets, "a client's address"),
        Rule("getsockopt", .sockets, "SO_ERROR after a non-blocking connect"),
        Rule("setsockopt", .sockets, "SO_REUSEADDR, SO_LINGER (reset on refusal), TCP_NODELAY, buffer sizes"),
        Rule("shutdown", .sockets, "half-closing a relayed stream (the guest's FIN)"),
        Rule("sendto", .sockets, "UDP datagrams to hosts, DNS queries"),
        Rule("recvfrom", .sockets, "their replies"),
        Rule("sendmsg", .sockets, "UDP datagrams to hosts and guests' published-port peers, swift-nio's writes"),
        Rule("recvmsg", .sockets, "datagrams, and the TAP descriptors the supervisor passes over (SCM_RIGHTS)"),

        // Files
        Rule("read", .files, "TAP frames in, sockets, config, /proc and /sys files"),
        Rule("write", .files, "TAP frames out, sockets, logs, the flow log, state files"),
        Rule("readv", .files, "TAP frames in with the virtio-net header apart"),
        Rule("writev", .files, "TAP frames out with the virtio-net header apart, logs"),
        Rule("pread64", .files, "reading at an offset (Foundation)"),
        Rule("openat", .files, "state files, the flow log, config, /etc/resolv.conf, /proc and /sys files"),
        Rule("close", .files, "every descriptor's end"),
        Rule("newfstatat", .files, "stat and fstat (glibc's fstat is newfstatat with AT_EMPTY_PATH)"),
        Rule("lseek", .files, "appending, rereading"),
        Rule("fsync", .files, "a state file reaching the disk before its rename"),
        Rule("getdents64", .files, "listing the state directory, /proc/self/fd"),
        Rule("mkdir", .files, "the state directory"),
        Rule("rename", .files, "a state file replacing the old one atomically"),
        Rule("unlink", .files, "a detached sandbox's state file, a stale control socket"),
        Rule("chmod", .files, "the control socket's and state directory's modes"),
        Rule("readlink", .files, "/proc/self/exe (Foundation's Bundle.main, the Swift runtime)"),
        Rule("fcntl", .files, "close-on-exec, non-blocking, descriptor flags"),
        Rule(
            "ioctl", .files, "isatty on the log streams",
            .argument(1, oneOf: ioctlRequests, why: "TCGETS only: the TUN and interface ioctls are the supervisor's")),

        // Time
        Rule("clock_gettime", .time, "the clocks, when the vDSO does not answer (a VM clock source without vDSO support)"),
        Rule("gettimeofday", .time, "wall time, when the vDSO does not answer"),
        Rule("clock_nanosleep", .time, "sleeping (usleep, Thread.sleep)"),

        // Signals
        Rule("rt_sigaction", .signals, "SIGTERM, SIGINT, SIGHUP handlers; SIGPIPE ignored"),
        Rule("rt_sigprocmask", .signals, "threads blocking signals, Dispatch's workers"),
        Rule("rt_sigreturn", .signals, "returning from a signal handler"),
        Rule("sigaltstack", .signals, "the Swift runtime's crash handler stack on each thread"),
        Rule(
            "tgkill", .signals, "abort() and raise(): a fatal error ends as SIGABRT, not as a filter kill",
            .ownProcess(0, why: "only threads of this process")),
        Rule("restart_syscall", .signals, "the kernel resuming a call a signal interrupted"),

        // Process
        Rule("exit_group", .process, "the worker's exit"),
        Rule("getpid", .process, "logs, swift-nio"),
        Rule("getppid", .process, "noticing the supervisor is gone (not seen yet: for the split)"),
        Rule("getrandom", .process, "hash seeds, TCP initial sequence numbers, DNS ids, random MACs"),
        Rule("prlimit64", .process, "the open-files limit (read, raised to the hard limit)"),
        Rule("sysinfo", .process, "Foundation's physical memory"),
        Rule("uname", .process, "gethostname in glibc's resolver start-up (getaddrinfo of a name, e.g. metrics on localhost)"),
    ]
}
