import CGatewayShims
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

// The control API's listeners: HTTP/1.1 on a Unix socket (and /metrics optionally on TCP), on an
// event loop group of their own, separate from the gateway's shards, with a thread pool for the
// service's blocking calls.
#if canImport(Glibc)
    import Glibc
#endif

public final class ControlServer: Sendable {
    public let service: ControlService
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    private let channels = Mutex<[any Channel]>([])
    private let socketPath = Mutex<String?>(nil)
    private let timeouts: ControlDeadlineHandler.Timeouts
    private let connections: ControlConnectionLimit

    /// - Parameters:
    ///   - threads: pool threads for requests; a running capture holds one.
    ///   - idleTimeout: a connection with no request for this long is closed.
    ///   - requestTimeout: a request whose head and body are not in this long after its first
    ///     byte is dropped with its connection.
    ///   - maxConnections: connections open at once; one more is answered 503 `busy` and closed,
    ///     so that clients cannot take the descriptors kept for the control plane.
    public init(
        service: ControlService, threads: Int = ControlService.maxCaptures + 4, idleTimeout: Duration = .seconds(60),
        requestTimeout: Duration = .seconds(10), maxConnections: Int = 48
    ) {
        self.service = service
        connections = ControlConnectionLimit(max: maxConnections)
        timeouts = .init(idle: idleTimeout.timeAmount, request: requestTimeout.timeAmount)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        threadPool = NIOThreadPool(numberOfThreads: threads)
        threadPool.start()
    }

    /// Listens on the Unix socket at `path` with permission bits `mode`. A socket file left by a
    /// crashed run is replaced; one that a live gatewayd answers on is not.
    public func bind(unixSocket path: String, mode: UInt32 = 0o660) throws(ControlError) {
        try serve(unixListener: Self.bindSocket(unixSocket: path, mode: mode), path: path)
    }

    /// A Unix socket bound at `path` with permission bits `mode`, made before this process gives
    /// up its privileges (the socket's directory is root's) and served later by
    /// `serve(unixListener:path:)`, which listens: until then a client's connect is refused, as
    /// no gatewayd answers yet. A socket file left by a crashed run is replaced; one that a live
    /// gatewayd answers on is not.
    public static func bindSocket(unixSocket path: String, mode: UInt32 = 0o660) throws(ControlError) -> Int32 {
        guard path.utf8.count < 108 else {
            throw ControlError(
                .invalidArgument, "control socket path \(path) is longer than 107 bytes: pick a shorter one")
        }
        if ControlClient(socketPath: path).isReachable() {
            throw ControlError.daemonRunning(at: path)
        }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !directory.isEmpty { mkdir(directory, 0o755) }
        func failure(_ step: String) -> ControlError {
            ControlError(.system, "cannot listen on control socket \(path): \(step): \(String(cString: strerror(errno)))")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let error = failure("bind")
            Glibc.close(fd)
            throw error
        }
        chmod(path, mode_t(mode))
        return fd
    }

    /// Listens on, and serves the control API on, a socket from `bindSocket(unixSocket:mode:)`,
    /// which it takes over; `path` is unlinked at close.
    public func serve(unixListener fd: Int32, path: String) throws(ControlError) {
        guard Glibc.listen(fd, 64) == 0 else {
            let error = ControlError(
                .system, "cannot listen on control socket \(path): \(String(cString: strerror(errno)))")
            Glibc.close(fd)
            throw error
        }
        let channel: any Channel
        do {
            channel = try bootstrap(metricsOnly: false).withBoundSocket(fd).wait()
        } catch {
            Glibc.close(fd)
            throw ControlError(.system, "cannot listen on control socket \(path): \(error)")
        }
        channels.withLock { $0.append(channel) }
        socketPath.withLock { $0 = path }
    }

    /// Serves GET /metrics (only) on a listening TCP socket made elsewhere (a port below 1024,
    /// bound by the privileged supervisor); takes it over.
    public func serve(metricsListener fd: Int32) throws(ControlError) {
        do {
            let channel = try bootstrap(metricsOnly: true).withBoundSocket(fd).wait()
            channels.withLock { $0.append(channel) }
        } catch {
            Glibc.close(fd)
            throw ControlError(.system, "cannot serve metrics on descriptor \(fd): \(error)")
        }
    }

    /// Serves GET /metrics (only) over TCP at host:port.
    public func bind(metricsHost host: String, port: Int) throws(ControlError) {
        do {
            let channel = try bootstrap(metricsOnly: true).bind(host: host, port: port).wait()
            channels.withLock { $0.append(channel) }
        } catch {
            throw ControlError(.system, "cannot listen for metrics on \(host):\(port): \(error)")
        }
    }

    /// The TCP port the metrics listener got (when bound to port 0).
    public var metricsPort: Int? {
        channels.withLock { list in list.lazy.compactMap { $0.localAddress?.port }.first }
    }

    private func bootstrap(metricsOnly: Bool) -> ServerBootstrap {
        let service = service
        let pool = threadPool
        let timeouts = timeouts
        let connections = connections
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard connections.admit(channel) else {
                        try channel.pipeline.syncOperations.addHandler(ControlConnectionLimit.Refusal())
                        return
                    }
                    // Idle and slow clients must not keep descriptors the control plane needs.
                    try channel.pipeline.syncOperations.addHandler(ControlDeadlineHandler(timeouts: timeouts))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        ControlHTTPHandler(service: service, threadPool: pool, metricsOnly: metricsOnly))
                }
            }
    }

    /// Stops listening, removes the socket file and stops the threads. Requests in flight finish
    /// or fail; a running capture ends when its connection closes.
    public func close() {
        let list = channels.withLock { l in
            defer { l.removeAll() }
            return l
        }
        for c in list { try? c.close().wait() }
        if let path = socketPath.withLock({ $0 }) { unlink(path) }
        // Captures hold pool threads until they see this; the pool then drains before the loop
        // that its results complete on goes away.
        service.beginShutdown()
        try? threadPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }
}
