// The user gatewayd's worker runs as, and what the worker does to become it: the state directory
// handed over to that user, then every privilege dropped before anything untrusted is read.
#if canImport(Glibc)
    import Glibc
#endif
import Confinement
import Foundation

public enum WorkerUser {
    /// `gatewayd` when the install made that system user, else `nobody`.
    public static var defaultName: String { getpwnam("gatewayd") != nil ? "gatewayd" : "nobody" }

    /// Becomes the worker: the state directory goes to `user`, then this process gives up root
    /// (no capabilities, not even in its bounding set, no_new_privs, SIGKILL when the supervisor
    /// dies) and installs the system-call filter. Before any thread starts (capabilities are per
    /// thread, and the drop refuses to run beside others).
    /// - Parameter shardNice: the shards' nice value, which below 0 takes RLIMIT_NICE raised now.
    public static func confine(user: String, stateDirectory: String, shardNice: Int) throws(ControlError) {
        let account: Confinement.Account
        do {
            account = try Confinement.account(for: user)
        } catch {
            throw ControlError(.invalidArgument, "worker user '\(user)' does not exist (set user = \"…\" in the config)")
        }
        try handOver(directory: stateDirectory, uid: account.uid, gid: account.gid)
        if shardNice < 0 {
            // Lets the shards lower their nice value to shardNice without CAP_SYS_NICE.
            var limit = rlimit(rlim_cur: rlim_t(20 - shardNice), rlim_max: rlim_t(20 - shardNice))
            setrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &limit)
        }
        do {
            _ = try Confinement.dropPrivileges(to: user, parentDeathSignal: SIGKILL)
        } catch {
            throw ControlError(.system, "cannot become user '\(user)': \(error)")
        }
        // Not a call the filter allows: checked before it is in place.
        guard access(stateDirectory, W_OK | X_OK) == 0 else {
            throw ControlError(
                .system,
                "the worker user '\(user)' cannot write the state directory \(stateDirectory) "
                    + "(\(String(cString: strerror(errno)))): a directory above it is closed to that user")
        }
        do {
            try SyscallFilter().install()
        } catch {
            throw ControlError(.system, "cannot install the system-call filter: \(error)")
        }
    }

    /// Gives the state directory (and what is in it) to `uid`/`gid`, so the worker keeps
    /// recording sandboxes there; a sandbox's state must outlive a restart.
    public static func handOver(directory: String, uid: uid_t, gid: gid_t) throws(ControlError) {
        func give(_ path: String) throws(ControlError) {
            guard lchown(path, uid, gid) == 0 else {
                throw ControlError(.system, "cannot give \(path) to the worker user: \(String(cString: strerror(errno)))")
            }
        }
        try give(directory)
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return }
        while let relative = walker.nextObject() as? String {
            try give(directory + "/" + relative)
        }
    }
}
