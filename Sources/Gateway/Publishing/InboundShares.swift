// How a sandbox's cap on inbound connections is shared between clients: a client alone may use
// all of it, but once others come each holds only a fair share, so one cannot keep the rest out.
import Wire

/// Who holds an inbound connection: a client address, or a sandbox whose egress the gateway
/// carried here (its connections come from the host's loopback like the host's own clients').
enum InboundSource: Hashable, Sendable {
    case address(IPAddress)
    case sandbox(String)

    /// IPv4-mapped addresses are the IPv4 address they carry.
    init(_ address: IPAddress) {
        if case .v6(let v) = address, let v4 = v.ipv4Mapped { self = .address(.v4(v4)) } else { self = .address(address) }
    }
}

struct InboundShares {
    /// What admitting a new connection takes.
    enum Verdict: Equatable {
        case admit
        /// The cap is held, and `source` holds more than its share: one of its connections
        /// makes room for the new one.
        case admitInPlaceOf(InboundSource)
        /// The client already holds its share.
        case overShare
        /// The cap is held by clients within their shares.
        case overLimit
    }

    private var held: [InboundSource: Int] = [:]
    private var total = 0

    /// The most connections one source may hold while `sources` sources (a newcomer included)
    /// want some: an even split of the cap, never below `floor` (nor above the cap).
    static func share(cap: Int, sources: Int, floor: Int) -> Int {
        min(cap, max(1, cap / max(sources, 1), floor))
    }

    func admit(_ source: InboundSource, limits: IngressLimits) -> Verdict {
        let cap = limits.maxInboundConnections
        let mine = held[source] ?? 0
        let share = Self.share(cap: cap, sources: held.count + (mine == 0 ? 1 : 0), floor: limits.inboundShareFloor)
        if mine >= share { return total >= cap ? .overLimit : .overShare }
        if total < cap { return .admit }
        // Full: the source furthest over the share gives one up, if any is over it.
        guard let (heaviest, n) = held.max(by: { $0.value < $1.value }), n > share else { return .overLimit }
        return .admitInPlaceOf(heaviest)
    }

    mutating func add(_ source: InboundSource) {
        held[source, default: 0] += 1
        total += 1
    }

    mutating func remove(_ source: InboundSource) {
        guard let n = held[source] else { return }
        held[source] = n > 1 ? n - 1 : nil
        total -= 1
    }

    mutating func removeAll() {
        held.removeAll()
        total = 0
    }

    /// Sources holding connections.
    var sources: Int { held.count }

    func count(of source: InboundSource) -> Int { held[source] ?? 0 }
}
