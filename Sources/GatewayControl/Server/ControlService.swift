// The control API's logic, transport-free: routes each request to the Gateway's synchronous API,
// keeps the state directory in step with attach and detach, and produces JSON, metrics and
// pcap. Its calls block briefly on shard tasks, so the server runs them on a thread pool.
import Foundation
import Gateway
import Link
import Logging
import Synchronization

public final class ControlService: Sendable {
    public let gateway: Gateway
    public let store: StateStore?
    public let publishing: (any PortPublishing)?
    let logger: Logger
    let defaultPolicy: String
    /// Where named namespaces live; tests point it elsewhere.
    let namespaceDirectory: String
    /// The cluster view in etcd (`[cluster]`); nil when there is none.
    public let cluster: ClusterSync?
    /// Held while the cluster's desired state is taken and handed over, so that the last one
    /// handed over is never older than a change that finished before it.
    private let clusterLock = Mutex(())
    /// What each sandbox was attached with (the Gateway does not keep `dhcp` or the request).
    private let requests = Mutex<[String: Attached]>([:])
    /// Held while a state file is written or removed, so the file always ends as the latest
    /// change made it: two publishes at once cannot leave the older port list on disk, and a
    /// publish finishing after a detach cannot bring the file back.
    private let stateLock = Mutex(())
    /// What the restart could not bring back, per restored sandbox (see `SandboxView`).
    private let restoreWarnings = Mutex<[String: [String]]>([:])
    private let activeCaptures = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// Captures at once: each holds a thread of the server's pool while it runs.
    public static let maxCaptures = 4

    public init(
        gateway: Gateway, store: StateStore?, publishing: (any PortPublishing)? = nil, logger: Logger,
        defaultPolicy: String = "host-only", namespaceDirectory: String = AttachRequest.namespaceDirectory,
        cluster: ClusterSync? = nil
    ) {
        self.gateway = gateway
        self.store = store
        self.publishing = publishing
        self.logger = logger
        self.defaultPolicy = defaultPolicy
        self.namespaceDirectory = namespaceDirectory
        self.cluster = cluster
    }

    // MARK: - Routing

    public func handle(_ request: ControlRequest) -> ControlResponse {
        do throws(ControlError) {
            return try route(request)
        } catch {
            if error.httpStatus >= 500 && error.code != .notImplemented {
                logger.error("\(request.method) \(request.path): \(error.message)")
            }
            return .error(error)
        }
    }

