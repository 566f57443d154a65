import Gateway
import Link
import Logging

// gatewayd's life: sweep a crashed run's devices, start the gateway, deal with the sandboxes a
// killed run left in the state directory, serve the control API, and on SIGTERM/SIGINT detach
// every sandbox (removing its device) before exiting.
#if canImport(Glibc)
    import Glibc
#endif

public final class GatewayDaemon: Sendable {
    public let configuration: DaemonConfiguration
    let logger: Logger
    public let gateway: Gateway
    public let service: ControlService
    let server: ControlServer

    /// Builds everything and starts listening; nothing runs on failure.
    public init(
        configuration: DaemonConfiguration, logger: Logger, publishing: (any PortPublishing)? = nil
    )
        throws(ControlError)
    {
        self.configuration = configuration
        self.logger = logger
        // A second daemon must not sweep the first one's devices.
        if ControlClient(socketPath: configuration.controlPath).isReachable() {
            throw ControlError(
                .sandboxExists,
                "another gatewayd already answers on \(configuration.controlPath): "
                    + "stop it first or pass another --control"
            )
        }
        if configuration.sweepStaleDevices { Self.sweep(prefixes: configuration.sweepPrefixes, logger: logger) }
        let store = try StateStore(directory: configuration.stateDirectory)
        do {
            gateway = try Gateway(configuration: configuration.gatewayConfiguration)
        } catch {
            throw ControlError(error)
        }
        service = ControlService(
            gateway: gateway, store: store, publishing: publishing, logger: logger,
            defaultPolicy: configuration.egressPolicy)
        server = ControlServer(service: service)
        do {
            try server.bind(unixSocket: configuration.controlPath, mode: configuration.controlMode)
            if let m = configuration.metricsAddress { try server.bind(metricsHost: m.host, port: m.port) }
        } catch {
            server.close()
            gateway.shutdown()
            throw error
        }
        let restored = service.restoreLeftovers()
        logger.notice(
            "gatewayd listening",
            metadata: [
                "control": "\(configuration.controlPath)", "shards": "\(gateway.shardCount)",
                "state": "\(configuration.stateDirectory)", "restored": "\(restored.count)",
                "metrics": "\(configuration.metricsAddress.map { $0.description } ?? "control socket only")",
            ])
    }

    static func sweep(prefixes: [String], logger: Logger) {
        do {
            let host = try NetlinkSocket()
            for prefix in prefixes {
                for name in try host.sweepStaleDevices(prefix: prefix) {
                    logger.notice("removed stale device \(name) left by an earlier run")
                }
            }
        } catch {
            logger.warning("could not sweep stale devices: \(error)")
        }
    }

    /// Detaches every sandbox, stops listening and stops the shards.
    public func stop() {
        logger.notice("stopping: detaching \(gateway.list().count) sandbox(es)")
        server.close()
        service.detachAll()
        gateway.shutdown()
        logger.notice("stopped")
    }

    /// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later, so
    /// that `waitForTerminationSignal` receives them. Call first thing in main.
    public static func blockTerminationSignals() {
        // An ignored signal is discarded even while blocked, and a parent may have left these
        // ignored: restore the default so that sigwait sees them.
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGTERM or SIGINT; returns the signal's number.
    public static func waitForTerminationSignal() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        return signal
    }
}
