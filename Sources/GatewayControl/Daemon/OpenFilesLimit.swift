// The process's open files limit. Each sandbox holds a device and a socket per flow, and the
// soft limit services usually start with (1,024) would stop the gateway at a few hundred
// sandboxes while the hard limit allows far more: gatewayd raises the one to the other at start.
#if canImport(Glibc)
    import Glibc
#endif

public enum OpenFilesLimit {
    /// RLIMIT_NOFILE's soft and hard limits (RLIM_INFINITY shown as Int.max).
    public static func current() -> (soft: Int, hard: Int) {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return (0, 0) }
        return (number(rl.rlim_cur), number(rl.rlim_max))
    }

    /// Sets the soft limit to the hard one; returns the soft limit before and after, and the
    /// errno when the raise was refused (0 when it worked or nothing had to change).
    @discardableResult
    public static func raiseToHard() -> (before: Int, after: Int, hard: Int, error: Int32) {
        var rl = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &rl) == 0 else { return (0, 0, 0, errno) }
        let before = number(rl.rlim_cur)
        var error: Int32 = 0
        if rl.rlim_cur != rl.rlim_max {
            var raised = rl
            raised.rlim_cur = rl.rlim_max
            if setrlimit(resource, &raised) != 0 { error = errno }
        }
        let now = current()
        return (before, now.soft, now.hard, error)
    }

    private static func number(_ value: rlim_t) -> Int { value >= rlim_t(Int.max) ? Int.max : Int(value) }
}
