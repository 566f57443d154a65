import ArgumentParser
import Confinement
import Gateway
import GatewayControl
import Logging

// gatewayd: the host process that gives many sandboxes their network, one TAP and stack each,
// driven over its control socket (see docs/control-api.md).
#if canImport(Glibc)
    import Glibc
#endif

@main
struct Gatewayd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "Network gateway for many sandboxes: one TAP and userspace TCP/IP stack per sandbox.",
        discussion: """
            Runs in the foreground until SIGTERM or SIGINT, which detach every sandbox first; SIGHUP \
            re-reads the config file's policies and reopens the flow log. Flags override the config \
            file (installed as /etc/gatewayd/gatewayd.toml). Started by systemd (Type=notify, \
            $NOTIFY_SOCKET) it reports READY=1 once it serves, and STOPPING=1. Exit status: 0 after a \
            clean stop, 78 for a bad config, 1 when it cannot start.
            """
    )

    @Option(help: "Path of the TOML configuration file.")
    var config: String?

    @Option(help: "Path of the control socket (default /run/gatewayd/control.sock).")
    var control: String?

    @Option(help: "Directory for state that survives a restart (default /var/lib/gatewayd).")
    var stateDir: String?

    @Option(help: "Number of shard threads (default: one per CPU).")
    var shards: Int?

    @Option(help: "Default egress policy profile: host-only, public, open, or one the config defines.")
    var egressPolicy: String?

    @Option(help: "Log format: human or json.")
    var logFormat: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(help: "Also serve /metrics over TCP at HOST:PORT, e.g. 127.0.0.1:9464.")
    var metricsAddress: String?

    @Option(help: "User the unprivileged worker runs as (default: gatewayd if that user exists, else nobody).")
    var user: String?

    @Option(help: "Tag put into the names of the devices it makes in the host namespace, and the only ones it sweeps (0-6 of a-z, 0-9).")
    var hostDeviceTag: String?

    @Flag(help: "Run everything in one privileged process, without the worker's confinement (debugging only).")
    var noPrivsep = false

    /// Set by the supervisor for the worker it spawns: the worker's end of its socket.
    @Option(name: .customLong("privsep-worker-fd"), help: .hidden)
    var privsepWorkerFD: Int32?

    mutating func run() throws {
        // From here on SIGTERM and SIGINT mean "detach everything, then exit".
        GatewayDaemon.installTerminationHandlers()
        let settings: DaemonConfiguration
        do {
            settings = try resolvedConfiguration()
        } catch {
            printError("gatewayd: \(error)")
            throw ExitCode(78)
        }
        let format = settings.logFormat
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gatewayd")
        // Only the process systemd started speaks to it; a worker is never given the socket.
        let notifier = privsepWorkerFD == nil ? NotifySocket.fromEnvironment() : nil
        func notify(_ send: (NotifySocket) -> Int32) { NotifySocket.tell(notifier, logger: logger, send) }
        // Before the gateway sizes its descriptor budgets from the limit.
        let limit = OpenFilesLimit.raiseToHard()
        if limit.error != 0 {
            logger.warning(
                "could not raise the open files limit from \(limit.before) to \(limit.hard): \(String(cString: strerror(limit.error)))")
        }
        if privsepWorkerFD == nil && settings.privilegeSeparation {
            // The supervisor: what follows runs in the worker it spawns, which inherits the limit.
            logger.notice(
                limit.before == limit.after
                    ? "open files limit \(limit.after) (hard limit \(limit.hard))"
                    : "open files limit raised from \(limit.before) to \(limit.after) (hard limit \(limit.hard))")
            if ControlClient(socketPath: settings.controlPath).isReachable() {
                logger.critical("cannot start: \(ControlError.daemonRunning(at: settings.controlPath).message)")
                throw ExitCode.failure
            }
            let supervisor = Supervisor(
                configuration: settings, configPath: config, arguments: CommandLine.arguments, logger: logger,
                notifier: notifier
            ) { pid, signal in
                // The kernel logs a seccomp kill with the system call that caused it.
                guard signal == SIGSYS else { return nil }
                return (try? SeccompKill.find(pid: pid, timeout: .seconds(1))).flatMap { $0 }.map {
                    "system call \($0.syscall) (\($0.name ?? "unknown")) outside the worker's filter"
                }
            }
            let status = supervisor.run()
            // The worker cannot remove the socket file from a directory that is root's.
            if status == 0 { unlink(settings.controlPath) }
            throw ExitCode(status)
        }
        var privileges: PrivilegeClient?
        if let fd = privsepWorkerFD {
            privileges = PrivilegeClient(descriptor: fd)
        }
        let workerUser = settings.workerUser ?? WorkerUser.defaultName
        let daemon: GatewayDaemon
        do {
            daemon = try GatewayDaemon(
                configuration: settings, logger: logger, privileges: privileges,
                confine: privileges == nil ? nil : { directory throws(ControlError) in
                    try WorkerUser.confine(user: workerUser, stateDirectory: directory, shardNice: settings.shardNice)
                })
        } catch {
            logger.critical("cannot start: \(error.message)")
            throw ExitCode.failure
        }
        let ledger = daemon.gateway.descriptorLedger
        logger.notice(
            limit.before == limit.after
                ? "open files limit \(limit.after) (hard limit \(limit.hard))"
                : "open files limit raised from \(limit.before) to \(limit.after) (hard limit \(limit.hard))",
            metadata: [
                "soft-before": "\(limit.before)", "soft": "\(limit.after)", "hard": "\(limit.hard)",
                "data-path": "\(ledger.capacity)", "per-sandbox": "\(ledger.perSandbox)",
                "control-reserve": "\(ledger.controlReserve)",
            ])
        if let privileges {
            do {
                try privileges.ready()
            } catch {
                logger.critical("cannot reach the supervisor: \(error.message)")
                daemon.stop()
                throw ExitCode.failure
            }
        }
        notify { $0.ready(status: "serving") }
        var signal = GatewayDaemon.waitForTerminationSignal()
        while signal == SIGHUP {
            notify { $0.reloading() }
            do {
                // A worker may not read the file: the supervisor reads it again.
                var text: String?
                if let privileges {
                    do throws(GatewayError) {
                        text = try privileges.readConfig()
                    } catch {
                        throw ConfigError(file: config ?? "config", line: nil, key: nil, error.message)
                    }
                }
                daemon.reload(try resolvedConfiguration(text: text))
            } catch {
                // A bad file is refused with its line; the running configuration stays.
                logger.error("SIGHUP: config not reloaded, the running one stays: \(error)")
                daemon.reload(nil)
            }
            // Serving again: the supervisor passes this on as READY=1 (or we do, alone).
            try? privileges?.ready()
            notify { $0.ready(status: "serving") }
            signal = GatewayDaemon.waitForTerminationSignal()
        }
        notify { $0.stopping() }
        logger.notice("received \(signal == SIGINT ? "SIGINT" : "SIGTERM")")
        daemon.stop()
    }

    /// The config file's values (or those of `text`, the file as read for us) with the flags
    /// given on top.
    func resolvedConfiguration(text: String? = nil) throws(ConfigError) -> DaemonConfiguration {
        var c = DaemonConfiguration()
        if let text, let config {
            try c.apply(toml: text, file: config)
        } else if let config {
            c = try DaemonConfiguration.load(path: config)
        }
        func flagError(_ flag: String, _ reason: String) -> ConfigError {
            ConfigError(file: "command line", line: nil, key: flag, reason)
        }
        if let control { c.controlPath = control }
        if let stateDir { c.stateDirectory = stateDir }
        if let shards {
            guard (1...1024).contains(shards) else {
                throw flagError("--shards", "\(shards) is out of range: use 1-1024")
            }
            c.shards = shards
        }
        if let egressPolicy {
            do {
                _ = try c.gatewayConfiguration.policy(named: egressPolicy)
            } catch {
                throw flagError("--egress-policy", error.message)
            }
            c.egressPolicy = egressPolicy
        }
        if let logFormat {
            guard let f = DaemonConfiguration.LogFormat(rawValue: logFormat) else {
                throw flagError("--log-format", "'\(logFormat)' is neither human nor json")
            }
            c.logFormat = f
        }
        if let logLevel {
            guard let l = Logger.Level(rawValue: logLevel) else {
                throw flagError(
                    "--log-level", "'\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = l
        }
        if let metricsAddress {
            guard let hp = DaemonConfiguration.HostPort(metricsAddress) else {
                throw flagError("--metrics-address", "'\(metricsAddress)' is not HOST:PORT, e.g. 127.0.0.1:9464")
            }
            c.metricsAddress = hp
        }
        if let user { c.workerUser = user }
        if let hostDeviceTag {
            guard DaemonConfiguration.isHostDeviceTag(hostDeviceTag) else {
                throw flagError("--host-device-tag", "'\(hostDeviceTag)' is not 0-6 lowercase letters and digits")
            }
            c.hostDeviceTag = hostDeviceTag
        }
        if noPrivsep { c.privilegeSeparation = false }
        return c
    }
}