    private func route(_ r: ControlRequest) throws(ControlError) -> ControlResponse {
        let s = r.segments
        let m = r.method
        func allow(_ methods: String...) throws(ControlError) {
            guard methods.contains(m) else {
                throw ControlError(
                    .methodNotAllowed, "\(m) is not allowed on \(r.path): use \(methods.joined(separator: " or "))")
            }
        }
        switch s.count {
        case 1 where s[0] == "metrics":
            try allow("GET")
            return ControlResponse(
                status: 200, contentType: PrometheusExposition.contentType, body: .bytes(Array(metrics().utf8)))
        case 2 where s == ["v1", "health"]:
            try allow("GET")
            return .json(
                Health(
                    status: "ok", sandboxes: gateway.list().count, shards: gateway.shardCount,
                    cluster: cluster?.status ?? .disabled))
        case 2 where s == ["v1", "sandboxes"]:
            try allow("GET", "POST")
            if m == "GET" { return .json(list()) }
            return .json(try attach(try decode(AttachRequest.self, r.body, what: "an attach request")), status: 201)
        #if GATEWAYD_TEST_HOOKS
            case 3 where s == ["v1", "test-hooks", "forbidden-syscall"]:
                // Tests only (debug builds): shows that a system call outside the worker's filter
                // kills the worker and that the supervisor restarts it with its sandboxes.
                try allow("POST")
                _ = acct(nil)
                return .json(Health(status: "survived a forbidden system call", sandboxes: 0, shards: 0))
        #endif
        case 2 where s == ["v1", "stats"]:
            try allow("GET")
            return .json(gateway.allStats())
        case 2 where s == ["v1", "routes"]:
            try allow("GET")
            return .json(try routes())
        case 2 where s == ["v1", "flows"]:
            try allow("GET")
            return try flows(nil, r.query)
        case 4 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "policy":
            try allow("PUT")
            return .json(try setPolicy(s[2], try decode(PolicyChange.self, r.body, what: "a policy change")))
        case 4 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "flows":
            try allow("GET")
            _ = try sandbox(s[2])
            return try flows(s[2], r.query)
        case 3 where s[0] == "v1" && s[1] == "sandboxes":
            try allow("GET", "DELETE")
            if m == "GET" { return .json(try sandbox(s[2])) }
            try detach(s[2])
            return .json(Detached(id: s[2], detached: true))
        case 4 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "stats":
            try allow("GET")
            return .json(try stats(s[2]))
        case 4 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "ports":
            try allow("GET", "POST")
            if m == "GET" { return .json(try routes().filter { $0.sandbox == s[2] }) }
            return .json(try publish(s[2], try decode(PublishRequest.self, r.body, what: "a port spec")), status: 201)
        case 6 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "ports":
            try allow("DELETE")
            guard let port = Int(s[5]) else {
                throw ControlError(.badSpec, "host port '\(s[5])' is not a number: use /v1/sandboxes/ID/ports/tcp/8080")
            }
            let spec = PublishRequest(hostIP: r.query["hostIP"], hostPort: port, guestPort: 1, protocol: s[4])
            try unpublish(s[2], spec)
            return .json(Unpublished(sandbox: s[2], hostPort: port, protocol: s[4], unpublished: true))
        case 4 where s[0] == "v1" && s[1] == "sandboxes" && s[3] == "capture":
            try allow("GET")
            let count = try r.query["count"].map { text throws(ControlError) -> Int in
                guard let n = Int(text), n > 0 else {
                    throw ControlError(.invalidArgument, "count '\(text)' is not a positive number of frames")
                }
                return n
            }
            let seconds = try r.query["seconds"].map { text throws(ControlError) -> Double in
                guard let n = Double(text), n > 0, n <= 86_400 else {
                    throw ControlError(.invalidArgument, "seconds '\(text)' is not a duration in seconds (0-86400]")
                }
                return n
            }
            return ControlResponse(
                status: 200, contentType: "application/vnd.tcpdump.pcap",
                body: .stream(try capture(s[2], count: count, seconds: seconds)))
        default:
            throw ControlError(.notFound, "no endpoint \(m) \(r.path): see docs/control-api.md for the API")
        }
    }

    struct Health: Codable {
        var status: String
        var sandboxes: Int
        var shards: Int
        var cluster: ClusterSync.Status?
    }

    struct Detached: Codable {
        var id: String
        var detached: Bool
    }

