// The guest's link-layer addresses by IP, learned from its own frames; bounded, oldest evicted.
import Wire

public struct NeighborTable: Sendable {
    struct Entry: Sendable {
        var mac: MACAddress
        var lastSeen: UInt64
    }

    private var entries: [IPAddress: Entry] = [:]
    public let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    public var count: Int { entries.count }

    public mutating func learn(_ ip: IPAddress, mac: MACAddress, now: UInt64) {
        guard mac.isUnicast, mac != .zero else { return }
        if entries[ip] == nil && entries.count >= capacity,
            let oldest = entries.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key
        {
            entries[oldest] = nil
        }
        entries[ip] = Entry(mac: mac, lastSeen: now)
    }

    public func lookup(_ ip: IPAddress) -> MACAddress? { entries[ip]?.mac }
}
