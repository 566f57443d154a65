// A shard's DNS service for its sandboxes: answers the gateway's own names, refuses names the
// sandbox's policy denies, and forwards the rest to the host's resolvers over UDP (over TCP when
// a UDP answer comes back truncated and the guest can take more).
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import SystemPackage
import Wire

/// Answers guests' DNS queries; confined to one shard's event loop thread.
///
/// One forwarder serves a whole shard, not one sandbox: a shard may hold thousands of sandboxes,
/// and one upstream socket per family per shard keeps that many file descriptors, epoll
/// registrations and idle sockets out of the picture. Everything that differs per sandbox (its
/// gateway addresses, DNS policy, reply size) comes with each query in a `DNSQueryContext`;
/// the per-client cap keeps one busy sandbox from using up the shared table of outstanding
/// queries.
///
/// Each upstream attempt carries a fresh random ID (RFC 5452 §9.2), mapped back to the guest's
/// ID on the way back; an answer is taken only from the upstream it was sent to, with a matching
/// ID and question. The control plane reaches it through a `LoopBound`.
public final class DNSForwarder {
    /// What the forwarder has done since it started.
    public struct Counters: Hashable, Sendable {
        /// Queries handed to `handle`.
        public var queries = 0
        /// Queries for the local names, answered here.
        public var localAnswers = 0
        /// Queries answered NXDOMAIN by the sandbox's DNS policy.
        public var denied = 0
        /// Queries sent upstream (once each, however many upstreams were tried).
        public var forwarded = 0
        /// Upstream answers relayed to a guest.
        public var answered = 0
        /// Attempts that got no answer in time.
        public var upstreamTimeouts = 0
        /// SERVFAIL replies the forwarder made itself: every upstream failed, none is
        /// configured, or the outstanding caps were reached.
        public var servfail = 0
        /// Of those, the ones refused because of the outstanding caps.
        public var overCapacity = 0
        /// Replies cut to the header and question with TC set, for the guest to retry over TCP.
        public var truncated = 0
        /// Malformed queries answered FORMERR.
        public var formatErrors = 0
        /// Queries answered NOTIMP (an opcode other than QUERY) or BADVERS (EDNS version > 0).
        public var unsupported = 0
        /// Input dropped without a reply: shorter than a header, or a response, not a query.
        public var dropped = 0
        /// Datagrams from upstream that matched no outstanding query (wrong ID, sender or
        /// question, or unreadable), dropped.
        public var unmatchedResponses = 0
        /// Upstream sends that failed at once (the next upstream is tried).
        public var sendFailures = 0
        /// Truncated UDP answers asked again over TCP, because the guest could take more.
        public var tcpRetries = 0
        /// Of those, the ones that failed (no connection, timeout, closed early, wrong answer):
        /// the guest got the truncated UDP answer instead.
        public var tcpRetryFailures = 0
    }

    /// One guest query waiting for an upstream.
    private final class Outstanding {
        /// The guest's query as it arrived, for SERVFAIL and the question check.
        let guestQuery: [UInt8]
        /// What goes upstream: the query with our ID and an OPT record sized for the guest.
        var upstreamQuery: [UInt8]
        let guestID: UInt16
        let limit: Int
        let guestHasEDNS: Bool
        /// We added the OPT record (the guest sent none but can take more than 512 bytes), so it
        /// comes out of the answer again.
        let addedOPT: Bool
        /// The payload size the UDP query asks upstream for (512 without an OPT record).
        let askedSize: Int
        let client: UInt64
        let reply: ([UInt8]) -> Void
        var upstream = 0
        var id: UInt16 = 0
        var timer: EventLoop.TimerID?
        /// The exchange over TCP that follows a truncated UDP answer, while it runs.
        var tcp: DNSUpstreamTCP?
        /// That truncated UDP answer, for the guest if the TCP exchange fails.
        var truncatedAnswer: [UInt8] = []
        /// The asking sandbox's descriptor budget (`DNSQueryContext.descriptors`).
        var descriptors: DescriptorBudget?

        init(
            guestQuery: [UInt8], upstreamQuery: [UInt8], guestID: UInt16, limit: Int, guestHasEDNS: Bool,
            addedOPT: Bool, askedSize: Int, client: UInt64, reply: @escaping ([UInt8]) -> Void
        ) {
            self.guestQuery = guestQuery
            self.upstreamQuery = upstreamQuery
            self.guestID = guestID
            self.limit = limit
            self.guestHasEDNS = guestHasEDNS
            self.addedOPT = addedOPT
            self.askedSize = askedSize
            self.client = client
            self.reply = reply
        }
    }

