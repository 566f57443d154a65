// ICMPv4 and ICMPv6: a Linux ping and its reply, errors quoting a datagram (and the 576 / 1280
// byte bounds), in-place builds, bad checksums and every truncation.
import Testing
@testable import Wire

private enum Samples {
    // iputils ping 10.0.2.15 → 10.0.2.2, id 0x1c2b seq 1: a 16-byte timeval, then 0x10…0x37.
    static let pingRequest: [UInt8] = [
        0x08, 0x00, 0x86, 0xC8, 0x1C, 0x2B, 0x00, 0x01, 0x00, 0xF1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
        0x40, 0xE2, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
        0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ]
    static let pingReplyChecksum: UInt16 = 0x8EC8

    // ping -6 fd00::2 → fd00::1, id 0x2a seq 1, the same payload.
    static let ping6Request: [UInt8] = [
        0x80, 0x00, 0x30, 0x4A, 0x00, 0x2A, 0x00, 0x01, 0x00, 0xF1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
        0x40, 0xE2, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
        0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ]
    static let ping6ReplyChecksum: UInt16 = 0x2F4A

    // A UDP datagram 10.0.2.15:5353 → 10.0.2.2:9 with 4 payload bytes, as an IPv4 packet: what a
    // port-unreachable quotes.
    static let udpDatagram: [UInt8] = [
        0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 2, 15, 10, 0, 2, 2,
        0x14, 0xE9, 0x00, 0x09, 0x00, 0x0C, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF,
    ]

    static let guest6 = IPv6Address("fd00::2")!
    static let gateway6 = IPv6Address("fd00::1")!
}

private func parse4(_ bytes: [UInt8], verify: Bool = true) throws -> ICMPv4Message {
    try bytes.withUnsafeBytes { try ICMPv4Message.parse($0, verifyChecksum: verify) }
}

private func parse6(_ bytes: [UInt8], source: IPv6Address = Samples.guest6, destination: IPv6Address = Samples.gateway6)
    throws -> ICMPv6Message
{
    try bytes.withUnsafeBytes { try ICMPv6Message.parse($0, source: source, destination: destination) }
}

private func build4(type: UInt8, code: UInt8, rest: UInt32, payload: [UInt8], capacity: Int = 2048) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: capacity)
    let n = try out.withUnsafeMutableBytes { buffer in
        try payload.withUnsafeBytes {
            try ICMPv4Message.build(into: buffer, type: type, code: code, restOfHeader: rest, payload: $0)
        }
    }
    return Array(out[..<n])
}

private func build6(
    type: UInt8, code: UInt8, rest: UInt32, payload: [UInt8], source: IPv6Address = Samples.gateway6,
    destination: IPv6Address = Samples.guest6, capacity: Int = 2048
) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: capacity)
    let n = try out.withUnsafeMutableBytes { buffer in
        try payload.withUnsafeBytes {
            try ICMPv6Message.build(
                into: buffer, source: source, destination: destination, type: type, code: code, restOfHeader: rest,
                payload: $0)
        }
    }
    return Array(out[..<n])
}

@Suite struct ICMPv4Tests {
    @Test func linuxPing() throws {
        let m = try parse4(Samples.pingRequest)
        #expect(m.type == ICMPv4Message.echoRequest)
        #expect(m.code == 0)
        #expect(m.checksum == 0x86C8)
        #expect(m.identifier == 0x1C2B)
        #expect(m.sequence == 1)
        #expect(!m.isError)
    }

    @Test func echoReply() throws {
        let m = try parse4(Samples.pingRequest)
        let payload = Array(Samples.pingRequest[ICMPv4Message.headerLength...])
        let reply = try build4(type: ICMPv4Message.echoReply, code: 0, rest: m.restOfHeader, payload: payload)
        #expect(reply.count == Samples.pingRequest.count)
        #expect(reply[0] == 0)
        #expect(Array(reply[4...]) == Array(Samples.pingRequest[4...]))
        let parsed = try parse4(reply)
        #expect(parsed.checksum == Samples.pingReplyChecksum)
        #expect(parsed == ICMPv4Message(type: 0, code: 0, checksum: 0x8EC8, restOfHeader: 0x1C2B_0001))
    }

