// How a sandbox's cap on inbound connections is shared between client addresses: each address
// may hold only a fair share, so one client (or one busy neighbour) cannot take every slot.
import Wire

struct InboundShares {
    /// Connections held, by client address (IPv4-mapped addresses as the IPv4 they carry).
    private var held: [IPAddress: Int] = [:]

    /// The most connections one address may hold when `sources` addresses (the asking one
    /// included) hold some: the cap split one way more than there are sources, so room is
    /// always left for an address not seen yet; never below `floor` (or half the cap, if less).
    static func share(cap: Int, sources: Int, floor: Int) -> Int {
        max(1, cap / (max(sources, 1) + 1), min(floor, cap / 2))
    }

    /// Whether `source` may open one more connection under `limits`.
    func admits(_ source: IPAddress, limits: IngressLimits) -> Bool {
        let mine = held[Self.key(source)] ?? 0
        let sources = held.count + (mine == 0 ? 1 : 0)
        return mine < Self.share(cap: limits.maxInboundConnections, sources: sources, floor: limits.inboundShareFloor)
    }

    mutating func add(_ source: IPAddress) {
        held[Self.key(source), default: 0] += 1
    }

    mutating func remove(_ source: IPAddress) {
        let k = Self.key(source)
        guard let n = held[k] else { return }
        held[k] = n > 1 ? n - 1 : nil
    }

    mutating func removeAll() { held.removeAll() }

    /// Addresses holding connections.
    var sources: Int { held.count }

    func count(of source: IPAddress) -> Int { held[Self.key(source)] ?? 0 }

    private static func key(_ a: IPAddress) -> IPAddress {
        if case .v6(let v) = a, let v4 = v.ipv4Mapped { return .v4(v4) }
        return a
    }
}
