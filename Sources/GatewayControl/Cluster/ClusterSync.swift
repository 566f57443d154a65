// Keeps this node's part of the cluster view in etcd, on a thread of its own: the desired state
// (node record, sandboxes, routes; set by the control plane per sandbox on every change, nothing
// else queued but the names of the keys that changed)
// is written under one lease renewed every third of its TTL, and reconciled in full against what
// etcd holds on start, on etcd's return and on a lost lease. Nothing here is on the data path,
// and an attach waits for etcd only for its ID claim, only while etcd is believed reachable.
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

public final class ClusterSync: Sendable {
    /// The outcome of claiming a sandbox ID farm-wide.
    public enum Claim: Sendable, Hashable {
        /// etcd now names this node as the ID's holder (or already did).
        case claimed
        /// Another node holds the ID.
        case heldBy(String)
        /// etcd is not believed reachable, or did not answer in time: the attach goes on locally
        /// and the sync settles the ID when etcd is back.
        case skipped
    }

    /// What `/v1/health` shows under `cluster`.
    public struct Status: Codable, Sendable, Hashable {
        /// "connected", "unreachable" or "disabled".
        public var etcd: String
        public var node: String?
        public var endpoints: [String]?
        /// When etcd last took every change (ISO 8601, UTC); nil before the first time.
        public var lastSync: String?
        /// Keys this node holds in etcd now.
        public var keys: Int?
        /// Sandbox IDs attached here that etcd names another node for.
        public var heldElsewhere: [String]?
        public var reconciles: Int?
        public var conflicts: Int?

        public static let disabled = Status(etcd: "disabled")

        public init(etcd: String) { self.etcd = etcd }
    }

    public let configuration: ClusterConfiguration
    public let layout: ClusterLayout
    /// Put into the route keys of wildcard binds (see `ClusterLayout.route`).
    public let advertised: [String]
    let client: EtcdClient
    let logger: Logger
    let nodeKey: String
    let nodeValue: [UInt8]

    private struct State {
        var desired: [String: [UInt8]] = [:]
        /// The desired keys of each sandbox (its record and its routes).
        var keysBySandbox: [String: Set<String>] = [:]
        var stored: [String: StoredKey] = [:]
        /// Keys whose desired value changed since the sync last wrote them.
        var pending: Set<String> = []
        /// Desired keys another node holds, and that node.
        var heldElsewhere: [String: String] = [:]
        var lease: Int64?
        var reachable = false
        var needsReconcile = true
        var lastSync: Date?
        var reconciles = 0
        var conflicts = 0
        var stopping = false

        var dirty: Bool { !pending.isEmpty }
    }

    private let state = Mutex(State())
    /// Signalled on every change, claim failure and stop; the thread waits on it between renewals.
    private let wake = DispatchSemaphore(value: 0)
    private let firstAttempt = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    public init(configuration: ClusterConfiguration, node: ClusterNodeRecord, logger: Logger) {
        self.configuration = configuration
        layout = ClusterLayout(prefix: configuration.prefix)
        advertised = node.addresses
        client = EtcdClient(endpoints: configuration.endpoints)
        self.logger = logger
        nodeKey = layout.node(configuration.node)
        nodeValue = ClusterJSON.encode(node)
        state.withLock { $0.desired = [nodeKey: nodeValue] }
    }

    var node: String { configuration.node }

    /// Starts the thread and waits (at most `wait`) for its first attempt to reach etcd, so that
    /// the first attaches after a start already claim their IDs when etcd is up.
    public func start(waitingAtMost wait: Duration = .seconds(1)) {
        let thread = Thread { [self] in run() }
        thread.name = "cluster-sync"
        thread.start()
        let (seconds, attoseconds) = wait.components
        _ = firstAttempt.wait(timeout: .now() + .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
    }

    /// Stops the thread and revokes the lease, so the node's keys go at once rather than a TTL later.
    public func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
        _ = finished.wait(timeout: .now() + .seconds(5))
    }

    // MARK: - From the control plane

    /// Sandbox `id` as this node has it now (nil: not attached) and the routes that lead to it;
    /// the sync writes what changed. Costs the sandbox's own records, never the whole node's.
    public func setSandbox(_ id: String, _ record: ClusterSandboxRecord?, routes: [ClusterRouteRecord]) {
        var entries: [String: [UInt8]] = [:]
        if let record { entries[layout.sandbox(id)] = ClusterJSON.encode(record) }
        for r in routes { entries[layout.route(r, advertised: advertised)] = ClusterJSON.encode(r) }
        let changed = state.withLock { s in
            let before = s.pending.count
            for key in s.keysBySandbox[id] ?? [] where entries[key] == nil {
                s.desired[key] = nil
                s.heldElsewhere[key] = nil
                s.pending.insert(key)
            }
            for (key, value) in entries where s.desired[key] != value {
                s.desired[key] = value
                s.pending.insert(key)
            }
            s.keysBySandbox[id] = entries.isEmpty ? nil : Set(entries.keys)
            // A claim this node wrote for an attach that then failed is let go.
            let claim = layout.sandbox(id)
            if entries[claim] == nil && s.stored[claim] != nil { s.pending.insert(claim) }
            return s.pending.count != before
        }
        if changed { wake.signal() }
    }

