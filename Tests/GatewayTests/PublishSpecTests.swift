// Docker-style publish specs: every accepted form, its canonical text, and errors that say what
// is wrong and what is expected.
import Gateway
import Testing
import Wire

struct PublishSpecTests {
    struct Good: Sendable, CustomTestStringConvertible {
        var text: String
        var hostIP: String?
        var hostPort: UInt16?
        var guestPort: UInt16
        var proto: PortProtocol
        var canonical: String
        var testDescription: String { text }
    }

    static let good: [Good] = [
        Good(text: "80", hostIP: nil, hostPort: nil, guestPort: 80, proto: .tcp, canonical: "80/tcp"),
        Good(text: "80/udp", hostIP: nil, hostPort: nil, guestPort: 80, proto: .udp, canonical: "80/udp"),
        Good(text: "80/TCP", hostIP: nil, hostPort: nil, guestPort: 80, proto: .tcp, canonical: "80/tcp"),
        Good(text: "8080:80", hostIP: nil, hostPort: 8080, guestPort: 80, proto: .tcp, canonical: "8080:80/tcp"),
        Good(text: "0:80", hostIP: nil, hostPort: nil, guestPort: 80, proto: .tcp, canonical: "80/tcp"),
        Good(
            text: "127.0.0.1:8080:80", hostIP: "127.0.0.1", hostPort: 8080, guestPort: 80, proto: .tcp,
            canonical: "127.0.0.1:8080:80/tcp"),
        Good(
            text: "127.0.0.1::80/udp", hostIP: "127.0.0.1", hostPort: nil, guestPort: 80, proto: .udp,
            canonical: "127.0.0.1::80/udp"),
        Good(
            text: "0.0.0.0:65535:65535", hostIP: "0.0.0.0", hostPort: 65535, guestPort: 65535, proto: .tcp,
            canonical: "0.0.0.0:65535:65535/tcp"),
        Good(
            text: "[::1]:8080:80", hostIP: "::1", hostPort: 8080, guestPort: 80, proto: .tcp,
            canonical: "[::1]:8080:80/tcp"),
        Good(text: "[::]::53/udp", hostIP: "::", hostPort: nil, guestPort: 53, proto: .udp, canonical: "[::]::53/udp"),
        Good(
            text: "[fd00::1:2]:1:2", hostIP: "fd00::1:2", hostPort: 1, guestPort: 2, proto: .tcp,
            canonical: "[fd00::1:2]:1:2/tcp"),
    ]

    @Test(arguments: good)
    func parses(_ g: Good) throws {
        let spec = try PublishSpec(parsing: g.text)
        #expect(spec.hostIP == g.hostIP.flatMap { IPAddress($0) })
        #expect(spec.hostPort == g.hostPort)
        #expect(spec.guestPort == g.guestPort)
        #expect(spec.protocol == g.proto)
        #expect(!spec.preserveSource)
        #expect(spec.description == g.canonical)
        // The canonical text parses back to the same spec.
        #expect(try PublishSpec(parsing: spec.description) == spec)
    }

    @Test func defaultHostAddressIsLoopback() throws {
        #expect(try PublishSpec(parsing: "80").hostIP == nil)
        #expect(PublishingConfiguration().defaultHostIP == .v4(.loopback))
        #expect(try PublishSpec(parsing: "[::1]::80").hostIP == .v6(.loopback))
    }

    @Test(arguments: [
        ("", "empty"),
        ("http", "'http' is not a port number"),
        ("0", "'0' is not a port number"),
        ("65536", "'65536' is not a port number"),
        ("80/sctp", "protocol 'sctp' is not supported"),
        ("80/", "protocol '' is not supported"),
        ("8000-8010:80", "port ranges are not supported"),
        ("8080:", "guest port '' is not a port number"),
        (":80", "the host port is empty"),
        ("127.0.0.1:80", "is an address, not a host port"),
        ("1.2.3:8080:80", "host address '1.2.3' is not an IPv4 address"),
        ("::1:8080:80", "put an IPv6 host address in brackets"),
        ("[::1:8080:80", "no closing ']'"),
        ("[::1]8080:80", "must be followed by"),
        ("[::1]:80", "HOST_PORT:GUEST_PORT"),
        ("[::g]:1:80", "is not an IPv6 address"),
        ("[::ffff:127.0.0.1]:1:80", "give the IPv4 address itself"),
        ("224.0.0.1:1:80", "not a unicast address"),
        ("+80", "is not a port number"),
        (" 80", "is not a port number"),
    ])
    func rejects(_ text: String, _ why: String) {
        let e = #expect(throws: GatewayError.self) { try PublishSpec(parsing: text) }
        #expect(e?.code == .invalidArgument)
        #expect(e?.message.contains(why) == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("[HOST_IP:][HOST_PORT:]GUEST_PORT[/tcp|/udp]") == true)
        #expect(e?.message.contains("'\(text)'") == true, "the message quotes the spec")
    }
}
