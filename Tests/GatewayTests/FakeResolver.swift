// A DNS resolver for tests: a thread with a UDP socket on 127.0.0.1 (ephemeral port) that
// answers from a table, stays silent, answers huge, fails, or sends decoys before answering;
// optionally also over TCP on the same port (RFC 1035 §4.2.2 framing).
import CGatewayShims
import Foundation
import Synchronization
import Wire

@testable import Gateway

final class FakeResolver: @unchecked Sendable {
    enum Behavior: Sendable {
        /// A records by lower-cased name; other names NXDOMAIN.
        case table([String: [IPv4Address]])
        /// Reads queries and never answers.
        case silent
        /// `count` A records for any name, whatever the query's size limit.
        case huge(count: Int)
        /// Answers every query with this code and no records.
        case fail(DNSResponseCode)
        /// Like `table`, but first sends three decoys: a wrong ID, the right ID for another
        /// question, and the right answer from another port.
        case decoysThenTable([String: [IPv4Address]])
        /// `count` A records for any name; over UDP cut to the query's size limit (its EDNS
        /// payload size, or 512) with TC set, as a real server does; over TCP whole.
        case large(count: Int)
    }

    let behavior: Behavior
    let tcpBehavior: Behavior
    let port: UInt16
    private let fd: Int32
    private let decoyFD: Int32
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let log = Mutex<[[UInt8]]>([])
    private let tcpLog = Mutex<[[UInt8]]>([])
    private let listenFD: Int32?
    private let tcpThreads = Mutex(0)

    /// Every query received over UDP, as bytes.
    var queries: [[UInt8]] { log.withLock { $0 } }
    /// Every query received over TCP, as bytes.
    var tcpQueries: [[UInt8]] { tcpLog.withLock { $0 } }

    let address: IPAddress
    /// TTL of the table's records.
    let ttl: UInt32

    /// - Parameters:
    ///   - ipv6: listen on ::1 instead of 127.0.0.1.
    ///   - tcp: also answer over TCP on the same port.
    ///   - tcpBehavior: how to answer over TCP, when not as over UDP.
    ///   - ttl: the TTL of the table's A records.
    init(_ behavior: Behavior, ipv6: Bool = false, tcp: Bool = false, tcpBehavior: Behavior? = nil, ttl: UInt32 = 300) throws {
        self.behavior = behavior
        self.ttl = ttl
        self.tcpBehavior = tcpBehavior ?? behavior
        address = ipv6 ? .v6(.loopback) : .v4(.loopback)
        var fd: Int32 = -1
        var listener: Int32? = nil
        if tcp {
            // A TCP listener first, then the UDP socket on its port (retried when that is taken).
            for _ in 0..<50 {
                let l = try FakeResolver.boundSocket(ipv6: ipv6, type: Int32(SOCK_STREAM.rawValue))
                if let u = try? FakeResolver.boundSocket(ipv6: ipv6, port: FakeResolver.localPort(l)) {
                    listen(l, 16)
                    listener = l
                    fd = u
                    break
                }
                close(l)
            }
            guard listener != nil else { throw POSIXError(.EADDRINUSE) }
        } else {
            fd = try FakeResolver.boundSocket(ipv6: ipv6)
        }
        self.fd = fd
        listenFD = listener
        decoyFD = try FakeResolver.boundSocket(ipv6: ipv6)
        port = FakeResolver.localPort(fd)
        // Wake up now and then to notice `stop`.
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let resolver = self
        Thread.detachNewThread { resolver.serve() }
        if let listener {
            setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            tcpThreads.withLock { $0 += 1 }
            Thread.detachNewThread { resolver.serveTCP(listener) }
        }
    }

    static func localPort(_ fd: Int32) -> UInt16 {
        SocketAddress.receiving { getsockname(fd, $0, $1) }.address?.port ?? 0
    }

    /// A socket bound to 127.0.0.1 (or ::1), on `port` or an ephemeral one.
    static func boundSocket(ipv6: Bool, type: Int32 = Int32(SOCK_DGRAM.rawValue), port: UInt16 = 0) throws -> Int32 {
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, type, 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        let loopback: IPAddress = ipv6 ? .v6(.loopback) : .v4(.loopback)
        let rc = SocketAddress(loopback, port: port).withSockAddr { bind(fd, $0, $1) }
        guard rc == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        return fd
    }

    var upstream: (IPAddress, UInt16) { (address, port) }

