// The gateway: shards (pinned event loops) and the sandboxes placed on them. This is the
// in-process API the control plane drives: attach, detach, list, stats. Only attach/detach
// touch shared state, under one lock; the data path never does.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Dispatch
import Link
import NetStack
import Synchronization
import Wire

public struct GatewayConfiguration: Sendable {
    /// Shard count; default one per CPU.
    public var shards: Int
    /// Pin shard i to CPU i (mod CPU count).
    public var pinShards = true
    /// How long a shard keeps polling for more I/O before it sleeps (see `EventLoop`); zero: never.
    public var busyPoll: Duration = .microseconds(50)
    /// Poll only while at least this percentage of a shard's recent quiet spells ended within
    /// `busyPoll` (see `SpinGovernor`); 0: after every burst of I/O.
    public var busyPollHitPercent = 75
    /// The shards' nice value; nil leaves the process's. A frame waits for its shard to get a
    /// CPU, and the sandboxes' own work competes for the same CPUs. Below 0 the data path comes
    /// first: ~10 % more aggregate when the sandboxes saturate the CPUs, but a shard that takes
    /// more than its share delays the sandboxes' own processes unevenly (200 sandboxes fetching
    /// at once: Jain 0.27–0.72 per round at −10 against 0.83–0.96 at 0), and another sandbox's
    /// round trip under load was no faster (p99 7–10 ms at −10, 2–4 ms at 0;
    /// Tools/README-bench-many.md). Sandboxes taking turns on a shard (64 KB each) is what keeps
    /// their latency apart, not the priority.
    public var shardNice: Int32? = nil
    public var addresses = AddressPlan()
    public var defaultPolicy = "host-only"
    /// Policies by name beside the built-in profiles (`Policy.profileNames`); a name defined
    /// here is looked up before the profiles.
    public var policies: [String: Policy] = [:]
    public var limits = EgressLimits()
    /// Upstream resolvers and local names for the DNS every sandbox's queries go to.
    public var dns = DNSConfiguration.system()
    /// Names (and their subdomains) the gateway's DNS answers with NXDOMAIN for every sandbox;
    /// a policy's `deniedNames` add to these for the sandboxes under it.
    public var deniedNames: [String] = []
    public var publishing = PublishingConfiguration()
    /// The control plane's reserve of file descriptors and each sandbox's budget.
    public var descriptors = DescriptorLimits()
    /// Goes into the names of the devices a VM sandbox gets in the host namespace, after the role
    /// prefix (`gwv-<tag><index>`), so that two gateways on one host never pick the same names.
    /// Lowercase letters and digits; empty for the one gatewayd of a host.
    public var hostDeviceTag = ""
    /// Bytes of TCP buffers one sandbox may hold and promise (a policy's or an attach's own
    /// overrides it). At the budget its windows close and its relays stop reading host sockets.
    public var memoryBudget = 32 << 20
    /// Bytes of TCP buffers all sandboxes together may hold; default a quarter of the machine's memory.
    public var globalMemoryBudget = Gateway.physicalMemory > 0 ? Gateway.physicalMemory / 4 : 1 << 40
    /// Buffer chunk size (a power of two, 4 KiB or more).
    public var bufferChunkSize = 16 << 10
    /// How often each shard gives idle buffer memory back to the system.
    public var memoryTrimInterval: Duration = .seconds(1)
    /// The flow log's file and bounds.
    public var flowLog = FlowLog.Configuration()
    /// DNS queries one sandbox may make per second (a burst of as many); past it, REFUSED.
    public var dnsQueryRate = 200
    /// Addresses one sandbox's answers may pin for its domain rules at once.
    public var pinCapacity = DNSPinTable.defaultCapacity
    /// Shortest life of a pin, whatever the answer's TTL.
    public var pinTTLFloor: Duration = .seconds(60)