    /// The reply built over the request in the same buffer.
    @Test func echoReplyInPlace() throws {
        var frame = Samples.pingRequest
        let n = try frame.withUnsafeMutableBytes { buffer in
            try ICMPv4Message.build(
                into: buffer, type: ICMPv4Message.echoReply, code: 0, restOfHeader: 0x1C2B_0001,
                payload: UnsafeRawBufferPointer(buffer.slice(8, buffer.count - 8)))
        }
        #expect(n == Samples.pingRequest.count)
        #expect(try parse4(frame).checksum == Samples.pingReplyChecksum)
        #expect(Array(frame[8...]) == Array(Samples.pingRequest[8...]))
    }

    @Test func badChecksum() throws {
        var bytes = Samples.pingRequest
        bytes[20] ^= 1
        expectError(.badChecksum) { _ = try parse4(bytes) }
        #expect(try parse4(bytes, verify: false).identifier == 0x1C2B)
    }

    @Test func everyTruncationThrows() throws {
        for n in 0..<ICMPv4Message.headerLength {
            expectError(.truncated) { _ = try parse4(Array(Samples.pingRequest[..<n]), verify: false) }
        }
        // With the checksum checked, every shorter message fails (odd cuts pad with zero, RFC 1071).
        for n in 0..<Samples.pingRequest.count {
            #expect(throws: WireError.self, "length \(n)") { _ = try parse4(Array(Samples.pingRequest[..<n])) }
        }
    }

    @Test func portUnreachableQuotesDatagram() throws {
        let msg = try build4(
            type: ICMPv4Message.destinationUnreachable, code: ICMPv4Message.Unreachable.port, rest: 0,
            payload: Samples.udpDatagram)
        #expect(msg.count == 8 + Samples.udpDatagram.count)
        #expect(Array(msg[8...]) == Samples.udpDatagram)
        let m = try parse4(msg)
        #expect(m.type == 3 && m.code == 3 && m.restOfHeader == 0)
        #expect(m.isError)
    }

    @Test func fragNeededCarriesMTU() throws {
        let msg = try build4(
            type: ICMPv4Message.destinationUnreachable, code: ICMPv4Message.Unreachable.fragNeeded, rest: 1400,
            payload: Samples.udpDatagram)
        #expect(try parse4(msg).nextHopMTU == 1400)
        #expect(msg[6] == 0x05 && msg[7] == 0x78)
    }

    /// RFC 1812 §4.3.2.3: an error is cut to 576 bytes of IP datagram; an echo is not.
    @Test func errorQuoteBounded() throws {
        let big = (0..<1480).map { UInt8(truncatingIfNeeded: $0) }
        let error = try build4(type: ICMPv4Message.timeExceeded, code: ICMPv4Message.TimeExceeded.ttl, rest: 0, payload: big)
        #expect(error.count == 556)
        #expect(20 + error.count == 576)
        #expect(Array(error[8...]) == Array(big[..<548]))
        _ = try parse4(error)
        let echo = try build4(type: ICMPv4Message.echoReply, code: 0, rest: 0, payload: big)
        #expect(echo.count == 8 + 1480)
        _ = try parse4(echo)
    }

    /// The quoted datagram may sit in the output buffer just behind where the header goes.
    @Test func errorBuiltOverlappingItsQuote() throws {
        var frame = [UInt8](repeating: 0, count: 8) + Samples.udpDatagram
        let n = try frame.withUnsafeMutableBytes { buffer in
            try ICMPv4Message.build(
                into: buffer, type: 3, code: 3, restOfHeader: 0,
                payload: UnsafeRawBufferPointer(buffer.slice(4, Samples.udpDatagram.count)))
        }
        #expect(n == 8 + Samples.udpDatagram.count)
        #expect(Array(frame[8...]) == Array(([0, 0, 0, 0] + Samples.udpDatagram)[..<Samples.udpDatagram.count]))
        _ = try parse4(frame)
    }

    @Test func noSpace() {
        expectError(.noSpace) { _ = try build4(type: 8, code: 0, rest: 0, payload: [1, 2, 3], capacity: 10) }
        var small = [UInt8](repeating: 0, count: 7)
        expectError(.noSpace) {
            _ = try small.withUnsafeMutableBytes { try ICMPv4Message(type: 0, code: 0).emit(into: $0) }
        }
    }

