// The user gatewayd's worker runs as, and what the worker does to become it: the state directory
// handed over to that user, then every privilege dropped before anything untrusted is read.
#if canImport(Glibc)
    import Glibc
#endif
import CGatewayShims
import Foundation

public enum WorkerUser {
    /// `gatewayd` when the install made that system user, else `nobody`.
    public static var defaultName: String { getpwnam("gatewayd") != nil ? "gatewayd" : "nobody" }

    /// The user's UID and primary GID, by name or number.
    public static func resolve(_ user: String) throws(ControlError) -> (uid: uid_t, gid: gid_t) {
        if let entry = getpwnam(user) { return (entry.pointee.pw_uid, entry.pointee.pw_gid) }
        if let uid = UInt32(user) {
            if let entry = getpwuid(uid) { return (uid, entry.pointee.pw_gid) }
            return (uid, uid)
        }
        throw ControlError(.invalidArgument, "worker user '\(user)' does not exist (set user = \"…\" in the config)")
    }

    /// Becomes the worker: the state directory goes to `user`, then this process gives up root.
    /// Before any thread starts (capabilities are per thread).
    public static func confine(user: String, stateDirectory: String, supervisor: pid_t) throws(ControlError) {
        let (uid, gid) = try resolve(user)
        try handOver(directory: stateDirectory, uid: uid, gid: gid)
        var groups = [gid]
        guard setgroups(1, &groups) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw ControlError(.system, "cannot become user '\(user)': \(String(cString: strerror(errno)))")
        }
        guard access(stateDirectory, W_OK | X_OK) == 0 else {
            throw ControlError(
                .system,
                "the worker user '\(user)' cannot write the state directory \(stateDirectory) "
                    + "(\(String(cString: strerror(errno)))): a directory above it is closed to that user")
        }
        try dieWithSupervisor(supervisor)
    }

    /// Nothing is left to serve once the supervisor has gone: the worker gets SIGKILL then. Set
    /// after the change of user, which clears it.
    static func dieWithSupervisor(_ supervisor: pid_t) throws(ControlError) {
        let rc = gw_set_parent_death_signal(SIGKILL)
        guard rc == 0 else {
            throw ControlError(.system, "cannot set the parent-death signal: \(String(cString: strerror(-rc)))")
        }
        // It may have gone before the signal was set.
        guard getppid() == supervisor else { throw ControlError(.system, "the supervisor has gone") }
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
