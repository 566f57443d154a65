// The port allocator's rules without sockets (binding is a function the test supplies), then
// once against the OS on loopback: wildcard conflicts, round-robin, reserved ports, exhaustion,
// and error messages that name who holds the port.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Testing
import Wire

@testable import Gateway

struct PortAllocatorTests {
    static let lo4 = IPAddress.v4(.loopback)
    static let other4 = IPAddress.v4(IPv4Address(192, 0, 2, 7))
    static let any4 = IPAddress.v4(.any)
    static let lo6 = IPAddress.v6(.loopback)
    static let any6 = IPAddress.v6(.any)

    /// Binds nothing; hands out fake descriptors, or says "in use" for the given ports.
    final class FakeOS {
        var busy: Set<UInt16> = []
        var attempts: [UInt16] = []
        func bind(_ port: UInt16) -> PortAllocator.BindOutcome {
            attempts.append(port)
            return busy.contains(port) ? .inUse : .bound(Int32(port))
        }
    }

    @discardableResult
    static func take(
        _ a: PortAllocator, _ ip: IPAddress, _ port: UInt16?, _ proto: PortProtocol = .tcp, owner: String = "sb",
        os: FakeOS = FakeOS()
    ) throws(GatewayError) -> UInt16 {
        try a.reserve(address: ip, protocol: proto, port: port, owner: owner, bind: os.bind).port
    }

    struct Clash: Sendable, CustomTestStringConvertible {
        var held: IPAddress
        var wanted: IPAddress
        var collides: Bool
        var testDescription: String { "\(held) then \(wanted): \(collides ? "conflict" : "fine")" }
    }

    static let clashes: [Clash] = [
        Clash(held: lo4, wanted: lo4, collides: true),
        Clash(held: lo4, wanted: other4, collides: false),
        Clash(held: any4, wanted: lo4, collides: true),
        Clash(held: lo4, wanted: any4, collides: true),
        Clash(held: any4, wanted: any4, collides: true),
        Clash(held: lo4, wanted: lo6, collides: false),
        Clash(held: any4, wanted: any6, collides: false),
        Clash(held: any6, wanted: lo6, collides: true),
        Clash(held: lo6, wanted: any6, collides: true),
        Clash(held: any6, wanted: lo4, collides: false),
    ]

    @Test(arguments: clashes)
    func wildcardSemantics(_ c: Clash) throws {
        let a = PortAllocator(range: AutoPortRange(ports: 40000...40010))
        try Self.take(a, c.held, 8080, owner: "first")
        if c.collides {
            let e = #expect(throws: GatewayError.self) { try Self.take(a, c.wanted, 8080, owner: "second") }
            #expect(e?.code == .portInUse)
            #expect(e?.message.contains("sandbox 'first'") == true, "\(e?.message ?? "")")
            #expect(a.holder(of: HostBinding(address: c.wanted, port: 8080, protocol: .tcp)) == "first")
        } else {
            try Self.take(a, c.wanted, 8080, owner: "second")
            #expect(a.count == 2)
        }
        // The other protocol never collides.
        try Self.take(a, c.wanted, 8080, .udp, owner: "third")
    }

