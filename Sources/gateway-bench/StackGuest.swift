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

/// What the loop thread reports about the current transfer's connection; read by the main thread.
final class FlowLog: Sendable {
    struct State: Sendable {
        var opened = 0
        var closed = 0
        var closedAt: UInt64 = 0
        var received = 0
        var sent = 0
    }

    let state = Mutex(State())

    func reset() { state.withLock { $0 = State() } }
    var snapshot: State { state.withLock { $0 } }
}

/// Confined to the loop thread except where it goes through `onLoop`.
final class StackGuest: @unchecked Sendable {
    static let guestAddress = "10.0.2.15"
    static let gatewayAddress = "10.0.2.2"

    let namespaceName: String
    let namespace: NetworkNamespace
    let tap: TAPDevice
    let loop: EventLoop
    let driver: StackDriver
    let configuration: StackConfiguration
    let log = FlowLog()
    private var services: DiagnosticServices?

    init(namespaceName: String, tapName: String, mtu: Int, cpu: Int) throws {
        self.namespaceName = namespaceName
        Cleanup.shared.adopt(namespace: namespaceName)
        namespace = try NetworkNamespace.create(named: namespaceName)
        var options = TAPDevice.Options()
        options.namespace = namespace
        tap = try TAPDevice(name: tapName, options: options)
        configuration = StackConfiguration(mtu: mtu, vnetHeaderSize: tap.vnetHeaderSize)
        loop = try EventLoop(name: "bench-shard", cpu: cpu)
        driver = StackDriver(loop: loop, fd: tap.fileDescriptor, stack: Stack(configuration: configuration))
        loop.startThread()

        let d = driver
        let log = self.log
        let box = try loop.submitAndWait { () throws -> Unchecked<DiagnosticServices> in
            try d.start()
            let s = DiagnosticServices(driver: d, sourceLength: 0)
            s.onClose = { _, received, sent in
                let at = monotonicNanoseconds()
                log.state.withLock {
                    $0.closed += 1
                    $0.closedAt = at
                    $0.received += received
                    $0.sent += sent
                }
            }
            d.onEvent = { event in
                if case .tcpConnectionRequest = event { log.state.withLock { $0.opened += 1 } }
                s.handle(event)
            }
            return Unchecked(s)
        }
        services = box.value

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
            let c = d.stack.counters
            return StackSample(
                cpu: CPUUsage.thread(), framesIn: c.framesIn, bytesIn: c.bytesIn, framesOut: c.framesOut,
                bytesOut: c.bytesOut, readCalls: d.readCalls, framesRead: d.framesRead,
                writeFailures: d.writeFailures, outputDropped: d.stack.output.dropped)
        }
    }

    func setSourceLength(_ n: Int) throws {
        let s = Unchecked(services!)
        try loop.submitAndWait { s.value.sourceLength = n }
    }

    /// Runs `command` in the guest (pinned to `guestCPU`) and measures one transfer of `bytes`
    /// through the stack: wall time from starting the command until both the command has exited
    /// and the stack has seen the connection close.
    func transfer(_ direction: Direction, bytes: Int, command: String, guestCPU: Int, timeout: Double) throws -> Measurement {
        if direction == .gatewayToGuest { try setSourceLength(bytes) }
        log.reset()
        let before = try sample()
        let processBefore = CPUUsage.process()
        let start = monotonicNanoseconds()
        let guest = try ChildProcess(guestCommand(command, cpu: guestCPU))
        let deadline = start + UInt64(timeout * 1e9)
        guard guest.wait(until: deadline) else {
            guest.terminate()
            throw BenchError("the guest command did not finish within \(Int(timeout)) s: \(command)")
        }
        let guestEnd = monotonicNanoseconds()
        guard guest.succeeded else { throw BenchError("guest command failed (\(guest.statusText)): \(command)") }
        // The stack's side closes after the guest's last ACK; give it a moment.
        let closeDeadline = guestEnd + 5_000_000_000
        while log.snapshot.closed == 0 && monotonicNanoseconds() < closeDeadline { usleep(500) }
        let flow = log.snapshot
        guard flow.closed == 1, flow.opened == 1 else {
            throw BenchError("expected one connection to open and close, saw \(flow.opened) opened, \(flow.closed) closed")
        }
        let moved = direction == .guestToGateway ? flow.received : flow.sent
        guard moved == bytes else {
            throw BenchError("\(direction.rawValue): \(moved) bytes moved, \(bytes) expected")
        }
        let end = max(guestEnd, flow.closedAt)
        let after = try sample()
        let process = CPUUsage.process() - processBefore
        let seconds = Double(end - start) / 1e9
        return Measurement(
            path: "stack", mtu: configuration.mtu, direction: direction, bytes: bytes, seconds: seconds,
            gbps: Double(bytes) * 8 / seconds / 1e9, guestCommand: command,
            stack: StackCost(before: before, after: after, process: process, payloadBytes: bytes,
                             vnetHeaderSize: configuration.vnetHeaderSize))
    }

    func guestCommand(_ command: String, cpu: Int) -> [String] {
        ["ip", "netns", "exec", namespaceName, "taskset", "-c", String(cpu), "sh", "-c", command]
    }

    func tearDown() {
        let d = driver
        try? loop.submitAndWait {
            d.stop()
            d.onEvent = { _ in }  // drops the services, which hold the driver
        }
        services = nil
        loop.stop()
        Cleanup.shared.remove(namespace: namespaceName)
    }
}

/// Carries a loop-confined reference across the submit boundary.
struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
