// Reading the name a client asks for from the first bytes of its stream: a real ClientHello from
// Python's ssl module, ClientHellos split over records, HTTP/1 heads, and hostile or foreign bytes.
import Testing
@testable import Wire

@Suite struct ServerNamePeekTests {
    /// A ClientHello from Python's ssl module (OpenSSL 3, TLS 1.3) for server_hostname
    /// "Pypi.Example.TEST", captured from a memory BIO (no network).
    static let pythonHello: [UInt8] = hex([
        "1603010200010001fc030388d53065bff7ec46e4561846f1378ec12b1f9ddc4deb60653d857e82c6aa58f32052f3b878",
        "8dc833235bc795d3b0ffeb378f69e78953a323e7fe9b3d023c0695c70024130213031301c02cc030c02bc02fcca9cca8",
        "c024c028c023c027009f009e006b006700ff0100018f000000160014000011507970692e4578616d706c652e54455354",
        "000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d",
        "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0005",
        "0403040303002d00020101003300260024001d0020ea70040cbe1773fb0910be30fa4e34306e2f4e3ec19e5b9784ee6a",
        "0c3160c824001500dc000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000",
    ])

    static func hex(_ parts: [String]) -> [UInt8] {
        let s = Array(parts.joined().utf8)
        return stride(from: 0, to: s.count, by: 2).map { i in
            func v(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
            return v(s[i]) << 4 | v(s[i + 1])
        }
    }

    static func peek(_ bytes: [UInt8]) -> ServerNamePeek { bytes.withUnsafeBytes { ServerNamePeek.peek($0) } }

    /// A minimal ClientHello body (after the handshake header) with the given extensions.
    static func helloBody(extensions: [UInt8]?) -> [UInt8] {
        var b: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32)
        b += [0]  // session id
        b += [0, 2, 0x13, 0x01]  // one cipher suite
        b += [1, 0]  // null compression
        if let extensions { b += [UInt8(extensions.count >> 8), UInt8(extensions.count & 0xFF)] + extensions }
        return b
    }

    static func sniExtension(_ name: String, type: UInt8 = 0) -> [UInt8] {
        let n = Array(name.utf8)
        let entry: [UInt8] = [type, UInt8(n.count >> 8), UInt8(n.count & 0xFF)] + n
        let list: [UInt8] = [UInt8(entry.count >> 8), UInt8(entry.count & 0xFF)] + entry
        return [0, 0, UInt8(list.count >> 8), UInt8(list.count & 0xFF)] + list
    }

    /// Handshake header plus body, cut into records of at most `recordSize` bytes.
    static func records(_ body: [UInt8], recordSize: Int = 16384) -> [UInt8] {
        let handshake: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        var out: [UInt8] = []
        var i = 0
        while i < handshake.count {
            let chunk = handshake[i..<min(i + recordSize, handshake.count)]
            out += [22, 3, 1, UInt8(chunk.count >> 8), UInt8(chunk.count & 0xFF)] + chunk
            i += chunk.count
        }
        return out
    }

    @Test func realClientHelloNamesItsServerLowerCased() {
        #expect(Self.peek(Self.pythonHello) == .tls("pypi.example.test"))
    }

    @Test func everyPrefixOfAClientHelloAsksForMore() {
        for n in 0..<Self.pythonHello.count {
            #expect(Self.peek(Array(Self.pythonHello[..<n])) == .needMore, "prefix \(n)")
        }
    }

    @Test func clientHelloSplitOverRecords() {
        let body = Self.helloBody(extensions: [0x00, 0x17, 0, 0] + Self.sniExtension("a.allowed.test"))
        for size in [1, 5, 40, 100] {
            #expect(Self.peek(Self.records(body, recordSize: size)) == .tls("a.allowed.test"), "records of \(size)")
        }
    }

    @Test func clientHelloWithoutServerName() {
        #expect(Self.peek(Self.records(Self.helloBody(extensions: nil))) == .tls(nil))
        #expect(Self.peek(Self.records(Self.helloBody(extensions: [0x00, 0x17, 0, 0]))) == .tls(nil))
        // A name type other than host_name is skipped.
        #expect(Self.peek(Self.records(Self.helloBody(extensions: Self.sniExtension("x.test", type: 9)))) == .tls(nil))
    }

