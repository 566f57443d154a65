// The addresses an answer gives for its question's name: A and AAAA records owned by that name
// or by a name its CNAME chain (in the same answer section) leads to.

extension DNSMessage {
    /// One address of an answer and how long it may be believed: the least TTL along the CNAME
    /// chain that led to it, since the chain is only as fresh as its shortest link.
    public struct ResolvedAddress: Hashable, Sendable {
        public var address: IPAddress
        public var ttl: UInt32
    }

    /// Longest CNAME chain followed; resolvers stop well before (and a loop must end somewhere).
    public static let maxCNAMEChain = 16

    /// The A and AAAA answers for `question.name`, following CNAMEs. Records for names outside
    /// the chain are ignored: an upstream cannot vouch for a name nobody asked about.
    public func resolvedAddresses() -> [ResolvedAddress] {
        guard let question else { return [] }
        var chain: [(name: DNSName, ttl: UInt32)] = [(question.name, .max)]
        var grew = true
        while grew, chain.count <= Self.maxCNAMEChain {
            grew = false
            for record in answers {
                guard case .cname(let target) = record.data,
                      let link = chain.first(where: { $0.name == record.name }),
                      !chain.contains(where: { $0.name == target })
                else { continue }
                chain.append((target, min(link.ttl, record.ttl)))
                grew = true
                if chain.count > Self.maxCNAMEChain { break }
            }
        }
        var out: [ResolvedAddress] = []
        for record in answers {
            let address: IPAddress
            switch record.data {
            case .a(let a): address = .v4(a)
            case .aaaa(let a): address = .v6(a)
            default: continue
            }
            guard let link = chain.first(where: { $0.name == record.name }) else { continue }
            out.append(ResolvedAddress(address: address, ttl: min(link.ttl, record.ttl)))
        }
        return out
    }
}