    @Test func automaticPortsGoRoundRobinAndSkipReservedAndBusyPorts() throws {
        let a = PortAllocator(range: AutoPortRange(ports: 100...105, reserved: [101, 999]))
        let os = FakeOS()
        os.busy = [103]
        #expect(try Self.take(a, Self.lo4, nil, os: os) == 100)
        #expect(try Self.take(a, Self.lo4, 0, os: os) == 102)
        #expect(os.attempts == [100, 102], "reserved ports are never tried")
        #expect(try Self.take(a, Self.lo4, nil, os: os) == 104)
        // A freed port is not handed out again before the search comes round to it.
        a.release(HostBinding(address: Self.lo4, port: 100, protocol: .tcp))
        #expect(try Self.take(a, Self.lo4, nil, os: os) == 105)
        #expect(try Self.take(a, Self.lo4, nil, os: os) == 100)
        let e = #expect(throws: GatewayError.self) { try Self.take(a, Self.lo4, nil, os: os) }
        #expect(e?.code == .exhausted)
        #expect(
            e?.message.contains("100-105") == true && e?.message.contains("127.0.0.1") == true, "\(e?.message ?? "")")
        // Another address may take a port 127.0.0.1 holds; the search goes on after the last
        // port given (for any address), so 102 rather than 100.
        #expect(try Self.take(a, Self.other4, nil, os: os) == 102)
        // UDP has ports and a search of its own.
        #expect(try Self.take(a, Self.lo4, nil, .udp, os: os) == 100)
        // A wildcard request collides with every address of its family that holds the port.
        let wild = #expect(throws: GatewayError.self) { try Self.take(a, Self.any4, nil, os: os) }
        #expect(wild?.code == .exhausted)
        a.release(HostBinding(address: Self.lo4, port: 104, protocol: .tcp))
        #expect(try Self.take(a, Self.any4, nil, os: os) == 104)
    }

    @Test func explicitPortHeldByTheOSNamesAnotherProcess() throws {
        let a = PortAllocator(range: AutoPortRange(ports: 100...105))
        let os = FakeOS()
        os.busy = [8080]
        let e = #expect(throws: GatewayError.self) { try Self.take(a, Self.lo4, 8080, os: os) }
        #expect(e?.code == .portInUse)
        #expect(e?.message == "host port 127.0.0.1:8080/tcp is in use by another process on this host")
        #expect(a.count == 0)
        // Explicit ports need not lie in the automatic range.
        #expect(try Self.take(a, Self.lo4, 8081, os: os) == 8081)
    }

    @Test func otherBindFailuresAreSystemErrorsAndHoldNothing() throws {
        let a = PortAllocator(range: AutoPortRange(ports: 100...105))
        let e = #expect(throws: GatewayError.self) {
            try a.reserve(address: Self.other4, protocol: .tcp, port: nil, owner: "sb") { _ in
                .failed("no such address")
            }
        }
        #expect(e?.code == .system && e?.message == "no such address")
        #expect(a.count == 0)
    }

    /// An address that is not the host's is the caller's mistake (400), not a system failure (500).
    @Test func anAddressOfNoInterfaceIsAnInvalidArgument() throws {
        let a = PortAllocator(range: AutoPortRange(ports: 100...105))
        for port: UInt16? in [8080, nil] {
            let e = #expect(throws: GatewayError.self) {
                try a.reserve(address: Self.other4, protocol: .udp, port: port, owner: "sb") { _ in
                    .notLocal("cannot publish on \(Self.other4): it is not an address of this host")
                }
            }
            #expect(e?.code == .invalidArgument && e?.message.contains("\(Self.other4)") == true)
        }
        #expect(a.count == 0)
    }

    @Test func releaseIsPerOwnerAndIdempotent() throws {
        let a = PortAllocator(range: AutoPortRange(ports: 100...105))
        let b = HostBinding(address: Self.lo4, port: 8080, protocol: .tcp)
        try Self.take(a, Self.lo4, 8080, owner: "one")
        a.release(b, owner: "two")
        #expect(a.count == 1)
        a.release(b, owner: "one")
        a.release(b)
        #expect(a.count == 0)
        try Self.take(a, Self.lo4, 8080, owner: "two")
    }

    // MARK: - /proc

    static let rangeTexts: [(String, ClosedRange<UInt16>?)] = [
        ("32768\t60999\n", 32768...60999),
        ("1024 1024", 1024...1024),
        ("0 100", nil),
        ("200 100", nil),
        ("100", nil),
        ("100 70000", nil),
        ("a b", nil),
        ("", nil),
    ]

    @Test(arguments: rangeTexts)
    func parsesTheLocalPortRange(_ text: String, _ expected: ClosedRange<UInt16>?) {
        #expect(AutoPortRange.parseRange(text) == expected)
    }

    static let reservedTexts: [(String, Set<UInt16>?)] = [
        ("\n", []),
        ("", []),
        ("8080\n", [8080]),
        ("8080,9000-9002", [8080, 9000, 9001, 9002]),
        ("9002-9000", nil),
        ("80,,81", nil),
        ("x", nil),
        ("1-2-3", nil),
        ("70000", nil),
    ]

    @Test(arguments: reservedTexts)
    func parsesTheReservedPorts(_ text: String, _ expected: Set<UInt16>?) {
        #expect(AutoPortRange.parseReserved(text) == expected)
    }

    @Test func systemRangeComesFromProc() {
        let r = AutoPortRange.system()
        #expect(r.ports.lowerBound >= 1 && r.usableCount > 0)
    }

    // MARK: - Against the OS (loopback, no root needed)

    static func reserveForReal(_ a: PortAllocator, _ ip: IPAddress, _ port: UInt16?) throws(GatewayError) -> (
        UInt16, Int32
    ) {
        let r = try a.reserve(address: ip, protocol: .tcp, port: port, owner: "sb") { p in
            PortBinder.bind(HostBinding(address: ip, port: p, protocol: .tcp))
        }
        return (r.port, r.socket)
    }

    @Test func aPortBoundElsewhereIsSkippedOrNamed() throws {
        // Hold a port the way another process would.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var bound: UInt16 = 0
        for _ in 0..<50 {
            let candidate = UInt16.random(in: 20000...29000)
            let rc = SocketAddress(.v4(.loopback), port: candidate).withSockAddr { bind(fd, $0, $1) }
            if rc == 0 && listen(fd, 1) == 0 {
                bound = candidate
                break
            }
        }
        try #require(bound != 0)
        let a = PortAllocator(range: AutoPortRange(ports: bound...bound &+ 1))
        let e = #expect(throws: GatewayError.self) { try Self.reserveForReal(a, Self.lo4, bound) }
        #expect(e?.message.contains("another process on this host") == true, "\(e?.message ?? "")")
        let (port, sock) = try Self.reserveForReal(a, Self.lo4, nil)
        defer { close(sock) }
        #expect(port == bound &+ 1, "the busy port is skipped")
        // The allocator's socket holds the port in the OS too.
        let again = PortAllocator(range: AutoPortRange(ports: port...port))
        let held = #expect(throws: GatewayError.self) { try Self.reserveForReal(again, Self.lo4, port) }
        #expect(held?.code == .portInUse)
    }
}
