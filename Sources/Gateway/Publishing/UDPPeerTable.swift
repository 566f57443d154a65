// The UDP peers of a sandbox's published ports: each host peer gets a gateway-side port (from
// 49152-65535 by default) that stands for it towards the guest, so the guest's replies to that
// port find their way back. Pure bookkeeping; the ingress relay does the I/O.
import NetStack
import Wire

struct UDPPeerTable {
    struct Entry {
        /// The published port the peer wrote to.
        var binding: HostBinding
        var peer: IPEndpoint
        /// The flow as the guest sees it; its remote end is the gateway-side port (or the peer).
        var stackKey: FlowKey
        /// The gateway-side port taken for this peer; nil when the peer's own address is used.
        var gatewayPort: UInt16?
        var lastActivity: UInt64
    }

    private struct PeerKey: Hashable {
        var binding: HostBinding
        var peer: IPEndpoint
    }

    let gatewayPorts: ClosedRange<UInt16>
    private var byPeer: [PeerKey: FlowKey] = [:]
    private var byStackKey: [FlowKey: Entry] = [:]
    private var usedPorts: Set<UInt16> = []
    private var nextPort: UInt16

    init(gatewayPorts: ClosedRange<UInt16>) {
        self.gatewayPorts = gatewayPorts
        nextPort = gatewayPorts.lowerBound
    }

    var count: Int { byStackKey.count }
    var isEmpty: Bool { byStackKey.isEmpty }
    var isFull: Bool { usedPorts.count >= gatewayPorts.count }

    /// The stack key of a known peer, marking it active.
    mutating func touch(_ binding: HostBinding, peer: IPEndpoint, now: UInt64) -> FlowKey? {
        guard let key = byPeer[PeerKey(binding: binding, peer: peer)] else { return nil }
        byStackKey[key]?.lastActivity = now
        return key
    }

    /// The entry whose stack key the guest's datagram carries, marking it active.
    mutating func touch(stackKey: FlowKey, now: UInt64) -> Entry? {
        guard var e = byStackKey[stackKey] else { return nil }
        e.lastActivity = now
        byStackKey[stackKey] = e
        return e
    }

    func contains(stackKey: FlowKey) -> Bool { byStackKey[stackKey] != nil }

    /// Adds a peer seen through a gateway-side port: `key` builds its stack key from the port.
    /// nil when every gateway-side port is taken (the peer is then dropped; others carry on).
    mutating func addMapped(_ binding: HostBinding, peer: IPEndpoint, now: UInt64, key: (UInt16) -> FlowKey) -> FlowKey?
    {
        let existing = byStackKey
        guard let port = takePort(avoiding: { existing[key($0)] != nil }) else { return nil }
        let k = key(port)
        insert(Entry(binding: binding, peer: peer, stackKey: k, gatewayPort: port, lastActivity: now))
        return k
    }

    /// Adds a peer the guest sees at its own address (preserveSource); false when that key is
    /// already taken by another published port.
    mutating func addDirect(_ binding: HostBinding, peer: IPEndpoint, stackKey: FlowKey, now: UInt64) -> Bool {
        guard byStackKey[stackKey] == nil else { return false }
        insert(Entry(binding: binding, peer: peer, stackKey: stackKey, gatewayPort: nil, lastActivity: now))
        return true
    }

    private mutating func insert(_ e: Entry) {
        byPeer[PeerKey(binding: e.binding, peer: e.peer)] = e.stackKey
        byStackKey[e.stackKey] = e
        if let p = e.gatewayPort { usedPorts.insert(p) }
    }

    /// Round-robin from after the last port given, so a port just freed is not reused at once
    /// (a late reply of the old peer must not reach the new one).
    private mutating func takePort(avoiding taken: (UInt16) -> Bool) -> UInt16? {
        guard !isFull else { return nil }
        let lo = gatewayPorts.lowerBound, hi = gatewayPorts.upperBound
        var p = nextPort
        for _ in 0..<gatewayPorts.count {
            let here = p
            p = here == hi ? lo : here + 1
            if usedPorts.contains(here) || taken(here) { continue }
            nextPort = p
            return here
        }
        return nil
    }

    private mutating func remove(_ key: FlowKey) {
        guard let e = byStackKey.removeValue(forKey: key) else { return }
        byPeer[PeerKey(binding: e.binding, peer: e.peer)] = nil
        if let p = e.gatewayPort { usedPorts.remove(p) }
    }

    /// Drops peers idle for `idle` nanoseconds or more; returns how many.
    @discardableResult
    mutating func expire(now: UInt64, idle: UInt64) -> Int {
        let old = byStackKey.values.filter { now >= $0.lastActivity &+ idle }.map(\.stackKey)
        for k in old { remove(k) }
        return old.count
    }

    /// Drops the peers of one published port (unpublish).
    mutating func removeAll(of binding: HostBinding) {
        for k in byStackKey.values.filter({ $0.binding == binding }).map(\.stackKey) { remove(k) }
    }

    mutating func removeAll() {
        byPeer.removeAll()
        byStackKey.removeAll()
        usedPorts.removeAll()
    }

    /// When the next peer could expire.
    func nextExpiry(idle: UInt64) -> UInt64? {
        byStackKey.values.map(\.lastActivity).min().map { $0 &+ idle }
    }
}
