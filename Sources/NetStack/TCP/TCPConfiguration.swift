// Tunables of one TCP connection: buffer sizes, segment sizes and the timer constants of RFC 6298 / RFC 9293.

public struct TCPConfiguration: Sendable {
    /// Bytes the layer above may queue towards the guest before `write` accepts no more.
    public var sendBufferSize = 1 << 20
    /// Bytes from the guest held until the layer above reads them: the largest window we offer.
    public var receiveBufferSize = 1 << 20
    /// The window a new connection offers; it doubles each time the guest fills it, up to
    /// `receiveBufferSize`. Every open connection reserves its window in the sandbox's memory
    /// budget, so this is what an idle connection costs the budget.
    public var initialReceiveWindow = 32 * 1024
    /// The MSS we announce: the guest link's MTU less the IP and TCP headers.
    public var localMSS: Int = 1460
    /// The largest payload we put in one segment to the guest. Above the MSS when the link
    /// takes GSO frames (the guest's kernel then treats it as one aggregated packet).
    public var maxSegmentPayload: Int = 1460
    /// Out-of-order ranges kept before further out-of-order segments are dropped.
    public var maxOutOfOrderRanges = 16
    public var initialRTO: Duration = .seconds(1)
    public var minRTO: Duration = .milliseconds(200)
    public var maxRTO: Duration = .seconds(60)
    public var delayedACK: Duration = .milliseconds(40)
    public var timeWait: Duration = .seconds(30)
    /// Retransmissions of one segment before the connection is given up (RFC 9293 R2 ≈ 100 s).
    public var maxRetransmissions = 12
    public var maxSYNRetransmissions = 6
    /// Initial congestion window in segments (RFC 6928).
    public var initialWindowSegments = 10

    public init() {}

    /// Window scale that lets the receive buffer be offered whole (RFC 7323 §2.3).
    var receiveWindowScale: UInt8 {
        var shift: UInt8 = 0
        while shift < 14 && (65535 << Int(shift)) < receiveBufferSize { shift += 1 }
        return shift
    }
}
