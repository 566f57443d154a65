import Foundation
import Gateway
import Wire
import Link
import Logging

// gatewayd's life: sweep a crashed run's devices, start the gateway, restore the sandboxes a
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
    /// The cluster view in etcd, when `[cluster]` is configured.
    public let cluster: ClusterSync?
    /// Put into this node's record in the cluster view.
    public static let version = "0.1.0"

    /// Builds everything and starts listening; nothing runs on failure.
    /// - Parameters:
    ///   - privileges: where devices, low ports and the flow log come from: nil, this process
    ///     (which must be privileged); a `PrivilegeClient` in a privilege-separated worker.
    ///   - confine: called once the control socket is bound and the state directory open, before
    ///     any thread starts or anything from a sandbox or client is read: the worker gives up its
    ///     privileges here (given the state directory, which it must keep writing).
    public init(
        configuration: DaemonConfiguration, logger: Logger, publishing: (any PortPublishing)? = nil,
        privileges: (any HostPrivileges)? = nil, confine: ((_ stateDirectory: String) throws(ControlError) -> Void)? = nil
    )
        throws(ControlError)
    {
        self.configuration = configuration
        self.logger = logger
        // A second daemon must not sweep the first one's devices.
        if ControlClient(socketPath: configuration.controlPath).isReachable() {
            throw ControlError.daemonRunning(at: configuration.controlPath)
        }
        let store = try StateStore(directory: configuration.stateDirectory)
        // Bound now, while the socket's directory may still be written; listened on once the
        // restore is done.
        let listener = try ControlServer.bindSocket(unixSocket: configuration.controlPath, mode: configuration.controlMode)
        do {
            try confine?(configuration.stateDirectory)
        } catch {
            close(listener)
            throw error
        }
        let privileges =
            privileges
            ?? DirectPrivileges(
                hostDeviceTag: configuration.hostDeviceTag, sweepPrefixes: configuration.sweepPrefixes,
                makesDevice: { configuration.makesDevice(named: $0) })
        if configuration.sweepStaleDevices {
            Self.sweep(privileges, logger: logger, keeping: Self.restorableVMDevices(store, configuration))
        }
        do {
            gateway = try Gateway(configuration: configuration.gatewayConfiguration, privileges: privileges)
        } catch {
            close(listener)
            throw ControlError(error)
        }
        if let c = configuration.cluster {
            let node = ClusterNodeRecord(
                name: c.node, addresses: c.advertisedAddresses(publishBindAddress: configuration.publishBindAddress),
                shards: gateway.shardCount, capacity: configuration.addresses.capacity, version: Self.version,
                started: ClusterSync.timestamp(Date()))
            let sync = ClusterSync(configuration: c, node: node, logger: logger)
            // Up to a second for etcd to answer, so that the restore and the first attaches claim
            // their IDs when it is up; a down etcd delays nothing further.
            sync.start(waitingAtMost: .seconds(1))
            cluster = sync
        } else {
            cluster = nil
        }
        service = ControlService(
            gateway: gateway, store: store, publishing: publishing ?? GatewayPublishing(gateway: gateway), logger: logger,
            defaultPolicy: configuration.egressPolicy, cluster: cluster)
        // Before the API answers, so that no attach or publish can take a block or a host port
        // that a restored sandbox held.
        let restored = service.restoreLeftovers()
        server = ControlServer(
            service: service, idleTimeout: configuration.controlIdleTimeout,
            requestTimeout: configuration.controlRequestTimeout,
            maxConnections: configuration.descriptors.controlReserve * 3 / 4)
        do throws(ControlError) {
            try server.serve(unixListener: listener, path: configuration.controlPath)
            if let m = configuration.metricsAddress {
                if m.port < 1024, let address = IPAddress(m.host) {
                    // A low port takes a privilege this process may not have.
                    switch privileges.bindPrivilegedPort(HostBinding(address: address, port: UInt16(m.port), protocol: .tcp)) {
                    case .bound(let fd): try server.serve(metricsListener: fd)
                    case .inUse: throw ControlError(.system, "cannot listen for metrics on \(m): the port is in use")
                    case .notLocal(let why), .failed(let why): throw ControlError(.system, "cannot listen for metrics on \(m): \(why)")
                    }
                } else {
                    try server.bind(metricsHost: m.host, port: m.port)
                }
            }
        } catch {
            server.close()
            cluster?.stop()
            gateway.shutdown()
            throw error
        }
        logger.notice(
            "gatewayd listening",
            metadata: [
                "control": "\(configuration.controlPath)", "shards": "\(gateway.shardCount)",
                "state": "\(configuration.stateDirectory)", "restored": "\(restored.count)",
                "metrics": "\(configuration.metricsAddress.map { $0.description } ?? "control socket only")",
                "cluster": "\(configuration.cluster.map { "node \($0.node) in etcd \($0.endpoints.map(\.description).joined(separator: ","))" } ?? "none")",
                "privileges": "\(privileges is DirectPrivileges ? "this process" : "supervisor")",
            ])
    }

    /// Removes the devices a crashed run of this daemon left: names under a sweep prefix that this
    /// daemon's naming makes (see `DaemonConfiguration.makesDevice(named:)`), never another
    /// gateway's (its host-device tag differs) or anything else that merely starts alike.
    static func sweep(_ privileges: any HostPrivileges, logger: Logger, keeping kept: Set<String> = []) {
        do {
            for name in try privileges.sweepStaleDevices(keeping: kept) {
                logger.notice("removed stale device \(name) left by an earlier run")
            }
        } catch {
            logger.warning("could not sweep stale devices: \(error)")
        }
    }

    /// The devices of the VM sandboxes the state directory holds that outlived the killed run
    /// (a VM TAP its monitor may still hold, and its bridge): the restore takes them over.
    static func restorableVMDevices(_ store: StateStore, _ configuration: DaemonConfiguration) -> Set<String> {
        var names: Set<String> = []
        for leftover in store.leftovers() {
            guard let state = leftover.state, state.sandbox.vm != nil, let block = state.addressBlock else { continue }
            names.formUnion(Gateway.survivingVMDevices(addressBlock: block, hostDeviceTag: configuration.hostDeviceTag))
        }
        return names
    }

    /// Detaches every sandbox, stops listening and stops the shards.
    public func stop() {
        logger.notice("stopping: detaching \(gateway.list().count) sandbox(es)")
        server.close()
        service.detachAll()
        // Revokes the lease: the node's keys go now, not a TTL later.
        cluster?.stop()
        gateway.shutdown()
        logger.notice("stopped")
    }

    /// Routes SIGTERM, SIGINT and SIGHUP to `waitForTerminationSignal` instead of their default
    /// action (exit without detaching), and ignores SIGPIPE: a write to a socket whose peer has gone is
    /// that flow's error, never the end of every sandbox. A handler, not a blocked mask: the
    /// runtime may already have started threads that would not inherit a mask. Call first thing
    /// in main.
    public static func installTerminationHandlers() {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        signalPipe = (fds[0], fds[1])
        for signal in [SIGTERM, SIGINT, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                // Only async-signal-safe calls here: one write(2) to the pipe.
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipe.write, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
        // A parent may have left them blocked (test runners do), which would keep them pending.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// SIGHUP: reopens the flow log (logrotate has moved it away) and takes the policies of
    /// `configuration` (the config file read again; nil when it could not be read, and the
    /// running policies stay). Sandboxes whose policy changed follow it at once.
    public func reload(_ configuration: DaemonConfiguration?) {
        gateway.flowLog.reopen()
        logger.notice("SIGHUP: flow log reopened")
        guard let configuration else { return }
        do {
            let switched = try gateway.reloadPolicies(configuration.policies, deniedNames: configuration.dnsDeniedNames)
            logger.notice(
                "SIGHUP: policies reloaded",
                metadata: ["policies": "\(configuration.policies.count)", "sandboxes-switched": "\(switched.count)"])
        } catch {
            logger.error("SIGHUP: policies not reloaded, the running ones stay: \(error.message)")
        }
    }

    /// The read end of the pipe the handlers write each signal's number to (after
    /// `installTerminationHandlers`), for a loop that waits on more than signals; -1 if none.
    public static var signalDescriptor: Int32 { signalPipe.read }

    /// Waits for SIGTERM, SIGINT or SIGHUP (after `installTerminationHandlers`); returns its number.
    public static func waitForTerminationSignal() -> Int32 {
        guard signalPipe.read >= 0 else {
            // No pipe (it could not be made): any signal that reaches us ends the wait.
            pause()
            return SIGTERM
        }
        var byte: UInt8 = 0
        while true {
            let n = read(signalPipe.read, &byte, 1)
            if n == 1 { return Int32(byte) }
            if n < 0 && errno == EINTR { continue }
            return SIGTERM
        }
    }
}

/// The self-pipe the signal handler writes to; set once before any signal can arrive.
nonisolated(unsafe) private var signalPipe: (read: Int32, write: Int32) = (-1, -1)