    @Test(arguments: [
        ICMPv4Message(type: 8, code: 0, checksum: 0x1234, restOfHeader: 0xDEAD_BEEF),
        ICMPv4Message(type: 3, code: 13, checksum: 0, restOfHeader: 0),
        ICMPv4Message(type: 255, code: 255, checksum: 0xFFFF, restOfHeader: 0xFFFF_FFFF),
    ])
    func headerRoundTrip(_ m: ICMPv4Message) throws {
        var out = [UInt8](repeating: 0, count: 8)
        #expect(try out.withUnsafeMutableBytes { try m.emit(into: $0) } == 8)
        #expect(try parse4(out, verify: false) == m)
    }
}

@Suite struct ICMPv6Tests {
    @Test func linuxPing6() throws {
        let m = try parse6(Samples.ping6Request)
        #expect(m.type == ICMPv6Message.echoRequest)
        #expect(m.identifier == 0x2A)
        #expect(m.sequence == 1)
        #expect(!m.isError)
        // The pseudo-header counts: the same bytes between other addresses fail.
        expectError(.badChecksum) { _ = try parse6(Samples.ping6Request, destination: IPv6Address("fd00::3")!) }
        let unchecked = try Samples.ping6Request.withUnsafeBytes {
            try ICMPv6Message.parse($0, source: .loopback, destination: .loopback, verifyChecksum: false)
        }
        #expect(unchecked == m)
    }

    @Test func echoReply() throws {
        let m = try parse6(Samples.ping6Request)
        let reply = try build6(
            type: ICMPv6Message.echoReply, code: 0, rest: m.restOfHeader,
            payload: Array(Samples.ping6Request[8...]))
        let parsed = try parse6(reply, source: Samples.gateway6, destination: Samples.guest6)
        #expect(parsed.type == ICMPv6Message.echoReply)
        #expect(parsed.checksum == Samples.ping6ReplyChecksum)
        #expect(Array(reply[4...]) == Array(Samples.ping6Request[4...]))
    }

    @Test func everyTruncationThrows() {
        for n in 0..<Samples.ping6Request.count {
            #expect(throws: WireError.self, "length \(n)") { _ = try parse6(Array(Samples.ping6Request[..<n])) }
        }
    }

    /// RFC 4443 §2.4 (c): an error packet fits the 1280-byte minimum MTU.
    @Test func errorQuoteBounded() throws {
        let big = (0..<1500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let error = try build6(
            type: ICMPv6Message.destinationUnreachable, code: ICMPv6Message.Unreachable.port, rest: 0, payload: big)
        #expect(error.count == 1240)
        #expect(40 + error.count == 1280)
        #expect(Array(error[8...]) == Array(big[..<1232]))
        let m = try parse6(error, source: Samples.gateway6, destination: Samples.guest6)
        #expect(m.isError)
        let tooBig = try build6(type: ICMPv6Message.packetTooBig, code: 0, rest: 1280, payload: Array(big[..<100]))
        #expect(tooBig.count == 108)
        #expect(try parse6(tooBig, source: Samples.gateway6, destination: Samples.guest6).restOfHeader == 1280)
        let echo = try build6(type: ICMPv6Message.echoReply, code: 0, rest: 0, payload: big)
        #expect(echo.count == 1508)
    }

    @Test func noSpace() {
        expectError(.noSpace) { _ = try build6(type: 128, code: 0, rest: 0, payload: [1, 2, 3], capacity: 10) }
    }

    /// Checksum verification and filling agree, and filling ignores a buffer too short to hold one.
    @Test func fillAndVerify() {
        var bytes = Samples.ping6Request
        bytes[2] = 0
        bytes[3] = 0
        bytes.withUnsafeMutableBytes { ICMPv6Message.fillChecksum($0, source: Samples.guest6, destination: Samples.gateway6) }
        #expect(bytes == Samples.ping6Request)
        var tiny: [UInt8] = [1, 2, 3, 4]
        tiny.withUnsafeMutableBytes { ICMPv6Message.fillChecksum($0, source: .any, destination: .any) }
        #expect(tiny == [1, 2, 3, 4])
    }
}
