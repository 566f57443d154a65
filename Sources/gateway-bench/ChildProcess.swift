// Guest and host tools started by the benchmark: each in a process group of its own, so that a
// pipeline (`sh -c "a | b"`) can be ended as one, and so that cleanup ends exactly what we started.
#if canImport(Glibc)
import Glibc
#endif
import Gateway

/// A command started with posix_spawn in a new process group, standard output discarded,
/// standard error shared with ours (the tools' own complaints reach the user as they are).
final class ChildProcess {
    let pid: pid_t
    let arguments: [String]
    private(set) var exitStatus: Int32?

    /// Starts `arguments` (looked up on PATH).
    init(_ arguments: [String]) throws(BenchError) {
        self.arguments = arguments
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The benchmark ignores SIGINT/SIGTERM itself (a dispatch source handles them); children
        // must not inherit that, or an interrupted run could leave a sender behind.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments[0], &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(rc))) (is it installed?)")
        }
        pid = child
        Cleanup.shared.adopt(processGroup: child)
    }

    /// Waits until the process exits or `deadline` (monotonic ns) passes; true when it exited.
    /// Polls every millisecond: a blocking wait would leave no way to enforce the deadline, and
    /// 1 ms is well under the timing resolution that matters for multi-second transfers.
    @discardableResult
    func wait(until deadline: UInt64 = .max) -> Bool {
        if exitStatus != nil { return true }
        while true {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                exitStatus = status
                Cleanup.shared.release(processGroup: pid)
                return true
            }
            if r < 0 && errno != EINTR {
                exitStatus = -1
                Cleanup.shared.release(processGroup: pid)
                return true
            }
            if monotonicNanoseconds() >= deadline { return false }
            usleep(1000)
        }
    }

    /// Ends the whole process group and reaps the leader.
    func terminate() {
        guard exitStatus == nil else { return }
        kill(-pid, SIGTERM)
        if !wait(until: monotonicNanoseconds() + 2_000_000_000) {
            kill(-pid, SIGKILL)
            wait()
        }
    }

    /// True when it exited with status 0.
    var succeeded: Bool {
        guard let s = exitStatus else { return false }
        return s & 0x7F == 0 && (s >> 8) & 0xFF == 0
    }

    var statusText: String {
        guard let s = exitStatus else { return "still running" }
        if s & 0x7F != 0 { return "killed by signal \(s & 0x7F)" }
        return "exit status \((s >> 8) & 0xFF)"
    }

    /// Runs a command to completion and throws when it fails or outlives `timeout` seconds.
    static func run(_ arguments: [String], timeout: Double = 60) throws(BenchError) {
        let p = try ChildProcess(arguments)
        if !p.wait(until: monotonicNanoseconds() + UInt64(timeout * 1e9)) {
            p.terminate()
            throw BenchError("\(arguments.joined(separator: " ")) took longer than \(Int(timeout)) s")
        }
        guard p.succeeded else { throw BenchError("\(arguments.joined(separator: " ")) failed: \(p.statusText)") }
    }
}