    /// Claims sandbox `id` for this node before its attach: a transaction that writes `record`
    /// only if no one holds the key, and otherwise reads its holder. Waits at most the claim
    /// timeout, and not at all while etcd is believed unreachable.
    public func claim(_ record: ClusterSandboxRecord) -> Claim {
        guard let lease = state.withLock({ $0.reachable ? $0.lease : nil }) else { return .skipped }
        let key = layout.sandbox(record.id)
        let value = ClusterJSON.encode(record)
        let txn = Etcd.TxnRequest.guarded(
            key, createRevision: 0, then: .put(Etcd.PutRequest(key: key, value: value, lease: lease)))
        do {
            let r = try client.txn(txn, timeout: configuration.claimTimeout)
            if r.succeeded {
                state.withLock { $0.stored[key] = StoredKey(value: value, createRevision: r.revision) }
                return .claimed
            }
            // Deleted between the compare and the read: the sync settles it.
            guard let kv = r.ranged.first else { return .skipped }
            let holder = ClusterJSON.holder(of: kv.value.bytes) ?? "(unknown)"
            return holder == node ? .claimed : .heldBy(holder)
        } catch {
            state.withLock { s in
                if error.isLeaseNotFound { s.lease = nil }
                s.reachable = false
                s.needsReconcile = true
            }
            wake.signal()
            logger.warning(
                """
                cluster: etcd did not confirm sandbox \(record.id) within the claim timeout: attaching it \
                locally; the ID is checked when etcd answers again
                """,
                metadata: ["error": "\(error.message)"])
            return .skipped
        }
    }

    public var status: Status {
        state.withLock { s in
            var status = Status(etcd: s.reachable ? "connected" : "unreachable")
            status.node = node
            status.endpoints = configuration.endpoints.map(\.description)
            status.lastSync = s.lastSync.map(Self.timestamp)
            status.keys = s.stored.count
            let held = s.heldElsewhere.keys.filter { $0.hasPrefix(layout.sandboxes) }
            status.heldElsewhere = held.map { String($0.dropFirst(layout.sandboxes.count)) }.sorted()
            status.reconciles = s.reconciles
            status.conflicts = s.conflicts
            return status
        }
    }

    /// "2026-12-07T22:16:18Z"; made by hand, as the worker may not read time zone files.
    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    // MARK: - The thread

    private var renewal: Duration { .milliseconds(configuration.leaseTTL * 1000 / 3) }
    /// Between attempts while etcd does not answer.
    private var retry: Duration { min(.seconds(1), renewal) }

