// Which addresses one sandbox's own DNS answers gave for names its domain rules cover, and until
// when: a domain rule allows a flow only to an address pinned here (never to one merely known to
// belong to the domain), so a guest cannot reach a domain's neighbours by dialling addresses.
import Wire

public struct DNSPinTable: Sendable {
    /// One answer: the name the guest asked for (lower-cased, no trailing dot) and when it lapses.
    public struct Pin: Hashable, Sendable {
        public let name: String
        public let expiresAt: UInt64
    }

    /// Most pins held at once; the oldest-expiring pin makes room for a new one past it.
    public let capacity: Int
    /// Shortest life of a pin: a connection made right after a short-TTL answer must still work.
    public let ttlFloor: UInt64
    /// Longest life of a pin, whatever the TTL says: an answer does not vouch for an address
    /// forever, and a guest could otherwise keep one by asking once.
    public let ttlCeiling: UInt64

    private var pins: [IPAddress: [Pin]] = [:]
    public private(set) var count = 0
    /// Pins dropped before their time to stay within `capacity`.
    public private(set) var evictions = 0

    public static let defaultCapacity = 4096
    public static let defaultTTLFloor: UInt64 = 60_000_000_000
    public static let defaultTTLCeiling: UInt64 = 86_400_000_000_000

    public init(
        capacity: Int = defaultCapacity, ttlFloor: UInt64 = defaultTTLFloor, ttlCeiling: UInt64 = defaultTTLCeiling
    ) {
        precondition(capacity > 0, "a pin table holds at least one pin")
        self.capacity = capacity
        self.ttlFloor = ttlFloor
        self.ttlCeiling = max(ttlCeiling, ttlFloor)
    }

    /// Records that `name` resolved to `address` with a TTL of `ttl` seconds at `now`
    /// (nanoseconds on the gateway's monotonic clock). A repeat answer extends the pin.
    /// IPv4-mapped IPv6 addresses are kept as the IPv4 address, as the policy compares them.
    public mutating func record(name: String, address: IPAddress, ttl: UInt32, now: UInt64) {
        let address = Self.unwrapped(address)
        let life = min(max(UInt64(ttl) * 1_000_000_000, ttlFloor), ttlCeiling)
        let expiresAt = now &+ life
        if var list = pins[address] {
            if let i = list.firstIndex(where: { $0.name == name }) {
                if list[i].expiresAt < expiresAt { list[i] = Pin(name: name, expiresAt: expiresAt) }
                pins[address] = list
                return
            }
        }
        if count >= capacity {
            removeExpired(now: now)
            if count >= capacity { evictEarliest() }
        }
        pins[address, default: []].append(Pin(name: name, expiresAt: expiresAt))
        count += 1
    }

    /// The first name pinned to `address` that `pattern` covers and that has not lapsed at `now`.
    public func name(pinnedTo address: IPAddress, matching pattern: DomainPattern, now: UInt64) -> String? {
        guard let list = pins[Self.unwrapped(address)] else { return nil }
        for pin in list where pin.expiresAt > now && pattern.matches(pin.name) { return pin.name }
        return nil
    }

    /// Whether `name` (lower-cased) is pinned to `address` and has not lapsed at `now`.
    public func isPinned(_ name: some StringProtocol, to address: IPAddress, now: UInt64) -> Bool {
        guard let list = pins[Self.unwrapped(address)] else { return false }
        return list.contains { $0.expiresAt > now && $0.name == name }
    }

    /// Names pinned to `address` at `now`, for logs and the control API.
    public func names(pinnedTo address: IPAddress, now: UInt64) -> [String] {
        (pins[Self.unwrapped(address)] ?? []).filter { $0.expiresAt > now }.map(\.name)
    }

    /// Drops every lapsed pin; returns how many went.
    @discardableResult
    public mutating func removeExpired(now: UInt64) -> Int {
        var removed = 0
        for (address, list) in pins {
            let kept = list.filter { $0.expiresAt > now }
            guard kept.count != list.count else { continue }
            removed += list.count - kept.count
            pins[address] = kept.isEmpty ? nil : kept
        }
        count -= removed
        return removed
    }

    public mutating func removeAll() {
        pins.removeAll()
        count = 0
    }

    private mutating func evictEarliest() {
        var victim: (address: IPAddress, index: Int, expiresAt: UInt64)?
        for (address, list) in pins {
            for (i, pin) in list.enumerated() where victim == nil || pin.expiresAt < victim!.expiresAt {
                victim = (address, i, pin.expiresAt)
            }
        }
        guard let victim else { return }
        pins[victim.address]!.remove(at: victim.index)
        if pins[victim.address]!.isEmpty { pins[victim.address] = nil }
        count -= 1
        evictions += 1
    }

    private static func unwrapped(_ address: IPAddress) -> IPAddress {
        if case .v6(let a) = address, let v4 = a.ipv4Mapped { return .v4(v4) }
        return address
    }
}
