// One HTTP/1.1 connection to the control API: collects a request, runs it on the thread pool
// (the Gateway's calls block on shard tasks, which a NIO loop must never do) and writes the
// answer back, streaming it when the service produces it over time (packet capture).
import NIOCore
import NIOHTTP1
import NIOPosix

final class ControlHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Request bodies are small JSON documents.
    static let maxBodySize = 1 << 20

    private let service: ControlService
    private let threadPool: NIOThreadPool
    /// The TCP metrics listener serves /metrics and nothing else.
    private let metricsOnly: Bool
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false

    init(service: ControlService, threadPool: NIOThreadPool, metricsOnly: Bool) {
        self.service = service
        self.threadPool = threadPool
        self.metricsOnly = metricsOnly
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = context.channel.allocator.buffer(capacity: 0)
            tooLarge = false
        case .body(var chunk):
            if (body?.readableBytes ?? 0) + chunk.readableBytes > Self.maxBodySize {
                tooLarge = true
            } else {
                body?.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            // No deadline runs while the request is served (a capture streams for long).
            context.triggerUserOutboundEvent(ControlConnectionEvent.requestReceived, promise: nil)
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            body = nil
            if tooLarge {
                respond(
                    context, head, .error(ControlError(.invalidArgument, "request body over 1 MiB")), keepAlive: false)
            } else if metricsOnly && head.uri.split(separator: "?").first != "/metrics" {
                respond(
                    context, head, .error(ControlError(.notFound, "this listener serves GET /metrics only")),
                    keepAlive: head.isKeepAlive)
            } else {
                dispatch(context, head, ControlRequest(method: head.method.rawValue, uri: head.uri, body: bytes))
            }
        }
    }

    private func dispatch(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ request: ControlRequest) {
        let service = service
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        threadPool.runIfActive(eventLoop: context.eventLoop) { service.handle(request) }.whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let response):
                handler.respond(context, head, response, keepAlive: head.isKeepAlive)
            case .failure:
                let e = ControlError(.system, "gatewayd is shutting down")
                handler.respond(context, head, .error(e), keepAlive: false)
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ response: ControlResponse, keepAlive: Bool
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Server", value: "gatewayd")
        let status = HTTPResponseStatus(statusCode: response.status)
        switch response.body {
        case .bytes(let bytes):
            headers.add(name: "Content-Length", value: String(bytes.count))
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if request.method != .HEAD {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if keepAlive {
                context.triggerUserOutboundEvent(ControlConnectionEvent.responseSent, promise: nil)
            } else {
                done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            }
        case .stream(let produce):
            // Chunked: the length is not known until the stream ends; the connection ends with it.
            headers.add(name: "Transfer-Encoding", value: "chunked")
            headers.add(name: "Connection", value: "close")
            let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
            let writer = ChannelWriter(channel: context.channel)
            let channel = context.channel
            threadPool.runIfActive(eventLoop: context.eventLoop) { produce(writer) }.whenComplete { _ in
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Streams body chunks from a thread-pool thread, waiting for each write so a slow reader slows
/// the producer instead of filling memory.
private struct ChannelWriter: ControlBodyWriter {
    let channel: any Channel

    var isOpen: Bool { channel.isActive }

    func write(_ bytes: [UInt8]) -> Bool {
        guard channel.isActive else { return false }
        let buffer = channel.allocator.buffer(bytes: bytes)
        do {
            try channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).wait()
            return true
        } catch {
            return false
        }
    }
}
