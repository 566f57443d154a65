// The sandbox's DHCPv4 server (RFC 2131): leases per client MAC from a small pool that starts
// at the guest's configured address, OFFER/ACK/NAK, RELEASE, DECLINE and INFORM.
import Wire

public struct DHCPServer {
    public struct Lease: Sendable, Hashable {
        public var mac: MACAddress
        public var address: IPv4Address
        public var expires: UInt64
        public var bound: Bool
    }

    /// What to send back, and where: broadcast when the client cannot yet receive unicast.
    public struct Answer {
        public var reply: DHCPReply
        public var broadcast: Bool
        public var destinationMAC: MACAddress
        public var destinationIP: IPv4Address
    }

    public let parameters: DHCPLeaseParameters
    let firstAddress: IPv4Address
    let poolSize: Int
    let excluded: Set<IPv4Address>
    let leaseNanoseconds: UInt64
    public private(set) var leases: [MACAddress: Lease] = [:]
    /// Addresses a client declined (someone else answers for them): not offered again.
    private var declined: Set<IPv4Address> = []

    public private(set) var offers = 0
    public private(set) var acks = 0
    public private(set) var naks = 0

    public init(configuration c: StackConfiguration, poolSize: Int = 16) {
        let leaseSeconds = UInt32(clamping: c.leaseTime.components.seconds)
        parameters = DHCPLeaseParameters(
            serverIdentifier: c.gatewayIPv4, leaseTime: leaseSeconds, subnetMask: c.subnetMask, router: c.gatewayIPv4,
            dnsServers: c.dnsServersIPv4, interfaceMTU: UInt16(clamping: c.mtu), domainSearch: c.domainSearch,
            broadcastAddress: c.broadcastIPv4)
        firstAddress = c.guestIPv4
        self.poolSize = poolSize
        excluded = [c.gatewayIPv4, c.broadcastIPv4, IPv4Address(raw: c.gatewayIPv4.raw & c.subnetMask.raw)]
        leaseNanoseconds = UInt64(leaseSeconds) * 1_000_000_000
        self.subnetMask = c.subnetMask
        self.network = IPv4Address(raw: c.gatewayIPv4.raw & c.subnetMask.raw)
    }

    private let subnetMask: IPv4Address
    private let network: IPv4Address

    private func inPool(_ a: IPv4Address) -> Bool {
        a.raw &- firstAddress.raw < UInt32(poolSize) && a.raw & subnetMask.raw == network.raw && !excluded.contains(a)
    }

    private func isTaken(_ a: IPv4Address, by mac: MACAddress, now: UInt64) -> Bool {
        leases.values.contains { $0.address == a && $0.mac != mac && $0.expires > now }
    }

    /// The address for `mac`: its current lease, the one it asks for when free, else the first free one.
    private mutating func address(for mac: MACAddress, requested: IPv4Address?, now: UInt64) -> IPv4Address? {
        if let l = leases[mac], !declined.contains(l.address) { return l.address }
        if let r = requested, inPool(r), !declined.contains(r), !isTaken(r, by: mac, now: now) { return r }
        for i in 0..<poolSize {
            let a = IPv4Address(raw: firstAddress.raw &+ UInt32(i))
            if inPool(a) && !declined.contains(a) && !isTaken(a, by: mac, now: now) { return a }
        }
        return nil
    }

    /// Handles one client message; nil when nothing is to be sent.
    public mutating func handle(_ m: DHCPMessage, now: UInt64) -> Answer? {
        guard m.op == .request, let mac = m.chaddr, let type = m.options.messageType else { return nil }
        let unicastOK = !m.broadcast && !m.ciaddr.isUnspecified
        switch type {
        case .discover:
            guard let a = address(for: mac, requested: m.options.requestedIP, now: now) else { return nil }
            // Held briefly so two clients are not offered the same address.
            leases[mac] = Lease(mac: mac, address: a, expires: now + 60_000_000_000, bound: leases[mac]?.bound ?? false)
            offers += 1
            return answer(DHCPReply(replyingTo: m, type: .offer, yourAddress: a), to: mac, ip: a, broadcast: m.broadcast)
        case .request:
            // A REQUEST naming another server means the client chose it (RFC 2131 §4.3.2).
            if let sid = m.options.serverIdentifier, sid != parameters.serverIdentifier {
                if let l = leases[mac], !l.bound { leases[mac] = nil }
                return nil
            }
            let wanted = m.options.requestedIP ?? m.ciaddr
            let granted = address(for: mac, requested: wanted, now: now)
            guard let a = granted, a == wanted else {
                naks += 1
                var nak = DHCPReply(replyingTo: m, type: .nak, yourAddress: .any)
                nak.message = "address \(wanted) is not available; restart with DISCOVER"
                return answer(nak, to: .broadcast, ip: .broadcast, broadcast: true)
            }
            leases[mac] = Lease(mac: mac, address: a, expires: now + leaseNanoseconds, bound: true)
            acks += 1
            return answer(DHCPReply(replyingTo: m, type: .ack, yourAddress: a), to: mac, ip: unicastOK ? m.ciaddr : a, broadcast: m.broadcast)
        case .release:
            if let l = leases[mac], l.address == m.ciaddr { leases[mac] = nil }
            return nil
        case .decline:
            if let r = m.options.requestedIP, leases[mac]?.address == r {
                declined.insert(r)
                leases[mac] = nil
            }
            return nil
        case .inform:
            guard !m.ciaddr.isUnspecified else { return nil }
            acks += 1
            return answer(DHCPReply(replyingTo: m, type: .ack, yourAddress: .any), to: mac, ip: m.ciaddr, broadcast: false)
        default:
            return nil
        }
    }

    private func answer(_ r: DHCPReply, to mac: MACAddress, ip: IPv4Address, broadcast: Bool) -> Answer {
        broadcast
            ? Answer(reply: r, broadcast: true, destinationMAC: .broadcast, destinationIP: .broadcast)
            : Answer(reply: r, broadcast: false, destinationMAC: mac, destinationIP: ip)
    }
}