    public let loop: EventLoop
    public let configuration: DNSConfiguration
    public private(set) var counters = Counters()

    private var outstanding: [UInt16: Outstanding] = [:]
    private var perClient: [UInt64: Int] = [:]
    private var sockets: [Int32: DNSUpstreamSocket] = [:]
    private let timeout: UInt64
    /// Replies are built here; upstream datagrams land in `receiveBuffer`.
    private let scratch: UnsafeMutableRawBufferPointer
    private let receiveBuffer: UnsafeMutableRawBufferPointer
    /// Datagrams read per wake-up before other fds of the shard get a turn.
    private let batchSize = 64
    private var closed = false

    public init(loop: EventLoop, configuration: DNSConfiguration) {
        self.loop = loop
        self.configuration = configuration
        timeout = configuration.attemptTimeoutNanoseconds
        scratch = .allocate(byteCount: 65536, alignment: 8)
        receiveBuffer = .allocate(byteCount: 65536, alignment: 8)
    }

    deinit {
        scratch.deallocate()
        receiveBuffer.deallocate()
    }

    /// Queries waiting for an upstream.
    public var outstandingCount: Int { outstanding.count }

    /// Answers one query from a guest. `reply` is called on the loop thread with the reply's
    /// bytes, at most once, and may be called before `handle` returns; it is never called for
    /// input that is dropped (too short for a DNS header, or a response) or once the query is
    /// forgotten (`forget(client:)`, `close()`).
    /// - Returns: false when the input was dropped and no reply will come (a TCP caller closes
    ///   the connection then).
    @discardableResult
    public func handle(
        query bytes: UnsafeRawBufferPointer, context: DNSQueryContext, reply: @escaping ([UInt8]) -> Void
    ) -> Bool {
        loop.assertInLoop()
        counters.queries += 1
        guard !closed, let header = try? DNSHeader.parse(bytes), !header.isResponse else {
            counters.dropped += 1
            return false
        }
        handle(header, bytes, context: context, reply)
        return true
    }

    private func handle(
        _ header: DNSHeader, _ bytes: UnsafeRawBufferPointer, context: DNSQueryContext, _ reply: @escaping ([UInt8]) -> Void
    ) {
        guard let query = try? DNSMessage.parse(bytes) else {
            // RFC 1035 §4.1.1: FORMERR; only the header can be trusted, so only it comes back.
            counters.formatErrors += 1
            let response = DNSHeader(
                id: header.id, isResponse: true, opcode: header.opcode, recursionDesired: header.recursionDesired,
                recursionAvailable: true, rcode: UInt8(truncatingIfNeeded: DNSResponseCode.formatError.rawValue)
            )
            let n = (try? response.emit(into: scratch)) ?? 0
            reply(Array(UnsafeRawBufferPointer(rebasing: scratch[..<n])))
            return
        }
        guard header.opcode == .query else {
            counters.unsupported += 1
            return replyError(.notImplemented, to: query, reply)
        }
        // RFC 9619: a QUERY carries exactly one question.
        guard header.questionCount == 1, let question = query.question else {
            counters.formatErrors += 1
            return replyError(.formatError, to: query, reply)
        }
        if let edns = query.edns, edns.version != 0 {
            // RFC 6891 §6.1.3: we speak version 0 only.
            counters.unsupported += 1
            return replyError(.badVersion, to: query, reply)
        }
        let limit = context.replyLimit(for: query)
        if context.policy.denies(question.name) {
            counters.denied += 1
            return replyError(.nameError, to: query, reply, limit: limit)
        }
        if isLocalName(question.name) {
            counters.localAnswers += 1
            return answerLocally(query, question: question, context: context, limit: limit, reply)
        }
        forward(query, context: context, limit: limit, reply)
    }

    /// Drops every query of `client` (a sandbox going away) without replying.
    public func forget(client: UInt64) {
        loop.assertInLoop()
        for (id, entry) in outstanding where entry.client == client {
            if let timer = entry.timer { loop.cancel(timer) }
            entry.tcp?.cancel()
            entry.tcp = nil
            outstanding[id] = nil
        }
        perClient[client] = nil
    }

    /// Unregisters and closes the upstream sockets and drops every outstanding query without
    /// replying; later queries are dropped. Call on the loop thread before letting go of it.
    public func close() {
        loop.assertInLoop()
        closed = true
        for entry in outstanding.values {
            if let timer = entry.timer { loop.cancel(timer) }
            entry.tcp?.cancel()
            entry.tcp = nil
        }
        outstanding.removeAll()
        perClient.removeAll()
        for socket in sockets.values { loop.unregister(fd: socket.fd) }
        sockets.removeAll()
    }