    public init(shards: Int? = nil) {
        self.shards = max(1, shards ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The names `policy(named:)` knows: the built-in profiles, then the defined policies.
    public var policyNames: [String] { PolicySet.names(policies) }

    /// The policy a sandbox asking for `name` runs: a defined one, else a built-in profile.
    /// Throws `.invalidArgument` listing the names there are.
    public func policy(named name: String) throws(GatewayError) -> Policy {
        try PolicySet.policy(named: name, in: policies)
    }
}

/// How a shard's loop has been spending its passes (see `Gateway.shardActivity`).
public struct ShardActivity: Sendable, Hashable {
    public var wakeups = 0
    public var polledWakeups = 0
    public var sleeps = 0
    /// Bursts of I/O after which the shard slept at once: polling had not been paying.
    public var pollsSkipped = 0
    /// The share of its recent quiet spells that ended within the polling window, in percent.
    public var busyPollHitPercent = 0
    public var epollFailures = 0
}

public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    let shards: [EventLoop]
    /// One DNS forwarder per shard (one socket per family, shared by the shard's sandboxes).
    private let forwarders: [LoopBound<DNSForwarder>]
    /// The policies sandboxes may run and the DNS names each denies; replaced as a whole by a
    /// config reload.
    private let policySet: Mutex<PolicySet>
    /// Published ports' allocator and routing table, shared by all shards (Gateway+Publishing).
    let publishing: PublishingState
    /// One buffer pool and one output frame pool per shard, used only on its thread.
    private let pools: [LoopBound<BufferPool>]
    private let framePools: [LoopBound<FramePool>]
    /// The limit every sandbox's memory budget also draws from.
    public let sharedMemoryBudget: SharedMemoryBudget
    /// Every sandbox's flow decisions, flow endings and DNS answers; one queue per shard.
    public let flowLog: FlowLog

    private struct Record {
        var info: SandboxInfo
        var shard: Int
        var index: Int
        /// Confined to `shards[shard]`; touched only in tasks submitted there.
        var sandbox: LoopBound<Sandbox>?
        /// A VM sandbox's devices in the host namespace, deleted at detach.
        var vmLink: VMLink?
    }

    private struct State {
        var records: [String: Record] = [:]
        var usedIndexes: Set<Int> = []
        var shardLoad: [Int]
    }

    private let state: Mutex<State>
    /// Trims malloc's arenas after detaches and after bursts of traffic.
    private let memoryTrimmer = MemoryTrimmer(quietDelay: StackConfiguration().tcp.timeWait + .seconds(2))
    /// Closes detached sandboxes' TAPs off the control path, several at once.
    let reaper = DeviceReaper()
    /// The descriptors the sandboxes' devices and flows hold, within the open files limit.
    public let descriptorLedger: DescriptorLedger
    /// Devices, namespaces, low ports, raw sockets and the flow log's file: done here, or asked of
    /// the privileged supervisor when this process has none.
    public let privileges: any HostPrivileges

    /// `privileges` default to doing those operations in this process.
    public init(
        configuration: GatewayConfiguration = GatewayConfiguration(), privileges: (any HostPrivileges)? = nil
    ) throws(GatewayError) {
        self.configuration = configuration
        let privileges = privileges ?? DirectPrivileges(hostDeviceTag: configuration.hostDeviceTag)
        self.privileges = privileges
        descriptorLedger = DescriptorLedger(limits: configuration.descriptors)
        let cpus = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var loops: [EventLoop] = []
        for i in 0..<configuration.shards {
            let loop = try EventLoop(
                name: "shard-\(i)", cpu: configuration.pinShards ? i % cpus : nil, busyPoll: configuration.busyPoll,
                busyPollHitPercent: configuration.busyPollHitPercent, nice: configuration.shardNice)
            loop.startThread { thread, nice in try? privileges.setThreadNice(thread: thread, nice: nice) }
            loops.append(loop)
        }
        shards = loops
        publishing = PublishingState(configuration: configuration.publishing)
        state = Mutex(State(shardLoad: Array(repeating: 0, count: loops.count)))
        let dnsConfiguration = configuration.dns
        var fwd: [LoopBound<DNSForwarder>] = []
        for loop in loops {
            fwd.append(try loop.submitAndWaitTyped { LoopBound(DNSForwarder(loop: loop, configuration: dnsConfiguration), loop: loop) })
        }
        forwarders = fwd
        sharedMemoryBudget = SharedMemoryBudget(limit: configuration.globalMemoryBudget)
        var shardPools: [LoopBound<BufferPool>] = []
        var shardFramePools: [LoopBound<FramePool>] = []
        let chunkSize = configuration.bufferChunkSize
        let trimEvery = configuration.memoryTrimInterval.nanoseconds
        guard chunkSize >= 4096, chunkSize & (chunkSize - 1) == 0 else {
            throw GatewayError(.invalidArgument, "buffer chunk size \(chunkSize) must be a power of two of at least 4096")
        }
        let trimmer = memoryTrimmer
        let releaseTrimmed: @Sendable () -> Void = {
            trimmer.soon()
            trimmer.afterQuiet()
        }
        for loop in loops {
            let (pool, frames) = try loop.submitAndWaitTyped {
                () throws(GatewayError) -> (LoopBound<BufferPool>, LoopBound<FramePool>) in
                let pool = BufferPool(chunkSize: chunkSize)
                let frames = FramePool()
                Self.trimPeriodically(pool, frames, on: loop, every: trimEvery, then: releaseTrimmed)
                return (LoopBound(pool, loop: loop), LoopBound(frames, loop: loop))
            }
            shardPools.append(pool)
            shardFramePools.append(frames)
        }
        pools = shardPools
        framePools = shardFramePools
        flowLog = try FlowLog(configuration: configuration.flowLog, shards: configuration.shards) {
            path throws(GatewayError) in try privileges.openFlowLog(path: path)
        }
        policySet = Mutex(try PolicySet(policies: configuration.policies, deniedNames: configuration.deniedNames))
    }

    /// Attaches a sandbox and starts its stack on the least-loaded shard. A namespace sandbox gets
    /// its TAP in the namespace, configured there unless DHCP; a VM sandbox gets a TAP for its
    /// monitor bridged to the stack's (see `VMLink`).
    public func attach(_ spec: SandboxSpec) throws(GatewayError) -> SandboxInfo {
        try SandboxSpec.validate(id: spec.id)
        guard (576...65_520).contains(spec.mtu) else {
            throw GatewayError(.invalidArgument, "MTU \(spec.mtu) for sandbox '\(spec.id)' is out of range (576-65520)")
        }
        if let b = spec.memoryBudget, b < Self.minimumMemoryBudget {
            throw GatewayError(
                .invalidArgument,
                "memory budget \(b) for sandbox '\(spec.id)' is too small: at least \(Self.minimumMemoryBudget) bytes (1 MiB)")
        }
        let policy: Policy, dnsPolicy: DNSPolicy
        do {
            (policy, dnsPolicy) = try policySet.withLock { set throws(GatewayError) in try set.resolve(spec.policy) }
        } catch {
            throw GatewayError(.invalidArgument, "sandbox '\(spec.id)': \(error.message)")
        }
        // Reserve the ID, an address block and a shard before touching the system.
        let (index, shard) = try state.withLock { s throws(GatewayError) -> (Int, Int) in
            guard s.records[spec.id] == nil else {
                throw GatewayError(.sandboxExists, "sandbox '\(spec.id)' is already attached: detach it first or pick another ID")
            }
            try Self.checkNamespaceFree(spec, s.records.values.lazy.map(\.info))
            let index = try pickAddressBlock(spec, used: s.usedIndexes, records: s.records.values.lazy.map { ($0.index, $0.info.id) })
            let shard = s.shardLoad.indices.min { s.shardLoad[$0] < s.shardLoad[$1] } ?? 0
            s.usedIndexes.insert(index)
            s.shardLoad[shard] += 1
            s.records[spec.id] = Record(info: placeholderInfo(spec), shard: shard, index: index, sandbox: nil)
            return (index, shard)
        }
        do throws(GatewayError) {
            // The device's descriptor, given back once the reaper has closed it.
            guard descriptorLedger.take() else {
                throw GatewayError(.exhausted, descriptorLedger.exhaustedMessage(sandbox: spec.id))
            }
            do throws(GatewayError) {
                return try build(spec, index: index, shard: shard, policy: policy, dnsPolicy: dnsPolicy)
            } catch {
                descriptorLedger.give()
                // Out of descriptors shows up as whatever the call that needed one made of it.
                if DescriptorLedger.outOfDescriptors(after: error) {
                    throw GatewayError(.exhausted, descriptorLedger.exhaustedMessage(sandbox: spec.id) + " (\(error))")
                }
                throw error
            }
        } catch {
            state.withLock { s in
                s.records[spec.id] = nil
                s.usedIndexes.remove(index)
                s.shardLoad[shard] -= 1
            }
            throw error
        }
    }

    /// One sandbox per namespace: a second would find the first one's default route (and its
    /// addresses) in the way, so it is refused before anything is made.
    private static func checkNamespaceFree(
        _ spec: SandboxSpec, _ attached: some Sequence<SandboxInfo>
    ) throws(GatewayError) {
        guard let ns = spec.mode.namespace, let other = attached.first(where: { $0.namespace == ns }) else { return }
        throw GatewayError(
            .deviceExists,
            "namespace '\(ns)' already has sandbox '\(other.id)': one namespace holds one sandbox "
                + "(detach '\(other.id)' first or give '\(spec.id)' a namespace of its own)")
    }

    /// The block a spec asks for, when it is in the pool and free; else the first free one.
    private func pickAddressBlock(
        _ spec: SandboxSpec, used: Set<Int>, records: some Sequence<(Int, String)>
    ) throws(GatewayError) -> Int {
        let capacity = configuration.addresses.capacity
        guard let wanted = spec.addressBlock else {
            guard let index = (0..<capacity).first(where: { !used.contains($0) }) else {
                throw GatewayError(.exhausted, "no free address block for sandbox '\(spec.id)': all \(capacity) are in use")
            }
            return index
        }
        guard (0..<capacity).contains(wanted) else {
            throw GatewayError(
                .invalidArgument,
                "address block \(wanted) for sandbox '\(spec.id)' is outside the pool (0-\(capacity - 1))")
        }
        if used.contains(wanted) {
            // A sandbox being detached has left the records but not yet given its block back.
            let holder = records.first { $0.0 == wanted }.map { "sandbox '\($0.1)'" } ?? "a sandbox being detached"
            let network = configuration.addresses.assignment(index: wanted).gatewayIPv4
            throw GatewayError(
                .sandboxExists,
                "address block \(wanted) (gateway \(network)) for sandbox '\(spec.id)' is held by \(holder)")
        }
        return wanted
    }

    private func placeholderInfo(_ spec: SandboxSpec) -> SandboxInfo {
        SandboxInfo(
            id: spec.id, mode: spec.mode.name, shard: -1, tap: "", namespace: spec.mode.namespace, mac: "",
            gatewayMAC: "", guestIPv4: "", gatewayIPv4: "", prefixLength: 0, guestIPv6Prefix: "", gatewayIPv6: "",
            mtu: spec.mtu, policy: spec.policy)
    }

    /// The device a sandbox's stack reads and writes, and what the attach made around it.
    private struct OpenedLink {
        var tap: TAPDevice
        var tapName: String
        var guestMAC: MACAddress
        var namespace: String?
        var namespaceIdentity: NamespaceIdentity?
        var vmLink: VMLink?
        var warning: String?
    }

    private func build(
        _ spec: SandboxSpec, index: Int, shard: Int, policy: Policy, dnsPolicy: DNSPolicy
    ) throws(GatewayError) -> SandboxInfo {
        let a = configuration.addresses.assignment(index: index)
        let link: OpenedLink
        switch spec.mode {
        case .netns(let nsName):
            link = try openNamespaceLink(spec, namespace: nsName, index: index, assignment: a)
        case .vm(let owner, let group):
            let vm = VMLink(index: index, tag: configuration.hostDeviceTag)
            let opened = try privileges.createVMLink(
                VMLinkRequest(
                    sandbox: spec.id, addressBlock: index, mtu: spec.mtu, owner: owner, group: group,
                    reuse: spec.reuseVMDevices))
            link = OpenedLink(
                tap: opened.tap, tapName: vm.vmTAP, guestMAC: spec.guestMAC ?? a.guestMAC, namespace: nil, vmLink: vm,
                warning: opened.warning)
        }
        do {
            return try startStack(
                spec, link: link, index: index, shard: shard, policy: policy, dnsPolicy: dnsPolicy, assignment: a)
        } catch {
            if link.vmLink != nil { privileges.removeVMLink(addressBlock: index) }
            throw error
        }
    }

    private func openNamespaceLink(
        _ spec: SandboxSpec, namespace nsName: String, index: Int, assignment a: AddressPlan.Assignment
    ) throws(GatewayError) -> OpenedLink {
        let tapName = spec.interfaceName ?? InterfaceName.make(.gatewayTAP, id: String(index))
        // A sandbox detached from this namespace a moment ago may still have its device there
        // (the same name if it had this index, and a default route either way): its close is
        // under way on the reaper.
        reaper.waitUntilClosed(namespace: nsName)
        let opened = try privileges.openNamespaceLink(
            NamespaceLinkRequest(
                sandbox: spec.id, namespace: nsName, device: tapName, addressBlock: index, mtu: spec.mtu,
                guestMAC: spec.guestMAC,
                staticAddress: spec.dhcp
                    ? nil
                    : .init(guest: a.guestIPv4, prefixLength: a.prefixLength, gateway: a.gatewayIPv4),
                expectedIdentity: spec.namespaceIdentity))
        guard let mac = opened.guestMAC else {
            opened.tap.close()
            throw GatewayError(.link, "attach sandbox '\(spec.id)': device \(tapName) has no MAC address")
        }
        return OpenedLink(
            tap: opened.tap, tapName: tapName, guestMAC: mac, namespace: nsName, namespaceIdentity: opened.namespaceIdentity)
    }

    private func startStack(
        _ spec: SandboxSpec, link: OpenedLink, index: Int, shard: Int, policy: Policy, dnsPolicy: DNSPolicy,
        assignment a: AddressPlan.Assignment
    ) throws(GatewayError) -> SandboxInfo {
        let tap = link.tap
        let guestMAC = link.guestMAC
        var cfg = StackConfiguration(
            gatewayMAC: a.gatewayMAC, gatewayIPv4: a.gatewayIPv4, prefixLength: a.prefixLength, guestIPv4: a.guestIPv4,
            gatewayIPv6: a.gatewayIPv6, ipv6Prefix: a.ipv6Prefix, mtu: spec.mtu, vnetHeaderSize: tap.vnetHeaderSize,
            offloads: !tap.options.offloads.isEmpty)
        cfg.guestMAC = guestMAC
        let stackConfiguration = cfg
        let loop = shards[shard]
        let limits = configuration.limits
        let forwarder = forwarders[shard]
        let descriptors = DescriptorBudget(ledger: descriptorLedger, limit: descriptorLedger.perSandbox)
        let pinning = DomainPinning(
            policy: policy, deniedNames: dnsPolicy,
            pins: DNSPinTable(capacity: configuration.pinCapacity, ttlFloor: configuration.pinTTLFloor.nanoseconds),
            queriesPerSecond: configuration.dnsQueryRate)
        let dnsContext = DNSQueryContext(gatewayIPv4: a.gatewayIPv4, gatewayIPv6: a.gatewayIPv6, policy: dnsPolicy, client: UInt64(index))
            .counting(against: descriptors).pinning(to: pinning)
        let tcpDNSContext = DNSQueryContext(
            gatewayIPv4: a.gatewayIPv4, gatewayIPv6: a.gatewayIPv6, policy: dnsPolicy,
            maxReplySize: DNSQueryContext.tcpReplySize, client: UInt64(index)
        ).counting(against: descriptors).pinning(to: pinning)
        let pool = pools[shard]
        let framePool = framePools[shard]
        let flowQueue = flowLog.queues[shard]
        let budget = spec.memoryBudget ?? policy.memoryBudget ?? configuration.memoryBudget
        let shared = sharedMemoryBudget
        let rateOverride = spec.rateLimits
        let routes = publishing.routes
        let loopbackClients = publishing.loopbackClients
        let privileges = privileges
        let sandboxBox = try loop.submitAndWaitTyped { () throws(GatewayError) -> LoopBound<Sandbox> in
            let stack = Stack(
                configuration: stackConfiguration, bufferPool: pool.value,
                memoryBudget: MemoryBudget(limit: budget, shared: shared), framePool: framePool.value)
            // The guest is known from the start (its MAC is read from the device, or is the one a
            // VM was told to use), so the stack can reach it before it has sent anything.
            stack.learnNeighbor(.v4(a.guestIPv4), mac: guestMAC, now: monotonicNanoseconds())
            let sandbox = Sandbox(id: spec.id, tap: tap, stack: stack, loop: loop, limits: limits)
            sandbox.pinning = pinning
            sandbox.rateOverride = rateOverride
            sandbox.limitRates(policy.rateLimits)
            sandbox.egress.policy = { key, proto in
                pinning.policy.evaluate(
                    direction: .egress, destination: key.remoteAddress,
                    isHostAlias: stackConfiguration.isGatewayAddress(key.remoteAddress),
                    protocol: PolicyProtocol(ipProtocol: proto) ?? .any, port: key.remotePort,
                    pins: pinning.pins, now: monotonicNanoseconds())
            }
            sandbox.egress.nameCheck = { key, name in
                pinning.policy.evaluate(
                    direction: .egress, destination: key.remoteAddress,
                    isHostAlias: stackConfiguration.isGatewayAddress(key.remoteAddress), protocol: .tcp,
                    port: key.remotePort, pins: pinning.pins, now: monotonicNanoseconds(), name: name)
            }
            sandbox.egress.unidentifiedTraffic = { pinning.policy.unidentifiedTraffic }
            sandbox.egress.openRawEchoSocket = { family in try? privileges.openEchoSocket(family: family) }
            sandbox.egress.publishedPorts = PublishedPortsView(routes: routes)
            sandbox.egress.loopbackClients = (loopbackClients, spec.id)
            sandbox.ingress.loopbackClients = loopbackClients
            sandbox.egress.reaching = { target, proto in
                pinning.policy.evaluate(reaching: target.sandbox, guestPort: target.guestPort, protocol: proto)
            }
            let audit = FlowAudit(sandbox: spec.id, queue: flowQueue, pinning: pinning)
            sandbox.egress.audit = audit
            sandbox.ingress.audit = audit
            pinning.audit = audit
            sandbox.egress.dns = { _, overTCP, query, reply in
                // The denied names of the policy in force now (it may have been switched).
                var context = overTCP ? tcpDNSContext : dnsContext
                context.policy = pinning.deniedNames
                return forwarder.value.handle(query: query, context: context, reply: reply)
            }
            sandbox.limitDescriptors(descriptors)
            try sandbox.start()
            return LoopBound(sandbox, loop: loop)
        }
        var info = SandboxInfo(
            id: spec.id, mode: spec.mode.name, shard: shard, tap: link.tapName, namespace: link.namespace,
            bridge: link.vmLink?.bridge, mac: guestMAC.description,
            gatewayMAC: a.gatewayMAC.description, guestIPv4: a.guestIPv4.description, gatewayIPv4: a.gatewayIPv4.description,
            prefixLength: a.prefixLength, guestIPv6Prefix: "\(a.ipv6Prefix)/64", gatewayIPv6: a.gatewayIPv6.description,
            mtu: spec.mtu, policy: spec.policy, addressBlock: index, warning: link.warning)
        info.namespaceIdentity = link.namespaceIdentity?.description
        state.withLock { s in
            s.records[spec.id]?.info = info
            s.records[spec.id]?.sandbox = sandboxBox
            s.records[spec.id]?.vmLink = link.vmLink
        }
        return info
    }

    /// Switches a sandbox to policy `name` at once: new flows and DNS queries follow it; open
    /// flows it would deny are reset (and logged), unless `keepFlows`. Returns how many were reset.
    @discardableResult
    public func setPolicy(_ id: String, to name: String, keepFlows: Bool = false) throws(GatewayError) -> Int {
        let (policy, dnsPolicy) = try policySet.withLock { set throws(GatewayError) in try set.resolve(name) }
        guard let (shard, box) = attachedSandbox(id) else { throw GatewayError.unknownSandbox(id) }
        let reset = try shards[shard].submitAndWaitTyped { () throws(GatewayError) -> Int in
            box.value.switchPolicy(policy, deniedNames: dnsPolicy, keepFlows: keepFlows)
        }
        state.withLock { $0.records[id]?.info.policy = name }
        return reset
    }

    /// Replaces the defined policies (a config reload). Checked whole before anything changes: a
    /// bad set throws and the running one stays. Sandboxes whose policy changed switch to the new
    /// one at once (open flows it denies are reset); returns their IDs.
    @discardableResult
    public func reloadPolicies(_ policies: [String: Policy], deniedNames: [String]) throws(GatewayError) -> [String] {
        let fresh = try PolicySet(policies: policies, deniedNames: deniedNames)
        let old = policySet.withLock { set in
            defer { set = fresh }
            return set
        }
        var switched: [String] = []
        for info in list() {
            let before = try? old.resolve(info.policy), after = try? fresh.resolve(info.policy)
            guard before?.0 != after?.0 || before?.1 != after?.1 else { continue }
            // A policy that is gone leaves its sandboxes on what they run; new attaches cannot name it.
            guard after != nil else { continue }
            if (try? setPolicy(info.id, to: info.policy)) != nil { switched.append(info.id) }
        }
        return switched
    }

    /// Detaches a sandbox: its flows are reset, its devices removed, its addresses freed.
    public func detach(_ id: String) throws(GatewayError) {
        let record = try state.withLock { s throws(GatewayError) -> Record in
            guard let r = s.records[id], r.sandbox != nil else {
                throw GatewayError.unknownSandbox(id)
            }
            s.records[id] = nil
            return r
        }
        var tap: TAPDevice?
        if let box = record.sandbox {
            let forwarder = forwarders[record.shard]
            let client = UInt64(record.index)
            tap = try? shards[record.shard].submitAndWaitTyped { () throws(GatewayError) -> TAPDevice in
                box.value.stop()
                forwarder.value.forget(client: client)
                return box.value.tap
            }
        }
        // A namespace sandbox's TAP goes with its fd, closed on the reaper: the close waits for
        // the kernel to remove the device, which need not hold up the answer. A VM's TAP is
        // persistent: its fd closes there too, and its devices are deleted here.
        if let tap {
            let ledger = descriptorLedger
            reaper.retire(tap, namespace: record.info.namespace) { ledger.give() }
        }
        if record.vmLink != nil { privileges.removeVMLink(addressBlock: record.index) }
        releasePublishedPorts(of: id)
        state.withLock { s in
            s.usedIndexes.remove(record.index)
            s.shardLoad[record.shard] -= 1
        }
        releaseFreedMemorySoon()
    }

    /// The sandboxes' buffers were freed in the shard threads' malloc arenas, which keep freed
    /// memory for reuse: without trimming, RSS stays at its high-water mark after sandboxes go.
    /// A burst of detaches shares one trim, made off the control and shard threads.
    private func releaseFreedMemorySoon() { memoryTrimmer.soon() }

    /// The shard and object of an attached sandbox, for the extensions that drive it.
    func attachedSandbox(_ id: String) -> (shard: Int, sandbox: LoopBound<Sandbox>)? {
        guard let r = state.withLock({ $0.records[id] }), let box = r.sandbox else { return nil }
        return (r.shard, box)
    }

    public func list() -> [SandboxInfo] {
        state.withLock { s in s.records.values.filter { $0.sandbox != nil }.map(\.info) }.sorted { $0.id < $1.id }
    }

    /// Sandbox `id` as `list` shows it; nil when none is attached by that ID.
    public func info(_ id: String) -> SandboxInfo? {
        state.withLock { s in s.records[id].flatMap { $0.sandbox != nil ? $0.info : nil } }
    }

    public func stats(_ id: String) throws(GatewayError) -> SandboxStats {
        let record = state.withLock { $0.records[id] }
        guard let record, let box = record.sandbox else {
            throw GatewayError.unknownSandbox(id)
        }
        var stats = try shards[record.shard].submitAndWaitTyped { () throws(GatewayError) -> SandboxStats in box.value.stats() }
        stats.shard = record.shard
        return stats
    }

    /// Every sandbox's counters, with its shard: one hop to each shard for all of its sandboxes,
    /// not one per sandbox, so a refresh of a thousand costs the shards two wake-ups.
    public func allStats() -> [SandboxStats] {
        let placed = state.withLock { s in
            s.records.values.compactMap { r in r.sandbox.map { (shard: r.shard, box: $0) } }
        }
        var all: [SandboxStats] = []
        for (shard, members) in Dictionary(grouping: placed, by: \.shard) {
            let boxes = members.map(\.box)
            // A shard that stopped (shutdown under way) has nothing to report.
            let counted = (try? shards[shard].submitAndWait { boxes.map { $0.value.stats() } }) ?? []
            all += counted.map { s in
                var s = s
                s.shard = shard
                return s
            }
        }
        return all.sorted { $0.id < $1.id }
    }

    /// Per shard: passes of its loop that handled I/O; of those, the ones whose I/O arrived
    /// while it polled (no sleep needed); and the times it went to sleep in epoll_wait (the last
    /// two only with busy polling on).
    public func shardActivity() -> [ShardActivity] {
        shards.map { loop in
            (try? loop.submitAndWait {
                ShardActivity(
                    wakeups: loop.wakeups, polledWakeups: loop.polledWakeups, sleeps: loop.sleeps,
                    pollsSkipped: loop.pollsSkipped, busyPollHitPercent: loop.busyPollHitPercent,
                    epollFailures: loop.epollFailures)
            }) ?? ShardActivity()
        }
    }

    /// Gives the pools' idle chunks and frames back to the system every `interval`
    /// nanoseconds while they hold more than they keep warm. When that released anything a burst
    /// of traffic has ended, and what its connections and relays freed in malloc's arenas is
    /// given back too (`released`: now, and once its connections' TIME-WAIT is over). With
    /// nothing above the warm floor the timer stops until the shard does work again: a timer
    /// per shard every second was all an idle gateway's shards woke for (Tools/README-bench-idle.md).
    static func trimPeriodically(
        _ pool: BufferPool, _ frames: FramePool, on loop: EventLoop, every interval: UInt64,
        then released: @escaping @Sendable () -> Void
    ) {
        guard interval > 0 else { return }
        _ = loop.schedule(at: monotonicNanoseconds() + interval) { [weak pool, weak frames] in
            guard let pool, let frames else { return }
            let chunks = pool.trim()
            let idleFrames = frames.trim()
            if chunks > 0 || idleFrames > 0 { released() }
            if pool.warmChunks > pool.keepWarm || frames.freeFrames > frames.keepWarm {
                trimPeriodically(pool, frames, on: loop, every: interval, then: released)
            } else {
                loop.whenActive { [weak pool, weak frames] in
                    guard let pool, let frames else { return }
                    trimPeriodically(pool, frames, on: loop, every: interval, then: released)
                }
            }
        }
    }

    /// Each shard's buffer pool: bytes in use, kept warm, mapped; chunks given back so far.
    /// Each shard's DNS forwarder counters.
    public func dnsForwarderCounters() -> [DNSForwarder.Counters] {
        zip(shards, forwarders).map { loop, f in (try? loop.submitAndWait { f.value.counters }) ?? DNSForwarder.Counters() }
    }

    public func bufferPoolStats() -> [BufferPoolStats] {
        zip(shards, pools).map { loop, pool in
            (try? loop.submitAndWait {
                let p = pool.value
                return BufferPoolStats(
                    inUseBytes: p.chunksInUse * p.chunkSize, warmBytes: p.warmChunks * p.chunkSize,
                    mappedBytes: p.mappedBytes, releasedBytesTotal: p.chunksReleased * p.chunkSize,
                    mapFailures: p.mapFailures)
            }) ?? BufferPoolStats()
        }
    }

    /// Below this a sandbox could not keep even a few connections' windows open.
    public static let minimumMemoryBudget = 1 << 20

    /// The machine's memory in bytes (0 if unknown).
    public static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size : 0
    }