    @Test func hostileClientHellos() {
        let good = Self.records(Self.helloBody(extensions: Self.sniExtension("allowed.test")))
        #expect(Self.peek(good) == .tls("allowed.test"))
        // Not a handshake record, wrong major version, a ServerHello, an empty record.
        #expect(Self.peek([23, 3, 3, 0, 5, 1, 2, 3, 4, 5]) == .unidentified)
        #expect(Self.peek([22, 2, 0, 0, 5, 1, 0, 0, 1, 0]) == .unidentified)
        #expect(Self.peek([22, 3, 3, 0, 4, 2, 0, 0, 0]) == .unidentified)
        #expect(Self.peek([22, 3, 3, 0, 0]) == .unidentified)
        // A handshake length past the bound is refused without waiting for it.
        #expect(Self.peek([22, 3, 3, 0, 4, 1, 0x7F, 0, 0]) == .unidentified)
        // A server name with a byte no host name has, or an SNI list longer than its extension.
        #expect(Self.peek(Self.records(Self.helloBody(extensions: Self.sniExtension("a b.test")))) == .unidentified)
        var lying = Self.helloBody(extensions: Self.sniExtension("allowed.test"))
        lying[lying.count - 16] = 0x40
        #expect(Self.peek(Self.records(lying)) == .unidentified)
        // Every single-byte change of a real hello gives an answer and never traps.
        for i in 0..<Self.pythonHello.count {
            for v: UInt8 in [0, 0x7F, 0xFF] {
                var b = Self.pythonHello
                b[i] = v
                _ = Self.peek(b)
            }
        }
    }

    @Test func httpHostHeader() {
        let head = Array("GET /simple/ HTTP/1.1\r\nUser-Agent: pip\r\nhOsT:  Allowed.Test:8080 \r\n\r\nbody".utf8)
        #expect(Self.peek(head) == .http("allowed.test"))
        let end = head.count - 4
        for n in 0..<end {
            #expect(Self.peek(Array(head[..<n])) == .needMore, "prefix \(n)")
        }
        #expect(Self.peek(Array("POST /x HTTP/1.1\r\nHost: a.test.\r\n\r\n".utf8)) == .http("a.test"))
    }

    @Test func httpWithoutHost() {
        #expect(Self.peek(Array("GET / HTTP/1.0\r\n\r\n".utf8)) == .http(nil))
        #expect(Self.peek(Array("GET http://Abs.Test:81/p?q HTTP/1.0\r\n\r\n".utf8)) == .http("abs.test"))
    }

    @Test func hostileHTTPHeads() {
        // Two Host fields, userinfo, a bad port, no version, lower-case method, binary protocols.
        #expect(Self.peek(Array("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n".utf8)) == .unidentified)
        #expect(Self.peek(Array("GET / HTTP/1.1\r\nHost: u@a.test\r\n\r\n".utf8)) == .unidentified)
        #expect(Self.peek(Array("GET / HTTP/1.1\r\nHost: a.test:99999\r\n\r\n".utf8)) == .unidentified)
        #expect(Self.peek(Array("GET /\r\nHost: a.test\r\n\r\n".utf8)) == .unidentified)
        #expect(Self.peek(Array("get / HTTP/1.1\r\n".utf8)) == .unidentified)
        #expect(Self.peek(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)) == .unidentified)
        #expect(Self.peek([0x00, 0x01, 0x02]) == .unidentified)
        #expect(Self.peek(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)) == .unidentified)
        // A head that never ends is given up on at the bound, not held forever.
        let long = Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000)).utf8)
        #expect(Self.peek(long) == .unidentified)
    }

    @Test func hostNames() {
        #expect(HostName.normalized(Array("A-b_C.d.".utf8)) == "a-b_c.d")
        #expect(HostName.normalized(Array("".utf8)) == nil)
        #expect(HostName.normalized(Array(".".utf8)) == nil)
        #expect(HostName.normalized(Array("a\u{0}b".utf8)) == nil)
        #expect(HostName.normalized([UInt8](repeating: 0x61, count: 254)) == nil)
    }
}