    // MARK: - Local answers

    private func isLocalName(_ name: DNSName) -> Bool {
        for alias in configuration.localNames where name.matches(alias) { return true }
        return false
    }

    /// A and AAAA from the sandbox's gateway addresses; any other type (or a family the sandbox
    /// lacks) is NOERROR with no answers, since the name itself exists.
    private func answerLocally(
        _ query: DNSMessage, question: DNSQuestion, context: DNSQueryContext, limit: Int, _ reply: ([UInt8]) -> Void
    ) {
        guard var builder = try? DNSResponseBuilder(
            respondingTo: query, into: scratch, authoritative: true,
            advertisedPayloadSize: configuration.advertisedPayloadSize, limit: limit
        ) else { return }
        let ttl = configuration.localTTL
        if question.qclass == .internet || question.qclass == .any {
            let wantsA = question.type == .a || question.type == .any
            let wantsAAAA = question.type == .aaaa || question.type == .any
            if wantsA, let v4 = context.gatewayIPv4 { builder.appendA(v4, ttl: ttl) }
            if wantsAAAA, let v6 = context.gatewayIPv6 { builder.appendAAAA(v6, ttl: ttl) }
        }
        if builder.isTruncated { counters.truncated += 1 }
        let n = builder.finish()
        reply(Array(UnsafeRawBufferPointer(rebasing: scratch[..<n])))
    }

    private func replyError(
        _ code: DNSResponseCode, to query: DNSMessage, _ reply: ([UInt8]) -> Void, limit: Int? = nil
    ) {
        guard var builder = try? DNSResponseBuilder(
            respondingTo: query, into: scratch, responseCode: code,
            advertisedPayloadSize: configuration.advertisedPayloadSize, limit: limit
        ) else { return }
        let n = builder.finish()
        reply(Array(UnsafeRawBufferPointer(rebasing: scratch[..<n])))
    }

    /// SERVFAIL for a query we hold a copy of.
    private func replyServerFailure(_ entry: Outstanding) {
        counters.servfail += 1
        entry.guestQuery.withUnsafeBytes { bytes in
            guard let query = try? DNSMessage.parse(bytes) else { return }
            replyError(.serverFailure, to: query, entry.reply, limit: entry.limit)
        }
    }

    // MARK: - Forwarding

    private func forward(
        _ query: DNSMessage, context: DNSQueryContext, limit: Int, _ reply: @escaping ([UInt8]) -> Void
    ) {
        let guestQuery = Array(UnsafeRawBufferPointer(rebasing: query.bytes[..<query.endOffset]))
        var upstreamQuery = guestQuery
        var addedOPT = false
        var askedSize = query.edns?.effectivePayloadSize ?? 512
        // Ask upstream for what the guest can take, no more (the guest's UDP limit) and no less
        // (a TCP guest that advertised 512 or nothing): the guest's OPT record with that size
        // (its options and flags kept), or ours when it sent none but can take more than 512.
        let wanted = UInt16(max(min(limit, Int(configuration.upstreamPayloadSize)), 512))
        var opt = query.edns ?? (limit > 512 ? DNSEDNS(udpPayloadSize: wanted) : nil)
        opt?.udpPayloadSize = wanted
        if let opt, let n = try? query.emit(into: scratch, replacingOPTWith: opt) {
            upstreamQuery = Array(UnsafeRawBufferPointer(rebasing: scratch[..<n]))
            addedOPT = query.edns == nil
            askedSize = Int(wanted)
        }
        let entry = Outstanding(
            guestQuery: guestQuery, upstreamQuery: upstreamQuery, guestID: query.header.id, limit: limit,
            guestHasEDNS: query.edns != nil, addedOPT: addedOPT, askedSize: askedSize, client: context.client,
            reply: reply
        )
        entry.descriptors = context.descriptors
        guard !configuration.upstreams.isEmpty else { return replyServerFailure(entry) }
        guard outstanding.count < configuration.maxOutstanding,
              perClient[context.client, default: 0] < configuration.maxOutstandingPerClient else {
            counters.overCapacity += 1
            return replyServerFailure(entry)
        }
        counters.forwarded += 1
        perClient[context.client, default: 0] += 1
        attempt(entry, from: 0)
    }