    /// Detaches everything and stops the shards.
    public func shutdown() {
        for info in list() { try? detach(info.id) }
        // Every device must be gone before the process exits (its exit would otherwise close
        // the rest one at a time).
        reaper.drain()
        for (i, loop) in shards.enumerated() {
            let f = forwarders[i]
            try? loop.submitAndWaitTyped { () throws(GatewayError) in f.value.close() }
            loop.stop()
        }
        flowLog.stop()
    }
}

/// The policies a gateway knows by name, with the DNS names each denies.
struct PolicySet: Sendable {
    var policies: [String: Policy]
    var base: DNSPolicy
    var perPolicy: [String: DNSPolicy] = [:]

    init(policies: [String: Policy], deniedNames: [String]) throws(GatewayError) {
        self.policies = policies
        base = try DNSPolicy(deniedSuffixes: deniedNames)
        for (name, policy) in policies where !policy.deniedNames.isEmpty {
            do {
                perPolicy[name] = try DNSPolicy(deniedSuffixes: deniedNames + policy.deniedNames)
            } catch {
                throw GatewayError(.invalidArgument, "policy '\(name)': \(error.message)")
            }
        }
    }

    /// A defined policy, else a built-in profile, with its denied names. A built-in profile spelled
    /// in another case finds no entry, as it has no names of its own.
    func resolve(_ name: String) throws(GatewayError) -> (Policy, DNSPolicy) {
        (try Self.policy(named: name, in: policies), perPolicy[name] ?? base)
    }