    struct Unpublished: Codable {
        var sandbox: String
        var hostPort: Int
        var `protocol`: String
        var unpublished: Bool
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], what: String) throws(ControlError) -> T {
        guard !body.isEmpty else {
            throw ControlError(.invalidArgument, "the request has no body: send \(what) as JSON")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch let error as DecodingError {
            throw ControlError(.invalidArgument, "the body is not \(what): \(Self.describe(error))")
        } catch {
            throw ControlError(.invalidArgument, "the body is not \(what): \(error)")
        }
    }

    /// Which field of a JSON body was wrong, in words an operator can act on.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let c): return "field '\(path(c.codingPath + [key]))' is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            return "field '\(path(c.codingPath))' has the wrong type"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "it is not valid JSON" : "field '\(path(c.codingPath))' is invalid"
        @unknown default: return "\(error)"
        }
    }

    // MARK: - Sandboxes

    /// An attached sandbox's request (its MAC filled in, ports left to the routing table) and
    /// the address block it holds: what its state file is made of.
    private struct Attached {
        var request: AttachRequest
        var addressBlock: Int?
        var namespaceIdentity: String?
    }

    /// Attaches a sandbox, publishes the ports it asks for, and records it in the state directory.
    public func attach(_ request: AttachRequest) throws(ControlError) -> SandboxView {
        try attach(request, addressBlock: nil, restoring: nil)
    }

    /// `restoring`: the state file a restart restores the sandbox from. Then a port that cannot be
    /// published again is reported and skipped; otherwise it undoes the attach.
    private func attach(
        _ request: AttachRequest, addressBlock: Int?, restoring saved: SandboxState?
    ) throws(ControlError) -> SandboxView {
        var spec = try request.spec(defaultPolicy: defaultPolicy)
        spec.addressBlock = addressBlock
        spec.reuseVMDevices = saved != nil
        // Only a path can come to name another namespace; a name is the operator's to reuse.
        if request.namespaceIsPath, let text = saved?.namespaceIdentity {
            spec.namespaceIdentity = NamespaceIdentity(text)
        }
        let ports = request.ports ?? []
        for port in ports { try port.validate() }
        if !ports.isEmpty && publishing == nil { throw notWired("publishing a port") }
        // A path (often /proc/PID/ns/net, which this process may not be allowed to look at) is
        // checked where it is opened.
        if let netns = request.netns, !request.namespaceIsPath,
            !FileManager.default.fileExists(atPath: namespaceDirectory + "/" + netns)
        {
            throw ControlError(
                .namespaceNotFound,
                "network namespace '\(netns)' does not exist: create it first (ip netns add \(netns)) "
                    + "or pass the name 'ip netns list' shows")
        }
        if saved == nil, let cluster {
            // A restored sandbox was this node's already; one another node took meanwhile is
            // kept here and counted as a conflict by the sync.
            let claim = ClusterSandboxRecord(
                id: request.id, node: cluster.configuration.node, mode: request.vm == nil ? "netns" : "vm",
                addresses: nil, policy: spec.policy, mac: request.mac ?? "")
            if case .heldBy(let node) = cluster.claim(claim) {
                throw ControlError(
                    .sandboxExists,
                    "sandbox '\(request.id)' exists on node '\(node)': detach it there first or pick another ID")
            }
        }
        let info: SandboxInfo
        do {
            info = try gateway.attach(spec)
        } catch {
            // Lets go of the ID the claim took, unless a sandbox of that ID is attached here.
            updateCluster(request.id)
            throw ControlError(error)
        }
        var warnings: [String] = []
        var published: [RouteView] = []
        for port in ports {
            do throws(ControlError) {
                guard let publishing else { throw notWired("publishing a port") }
                published.append(try publishing.publish(sandbox: request.id, spec: port))
            } catch {
                if saved != nil {
                    warnings.append("port \(port) was not published again: \(error.message)")
                    continue
                }
                undoAttach(request.id, published: published)
                updateCluster(request.id)
                throw ControlError(
                    error.code, "sandbox '\(request.id)' was not attached: port \(port): \(error.message)")
            }
        }
        // A restore gives the guest the MAC it had, so its SLAAC address and neighbours hold.
        var kept = request
        if kept.mac == nil { kept.mac = info.mac }
        // The policy it runs, not the daemon's default of the day, which a restart may change.
        if kept.policy == nil { kept.policy = spec.policy }
        kept.ports = nil
        let attached = Attached(request: kept, addressBlock: info.addressBlock, namespaceIdentity: info.namespaceIdentity)
        requests.withLock { $0[request.id] = attached }
        if !warnings.isEmpty { restoreWarnings.withLock { $0[request.id] = warnings } }
        persist(request.id, unlessEqualTo: saved)
        updateCluster(request.id)
        logger.info(
            "attached sandbox \(request.id)",
            metadata: [
                "mode": "\(info.mode)", "netns": "\(request.netns ?? "-")", "tap": "\(info.tap)", "mac": "\(info.mac)",
                "shard": "\(info.shard)", "ipv4": "\(info.guestIPv4)", "block": "\(info.addressBlock.map(String.init) ?? "-")",
                "ports": "\(published.map { "\($0.hostIP):\($0.hostPort)->\($0.guestPort)/\($0.protocol)" }.joined(separator: ","))",
            ])
        if let warning = info.warning { logger.warning("sandbox \(request.id): \(warning)") }
        return view(info)
    }

    /// Takes back an attach whose ports could not all be published: the ports that were, then
    /// the sandbox (which frees whatever else it holds).
    private func undoAttach(_ id: String, published: [RouteView]) {
        for route in published {
            try? publishing?.unpublish(
                sandbox: id,
                spec: PublishRequest(
                    hostIP: route.hostIP, hostPort: route.hostPort, guestPort: route.guestPort, protocol: route.protocol))
        }
        try? gateway.detach(id)
    }

    /// Writes sandbox `id`'s state file from what is attached now (nothing once it is detached);
    /// skipped when the file already holds `unchanged`, as a restored sandbox's usually does.
    private func persist(_ id: String, unlessEqualTo unchanged: SandboxState? = nil) {
        guard let store else { return }
        stateLock.withLock { _ in
            guard let attached = requests.withLock({ $0[id] }) else { return }
            var request = attached.request
            let ports = ((try? routes()) ?? []).filter { $0.sandbox == id }.map {
                PublishRequest(hostIP: $0.hostIP, hostPort: $0.hostPort, guestPort: $0.guestPort, protocol: $0.protocol)
            }
            request.ports = ports.isEmpty ? nil : ports
            let state = SandboxState(
                addressBlock: attached.addressBlock, sandbox: request, namespaceIdentity: attached.namespaceIdentity)
            guard state != unchanged else { return }
            do throws(ControlError) {
                try store.save(state)
            } catch {
                // The sandbox works; only a restart after a crash would not find it as it is.
                logger.warning("sandbox \(id): \(error.message)")
            }
        }
    }

    /// Hands the cluster sync sandbox `id` as it is now (attached or not, and its routes). Never
    /// waits for etcd. Held under a lock from reading to handing over, so the last state handed
    /// over is never older than a change that finished before it.
    private func updateCluster(_ id: String) {
        guard let cluster else { return }
        clusterLock.withLock { _ in
            let node = cluster.configuration.node
            let record = gateway.info(id).map {
                ClusterSandboxRecord(SandboxView(info: $0, dhcp: false, ports: []), node: node)
            }
            let routes = record == nil ? [] : ((try? routes()) ?? []).filter { $0.sandbox == id }
            cluster.setSandbox(id, record, routes: routes.map { ClusterRouteRecord($0, node: node) })
        }
    }

    /// Switches sandbox `id` to another policy now, and records it so a restart keeps it.
    public func setPolicy(_ id: String, _ change: PolicyChange) throws(ControlError) -> PolicyChanged {
        let reset: Int
        do {
            reset = try gateway.setPolicy(id, to: change.policy, keepFlows: change.keepFlows ?? false)
        } catch {
            throw ControlError(error)
        }
        requests.withLock { $0[id]?.request.policy = change.policy }
        persist(id)
        updateCluster(id)
        logger.info("sandbox \(id): policy \(change.policy)", metadata: ["flows-reset": "\(reset)"])
        return PolicyChanged(id: id, policy: change.policy, flowsReset: reset)
    }

    public func detach(_ id: String) throws(ControlError) {
        do {
            try gateway.detach(id)
        } catch {
            throw ControlError(error)
        }
        stateLock.withLock { _ in
            requests.withLock { _ = $0.removeValue(forKey: id) }
            store?.remove(id: id)
        }
        restoreWarnings.withLock { _ = $0.removeValue(forKey: id) }
        updateCluster(id)
        logger.info("detached sandbox \(id)")
    }

    /// Detaches every sandbox (graceful stop), removing their state files.
    public func detachAll() {
        for info in gateway.list() { try? detach(info.id) }
    }

    public func list() -> [SandboxView] {
        let all = (try? routes()) ?? []
        return gateway.list().map { info in view(info, routes: all) }
    }

    public func sandbox(_ id: String) throws(ControlError) -> SandboxView {
        guard let info = gateway.info(id) else { throw Self.unknown(id) }
        return view(info)
    }

    public func stats(_ id: String) throws(ControlError) -> SandboxStats {
        do {
            return try gateway.stats(id)
        } catch {
            throw ControlError(error)
        }
    }

    private func view(_ info: SandboxInfo, routes: [RouteView]? = nil) -> SandboxView {
        let all = routes ?? (try? self.routes()) ?? []
        // A VM always configures itself by DHCP.
        let dhcp = info.mode == "vm" || requests.withLock { $0[info.id]?.request.dhcp ?? false }
        return SandboxView(
            info: info, dhcp: dhcp, ports: all.filter { $0.sandbox == info.id },
            restoreWarnings: restoreWarnings.withLock { $0[info.id] })
    }

    static func unknown(_ id: String) -> ControlError {
        ControlError(GatewayError.unknownSandbox(id))
    }

    private func requireSandbox(_ id: String) throws(ControlError) {
        guard gateway.list().contains(where: { $0.id == id }) else { throw Self.unknown(id) }
    }

    // MARK: - Published ports

    private func notWired(_ what: String) -> ControlError {
        ControlError(
            .notImplemented,
            "\(what) is not available in this gatewayd build: port publishing is not wired into the control API yet")
    }

    public func routes() throws(ControlError) -> [RouteView] {
        guard let publishing else { throw notWired("listing published ports") }
        return publishing.routes()
    }

    public func publish(_ id: String, _ spec: PublishRequest) throws(ControlError) -> RouteView {
        try requireSandbox(id)
        try spec.validate()
        guard let publishing else { throw notWired("publishing a port") }
        let route = try publishing.publish(sandbox: id, spec: spec)
        persist(id)
        updateCluster(id)
        logger.info(
            "published \(route.hostIP):\(route.hostPort)/\(route.protocol) to sandbox \(id) port \(route.guestPort)")
        return route
    }

    public func unpublish(_ id: String, _ spec: PublishRequest) throws(ControlError) {
        try requireSandbox(id)
        try spec.validate()
        guard let publishing else { throw notWired("unpublishing a port") }
        try publishing.unpublish(sandbox: id, spec: spec)
        persist(id)
        updateCluster(id)
        logger.info("unpublished \(spec) from sandbox \(id)")
    }

    // MARK: - Flow log

    /// The latest flow-log records (`limit`, default 100) as a JSON array; with `follow=1`, those
    /// as JSON lines and then every new record as it comes, until the client leaves or the
    /// server stops. A follower that reads too slowly loses lines (never slows traffic); a line
    /// `{"droppedLines": N}` says how many.
    func flows(_ id: String?, _ query: [String: String]) throws(ControlError) -> ControlResponse {
        let limit = try query["limit"].map { text throws(ControlError) -> Int in
            guard let n = Int(text), n >= 0 else {
                throw ControlError(.invalidArgument, "limit '\(text)' is not a number of records")
            }
            return n
        } ?? 100
        let log = gateway.flowLog
        log.flush()
        guard query["follow"] == "1" || query["follow"] == "true" else {
            return .json(log.recent(sandbox: id, limit: limit))
        }
        let follower = log.follow(sandbox: id)
        let backlog = log.recent(sandbox: id, limit: limit)
        return ControlResponse(status: 200, contentType: "application/x-ndjson", body: .stream { [self] writer in
            defer { log.unfollow(follower) }
            guard writer.write(Array(backlog.map { $0.jsonLine() }.joined())) else { return }
            var reported = 0
            while writer.isOpen && !stopping.load(ordering: .relaxed) {
                let lines = follower.drain()
                if follower.dropped > reported {
                    reported = follower.dropped
                    guard writer.write(Array("{\"droppedLines\":\(reported)}\n".utf8)) else { return }
                }
                if lines.isEmpty {
                    usleep(50_000)
                    continue
                }
                guard writer.write(Array(lines.joined())) else { return }
            }
        })
    }

    // MARK: - Metrics and capture

    public func metrics() -> String {
        GatewayMetrics.render(gateway, routes: (try? routes()) ?? [], cluster: cluster?.status)
    }

    /// Starts a capture on sandbox `id` and returns the body that streams it as pcap: until
    /// `count` frames, `seconds` elapsed, the client leaving, or the sandbox's detach.
    public func capture(
        _ id: String, count: Int?, seconds: Double?
    ) throws(ControlError) -> @Sendable (any ControlBodyWriter) -> Void {
        guard activeCaptures.add(1, ordering: .relaxed).newValue <= Self.maxCaptures else {
            activeCaptures.subtract(1, ordering: .relaxed)
            throw ControlError(.busy, "\(Self.maxCaptures) captures are already running: stop one and try again")
        }
        let capture: FrameCapture
        do {
            capture = try gateway.startCapture(sandbox: id)
        } catch {
            activeCaptures.subtract(1, ordering: .relaxed)
            throw ControlError(error)
        }
        logger.info("capture started on sandbox \(id)", metadata: ["count": "\(count.map(String.init) ?? "unlimited")"])
        return { [self] writer in
            var written = 0
            defer {
                gateway.stopCapture(capture)
                activeCaptures.subtract(1, ordering: .relaxed)
                logger.info(
                    "capture on sandbox \(id) ended",
                    metadata: ["frames": "\(written)", "dropped": "\(capture.dropped)"])
            }
            guard writer.write(PcapWriter.fileHeader(snapLength: capture.snapLength)) else { return }
            let start = Date()
            var lastCheck = start
            while writer.isOpen && !stopping.load(ordering: .relaxed) {
                let frames = capture.drain(limit: count.map { $0 - written } ?? .max)
                if !frames.isEmpty {
                    var chunk: [UInt8] = []
                    for f in frames { chunk += PcapWriter.record(f) }
                    guard writer.write(chunk) else { return }
                    written += frames.count
                    if let count, written >= count { return }
                    continue
                }
                let now = Date()
                if let seconds, now.timeIntervalSince(start) >= seconds { return }
                if now.timeIntervalSince(lastCheck) >= 0.5 {
                    lastCheck = now
                    guard gateway.list().contains(where: { $0.id == id }) else { return }
                }
                usleep(20_000)
            }
        }
    }

    /// Ends running captures: the server is going away.
    public func beginShutdown() {
        stopping.store(true, ordering: .relaxed)
    }

    // MARK: - Restart

    /// Attaches again the sandboxes whose state files a previous run left (it was killed before
    /// it could detach them), each with the address block, MAC and published ports it had, so
    /// its guest notices nothing but the reset of the flows that were open. A file that cannot
    /// be used is logged and set aside, never fatal; a port another process took meanwhile is
    /// logged and shown in `list` (`restoreWarnings`), and the rest restored. A VM sandbox takes
    /// over the TAP and bridge that outlived the killed run (the startup sweep leaves them), so
    /// a VM monitor that holds the TAP keeps its link; one whose TAP is gone is not restored.
    /// Returns the IDs restored.
    @discardableResult
    public func restoreLeftovers() -> [String] {
        guard let store else { return [] }
        var found: [(leftover: StateStore.Leftover, state: SandboxState)] = []
        for leftover in store.leftovers() {
            guard let state = leftover.state else {
                let kept = store.reject(leftover)
                logger.error(
                    "skipped state file \(leftover.path): \(leftover.problem ?? "it cannot be used"); kept as \(kept)")
                continue
            }
            found.append((leftover, state))
        }
        // Files that name their block first, so that one from an older gatewayd (which did not
        // record blocks) cannot take a block another sandbox's guest is configured for.
        found.sort { a, b in
            (a.state.addressBlock == nil ? 1 : 0, a.state.sandbox.id) < (b.state.addressBlock == nil ? 1 : 0, b.state.sandbox.id)
        }
        var restored: [String] = []
        for (leftover, state) in found {
            let request = state.sandbox
            logger.notice(
                """
                sandbox \(request.id) was still attached when the previous gatewayd stopped; \
                its device went with that process
                """,
                metadata: ["file": "\(leftover.path)"])
            if request.vm != nil {
                // Its VM keeps its link only through the TAP and bridge the sweep left for it.
                guard let block = state.addressBlock, gateway.vmLinkSurvives(addressBlock: block) else {
                    if let block = state.addressBlock { gateway.discardVMDevices(addressBlock: block) }
                    store.removeLeftover(leftover)
                    logger.notice(
                        "not restoring VM sandbox \(request.id): its TAP is gone; attach it again and restart the VM on the new TAP")
                    continue
                }
            } else if let netns = request.netns, !request.namespaceIsPath,
                !FileManager.default.fileExists(atPath: namespaceDirectory + "/" + netns)
            {
                store.removeLeftover(leftover)
                logger.notice("not restoring sandbox \(request.id): its namespace \(netns) no longer exists")
                continue
            }
            do {
                let view = try attach(request, addressBlock: state.addressBlock, restoring: state)
                restored.append(request.id)
                let place = request.netns.map { "in namespace \($0)" } ?? "on its VM's TAP \(view.tap)"
                logger.notice(
                    "restored sandbox \(request.id) \(place)",
                    metadata: ["ipv4": "\(view.guestIPv4)", "ports": "\(view.ports.count)"])
                for warning in view.restoreWarnings ?? [] { logger.warning("sandbox \(request.id): \(warning)") }
            } catch where error.code == .namespaceNotFound && request.namespaceIsPath {
                // A container's namespace goes with the container: nothing is left to restore.
                store.removeLeftover(leftover)
                logger.notice("not restoring sandbox \(request.id): \(error.message)")
            } catch {
                let kept = store.reject(leftover)
                logger.error("could not restore sandbox \(request.id): \(error.message); its state file is kept as \(kept)")
            }
        }
        return restored
    }
}
