// One transfer's result: what moved, how fast, what it cost the gateway side, and how the bytes
// were framed on the TAP (whether TSO/GSO was in effect).

enum Direction: String, Codable, Sendable, CaseIterable {
    case guestToGateway = "guest-to-gateway"
    case gatewayToGuest = "gateway-to-guest"

    var arrow: String { self == .guestToGateway ? "guest→gw" : "gw→guest" }
}

/// The stack's own counters around a transfer, taken on the loop thread.
struct StackSample: Sendable {
    var cpu: CPUUsage
    var runQueueWait: Double
    var framesIn: Int
    var bytesIn: Int
    var framesOut: Int
    var bytesOut: Int
    var readCalls: Int
    var framesRead: Int
    var writeFailures: Int
    var outputDropped: Int
}

/// What the gateway side did during one transfer; absent for rows that have no stack of ours.
struct StackCost: Codable, Sendable {
    /// CPU seconds of the event-loop thread (user + system).
    var loopCPUSeconds: Double
    var loopUserSeconds: Double
    var loopSystemSeconds: Double
    /// Seconds the loop thread was ready to run but another task had its CPU: other load on
    /// the machine, which the throughput figure then understates.
    var loopRunQueueWaitSeconds: Double
    /// Loop CPU ÷ wall time: well under 1 means the stack was waiting for the guest, not the
    /// other way round.
    var loopBusy: Double
    /// Loop CPU seconds per 10^9 payload bytes.
    var cpuSecondsPerGB: Double
    /// The whole gateway-bench process (RUSAGE_SELF), loop thread included.
    var processCPUSeconds: Double
    var framesIn: Int
    var framesOut: Int
    /// Average Ethernet frame size (virtio-net header excluded); ~64 KB means the guest's TSO
    /// (in) or our GSO (out) is in effect, ~MTU+14 means one wire-sized segment per frame.
    var bytesPerFrameIn: Double
    var bytesPerFrameOut: Double
    /// Frames per wake-up of the device handler (frames read ÷ reads that found the queue empty).
    var framesPerReadBatch: Double
    var writeFailures: Int
    var outputDropped: Int

    init(before: StackSample, after: StackSample, process: CPUUsage, payloadBytes: Int, seconds: Double, vnetHeaderSize: Int) {
        let cpu = after.cpu - before.cpu
        loopBusy = seconds > 0 ? cpu.total / seconds : 0
        loopCPUSeconds = cpu.total
        loopUserSeconds = cpu.user
        loopSystemSeconds = cpu.system
        loopRunQueueWaitSeconds = after.runQueueWait - before.runQueueWait
        cpuSecondsPerGB = payloadBytes > 0 ? cpu.total / (Double(payloadBytes) / 1e9) : 0
        processCPUSeconds = process.total
        framesIn = after.framesIn - before.framesIn
        framesOut = after.framesOut - before.framesOut
        let l2In = after.bytesIn - before.bytesIn - framesIn * vnetHeaderSize
        let l2Out = after.bytesOut - before.bytesOut - framesOut * vnetHeaderSize
        bytesPerFrameIn = framesIn > 0 ? Double(l2In) / Double(framesIn) : 0
        bytesPerFrameOut = framesOut > 0 ? Double(l2Out) / Double(framesOut) : 0
        let read = after.framesRead - before.framesRead
        // Each wake-up ends with one read that finds nothing (EAGAIN), unless the batch limit
        // stopped it first; so this slightly undercounts wake-ups only when batches are full.
        let emptyReads = (after.readCalls - before.readCalls) - read
        framesPerReadBatch = Double(read) / Double(max(1, emptyReads))
        writeFailures = after.writeFailures - before.writeFailures
        outputDropped = after.outputDropped - before.outputDropped
    }
}

struct Measurement: Codable, Sendable {
    /// "stack" (our stack alone, diagnostic services) or "veth-tools" (the same guest commands
    /// over a kernel veth to a host-side socat: the ceiling of the guest's tools).
    var path: String
    var mtu: Int
    var direction: Direction
    var bytes: Int
    var seconds: Double
    var gbps: Double
    /// The guest-side command, as run inside the namespace.
    var guestCommand: String
    var stack: StackCost?
    /// With --repeat: the rate of every run, this one being the fastest.
    var runsGbps: [Double]? = nil
}