    func stop() {
        stopping.store(true, ordering: .releasing)
        finished.wait()
        close(fd)
        close(decoyFD)
        // Connection threads notice `stopping` within their receive timeout.
        while tcpThreads.withLock({ $0 }) > 0 { usleep(10_000) }
        if let listenFD { close(listenFD) }
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var out = [UInt8](repeating: 0, count: 65536)
        while !stopping.load(ordering: .acquiring) {
            let (n, sender) = buffer.withUnsafeMutableBytes { b in
                SocketAddress.receiving { recvfrom(fd, b.baseAddress, b.count, 0, $0, $1) }
            }
            guard n > 0, let peer = sender else { continue }
            let query = Array(buffer[..<n])
            log.withLock { $0.append(query) }
            func send(_ bytes: ArraySlice<UInt8>, from socket: Int32) {
                _ = bytes.withUnsafeBytes { b in
                    peer.withSockAddr { sendto(socket, b.baseAddress, b.count, 0, $0, $1) }
                }
            }
            switch behavior {
            case .silent:
                continue
            case .decoysThenTable(let table):
                let length = answer(query, table: table, into: &out)
                guard length > 0 else { continue }
                var wrongID = Array(out[..<length])
                wrongID[0] ^= 0x5A
                send(wrongID[...], from: fd)
                var other = [UInt8](repeating: 0, count: 512)
                let otherLength = FakeResolver.respond(to: query, renaming: "other.test", into: &other)
                send(other[..<otherLength], from: fd)
                send(out[..<length], from: decoyFD)
                send(out[..<length], from: fd)
            case .table(let table):
                let length = answer(query, table: table, into: &out)
                if length > 0 { send(out[..<length], from: fd) }
            case .huge(let count):
                let length = FakeResolver.build(query, into: &out) { builder in
                    for i in 0..<count { builder.appendA(IPv4Address(198, 51, 100, UInt8(i & 0xFF)), ttl: 30) }
                }
                if length > 0 { send(out[..<length], from: fd) }
            case .fail(let code):
                let length = FakeResolver.build(query, code: code, into: &out) { _ in }
                if length > 0 { send(out[..<length], from: fd) }
            case .large(let count):
                let limit = query.withUnsafeBytes { (try? DNSMessage.parse($0))?.edns?.effectivePayloadSize } ?? 512
                let length = FakeResolver.build(query, limit: limit, into: &out) { builder in
                    for i in 0..<count { builder.appendA(FakeResolver.largeAddress(i), ttl: 30) }
                }
                if length > 0 { send(out[..<length], from: fd) }
            }
        }
        finished.signal()
    }

    /// The i-th record of a `.large` answer.
    static func largeAddress(_ i: Int) -> IPv4Address { IPv4Address(198, 18, UInt8((i >> 8) & 0xFF), UInt8(i & 0xFF)) }

    // MARK: - TCP

    private func serveTCP(_ listener: Int32) {
        defer { tcpThreads.withLock { $0 -= 1 } }
        while !stopping.load(ordering: .acquiring) {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 0, tv_usec: 50_000)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            tcpThreads.withLock { $0 += 1 }
            Thread.detachNewThread { [self] in
                defer { tcpThreads.withLock { $0 -= 1 } }
                serveConnection(c)
                close(c)
            }
        }
    }

    /// Reads exactly `count` bytes; nil at EOF, on error or when stopping.
    private func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            if stopping.load(ordering: .acquiring) { return nil }
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard n > 0 else { return nil }
            got += n
        }
        return bytes
    }

    /// Length-prefixed queries in, length-prefixed answers out, until the client closes.
    private func serveConnection(_ c: Int32) {
        var out = [UInt8](repeating: 0, count: 65535)
        while let prefix = readExactly(c, 2) {
            let length = Int(prefix[0]) << 8 | Int(prefix[1])
            guard length > 0, let query = readExactly(c, length) else { return }
            tcpLog.withLock { $0.append(query) }
            let n: Int
            switch tcpBehavior {
            case .silent:
                continue
            case .table(let table), .decoysThenTable(let table):
                n = answer(query, table: table, tcp: true, into: &out)
            case .huge(let count), .large(let count):
                n = FakeResolver.build(query, into: &out) { builder in
                    for i in 0..<count { builder.appendA(FakeResolver.largeAddress(i), ttl: 30) }
                }
            case .fail(let code):
                n = FakeResolver.build(query, code: code, into: &out) { _ in }
            }
            guard n > 0 else { continue }
            let framed = [UInt8(n >> 8), UInt8(n & 0xFF)] + out[..<n]
            _ = framed.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// The table's answer; over UDP (`tcp` false) cut to the query's size limit with TC set.
    private func answer(_ query: [UInt8], table: [String: [IPv4Address]], tcp: Bool = false, into out: inout [UInt8]) -> Int {
        let message = query.withUnsafeBytes { b in
            (try? DNSMessage.parse(b)).map { ($0.question?.name.text.lowercased() ?? "", $0.edns?.effectivePayloadSize ?? 512) }
        }
        let (name, udpLimit) = message ?? ("", 512)
        guard let addresses = table[name] else { return FakeResolver.build(query, code: .nameError, into: &out) { _ in } }
        return FakeResolver.build(query, limit: tcp ? 65535 : udpLimit, into: &out) { builder in
            for a in addresses { builder.appendA(a, ttl: ttl) }
        }
    }

    /// A response to `query` with whatever `fill` appends; limited only by the buffer.
    static func build(
        _ query: [UInt8], code: DNSResponseCode = .noError, limit: Int = 65535, into out: inout [UInt8],
        _ fill: (inout DNSResponseBuilder) -> Void
    ) -> Int {
        query.withUnsafeBytes { q in
            out.withUnsafeMutableBytes { o in
                guard let message = try? DNSMessage.parse(q),
                      var builder = try? DNSResponseBuilder(respondingTo: message, into: o, responseCode: code, limit: limit)
                else { return 0 }
                fill(&builder)
                return builder.finish()
            }
        }
    }

    /// A NOERROR response with `query`'s ID for a different name.
    static func respond(to query: [UInt8], renaming name: String, into out: inout [UInt8]) -> Int {
        let id = query.withUnsafeBytes { $0.uncheckedBE16(0) }
        var other = [UInt8](repeating: 0, count: 512)
        let n = other.withUnsafeMutableBytes { (try? DNSQueryBuilder.emit(id: id, name: name, type: .a, into: $0)) ?? 0 }
        return build(Array(other[..<n]), into: &out) { $0.appendA(IPv4Address(203, 0, 113, 99), ttl: 5) }
    }
}