    /// The policy `name` among `policies`, else the built-in profile; throws `.invalidArgument`
    /// listing the names there are.
    static func policy(named name: String, in policies: [String: Policy]) throws(GatewayError) -> Policy {
        if let p = policies[name] { return p }
        if let p = try? Policy.profile(named: name) { return p }
        throw GatewayError(
            .invalidArgument, "unknown policy '\(name)': use one of \(names(policies).joined(separator: ", "))")
    }

    /// The built-in profiles, then the defined policies.
    static func names(_ policies: [String: Policy]) -> [String] {
        Policy.profileNames + policies.keys.filter { !Policy.profileNames.contains($0) }.sorted()
    }
}

/// One shard's buffer pool, for /metrics.
public struct BufferPoolStats: Sendable, Hashable {
    public var inUseBytes = 0
    public var warmBytes = 0
    public var mappedBytes = 0
    public var releasedBytesTotal = 0
    /// Slabs the system refused to map (buffers then take no more bytes until memory frees).
    public var mapFailures = 0
}

extension EventLoop {
    /// `submitAndWait` for bodies that throw GatewayError.
    func submitAndWaitTyped<T: Sendable>(_ body: @escaping @Sendable () throws(GatewayError) -> T) throws(GatewayError) -> T {
        do {
            return try submitAndWait { try body() }
        } catch let e as GatewayError {
            throw e
        } catch {
            throw GatewayError(.system, "\(error)")
        }
    }
}
