// What `publish` takes: Docker's `-p` syntax, [HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp|/udp], with an
// IPv6 host address in brackets, plus options the syntax has no room for (preserveSource).
import Wire

public struct PublishSpec: Sendable, Hashable, CustomStringConvertible {
    /// The host address to listen on; nil means the gateway's default (`[ports] bind`, else
    /// `defaultHostIP`).
    public var hostIP: IPAddress?
    /// The host port; nil or 0 means "pick one" (from the allocator's range).
    public var hostPort: UInt16?
    public var guestPort: UInt16
    public var `protocol`: PortProtocol
    /// Connections reach the guest from the client's own address and port rather than from the
    /// gateway's. Loopback and IPv6 clients cannot be represented to an IPv4 guest (its kernel
    /// drops 127/8 sources arriving on a device as martians), so those still come from the gateway.
    public var preserveSource: Bool

    /// Loopback: publishing to every network is something one asks for, not a default.
    public static let defaultHostIP = IPAddress.v4(.loopback)

    public init(
        guestPort: UInt16, hostPort: UInt16? = nil, hostIP: IPAddress? = nil, protocol: PortProtocol = .tcp,
        preserveSource: Bool = false
    ) {
        self.guestPort = guestPort
        self.hostPort = hostPort
        self.hostIP = hostIP
        self.protocol = `protocol`
        self.preserveSource = preserveSource
    }

    static let syntax = "[HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp|/udp]"

    /// Parses `8080:80`, `127.0.0.1:8080:80/tcp`, `127.0.0.1::80`, `[::1]:8080:80/udp`, `80`.
    public init(parsing text: String) throws(GatewayError) {
        func bad(_ why: String) -> GatewayError {
            GatewayError(
                .invalidArgument, "publish spec '\(text)': \(why); expected \(Self.syntax), e.g. 127.0.0.1:8080:80/tcp")
        }
        guard !text.isEmpty else { throw bad("it is empty") }
        var rest = Substring(text)
        var proto = PortProtocol.tcp
        if let slash = rest.lastIndex(of: "/") {
            let name = rest[rest.index(after: slash)...]
            guard let p = PortProtocol(rawValue: name.lowercased()) else {
                throw bad("protocol '\(name)' is not supported: use tcp or udp")
            }
            proto = p
            rest = rest[..<slash]
        }

        var hostIP: IPAddress?
        var ports: [Substring]
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("the IPv6 host address has no closing ']'") }
            let inside = rest[rest.index(after: rest.startIndex)..<close]
            guard let v6 = IPv6Address(inside) else { throw bad("'\(inside)' is not an IPv6 address") }
            hostIP = .v6(v6)
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else {
                throw bad("the host address must be followed by ':HOST_PORT:GUEST_PORT'")
            }
            ports = after.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
            guard ports.count == 2 else {
                throw bad("after the host address give HOST_PORT:GUEST_PORT (HOST_PORT may be empty)")
            }
        } else {
            let fields = rest.split(separator: ":", omittingEmptySubsequences: false)
            switch fields.count {
            case 1, 2:
                if fields.count == 2, IPv4Address(fields[0]) != nil {
                    throw bad(
                        "'\(fields[0])' is an address, not a host port: "
                            + "give HOST_IP:HOST_PORT:GUEST_PORT or HOST_IP::GUEST_PORT")
                }
                ports = fields
            case 3:
                guard let v4 = IPv4Address(fields[0]) else {
                    throw bad("host address '\(fields[0])' is not an IPv4 address (put IPv6 addresses in brackets)")
                }
                hostIP = .v4(v4)
                ports = Array(fields[1...])
            default:
                throw bad("too many ':' (put an IPv6 host address in brackets, e.g. [::1]:8080:80)")
            }
        }
        if case .v6(let a) = hostIP, a.ipv4Mapped != nil || a.isMulticast {
            throw bad("host address \(a) cannot be listened on over IPv6; give the IPv4 address itself")
        }
        if case .v4(let a) = hostIP, a.isMulticast || a.isBroadcast {
            throw bad("host address \(a) is not a unicast address")
        }

        func port(_ s: Substring, _ what: String, zeroAllowed: Bool) throws(GatewayError) -> UInt16 {
            if s.contains("-") { throw bad("\(what) '\(s)': port ranges are not supported; publish each port") }
            guard !s.isEmpty, s.count <= 5, s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt16(s),
                v != 0 || zeroAllowed
            else {
                throw bad("\(what) '\(s)' is not a port number (\(zeroAllowed ? 0 : 1)-65535)")
            }
            return v
        }
        let guest = try port(ports[ports.count - 1], "guest port", zeroAllowed: false)
        var host: UInt16?
        if ports.count == 2 {
            // An empty host port ("127.0.0.1::80") asks for an automatic one, as does 0.
            if ports[0].isEmpty {
                guard hostIP != nil else { throw bad("the host port is empty") }
            } else {
                let h = try port(ports[0], "host port", zeroAllowed: true)
                host = h == 0 ? nil : h
            }
        }
        self.init(guestPort: guest, hostPort: host, hostIP: hostIP, protocol: proto)
    }

    /// The canonical text: every part that was given, in `syntax` order.
    public var description: String {
        var s = ""
        if let hostIP {
            if case .v6 = hostIP { s += "[\(hostIP)]:" } else { s += "\(hostIP):" }
            s += hostPort.map(String.init) ?? ""
            s += ":"
        } else if let hostPort {
            s += "\(hostPort):"
        }
        return s + "\(guestPort)/\(`protocol`)"
    }

    /// True when `binding` (a published port leading to `guestPort`) is what this spec names:
    /// the protocol and guest port agree, and so do the host address and port where given.
    func matches(_ binding: HostBinding, guestPort: UInt16) -> Bool {
        binding.protocol == self.protocol && guestPort == self.guestPort
            && (hostPort == nil || hostPort == binding.port) && (hostIP == nil || hostIP == binding.address)
    }
}
