// gatewayd's privileged part: spawns the unprivileged worker (this executable again, with the
// worker's end of a socket), answers its privileged requests, forwards SIGTERM, SIGINT and SIGHUP
// to it, and restarts it when it dies (a restart restores every sandbox from the state directory).
// It alone tells the service manager how things stand ($NOTIFY_SOCKET): it is the process systemd
// watches, and the worker is not given the socket.
#if canImport(Glibc)
    import Glibc
#endif
import CGatewayShims
import Gateway
import Logging

public final class Supervisor {
    /// The descriptor number the worker finds its end of the socket at.
    public static let workerDescriptor: Int32 = 3
    /// The hidden flag that makes gatewayd the worker.
    public static let workerFlag = "--privsep-worker-fd"

    let server: PrivilegeServer
    let logger: Logger
    /// gatewayd's own arguments, given to each worker with the worker flag.
    let arguments: [String]
    /// How a worker that died is explained; nil when the cause is not known.
    let diagnose: (_ pid: pid_t, _ signal: Int32) -> String?
    /// The service manager's socket; nil when not started by one.
    let notifier: NotifySocket?
    /// Workers started so far, for the status line.
    private var workersStarted = 0

    public init(
        configuration: DaemonConfiguration, configPath: String?, arguments: [String], logger: Logger,
        notifier: NotifySocket? = nil,
        diagnose: @escaping (_ pid: pid_t, _ signal: Int32) -> String? = { _, _ in nil }
    ) {
        server = PrivilegeServer(configuration: configuration, configPath: configPath)
        self.arguments = arguments
        self.logger = logger
        self.notifier = notifier
        self.diagnose = diagnose
    }

    /// How one worker's life ended.
    private struct Ending {
        var status: Int32
        var wasReady: Bool
        var stopRequested: Bool
        var lived: Duration
        var pid: pid_t = 0
    }

    /// Runs workers until one stops on request (or cannot start); returns the exit status.
    public func run() -> Int32 {
        var everReady = false
        var delay: Duration = .milliseconds(200)
        while true {
            let ending: Ending
            do {
                ending = try runWorker()
            } catch {
                logger.critical("cannot start the worker: \(error)")
                return 1
            }
            everReady = everReady || ending.wasReady
            let signal = ending.status & 0x7F
            let code = (ending.status >> 8) & 0xFF
            if ending.stopRequested {
                return signal == 0 ? code : 1
            }
            if !everReady {
                // A worker that never served (a bad config, a taken socket): its error is the answer.
                if signal != 0 { logger.critical("the worker was killed by signal \(signal) before it was ready") }
                return signal == 0 ? code : 1
            }
            var metadata: Logger.Metadata = ["status": "\(ending.status)"]
            let death: String
            if signal != 0 {
                metadata["signal"] = "\(signal)"
                if let cause = diagnose(ending.pid, signal) { metadata["cause"] = "\(cause)" }
                death = "the worker was killed by signal \(signal)"
            } else {
                death = "the worker exited with \(code)"
            }
            logger.error("\(death); restarting it", metadata: metadata)
            if ending.lived > .seconds(60) { delay = .milliseconds(200) }
            notify { $0.status("\(death); restarting it in \(delay.nanoseconds / 1_000_000) ms") }
            if waitForStop(delay) {
                notify { $0.stopping() }
                return 0
            }
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Waits `delay` for a stop signal between workers; true when one came.
    private func waitForStop(_ delay: Duration) -> Bool {
        let signals = GatewayDaemon.signalDescriptor
        guard signals >= 0 else {
            usleep(UInt32(delay.nanoseconds / 1000))
            return false
        }
        var p = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(delay.nanoseconds / 1_000_000)) == 1 else { return false }
        var byte: UInt8 = 0
        return read(signals, &byte, 1) == 1 && Int32(byte) != SIGHUP
    }

    private struct SpawnFailure: Error, CustomStringConvertible {
        var description: String
    }

    private func spawn(workerEnd: Int32) throws(SpawnFailure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, workerEnd, Self.workerDescriptor)
        let argv = [arguments.first ?? "gatewayd"] + arguments.dropFirst()
            + [Self.workerFlag, String(Self.workerDescriptor)]
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cArguments { free(a) } }
        var pid: pid_t = 0
        // The runtime's crash handler would exec its backtracer, which the worker's filter forbids:
        // the kill would then name execve rather than the crash.
        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            // The worker has no business with the service manager (and systemd would refuse it).
            if !text.hasPrefix("SWIFT_BACKTRACE=") && !text.hasPrefix("NOTIFY_SOCKET=") { environment.append(text) }
            index += 1
        }
        environment.append("SWIFT_BACKTRACE=enable=no")
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for e in cEnvironment { free(e) } }
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, &cArguments, &cEnvironment)
        guard rc == 0 else { throw SpawnFailure(description: "posix_spawn: \(String(cString: strerror(rc)))") }
        return pid
    }

    private func runWorker() throws -> Ending {
        let (mine, theirs) = try PrivilegeChannel.pair()
        let pid: pid_t
        do {
            pid = try spawn(workerEnd: theirs)
        } catch {
            close(mine)
            close(theirs)
            throw error
        }
        close(theirs)
        defer { close(mine) }
        let started = ContinuousClock.now
        workersStarted += 1
        logger.notice("worker started", metadata: ["pid": "\(pid)"])
        let pidfd = gw_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var ending = Ending(status: 0, wasReady: false, stopRequested: false, lived: .zero)
        let channel = PrivilegeChannel(fd: mine)
        var channelOpen = true
        let signals = GatewayDaemon.signalDescriptor
        while true {
            var fds = [
                pollfd(fd: channelOpen ? mine : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
                pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0),
            ]
            // Without a pidfd the channel's end (the worker's exit closes it) stands for the exit.
            if pidfd < 0 && !channelOpen { break }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var byte: UInt8 = 0
                if read(signals, &byte, 1) == 1 {
                    let signal = Int32(byte)
                    if signal != SIGHUP {
                        ending.stopRequested = true
                        notify { $0.stopping() }
                    } else {
                        // The worker reports ready again once it has reloaded.
                        notify { $0.reloading() }
                    }
                    // The worker detaches every sandbox (asking us to remove VM devices) and exits.
                    kill(pid, signal)
                }
            }
            if channelOpen && fds[0].revents != 0 {
                channelOpen = serveOne(channel, pid: pid, ending: &ending)
            }
            if fds[2].revents != 0 { break }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        ending.status = status
        ending.pid = pid
        ending.lived = ContinuousClock.now - started
        return ending
    }

    /// Answers one request; false when the worker's end has closed.
    private func serveOne(_ channel: PrivilegeChannel, pid: pid_t, ending: inout Ending) -> Bool {
        let served = server.serveOne(channel, worker: pid) { level, message, request in
            var metadata: Logger.Metadata = ["pid": "\(pid)"]
            if let request { metadata["request"] = "\(request.name)" }
            logger.log(level: level, "\(message)", metadata: metadata)
        }
        if served.request == .ready {
            ending.wasReady = true
            let restarts = workersStarted - 1
            notify {
                $0.ready(status: "serving; worker \(pid)" + (restarts > 0 ? ", \(restarts) restart(s)" : ""))
            }
        }
        return served.open
    }

    private func notify(_ send: (NotifySocket) -> Int32) {
        NotifySocket.tell(notifier, logger: logger, send)
    }
}
