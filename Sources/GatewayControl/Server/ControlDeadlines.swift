// Closes control API connections that hold a descriptor without using it: one that stays idle
// between requests, one whose request (head and body) takes too long to arrive, and any beyond
// the number the control plane's descriptor reserve allows.
import NIOCore
import Synchronization

/// What `ControlHTTPHandler` tells the deadline handler (as outbound user events).
enum ControlConnectionEvent: Sendable {
    /// A whole request is in: no deadline runs while it is served.
    case requestReceived
    /// Its answer went out and the connection stays open for another.
    case responseSent
}

/// Sits first in the pipeline, where it sees the raw bytes: the request deadline starts with
/// a request's first byte, so a client that trickles a header one byte at a time still ends.
final class ControlDeadlineHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Timeouts: Sendable {
        /// No request for this long after the last answer (or the connect): closed.
        var idle: TimeAmount
        /// A request's head and body must be in within this of its first byte.
        var request: TimeAmount
    }

    private enum Phase {
        case idle
        case receiving
        case serving
    }

    private let timeouts: Timeouts
    private var phase = Phase.idle
    private var deadline: Scheduled<Void>?

    init(timeouts: Timeouts) {
        self.timeouts = timeouts
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, after: timeouts.idle)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, after: timeouts.idle) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .idle {
            phase = .receiving
            arm(context, after: timeouts.request)
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let e = event as? ControlConnectionEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch e {
        case .requestReceived:
            phase = .serving
            deadline?.cancel()
            deadline = nil
        case .responseSent:
            phase = .idle
            arm(context, after: timeouts.idle)
        }
        promise?.succeed(())
    }

    private func arm(_ context: ChannelHandlerContext, after delay: TimeAmount) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: delay) { channel.close(promise: nil) }
    }
}

/// Counts the control connections open at once and turns away those beyond the maximum.
final class ControlConnectionLimit: Sendable {
    let max: Int
    private let open = Atomic<Int>(0)

    init(max: Int) { self.max = Swift.max(1, max) }

    /// Counts a new connection until it closes; false when it is one too many.
    func admit(_ channel: any Channel) -> Bool {
        let n = open.wrappingAdd(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { [self] _ in open.subtract(1, ordering: .relaxed) }
        return n <= max
    }

    /// Answers 503 `busy` without reading the request, then closes.
    final class Refusal: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { refuse(context) }
        }

        func channelActive(context: ChannelHandlerContext) { refuse(context) }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

        private var refused = false

        private func refuse(_ context: ChannelHandlerContext) {
            guard !refused else { return }
            refused = true
            let body = #"{"error":{"code":"busy","message":"too many control connections open at once: try again"}}"#
            let text =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                + "\(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
            let channel = context.channel
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }
}

extension Duration {
    /// The same span as NIO's TimeAmount (whole nanoseconds).
    var timeAmount: TimeAmount {
        let (s, a) = components
        return .nanoseconds(s * 1_000_000_000 + a / 1_000_000_000)
    }
}
