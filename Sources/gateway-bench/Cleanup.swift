// Everything the benchmark creates on the host — namespaces, host-side devices, child process
// groups — recorded as it is made and removed at the end, on an error, or on SIGINT/SIGTERM/SIGHUP.
import Dispatch
import Link
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

final class Cleanup: Sendable {
    static let shared = Cleanup()

    private struct Owned {
        var processGroups: [pid_t] = []
        var namespaces: [String] = []
        var hostLinks: [String] = []
    }

    private let owned = Mutex(Owned())
    /// Set when a terminating signal arrived; the main thread then leaves the exit to the handler.
    let interrupted = Atomic<Bool>(false)

    /// Kept alive for the life of the process; written once, from the main thread, before any other thread exists.
    private nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []

    /// Ignores the terminating signals at the process level and handles them on a dispatch queue
    /// instead, so the handler may do ordinary work (netlink, unmount) rather than only
    /// async-signal-safe calls.
    func installSignalHandlers() {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [self] in
                interrupted.store(true, ordering: .relaxed)
                FileDescriptorWriter.standardError("gateway-bench: signal \(s), removing what this run created\n")
                removeAll()
                exit(128 + s)
            }
            source.resume()
            sources.append(source)
        }
    }

    func adopt(processGroup: pid_t) { owned.withLock { $0.processGroups.append(processGroup) } }
    func release(processGroup: pid_t) { owned.withLock { $0.processGroups.removeAll { $0 == processGroup } } }
    func adopt(namespace: String) { owned.withLock { $0.namespaces.append(namespace) } }
    func adopt(hostLink: String) { owned.withLock { $0.hostLinks.append(hostLink) } }

    /// Deletes one namespace now (and forgets it).
    func remove(namespace: String) {
        owned.withLock { $0.namespaces.removeAll { $0 == namespace } }
        try? NetworkNamespace.delete(named: namespace)
    }

    /// Deletes one host device now (and forgets it).
    func remove(hostLink: String) {
        owned.withLock { $0.hostLinks.removeAll { $0 == hostLink } }
        if let nl = try? NetlinkSocket() { try? nl.deleteLink(named: hostLink) }
    }

    /// Ends every process group still running, then deletes devices and namespaces. Safe to call
    /// twice; errors are ignored because it also runs after partial setups.
    func removeAll() {
        let o = owned.withLock { o -> Owned in
            let copy = o
            o = Owned()
            return copy
        }
        for pg in o.processGroups { kill(-pg, SIGTERM) }
        if !o.processGroups.isEmpty {
            usleep(200_000)
            for pg in o.processGroups {
                kill(-pg, SIGKILL)
                var status: Int32 = 0
                waitpid(pg, &status, WNOHANG)
            }
        }
        if !o.hostLinks.isEmpty, let nl = try? NetlinkSocket() {
            for l in o.hostLinks { try? nl.deleteLink(named: l) }
        }
        for n in o.namespaces { try? NetworkNamespace.delete(named: n) }
    }
}

/// Unbuffered writes to standard error, usable from any thread.
enum FileDescriptorWriter {
    static func standardError(_ text: String) {
        var t = text
        t.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