    /// Sends `entry` to the first upstream from `index` on that takes it; SERVFAIL when none does.
    private func attempt(_ entry: Outstanding, from index: Int) {
        var i = index
        while i < configuration.upstreams.count {
            let (address, port) = configuration.upstreams[i]
            i += 1
            guard let socket = socket(for: address) else {
                counters.sendFailures += 1
                continue
            }
            let id = freshID()
            entry.upstreamQuery.withUnsafeMutableBytes { query in try? DNSHeader.edit(query) { $0.id = id } }
            let sent = entry.upstreamQuery.withUnsafeBytes { bytes in
                Result { () throws(Errno) in try socket.send(bytes, to: SocketAddress(address, port: port)) }
            }
            guard case .success = sent else {
                counters.sendFailures += 1
                continue
            }
            entry.upstream = i - 1
            entry.id = id
            outstanding[id] = entry
            entry.timer = loop.schedule(at: monotonicNanoseconds() + timeout) { [weak self] in
                self?.attemptTimedOut(entry, id: id)
            }
            return
        }
        release(entry)
        replyServerFailure(entry)
    }

    private func attemptTimedOut(_ entry: Outstanding, id: UInt16) {
        guard outstanding[id] === entry else { return }
        counters.upstreamTimeouts += 1
        entry.timer = nil
        if let tcp = entry.tcp {
            tcp.cancel()
            return tcpRetryFailed(entry)
        }
        outstanding[id] = nil
        attempt(entry, from: entry.upstream + 1)
    }

    /// A random ID no outstanding attempt uses. The table is capped far below 65536 entries,
    /// so this ends after a try or two.
    private func freshID() -> UInt16 {
        while true {
            let id = UInt16.random(in: 0...UInt16.max)
            if outstanding[id] == nil { return id }
        }
    }

    /// Forgets the per-client count of an entry that is done.
    private func release(_ entry: Outstanding) {
        let left = perClient[entry.client, default: 1] - 1
        perClient[entry.client] = left > 0 ? left : nil
    }

    /// The socket for `address`'s family, opened and registered on first use.
    private func socket(for address: IPAddress) -> DNSUpstreamSocket? {
        let family = DNSUpstreamSocket.family(of: address)
        if let socket = sockets[family] { return socket }
        guard let socket = try? DNSUpstreamSocket(family: family) else { return nil }
        do {
            try loop.register(fd: socket.fd, events: EPOLLIN.rawValue) { [weak self, weak socket] _ in
                if let self, let socket { self.readResponses(socket) }
            }
        } catch {
            return nil
        }
        sockets[family] = socket
        return socket
    }

    // MARK: - Upstream answers

    private func readResponses(_ socket: DNSUpstreamSocket) {
        for _ in 0..<batchSize {
            guard let (n, sender) = try? socket.receive(into: receiveBuffer) else { return }
            guard let sender else { continue }
            handleResponse(count: n, from: sender.ip, port: sender.port)
        }
    }

    private func handleResponse(count n: Int, from address: IPAddress, port: UInt16) {
        let bytes = UnsafeRawBufferPointer(rebasing: receiveBuffer[..<n])
        guard let header = try? DNSHeader.parse(bytes), let entry = outstanding[header.id], entry.tcp == nil,
              configuration.upstreams[entry.upstream].0 == address, configuration.upstreams[entry.upstream].1 == port,
              let response = try? DNSMessage.parse(bytes), response.header.isResponse,
              questionMatches(response, entry) else {
            counters.unmatchedResponses += 1
            return
        }
        if let timer = entry.timer { loop.cancel(timer) }
        entry.timer = nil
        // RFC 7766 §5: a truncated answer is asked again over TCP, when the guest can take more
        // than we could ask for over UDP.
        if response.header.truncated && entry.limit > entry.askedSize {
            return retryOverTCP(entry, truncated: bytes)
        }
        outstanding[entry.id] = nil
        finish(response, in: receiveBuffer, entry)
    }

    /// Relays an answer that came from the entry's current upstream, or moves on to the next.
    private func finish(_ response: DNSMessage, in buffer: UnsafeMutableRawBufferPointer, _ entry: Outstanding) {
        let code = response.responseCode
        // Another upstream may do better (what the resolver library does with these codes).
        if (code == .serverFailure || code == .refused) && entry.upstream + 1 < configuration.upstreams.count {
            return attempt(entry, from: entry.upstream + 1)
        }
        release(entry)
        counters.answered += 1
        deliver(response, in: buffer, entry)
    }

    // MARK: - Retry over TCP

