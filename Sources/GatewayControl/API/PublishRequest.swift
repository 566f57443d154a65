// A published port as gatewayctl writes it, `[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp]` (HOST_PORT
// 0 or a bare GUEST_PORT lets the daemon pick a host port), and as the API carries it in JSON.
import Wire

public struct PublishRequest: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The host address to listen on; nil: the daemon's default (loopback).
    public var hostIP: String?
    /// 0: the daemon picks one from its published-port range.
    public var hostPort: Int
    public var guestPort: Int
    /// "tcp" or "udp".
    public var `protocol`: String

    public init(hostIP: String? = nil, hostPort: Int, guestPort: Int, protocol: String = "tcp") {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.guestPort = guestPort
        self.protocol = `protocol`
    }

    public static let syntax = "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp], e.g. 8080:80/tcp or 127.0.0.1:5353:53/udp"

    /// Parses the command-line form; the error quotes the text and shows the syntax.
    public init(parsing text: String) throws(ControlError) {
        func bad(_ why: String) -> ControlError {
            ControlError(.badSpec, "bad port SPEC '\(text)': \(why); write \(Self.syntax)")
        }
        var rest = Substring(text)
        var proto = "tcp"
        if let slash = rest.lastIndex(of: "/") {
            proto = rest[rest.index(after: slash)...].lowercased()
            rest = rest[..<slash]
            guard proto == "tcp" || proto == "udp" else { throw bad("protocol '\(proto)' is neither tcp nor udp") }
        }
        var host: String?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("'[' without ']' around the IPv6 address") }
            let inside = rest[rest.index(after: rest.startIndex)..<close]
            guard IPv6Address(inside) != nil else { throw bad("'\(inside)' is not an IPv6 address") }
            host = String(inside)
            rest = rest[rest.index(after: close)...]
            guard rest.hasPrefix(":") else { throw bad("expected ':' after ']'") }
            rest = rest.dropFirst()
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        let ports: [Substring]
        switch (host, parts.count) {
        case (nil, 3):
            guard IPv4Address(parts[0]) != nil else { throw bad("'\(parts[0])' is not an IP address") }
            host = String(parts[0])
            ports = Array(parts[1...])
        case (_, 2):
            ports = parts
        case (nil, 1):
            ports = ["0", parts[0]]
        default:
            throw bad("expected HOST_PORT:GUEST_PORT")
        }
        guard let hostPort = Int(ports[0]), (0...65_535).contains(hostPort) else {
            throw bad("host port '\(ports[0])' is not a number from 0 to 65535")
        }
        guard let guestPort = Int(ports[1]), (1...65_535).contains(guestPort) else {
            throw bad("guest port '\(ports[1])' is not a number from 1 to 65535")
        }
        self.init(hostIP: host, hostPort: hostPort, guestPort: guestPort, protocol: proto)
    }

    /// Checks a spec that arrived as JSON (it may not have come through `init(parsing:)`).
    public func validate() throws(ControlError) {
        guard `protocol` == "tcp" || `protocol` == "udp" else {
            throw ControlError(.badSpec, "protocol '\(`protocol`)' is neither tcp nor udp")
        }
        guard (0...65_535).contains(hostPort) else {
            throw ControlError(
                .badSpec, "host port \(hostPort) is out of range: use 1-65535, or 0 to let gatewayd pick")
        }
        guard (1...65_535).contains(guestPort) else {
            throw ControlError(.badSpec, "guest port \(guestPort) is out of range: use 1-65535")
        }
        if let hostIP, IPAddress(hostIP) == nil {
            throw ControlError(.badSpec, "host IP '\(hostIP)' is not an IP address")
        }
    }

    public var description: String {
        var text = ""
        if let hostIP { text += hostIP.contains(":") ? "[\(hostIP)]:" : "\(hostIP):" }
        return text + "\(hostPort):\(guestPort)/\(`protocol`)"
    }
}

extension PublishRequest {
    /// Parses the SPEC `unpublish` takes: the one given to publish, or HOST_PORT[/tcp|udp] alone
    /// (the guest port does not identify a published port; the host port does).
    public init(unpublishing text: String) throws(ControlError) {
        let body = text.split(separator: "/", maxSplits: 1).first ?? ""
        let hostPortOnly = !body.isEmpty && body.allSatisfy(\.isNumber)
        if hostPortOnly {
            let proto = text.dropFirst(body.count)
            try self.init(parsing: "\(body):1\(proto)")
        } else {
            try self.init(parsing: text)
        }
        guard hostPort != 0 else {
            throw ControlError(.badSpec, "bad port SPEC '\(text)': name the host port to unpublish, e.g. 8080/tcp")
        }
    }
}
