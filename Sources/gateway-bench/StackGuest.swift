// A kernel guest behind our stack: a fresh namespace holding a TAP whose gateway end is a Stack
// with the diagnostic services, driven by a pinned event loop. The guest is 10.0.2.15/24 and
// the gateway 10.0.2.2, as in the integration tests.
import Gateway
import Link
import NetStack
import Synchronization
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// What the loop thread reports about the current transfer; the main thread polls it. Atomics,
/// not a lock: the loop adds to them once per chunk it moves and must never wait.
final class FlowLog: Sendable {
    let opened = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    /// When the discard service last took bytes (monotonic ns).
    let lastReceiveAt = Atomic<UInt64>(0)

    func reset() {
        opened.store(0, ordering: .relaxed)
        received.store(0, ordering: .relaxed)
        sent.store(0, ordering: .relaxed)
        lastReceiveAt.store(0, ordering: .relaxed)
    }
}

/// The stack and its services are the loop thread's; the rest is fixed at init.
final class StackGuest: Sendable {
    static let guestAddress = "10.0.2.15"
    static let gatewayAddress = "10.0.2.2"

    let namespaceName: String
    let namespace: NetworkNamespace
    let tap: TAPDevice
    let loop: EventLoop
    let driver: LoopBound<StackDriver>
    let configuration: StackConfiguration
    let log = FlowLog()
    private let services: LoopBound<DiagnosticServices>

    init(namespaceName: String, tapName: String, mtu: Int, cpu: Int, tune: (inout StackConfiguration) -> Void = { _ in }) throws {
        self.namespaceName = namespaceName
        Cleanup.shared.adopt(namespace: namespaceName)
        namespace = try NetworkNamespace.create(named: namespaceName)
        var options = TAPDevice.Options()
        options.namespace = namespace
        tap = try TAPDevice(name: tapName, options: options)
        var configuration = StackConfiguration(mtu: mtu, vnetHeaderSize: tap.vnetHeaderSize)
        tune(&configuration)
        self.configuration = configuration
        let loop = try EventLoop(name: "bench-shard", cpu: cpu)
        self.loop = loop
        let driver = LoopBound(StackDriver(loop: loop, fd: tap.fileDescriptor, stack: Stack(configuration: configuration)), loop: loop)
        self.driver = driver
        loop.startThread()

        let log = self.log
        services = try loop.submitAndWait { () throws -> LoopBound<DiagnosticServices> in
            let d = driver.value
            try d.start()
            let s = DiagnosticServices(driver: d, sourceLength: 0)
            // The services report each chunk they move: a connection the stack closes first
            // (the byte source) reports its close only after TIME-WAIT, too late to time by.
            s.onDiscard = { _, bytes in
                log.received.add(bytes.count, ordering: .relaxed)
                log.lastReceiveAt.store(monotonicNanoseconds(), ordering: .releasing)
            }
            s.onSource = { _, bytes in log.sent.add(bytes.count, ordering: .relaxed) }
            d.onEvent = { event in
                if case .tcpConnectionRequest = event { log.opened.add(1, ordering: .relaxed) }
                s.handle(event)
            }
            return LoopBound(s, loop: loop)
        }

        let nl = try NetlinkSocket(in: namespace)
        try nl.setMTU(of: tapName, to: mtu)
        try nl.setLink(named: "lo", up: true)
        try nl.setLink(named: tapName, up: true)
        try nl.addAddress(.v4(configuration.guestIPv4), prefixLength: configuration.prefixLength, toLink: tapName)
        try nl.addDefaultRoute(via: .v4(configuration.gatewayIPv4), device: tapName)
    }

    /// The stack's counters and the loop thread's CPU time, read on the loop thread.
    func sample() throws -> StackSample {
        let d = driver
        return try loop.submitAndWait {
            let d = d.value
            let c = d.stack.counters
            return StackSample(
                cpu: CPUUsage.thread(), runQueueWait: threadRunQueueWait(), framesIn: c.framesIn, bytesIn: c.bytesIn, framesOut: c.framesOut,
                bytesOut: c.bytesOut, readCalls: d.readCalls, framesRead: d.framesRead,
                writeFailures: d.writeFailures, outputDropped: d.stack.output.dropped)
        }
    }

    func setSourceLength(_ n: Int) throws {
        let s = services
        try loop.submitAndWait { s.value.sourceLength = n }
    }

    /// Runs `command` in the guest (pinned to `guestCPU`) and measures one transfer of `bytes`
    /// through the stack. Wall time runs from starting the command until the command has exited
    /// (it has everything, for gateway→guest) and, for guest→gateway, the discard service has
    /// taken the last byte (a sender may exit with bytes still in its socket buffer).
    func transfer(_ direction: Direction, bytes: Int, command: String, guestCPU: Int, timeout: Double) throws -> Measurement {
        if direction == .gatewayToGuest { try setSourceLength(bytes) }
        log.reset()
        let before = try sample()
        let processBefore = CPUUsage.process()
        let start = monotonicNanoseconds()
        let guest = try ChildProcess(guestCommand(command, cpu: guestCPU))
        defer { guest.terminate() }
        let deadline = start + UInt64(timeout * 1e9)
        guard guest.wait(until: deadline) else {
            throw BenchError("the guest command did not finish within \(Int(timeout)) s: \(command)")
        }
        var end = monotonicNanoseconds()
        guard guest.succeeded else { throw BenchError("guest command failed (\(guest.statusText)): \(command)") }
        if direction == .guestToGateway {
            let lastDeadline = end + 5_000_000_000
            while log.received.load(ordering: .relaxed) < bytes && monotonicNanoseconds() < lastDeadline { usleep(200) }
            end = max(end, log.lastReceiveAt.load(ordering: .acquiring))
        }
        let opened = log.opened.load(ordering: .relaxed)
        guard opened == 1 else { throw BenchError("expected one connection, the stack saw \(opened)") }
        let moved = direction == .guestToGateway ? log.received.load(ordering: .relaxed) : log.sent.load(ordering: .relaxed)
        guard moved == bytes else {
            throw BenchError("\(direction.rawValue) at MTU \(configuration.mtu): \(moved) bytes moved, \(bytes) expected")
        }
        let after = try sample()
        let process = CPUUsage.process() - processBefore
        let seconds = Double(end - start) / 1e9
        return Measurement(
            path: "stack", mtu: configuration.mtu, direction: direction, bytes: bytes, seconds: seconds,
            gbps: Double(bytes) * 8 / seconds / 1e9, guestCommand: command,
            stack: StackCost(before: before, after: after, process: process, payloadBytes: bytes,
                             seconds: seconds, vnetHeaderSize: configuration.vnetHeaderSize))
    }

    func guestCommand(_ command: String, cpu: Int) -> [String] {
        ["ip", "netns", "exec", namespaceName, "taskset", "-c", String(cpu), "sh", "-c", command]
    }

    func tearDown() {
        let d = driver
        try? loop.submitAndWait {
            d.value.stop()
            d.value.onEvent = { _ in }  // drops the services, which hold the driver
        }
        loop.stop()
        Cleanup.shared.remove(namespace: namespaceName)
    }
}
