// How fast one sandbox may move bytes, datagrams and new flows, and how many flows it may hold:
// the limits a policy sets and an attach may override, with the "100mbit" notation they are written in.

/// Each limit is per sandbox; nil means none (for the connection rate: the gateway's default).
public struct RateLimits: Hashable, Sendable, Codable {
    /// Bytes per second written to host sockets (the guest's uploads, its answers on published ports).
    public var toHostBytesPerSecond: UInt64?
    /// Bytes per second read from host sockets into the guest (downloads, published-port clients).
    public var fromHostBytesPerSecond: UInt64?
    /// UDP datagrams per second, each way.
    public var packetsPerSecond: Int?
    /// New TCP flows and UDP sessions per second.
    public var connectionsPerSecond: Int?
    /// TCP flows and UDP sessions open at once.
    public var maxFlows: Int?

    public init(
        toHostBytesPerSecond: UInt64? = nil, fromHostBytesPerSecond: UInt64? = nil, packetsPerSecond: Int? = nil,
        connectionsPerSecond: Int? = nil, maxFlows: Int? = nil
    ) {
        self.toHostBytesPerSecond = toHostBytesPerSecond
        self.fromHostBytesPerSecond = fromHostBytesPerSecond
        self.packetsPerSecond = packetsPerSecond
        self.connectionsPerSecond = connectionsPerSecond
        self.maxFlows = maxFlows
    }

    /// Both ways at one rate.
    public var bytesPerSecond: UInt64? {
        get { toHostBytesPerSecond == fromHostBytesPerSecond ? toHostBytesPerSecond : nil }
        set {
            toHostBytesPerSecond = newValue
            fromHostBytesPerSecond = newValue
        }
    }

    /// These limits, with each one `other` sets taking its place (an attach's over its policy's).
    public func overridden(by other: RateLimits) -> RateLimits {
        RateLimits(
            toHostBytesPerSecond: other.toHostBytesPerSecond ?? toHostBytesPerSecond,
            fromHostBytesPerSecond: other.fromHostBytesPerSecond ?? fromHostBytesPerSecond,
            packetsPerSecond: other.packetsPerSecond ?? packetsPerSecond,
            connectionsPerSecond: other.connectionsPerSecond ?? connectionsPerSecond,
            maxFlows: other.maxFlows ?? maxFlows)
    }

    public var isEmpty: Bool { self == RateLimits() }

    /// Reads a bit rate ("100mbit", "2.5gbit", "512kbit", "1000000" bits) as bytes per second,
    /// decimal units as network links count them. nil: not a rate, or zero.
    public static func bytesPerSecond(parsing text: String) -> UInt64? {
        let t = text.lowercased().filter { $0 != " " }
        let units: [(String, Double)] = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)]
        var number = Substring(t)
        var scale = 1.0
        for (suffix, s) in units where t.hasSuffix(suffix) {
            number = t.dropLast(suffix.count)
            scale = s
            break
        }
        guard let value = Double(number), value.isFinite, value > 0 else { return nil }
        let bytes = (value * scale / 8).rounded()
        guard bytes >= 1, bytes < 1e18 else { return nil }
        return UInt64(bytes)
    }

    /// A rate as it is written: the largest unit that shows it whole, else in kbit.
    public static func bitRateText(_ bytesPerSecond: UInt64) -> String {
        let bits = bytesPerSecond * 8
        for (suffix, s) in [("gbit", 1_000_000_000 as UInt64), ("mbit", 1_000_000), ("kbit", 1000)] where bits % s == 0 {
            return "\(bits / s)\(suffix)"
        }
        return "\(bits)bit"
    }
}
