// A blocking client for etcd's v3 JSON gateway over SwiftNIO's HTTP/1.1 client codec: one POST
// per connection, every call bounded by a deadline, the endpoints tried in turn. JSON over HTTP
// rather than gRPC: no new dependency and no protobuf build step (grpc-swift and its plugin add
// minutes to every clean CI build), every etcd server answers it, and gatewayd's traffic is a
// few small writes per attach. Callers are plain threads (the cluster sync, a control request,
// gatewayctl), never an event loop.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One etcd client URL, `http://HOST:PORT`.
public struct EtcdEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `http://HOST:PORT` (an IPv6 host in brackets; the port defaults to 2379); nil when
    /// it is anything else, https included (the gateway speaks plain HTTP to etcd).
    public init?(url: String) {
        guard url.hasPrefix("http://") else { return nil }
        var rest = Substring(url.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@") else { return nil }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let tail = rest[rest.index(after: close)...]
            if tail.isEmpty {
                port = 2379
            } else {
                guard tail.hasPrefix(":"), let p = Int(tail.dropFirst()), (1...65_535).contains(p) else { return nil }
                port = p
            }
            guard host.contains(":") else { return nil }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(p) else { return nil }
            port = p
        } else {
            host = String(rest)
            port = 2379
        }
        guard !host.isEmpty else { return nil }
    }

    public var description: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }
}

public struct EtcdError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No endpoint answered within the deadline.
        case unreachable
        /// etcd answered with an error (a gRPC status `code`).
        case server(code: Int?)
        /// The answer was not what the gateway sends.
        case badResponse
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// etcd no longer has the lease named in the request (gRPC NotFound).
    public var isLeaseNotFound: Bool { kind == .server(code: 5) }

    public var description: String { message }
}

public final class EtcdClient: Sendable {
    public let endpoints: [EtcdEndpoint]
    /// One thread: the calls are few and small, and each caller blocks on its own answer.
    private let group: MultiThreadedEventLoopGroup
    /// The endpoint that answered last, tried first next time.
    private let preferred = Atomic<Int>(0)
    /// An answer larger than this is refused (a range over a whole farm's prefix stays well below).
    static let maxResponseBytes = 64 << 20

