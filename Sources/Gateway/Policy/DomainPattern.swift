// The name a domain rule covers: one name exactly ("pypi.org") or every name under a suffix
// ("*.githubusercontent.com"). Rules match it against names the sandbox itself resolved.

/// A domain name or wildcard suffix, kept lower-cased without a trailing dot, so matching a
/// resolved name (also lower-cased) is a plain comparison.
public struct DomainPattern: Hashable, Sendable, CustomStringConvertible {
    /// The name, or for a wildcard the suffix after "*.".
    public let name: String
    /// "*.NAME": every name strictly under NAME (not NAME itself, which a rule names on its own).
    public let coversSubdomains: Bool

    /// Longest name in text form (RFC 1035 §2.3.4: 255 octets on the wire, so 253 characters).
    public static let maxLength = 253

    /// Reads "name" or "*.suffix". Nil when the text is not a host name: empty labels, labels
    /// over 63 characters, characters other than letters, digits, '-' and '_', or a '*'
    /// anywhere but a leading "*." label.
    public init?(_ text: some StringProtocol) {
        var body = Substring(text).lowercased()[...]
        if body.hasSuffix(".") { body = body.dropLast() }
        var wildcard = false
        if body.hasPrefix("*.") {
            wildcard = true
            body = body.dropFirst(2)
        }
        guard !body.isEmpty, body.utf8.count <= Self.maxLength else { return nil }
        for label in body.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63 else { return nil }
            for b in label.utf8 {
                let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
                guard ok else { return nil }
            }
        }
        // A bare top-level wildcard ("*.com") is allowed: an operator may mean it, and it is
        // still narrower than an address rule, since every flow needs a pin.
        name = String(body)
        coversSubdomains = wildcard
    }

    /// Whether `candidate` (lower-cased, no trailing dot) is covered.
    public func matches(_ candidate: some StringProtocol) -> Bool {
        if !coversSubdomains { return candidate == name }
        let c = candidate.utf8, n = name.utf8
        guard c.count > n.count + 1 else { return false }
        // "a.example.org" ends with ".example.org"; "badexample.org" does not.
        let dot = c.index(c.endIndex, offsetBy: -(n.count + 1))
        return c[dot] == UInt8(ascii: ".") && c[c.index(after: dot)...].elementsEqual(n)
    }

    public var description: String { coversSubdomains ? "*.\(name)" : name }
}