    /// The same query (same ID, still reserved in `outstanding`) to the same upstream over TCP,
    /// under a fresh attempt timeout.
    private func retryOverTCP(_ entry: Outstanding, truncated: UnsafeRawBufferPointer) {
        counters.tcpRetries += 1
        entry.truncatedAnswer = Array(truncated)
        let (address, port) = configuration.upstreams[entry.upstream]
        let id = entry.id
        // The socket counts against the asking sandbox; without one left, the guest gets the
        // truncated answer (and may ask over TCP itself).
        var slot: DescriptorSlot?
        if let budget = entry.descriptors {
            guard let taken = budget.take() else { return tcpRetryFailed(entry) }
            slot = taken
        }
        entry.tcp = entry.upstreamQuery.withUnsafeBytes { query in
            DNSUpstreamTCP(loop: loop, query: query, to: address, port: port) { [weak self, weak entry] answer in
                guard let self, let entry, self.outstanding[id] === entry else { return }
                self.tcpAnswered(entry, answer)
            }
        }
        entry.tcp?.descriptor = slot
        entry.timer = loop.schedule(at: monotonicNanoseconds() + timeout) { [weak self] in
            self?.attemptTimedOut(entry, id: id)
        }
    }

    private func tcpAnswered(_ entry: Outstanding, _ answer: [UInt8]?) {
        entry.tcp = nil
        if let timer = entry.timer { loop.cancel(timer) }
        entry.timer = nil
        guard let answer, answer.count >= DNSHeader.length, answer.count <= receiveBuffer.count else {
            return tcpRetryFailed(entry)
        }
        answer.withUnsafeBytes { receiveBuffer.copyMemory(from: $0) }
        let bytes = UnsafeRawBufferPointer(rebasing: receiveBuffer[..<answer.count])
        guard let response = try? DNSMessage.parse(bytes), response.header.id == entry.id, response.header.isResponse,
              questionMatches(response, entry) else {
            counters.unmatchedResponses += 1
            return tcpRetryFailed(entry)
        }
        outstanding[entry.id] = nil
        finish(response, in: receiveBuffer, entry)
    }

    /// The TCP exchange failed: the guest gets the truncated UDP answer, TC set, with whatever
    /// records it holds. It knows the answer is partial, and a truncated answer tells it more
    /// than SERVFAIL would (the name exists, and what the upstream could fit).
    private func tcpRetryFailed(_ entry: Outstanding) {
        counters.tcpRetryFailures += 1
        outstanding[entry.id] = nil
        release(entry)
        let answer = entry.truncatedAnswer
        entry.truncatedAnswer = []
        answer.withUnsafeBytes { receiveBuffer.copyMemory(from: $0) }
        guard let response = try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: receiveBuffer[..<answer.count])) else {
            return replyServerFailure(entry)
        }
        counters.answered += 1
        deliver(response, in: receiveBuffer, entry)
    }

    /// The answer must be to the question we asked (RFC 5452 §9.1).
    private func questionMatches(_ response: DNSMessage, _ entry: Outstanding) -> Bool {
        guard response.header.questionCount == 1, let answered = response.question else { return false }
        return entry.guestQuery.withUnsafeBytes { bytes in
            guard let (asked, _) = try? DNSQuestion.parse(bytes, at: DNSHeader.length) else { return false }
            return asked.name == answered.name && asked.type == answered.type && asked.qclass == answered.qclass
        }
    }

    /// Relays an upstream answer under the guest's ID: without the OPT record we added, and cut
    /// to header and question with TC when larger than the guest can take.
    private func deliver(_ response: DNSMessage, in buffer: UnsafeMutableRawBufferPointer, _ entry: Outstanding) {
        var answer = UnsafeMutableRawBufferPointer(rebasing: buffer[..<response.endOffset])
        if entry.addedOPT, response.optRange?.upperBound == response.endOffset,
           let n = try? response.emit(into: scratch, replacingOPTWith: nil) {
            answer = UnsafeMutableRawBufferPointer(rebasing: scratch[..<n])
            // Extended codes cannot be said without the OPT record (RFC 6891 §6.1.3).
            if let edns = response.edns, edns.extendedRcode != 0 {
                try? DNSHeader.edit(answer) { $0.rcode = UInt8(DNSResponseCode.serverFailure.rawValue) }
            }
        }
        if answer.count <= entry.limit {
            try? DNSHeader.edit(answer) { $0.id = entry.guestID }
            entry.reply(Array(UnsafeRawBufferPointer(answer)))
            return
        }
        counters.truncated += 1
        // A guest that sent EDNS gets our OPT record in the reply (RFC 6891 §7).
        let opt = entry.guestHasEDNS
            ? DNSEDNS(udpPayloadSize: configuration.advertisedPayloadSize, extendedRcode: response.edns?.extendedRcode ?? 0)
            : nil
        guard let n = try? DNSResponseBuilder.emitTruncated(response, into: scratch, edns: opt) else { return }
        try? DNSHeader.edit(scratch) { $0.id = entry.guestID }
        entry.reply(Array(UnsafeRawBufferPointer(rebasing: scratch[..<n])))
    }
}