    public init(endpoints: [EtcdEndpoint]) {
        precondition(!endpoints.isEmpty, "etcd client without endpoints")
        self.endpoints = endpoints
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit {
        group.shutdownGracefully { _ in }
    }

    // MARK: - Calls

    public func range(_ request: Etcd.RangeRequest, timeout: Duration) throws(EtcdError) -> [Etcd.KeyValue] {
        try call("/v3/kv/range", request, as: Etcd.RangeResponse.self, timeout: timeout).kvs
    }

    public func txn(_ request: Etcd.TxnRequest, timeout: Duration) throws(EtcdError) -> Etcd.TxnResponse {
        try call("/v3/kv/txn", request, as: Etcd.TxnResponse.self, timeout: timeout)
    }

    public func grantLease(ttl: Int, timeout: Duration) throws(EtcdError) -> Int64 {
        try call("/v3/lease/grant", Etcd.LeaseGrantRequest(ttl: ttl), as: Etcd.LeaseGrantResponse.self, timeout: timeout)
            .ID.value
    }

    /// Renews the lease; returns the seconds it has left, 0 when etcd no longer has it.
    public func keepAlive(lease: Int64, timeout: Duration) throws(EtcdError) -> Int64 {
        try call("/v3/lease/keepalive", Etcd.LeaseRequest(id: lease), as: Etcd.KeepAliveResponse.self, timeout: timeout)
            .ttl
    }

    /// Ends the lease now, deleting every key attached to it.
    public func revokeLease(_ lease: Int64, timeout: Duration) throws(EtcdError) {
        struct Empty: Decodable {}
        _ = try call("/v3/lease/revoke", Etcd.LeaseRequest(id: lease), as: Empty.self, timeout: timeout)
    }

    /// POSTs `request` as JSON to `path` and decodes the answer.
    public func call<Response: Decodable>(
        _ path: String, _ request: some Encodable, as: Response.Type, timeout: Duration
    ) throws(EtcdError) -> Response {
        let body: [UInt8]
        do {
            body = Array(try JSONEncoder().encode(request))
        } catch {
            throw EtcdError(.badResponse, "cannot encode the request to \(path): \(error)")
        }
        let answer = try post(path, body: body, timeout: timeout)
        do {
            return try JSONDecoder().decode(Response.self, from: Data(answer))
        } catch {
            let text = String(decoding: answer.prefix(200), as: UTF8.self)
            throw EtcdError(.badResponse, "etcd answered \(path) with an unexpected body: \(text)")
        }
    }

    /// One POST, to the preferred endpoint and then the others while time remains; the body of a
    /// 200 answer. An etcd error that another member may not have (no leader) moves on too.
    public func post(_ path: String, body: [UInt8], timeout: Duration) throws(EtcdError) -> [UInt8] {
        let (seconds, attoseconds) = timeout.components
        let deadline = NIODeadline.now() + .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let first = preferred.load(ordering: .relaxed)
        var failures: [String] = []
        for offset in 0..<endpoints.count {
            let index = (first + offset) % endpoints.count
            let endpoint = endpoints[index]
            guard NIODeadline.now() < deadline else {
                failures.append("\(endpoint): no time left")
                break
            }
            let reply: Reply
            do {
                reply = try exchange(endpoint, path: path, body: body, deadline: deadline)
            } catch {
                failures.append("\(endpoint): \(error)")
                continue
            }
            if reply.status == 200 {
                preferred.store(index, ordering: .relaxed)
                return reply.body
            }
            let e = try? JSONDecoder().decode(Etcd.ErrorBody.self, from: Data(reply.body))
            let message = e?.message ?? e?.error ?? String(decoding: reply.body.prefix(200), as: UTF8.self)
            // 14 Unavailable: this member has no leader or is stopping; another may answer.
            if e?.code == 14 || reply.status == 503 {
                failures.append("\(endpoint): \(message)")
                continue
            }
            preferred.store(index, ordering: .relaxed)
            throw EtcdError(.server(code: e?.code), "etcd refused \(path): \(message) (HTTP \(reply.status))")
        }
        throw EtcdError(.unreachable, "no etcd endpoint answered \(path): \(failures.joined(separator: "; "))")
    }

    struct Reply: Sendable {
        var status: Int
        var body: [UInt8]
    }

    struct TransportError: Error, CustomStringConvertible {
        var description: String
    }

    /// Connects, sends the request and waits for the whole answer, or fails at `deadline`.
    private func exchange(_ endpoint: EtcdEndpoint, path: String, body: [UInt8], deadline: NIODeadline) throws -> Reply {
        let loop = group.next()
        let done = loop.makePromise(of: Reply.self)
        let timer = loop.scheduleTask(deadline: deadline) {
            done.fail(TransportError(description: "timed out"))
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(max(deadline - NIODeadline.now(), .milliseconds(1)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(done: done))
                }
            }
        let connected = bootstrap.connect(host: endpoint.host, port: endpoint.port)
        connected.whenFailure { done.fail($0) }
        connected.whenSuccess { channel in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "Host", value: "\(endpoint.host):\(endpoint.port)")
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { done.fail($0) }
        }
        done.futureResult.whenComplete { _ in
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
        }
        return try done.futureResult.wait()
    }
}

/// Collects one HTTP answer: its status and whole body.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let done: EventLoopPromise<EtcdClient.Reply>
    var status = 0
    var body: [UInt8] = []

    init(done: EventLoopPromise<EtcdClient.Reply>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
            if body.count > EtcdClient.maxResponseBytes {
                done.fail(EtcdClient.TransportError(description: "answer larger than \(EtcdClient.maxResponseBytes) bytes"))
                context.close(promise: nil)
            }
        case .end:
            done.succeed(EtcdClient.Reply(status: status, body: body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(EtcdClient.TransportError(description: "connection closed before the answer ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}
