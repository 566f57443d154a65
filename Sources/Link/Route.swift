// One route in a namespace's routing table, as RTM_NEWROUTE reports it.
import Wire

/// A route: where packets for `destination/prefixLength` go.
public struct Route: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Hashable, Sendable {
        case ipv4, ipv6
    }

    /// RT_TABLE_MAIN (include/uapi/linux/rtnetlink.h): where `ip route` looks by default.
    public static let mainTable: UInt32 = 254

    public var destination: IPAddress
    public var prefixLength: Int
    /// The next hop's address; nil for an on-link route.
    public var gateway: IPAddress?
    /// The outgoing device's interface index (of the first next hop, for a multipath route).
    public var outputIndex: Int32?
    public var table: UInt32
    /// RT_SCOPE_*: 0 universe, 253 link, 254 host.
    public var scope: UInt8
    /// RTPROT_*: 2 kernel (connected routes), 3 boot, 4 static (what this module adds).
    public var routingProtocol: UInt8
    /// RTA_PRIORITY, the route's metric.
    public var metric: UInt32

    public init(
        destination: IPAddress, prefixLength: Int, gateway: IPAddress?, outputIndex: Int32?,
        table: UInt32 = Route.mainTable, scope: UInt8 = 0, routingProtocol: UInt8 = 4, metric: UInt32 = 0
    ) {
        self.destination = destination
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.table = table
        self.scope = scope
        self.routingProtocol = routingProtocol
        self.metric = metric
    }

    public var family: Family {
        if case .v4 = destination { .ipv4 } else { .ipv6 }
    }

    /// The default route (0.0.0.0/0 or ::/0).
    public var isDefault: Bool { prefixLength == 0 }

    public var description: String {
        var s = isDefault ? "default" : "\(destination)/\(prefixLength)"
        if let gateway { s += " via \(gateway)" }
        if let outputIndex { s += " dev #\(outputIndex)" }
        if table != Route.mainTable { s += " table \(table)" }
        return s
    }
}