    private func run() {
        var nextRenewal = ContinuousClock.now
        var lastReconcile = ContinuousClock.now
        var reportedFirst = false
        defer {
            if let lease = state.withLock({ $0.lease }) {
                try? client.revokeLease(lease, timeout: configuration.requestTimeout)
            }
            finished.signal()
        }
        while !state.withLock({ $0.stopping }) {
            let timeout = configuration.requestTimeout
            do throws(EtcdError) {
                let (lease, reachable) = state.withLock { ($0.lease, $0.reachable) }
                guard let lease else {
                    let granted = try client.grantLease(ttl: configuration.leaseTTL, timeout: timeout)
                    state.withLock { s in
                        s.lease = granted
                        s.reachable = true
                        s.needsReconcile = true
                    }
                    nextRenewal = .now + renewal
                    logger.notice(
                        "cluster: etcd reachable, lease granted",
                        metadata: ["node": "\(node)", "lease": "\(String(granted, radix: 16))", "ttl": "\(configuration.leaseTTL)"])
                    continue
                }
                if ContinuousClock.now >= nextRenewal || !reachable {
                    let left = try client.keepAlive(lease: lease, timeout: timeout)
                    if left <= 0 {
                        logger.warning("cluster: etcd no longer has this node's lease; taking a new one")
                        state.withLock { s in
                            s.lease = nil
                            s.needsReconcile = true
                        }
                        continue
                    }
                    nextRenewal = .now + renewal
                    if !reachable {
                        logger.notice("cluster: etcd reachable again; reconciling")
                        state.withLock { s in
                            s.reachable = true
                            s.needsReconcile = true
                        }
                    }
                }
                let (full, dirty, held) = state.withLock { ($0.needsReconcile, $0.dirty, !$0.heldElsewhere.isEmpty) }
                // A key another node holds is looked at again now and then: it may have let it go.
                if full || (held && ContinuousClock.now - lastReconcile > renewal * 10) {
                    try reconcile(lease: lease)
                    lastReconcile = .now
                } else if dirty {
                    try applyChanges(lease: lease)
                }
            } catch where error.isLeaseNotFound {
                // etcd answers but has dropped the lease (it expired while a write was on its way):
                // a new one, and everything written again under it.
                logger.warning("cluster: etcd no longer has this node's lease; taking a new one")
                state.withLock { s in
                    s.lease = nil
                    s.needsReconcile = true
                }
                continue
            } catch {
                let wasReachable = state.withLock { s in
                    let was = s.reachable
                    s.reachable = false
                    s.needsReconcile = true
                    return was
                }
                if wasReachable || !reportedFirst {
                    logger.warning("cluster: etcd unreachable; sandboxes attach locally until it answers: \(error.message)")
                }
            }
            if !reportedFirst {
                reportedFirst = true
                firstAttempt.signal()
            }
            let reachable = state.withLock { $0.reachable }
            let wait = reachable ? max(.zero, nextRenewal - .now) : retry
            if state.withLock({ $0.dirty && $0.reachable && !$0.stopping }) { continue }
            let (seconds, attoseconds) = wait.components
            _ = self.wake.wait(timeout: .now() + .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
        }
    }

    /// Reads every key under the prefix and brings this node's to the desired state.
    private func reconcile(lease: Int64) throws(EtcdError) {
        let kvs = try client.range(.prefix(layout.prefix), timeout: configuration.requestTimeout)
        var observed: [String: Etcd.KeyValue] = [:]
        for kv in kvs where layout.isKept(kv.key.text) { observed[kv.key.text] = kv }
        let desired = state.withLock { s in
            s.pending = []
            return s.desired
        }
        let plan = ClusterPlan.reconcile(desired: desired, observed: observed, node: node, lease: lease)
        state.withLock { s in
            s.stored = plan.kept
            for (key, holder) in plan.conflicts { noteConflict(&s, key, holder) }
        }
        for step in plan.steps { try execute(step, lease: lease) }
        state.withLock { s in
            s.needsReconcile = false
            s.reconciles += 1
            if !s.dirty { s.lastSync = Date() }
        }
        logger.info(
            "cluster: reconciled with etcd",
            metadata: ["writes": "\(plan.steps.count)", "kept": "\(plan.kept.count)", "held-elsewhere": "\(plan.conflicts.count)"])
    }

    /// Writes what changed since the last pass.
    private func applyChanges(lease: Int64) throws(EtcdError) {
        let (desired, stored, held, keys) = state.withLock { s in
            defer { s.pending = [] }
            return (s.desired, s.stored, Set(s.heldElsewhere.keys), s.pending)
        }
        let plan = ClusterPlan.changes(desired: desired, stored: stored, heldElsewhere: held, among: keys)
        for step in plan.steps { try execute(step, lease: lease) }
        state.withLock { s in
            if !s.dirty { s.lastSync = Date() }
        }
    }

    private func execute(_ step: ClusterPlan.Step, lease: Int64) throws(EtcdError) {
        let timeout = configuration.requestTimeout
        switch step {
        case .put(let key, let value, let createRevision):
            let r = try client.txn(
                .guarded(key, createRevision: createRevision, then: .put(Etcd.PutRequest(key: key, value: value, lease: lease))),
                timeout: timeout)
            state.withLock { s in
                if r.succeeded {
                    s.stored[key] = StoredKey(value: value, createRevision: createRevision == 0 ? r.revision : createRevision)
                    s.heldElsewhere[key] = nil
                } else if let kv = r.ranged.first, let holder = ClusterJSON.holder(of: kv.value.bytes), holder != node {
                    noteConflict(&s, key, holder)
                } else {
                    // Gone, or ours from another lease: written again on the next pass, guarded
                    // by what is there now (an empty value never equals a desired one).
                    if let kv = r.ranged.first {
                        s.stored[key] = StoredKey(value: [], createRevision: kv.createRevision)
                    } else {
                        s.stored[key] = nil
                    }
                    s.pending.insert(key)
                }
            }
        case .delete(let key, let createRevision):
            _ = try client.txn(.guarded(key, createRevision: createRevision, then: .delete(Etcd.DeleteRangeRequest(key: key))), timeout: timeout)
            state.withLock { $0.stored[key] = nil }
        }
    }

    private func noteConflict(_ s: inout State, _ key: String, _ holder: String) {
        guard s.heldElsewhere[key] != holder else { return }
        s.heldElsewhere[key] = holder
        s.stored[key] = nil
        s.conflicts += 1
        logger.error(
            "cluster: \(key) is held by node \(holder) in etcd; this node keeps its own locally and does not overwrite it",
            metadata: ["key": "\(key)", "holder": "\(holder)"])
    }
}
