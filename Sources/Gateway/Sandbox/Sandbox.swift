// One attached sandbox as its shard sees it: the TAP it owns, the stack behind it, and the
// egress relay carrying its flows. Confined to the shard's loop thread.
import Link
import NetStack
import Wire

final class Sandbox {
    let id: String
    let tap: TAPDevice
    let driver: StackDriver
    let egress: EgressRelay
    /// Published ports: listeners and the flows they opened into the guest.
    let ingress: IngressRelay
    /// Its domain rules' view of DNS (pins, allowed names, query rate), shared with the shard's
    /// DNS forwarder.
    var pinning: DomainPinning?
    /// The rate limits the attach set, each over its policy's (kept across policy switches).
    var rateOverride = RateLimits()

    init(id: String, tap: TAPDevice, stack: Stack, loop: EventLoop, limits: EgressLimits) {
        self.id = id
        self.tap = tap
        driver = StackDriver(loop: loop, fd: tap.fileDescriptor, stack: stack)
        driver.batchSize = limits.framesPerTurn
        driver.policer = FramePolicer(ratePerSecond: limits.suspectFrameRate)
        egress = EgressRelay(driver: driver, limits: limits)
        ingress = IngressRelay(driver: driver)
        ingress.rates = egress.rates
        driver.onEvent = { [unowned self] event in self.route(event) }
    }

    func start() throws(GatewayError) { try driver.start() }

    /// The budget every host socket of this sandbox's data path is counted against.
    func limitDescriptors(_ budget: DescriptorBudget) {
        egress.descriptors = budget
        ingress.descriptors = budget
    }

    /// Ends every flow (guests and upstreams see resets) and stops reading the device. The
    /// device itself goes when the TAP's last fd closes, with this object.
    func stop() {
        ingress.closeAll()
        egress.closeAll()
        driver.afterWork()
        driver.stop()
        driver.onEvent = { _ in }
    }

    /// The policy switch on the shard: the new rules for what comes next, and the open flows
    /// they deny reset unless `keepFlows`. Returns the number reset.
    func switchPolicy(_ policy: Policy, deniedNames: DNSPolicy, keepFlows: Bool) -> Int {
        pinning?.update(policy: policy, deniedNames: deniedNames)
        limitRates(policy.rateLimits)
        guard !keepFlows else { return 0 }
        let n = egress.resetFlows { key, proto in !egress.allows(key, proto) }
        driver.afterWork()
        return n
    }

    /// The policy's rate limits with the attach's over them.
    func limitRates(_ policyLimits: RateLimits) {
        egress.rates.update(policyLimits.overridden(by: rateOverride))
    }

    func stats() -> SandboxStats {
        let c = driver.stack.counters
        let link = driver.policerCounters
        let e = egress.counters
        return SandboxStats(
            id: id, framesIn: c.framesIn, framesOut: c.framesOut, bytesIn: c.bytesIn, bytesOut: c.bytesOut,
            tcpFlowsActive: driver.stack.tcpConnectionCount, tcpFlowsTotal: c.tcpConnectionsOpened,
            udpSessions: egress.udpSessionCount, bytesToHost: e.bytesToHost, bytesFromHost: e.bytesFromHost,
            drops: [
                "malformed": c.malformed, "badChecksum": c.badChecksum, "notForUs": c.notForUs,
                "unsupported": c.unsupported, "spoofed": c.spoofed, "outputDropped": c.outputDropped,
                "tcpDenied": e.tcpDenied, "tcpConnectFailed": e.tcpConnectFailed, "udpDenied": e.udpDenied,
                "udpSessionLimit": e.udpSessionLimitDrops, "deviceWriteFailed": driver.writeFailures,
                "dnsTCPSessionLimit": e.dnsTCPRefused, "dnsTCPMalformed": e.dnsTCPProtocolErrors,
                "dnsTCPUnread": e.dnsTCPUnreadResets, "descriptorBudget": egress.descriptors.refused,
                "publishedPortDenied": e.publishedPortDenied, "overFrameRate": link.droppedTotal,
            ],
            memory: memory(), dns: dns(), flows: flows(), rateLimits: rateLimits(),
            counters: counters())
    }

    func rateLimits() -> SandboxRateLimits {
        let r = egress.rates
        let c = r.counters
        let now = monotonicNanoseconds()
        var s = SandboxRateLimits()
        s.toHostBytesPerSecond = r.limits.toHostBytesPerSecond
        s.fromHostBytesPerSecond = r.limits.fromHostBytesPerSecond
        s.secondsLimitedToHost = r.limitedSeconds(.toHost, now: now)
        s.secondsLimitedFromHost = r.limitedSeconds(.fromHost, now: now)
        s.throttlesToHost = c.throttles[RateLimiter.Direction.toHost.rawValue]
        s.throttlesFromHost = c.throttles[RateLimiter.Direction.fromHost.rawValue]
        s.bytesDelayed = c.bytesDelayed
        s.udpDropped = c.udpDropped
        s.connectionsRefused = c.connectionsRefused
        s.flowsRefused = c.flowsRefused
        s.halfOpenResets = c.halfOpenResets
        return s
    }


    func counters() -> [String: Int] {
        let source = SandboxCounterSource(stack: driver.stack.counters, egress: egress.counters, link: driver.policerCounters)
        var out: [String: Int] = [:]
        for c in CounterDescription<SandboxCounterSource>.sandbox { out[c.name] = c.value(source) }
        return out
    }

    func flows() -> SandboxFlows {
        var f = SandboxFlows()
        guard let c = egress.audit?.counters else { return f }
        f.allowed = c.allowedFlows
        f.denied = c.deniedFlows
        f.dnsAnswered = c.dnsAnswered
        f.dnsDenied = c.dnsDenied
        return f
    }

    func dns() -> SandboxDNS {
        var d = SandboxDNS()
        guard let pinning else { return d }
        d.pins = pinning.pins.count
        d.pinsRecorded = pinning.counters.pinsRecorded
        d.pinEvictions = pinning.pins.evictions
        d.namesNotAllowed = pinning.counters.namesNotAllowed
        d.rateLimited = pinning.counters.rateLimited
        return d
    }

    func memory() -> SandboxMemory {
        let b = driver.stack.memoryBudget
        var m = SandboxMemory()
        m.heldBytes = b.heldBytes
        m.peakHeldBytes = b.peakHeldBytes
        m.reservedBytes = b.reserved
        m.budgetBytes = b.limit
        m.budgetShortfalls = b.shortfalls
        m.secondsAtBudget = Double(b.timeAtLimit(now: monotonicNanoseconds())) / 1e9
        return m
    }
}
