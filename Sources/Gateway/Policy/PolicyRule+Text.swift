// The text form of a policy rule, as the config file and the CLI write it:
//   <allow|deny> <egress|ingress> <tcp|udp|icmp|any> <any|ADDRESS[/LEN]|group:NAME|domain:NAME|sandbox:ID> [ports LIST]
// where LIST is comma-separated ports and ranges ("80,443,8000-8100"); `#` starts a comment.
// `sandbox:ID` (egress only) covers the host ports the gateway publishes for sandbox ID, which
// are otherwise never reachable from a sandbox; its LIST names that sandbox's GUEST ports (the
// right side of a publish spec), which stay the same when host ports are chosen automatically.
import Wire

extension PolicyRule: LosslessStringConvertible {
    /// Reads one rule; nil when the text is not a rule. Use `init(parsing:line:)` for the error.
    public init?(_ description: String) {
        guard let rule = try? PolicyRule(parsing: description) else { return nil }
        self = rule
    }

    /// Reads one rule from its text form. Keywords are case-insensitive. A bare address means
    /// the single host (/32 or /128). Errors name `line` when given and the offending token.
    public init(parsing text: some StringProtocol, line: Int? = nil) throws(PolicyError) {
        var body = Substring(text)
        if let hash = body.firstIndex(of: "#") { body = body[..<hash] }
        let tokens = body.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        var next = 0

        func fail(_ token: Substring?, _ reason: String) -> PolicyError {
            PolicyError(.badRule, line: line, token: token.map(String.init), reason)
        }
        func take(_ what: String, after previous: String?) throws(PolicyError) -> Substring {
            guard next < tokens.count else {
                throw fail(nil, previous.map { "missing \(what) after \"\($0)\"" } ?? "empty rule: expected \(what)")
            }
            next += 1
            return tokens[next - 1]
        }
        func keyword<T: RawRepresentable & CaseIterable>(
            _ token: Substring, as: T.Type, _ what: String
        ) throws(PolicyError) -> T where T.RawValue == String {
            if let value = T(rawValue: token.lowercased()) { return value }
            let valid = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(token, "unknown \(what) \"\(token)\" (expected one of: \(valid))")
        }

        let actionToken = try take("\"allow\" or \"deny\"", after: nil)
        let action = try keyword(actionToken, as: PolicyAction.self, "action")
        let directionToken = try take("direction (egress or ingress)", after: String(actionToken))
        let direction = try keyword(directionToken, as: PolicyDirection.self, "direction")
        let protocolToken = try take("protocol (tcp, udp, icmp or any)", after: String(directionToken))
        let proto = try keyword(protocolToken, as: PolicyProtocol.self, "protocol")
        let destinationToken = try take(
            "destination (any, an address or CIDR, group:NAME, domain:NAME or sandbox:ID)", after: String(protocolToken)
        )
        let destination = try PolicyRule.destination(destinationToken, fail: fail)
        if case .domain = destination, direction != .egress {
            throw fail(destinationToken, "domain destinations apply to egress only (who connects in has no name)")
        }
        if case .sandbox = destination, direction != .egress {
            throw fail(destinationToken, "sandbox destinations apply to egress only (they name published ports to reach)")
        }

        var ports: [ClosedRange<UInt16>]?
        if next < tokens.count {
            let keywordToken = tokens[next]
            next += 1
            guard keywordToken.lowercased() == "ports" else {
                throw fail(
                    keywordToken,
                    "unexpected \"\(keywordToken)\" after the destination (expected \"ports\" or the end of the rule)"
                )
            }
            guard proto != .icmp else {
                throw fail(keywordToken, "icmp has no ports; drop \"ports\" or use tcp, udp or any")
            }
            let list = try take("port list (such as 80,443,8000-8100)", after: "ports")
            // Checked before the list itself, so "80, 443" is reported as the space it is.
            if next < tokens.count {
                throw fail(
                    tokens[next], "unexpected \"\(tokens[next])\" after the port list (write ports as one list: 80,443)"
                )
            }
            ports = try PolicyRule.portList(list, fail: fail)
        }
        self.init(action, direction, protocol: proto, destination: destination, ports: ports)
    }

    private static func destination(
        _ token: Substring, fail: (Substring?, String) -> PolicyError
    ) throws(PolicyError) -> PolicyDestination {
        if token.lowercased() == "any" { return .any }
        if token.lowercased().hasPrefix("group:") {
            let name = token.dropFirst("group:".count)
            guard let group = PolicyGroup(name: name) else {
                let valid = PolicyGroup.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(token, "unknown group \"\(name)\" (expected one of: \(valid))")
            }
            return .group(group)
        }
        if token.lowercased().hasPrefix("domain:") {
            let name = token.dropFirst("domain:".count)
            guard let pattern = DomainPattern(name) else {
                throw fail(token, "\"\(name)\" is not a domain name or *.SUFFIX (such as pypi.org or *.example.org)")
            }
            return .domain(pattern)
        }
        if token.lowercased().hasPrefix("sandbox:") {
            let id = token.dropFirst("sandbox:".count)
            guard !id.isEmpty else { throw fail(token, "\"sandbox:\" needs a sandbox ID (such as sandbox:web)") }
            return .sandbox(String(id))
        }
        let parts = token.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard var address = IPAddress(parts[0]) else {
            throw fail(token, "\"\(token)\" is not any, group:NAME, domain:NAME, sandbox:ID, or an IPv4/IPv6 address or CIDR")
        }
        let maximum = if case .v4 = address { 32 } else { 128 }
        var length = maximum
        if parts.count == 2 {
            guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(parts[1]), n <= maximum else {
                throw fail(token, "bad prefix length \"\(parts[1])\" in \"\(token)\" (expected 0 to \(maximum))")
            }
            length = n
        }
        // An IPv4-mapped block is the IPv4 block: destinations are compared unwrapped.
        if case .v6(let a) = address, let v4 = a.ipv4Mapped, length >= 96 {
            address = .v4(v4)
            length -= 96
        }
        let network = PolicyRule.network(address, length)
        guard network == address else {
            throw fail(token, "\"\(token)\" has host bits set; the block is \(network)/\(length)")
        }
        return .cidr(address, prefixLength: length)
    }

    /// The address with everything past the first `length` bits cleared.
    static func network(_ address: IPAddress, _ length: Int) -> IPAddress {
        switch address {
        case .v4(let a):
            return .v4(IPv4Address(raw: length == 0 ? 0 : a.raw & (UInt32.max << (32 - length))))
        case .v6(let a):
            let high = length >= 64 ? a.high : (length == 0 ? 0 : a.high & (UInt64.max << (64 - length)))
            let low = length <= 64 ? 0 : (length == 128 ? a.low : a.low & (UInt64.max << (128 - length)))
            return .v6(IPv6Address(high: high, low: low))
        }
    }

    private static func portList(
        _ token: Substring, fail: (Substring?, String) -> PolicyError
    ) throws(PolicyError) -> [ClosedRange<UInt16>] {
        func port(_ text: Substring) throws(PolicyError) -> UInt16 {
            guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = UInt16(text) else {
                throw fail(token, "bad port \"\(text)\" in \"\(token)\" (ports are 0 to 65535)")
            }
            return p
        }
        var ranges: [ClosedRange<UInt16>] = []
        for item in token.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            let low = try port(bounds[0])
            let high = bounds.count == 2 ? try port(bounds[1]) : low
            guard low <= high else {
                throw fail(token, "port range \"\(item)\" runs backwards; write \(high)-\(low)")
            }
            ranges.append(low...high)
        }
        return ranges
    }
}
