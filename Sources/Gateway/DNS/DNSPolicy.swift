// A sandbox's DNS policy: name suffixes it may not resolve. Suffixes are encoded once, so the
// check per query compares labels in place without allocating.
import Wire

public struct DNSPolicy: Hashable, Sendable {
    /// The suffixes as given ("blocked.test").
    public let deniedSuffixes: [String]
    /// Each suffix in wire form (length-prefixed labels, no root byte), lower-cased, with its
    /// label count.
    private let encoded: [(wire: [UInt8], labels: Int)]

    public static let none = DNSPolicy()

    private init() {
        deniedSuffixes = []
        encoded = []
    }

    /// A policy denying each name equal to or under one of `deniedSuffixes`: "blocked.test"
    /// denies "blocked.test" and "x.blocked.test", not "xblocked.test". "." denies every name.
    /// Throws `.invalidArgument` naming a suffix that is not a valid domain name.
    public init(deniedSuffixes: [String]) throws(GatewayError) {
        var encoded: [(wire: [UInt8], labels: Int)] = []
        for suffix in deniedSuffixes {
            // "" encodes as the root like ".", but as a config value it is more likely a slip.
            guard !suffix.isEmpty else {
                throw GatewayError(.invalidArgument, "DNS policy: empty denied suffix (write \".\" to deny every name)")
            }
            var wire = [UInt8](repeating: 0, count: DNSName.maxWireLength + 1)
            let length: Int
            do {
                length = try wire.withUnsafeMutableBytes { buffer throws(WireError) in
                    try DNSName.encode(suffix, into: buffer, at: 0)
                }
            } catch {
                throw GatewayError(.invalidArgument, "DNS policy: \"\(suffix)\" is not a domain name suffix")
            }
            wire.removeSubrange((length - 1)...)
            var labels = 0
            var i = 0
            while i < wire.count {
                for j in (i + 1)..<(i + 1 + Int(wire[i])) { wire[j] = DNSPolicy.lower(wire[j]) }
                i += 1 + Int(wire[i])
                labels += 1
            }
            encoded.append((wire, labels))
        }
        self.deniedSuffixes = deniedSuffixes
        self.encoded = encoded
    }

    /// Whether `name` is equal to or under a denied suffix, ignoring ASCII case (RFC 4343 §3).
    public func denies(_ name: DNSName) -> Bool {
        for suffix in encoded where DNSPolicy.hasSuffix(name, suffix.wire, labels: suffix.labels) { return true }
        return false
    }

    private static func hasSuffix(_ name: DNSName, _ wire: [UInt8], labels: Int) -> Bool {
        guard name.labelCount >= labels else { return false }
        var iterator = name.labels
        for _ in 0..<(name.labelCount - labels) { _ = iterator.next() }
        var pos = 0
        while let label = iterator.next() {
            guard pos < wire.count, Int(wire[pos]) == label.count else { return false }
            for (i, b) in label.enumerated() where lower(b) != wire[pos + 1 + i] { return false }
            pos += 1 + label.count
        }
        return pos == wire.count
    }

    @inline(__always)
    private static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    public static func == (a: DNSPolicy, b: DNSPolicy) -> Bool { a.deniedSuffixes == b.deniedSuffixes }
    public func hash(into hasher: inout Hasher) { hasher.combine(deniedSuffixes) }
}
