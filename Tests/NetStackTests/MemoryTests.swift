// Buffer memory: the chunk pool, chunked buffers, and TCP connections under a memory budget —
// memory follows the bytes held, windows never promise more than the budget, idle memory goes back.
import Testing
import Wire
@testable import NetStack

@Suite struct BufferPoolTests {
    @Test func freedChunksAreReusedBeforeNewOnesAreMapped() throws {
        let pool = BufferPool(chunkSize: 4096, slabChunks: 4, keepWarm: 0)
        let a = try #require(pool.take())
        let b = try #require(pool.take())
        #expect(pool.chunksInUse == 2)
        #expect(pool.mappedBytes == 4 * 4096)
        pool.give(b)
        #expect(pool.take() == b, "the chunk freed last is taken first (still in cache)")
        pool.give(a)
        pool.give(b)
        for _ in 0..<4 { _ = try #require(pool.take()) }
        #expect(pool.mappedBytes == 4 * 4096, "four chunks fit the first slab")
        _ = try #require(pool.take())
        #expect(pool.mappedBytes == 8 * 4096)
    }

    @Test func trimGivesBackOnlyChunksIdleForAWholeInterval() throws {
        let pool = BufferPool(chunkSize: 4096, slabChunks: 16, keepWarm: 2)
        let chunks = (0..<10).map { _ in pool.take()! }
        for c in chunks {
            c.storeBytes(of: 0xA5A5_A5A5, as: UInt32.self)
            pool.give(c)
        }
        // Freed during this interval: not idle for a whole one yet.
        #expect(pool.trim() == 0)
        #expect(pool.warmChunks == 10)
        // One taken and given back again in the next interval: the low-water mark is 9.
        let again = try #require(pool.take())
        pool.give(again)
        #expect(pool.trim() == 7 * 4096, "nine idle all along, two kept warm")
        #expect(pool.warmChunks == 3)
        #expect(pool.coldChunks == 16 - 10 + 7)
        #expect(pool.chunksReleased == 7)
        #expect(pool.residentBytes == 3 * 4096)
        // A released chunk's pages were really given back: it reads as zeros when taken again.
        var zeroed = 0
        var taken: [UnsafeMutableRawPointer] = []
        while pool.warmChunks > 0 { taken.append(pool.take()!) }
        while let c = pool.take() {
            taken.append(c)
            if chunks.contains(c) && c.load(as: UInt32.self) == 0 { zeroed += 1 }
            if taken.count == 16 { break }
        }
        #expect(zeroed == 7)
    }
}

@Suite struct ChunkedBufferTests {
    @Test func bytesCrossChunkBoundariesIntact() {
        let pool = BufferPool(chunkSize: 4096)
        let budget = MemoryBudget.unlimited()
        let buffer = ChunkedBuffer(capacity: 100_000, pool: pool, budget: budget)
        let data = bytes(10_000, seed: 3)
        #expect(data.withUnsafeBytes { buffer.append($0) } == 10_000)
        #expect(buffer.heldBytes == 3 * 4096)
        #expect(budget.heldBytes == 3 * 4096)
        let regions = buffer.readableRegions()
        #expect(regions.count == 3)
        #expect(regions.byteCount == 10_000)
        #expect(regions.bytes() == data)
        var middle = [UInt8](repeating: 0, count: 5000)
        #expect(middle.withUnsafeMutableBytes { buffer.peek(into: $0, at: 3000) } == 5000)
        #expect(middle == Array(data[3000..<8000]))
    }

    @Test func consumedChunksGoBackAndAnEmptyBufferHoldsNone() {
        let pool = BufferPool(chunkSize: 4096)
        let budget = MemoryBudget.unlimited()
        let buffer = ChunkedBuffer(capacity: 100_000, pool: pool, budget: budget)
        _ = bytes(12_288).withUnsafeBytes { buffer.append($0) }
        buffer.consume(4096)
        #expect(buffer.heldBytes == 2 * 4096)
        buffer.consume(5000)
        #expect(buffer.heldBytes == 4096)
        buffer.consume(buffer.count)
        #expect(buffer.heldBytes == 0)
        #expect(pool.chunksInUse == 0)
        #expect(budget.heldBytes == 0)
        #expect(budget.peakHeldBytes == 3 * 4096)
    }

    @Test func spaceOfferedToAReadAndNotFilledGoesBack() {
        let pool = BufferPool(chunkSize: 4096)
        let buffer = ChunkedBuffer(capacity: 1 << 20, pool: pool, budget: .unlimited())
        let regions = buffer.writableRegions(max: 1 << 20)
        #expect(regions.count == BufferRegions.capacity)
        #expect(regions.byteCount == BufferRegions.capacity * 4096)
        // A readv that filled one region and a bit of the next.
        regions[0].initializeMemory(as: UInt8.self, repeating: 7)
        regions[1].initializeMemory(as: UInt8.self, repeating: 8)
        buffer.commit(4096 + 100)
        #expect(buffer.count == 4196)
        #expect(buffer.heldBytes == 2 * 4096)
        #expect(pool.chunksInUse == 2)
        #expect(buffer.readableRegions().bytes() == [UInt8](repeating: 7, count: 4096) + [UInt8](repeating: 8, count: 100))
        _ = buffer.writableRegions(max: 50_000)
        buffer.releaseUnwritten()
        #expect(pool.chunksInUse == 2)
    }

    @Test func outOfOrderBytesHoldTheirChunksUntilReached() {
        let pool = BufferPool(chunkSize: 4096)
        let buffer = ChunkedBuffer(capacity: 1 << 20, pool: pool, budget: .unlimited())
        let late = bytes(100, seed: 9)
        #expect(late.withUnsafeBytes { buffer.write($0, at: 20_000) } == 100)
        #expect(buffer.count == 0)
        #expect(buffer.heldBytes == 5 * 4096, "the gap before the out-of-order bytes has memory for when it arrives")
        let early = bytes(20_000, seed: 1)
        #expect(early.withUnsafeBytes { buffer.write($0, at: 0) } == 20_000)
        buffer.commit(20_100)
        var out = [UInt8](repeating: 0, count: 20_100)
        #expect(out.withUnsafeMutableBytes { buffer.read(into: $0) } == 20_100)
        #expect(out == early + late)
        #expect(buffer.heldBytes == 0)
    }
}

@Suite struct TCPMemoryTests {
    /// The window a segment offers, in bytes (the harness negotiates window scale 7 for the guest;
    /// ours comes from the receive buffer size).
    func window(_ s: SentSegment, _ h: TCPHarness) -> Int { Int(s.window) << Int(TCPConfiguration().receiveWindowScale) }

    @Test func aNewConnectionOffersItsInitialWindowAndGrowsWhileTheGuestFillsIt() throws {
        let h = TCPHarness()
        let synAck = try #require(h.sent.first)
        #expect(Int(synAck.window) == TCPConfiguration().initialReceiveWindow)
        h.establish()
        var windows: [Int] = []
        for _ in 0..<40 {
            let ack = h.guest(payload: bytes(16_000))
            _ = h.readAll()
            h.poll()
            if let w = (ack + h.sent.suffix(1)).last.map({ window($0, h) }) { windows.append(w) }
        }
        #expect(windows.max() ?? 0 >= 512 * 1024, "the window grew from 32 KiB towards the buffer: \(windows)")
        #expect(h.conn.droppedOutOfWindow == 0)
    }

    @Test func windowsNeverPromiseMoreThanTheBudgetAndNothingWithinThemIsDropped() throws {
        let budget = MemoryBudget(limit: 80_000)
        // Three connections of one sandbox share the budget; the third's window is cut short.
        let conns = (0..<3).map { _ in TCPHarness(budget: budget) }
        for h in conns { h.establish() }
        #expect(budget.shortfalls > 0)
        // The guest sends everything each window allows and nobody reads.
        var sent = [0, 0, 0]
        for _ in 0..<50 {
            for (i, h) in conns.enumerated() {
                let last = try #require(h.sent.last)
                let room = Int(last.ack &+ UInt32(window(last, h)) &- h.guestSeq)
                guard room > 0 else { continue }
                h.guest(payload: bytes(min(room, 8000)))
                sent[i] += min(room, 8000)
            }
        }
        #expect(budget.reserved <= 80_000)
        for (i, h) in conns.enumerated() {
            #expect(h.conn.receiveBuffer.count == sent[i], "every byte sent within a window was kept")
            #expect(h.conn.droppedOutOfWindow == 0)
        }
        let total = sent.reduce(0, +)
        #expect(total <= 80_000)
        #expect(total > 70_000, "the budget was used: \(sent)")
        // Reads free budget; the windows reopen.
        #expect(conns[0].readAll().count == sent[0])
        let update = conns[0].poll()
        #expect(update.last.map { window($0, conns[0]) > 0 } == true)
    }

    @Test func timeWaitAndClosedConnectionsHoldNoBuffersNorReservations() throws {
        let pool = BufferPool(chunkSize: 4096)
        let budget = MemoryBudget(limit: 4 << 20)
        var cfg = TCPConfiguration()
        cfg.timeWait = .seconds(30)
        let h = TCPHarness(configuration: cfg, budget: budget, pool: pool)
        h.establish()
        h.guest(payload: bytes(20_000))
        #expect(h.write(bytes(200_000)) == 200_000)
        #expect(budget.heldBytes > 0)
        _ = h.readAll()
        // The guest acknowledges everything we sent as it arrives.
        for _ in 0..<100 {
            let out = h.poll()
            guard let last = (out.isEmpty ? h.sent.suffix(1) : out[...]).last else { break }
            h.guest(ack: last.seq &+ UInt32(last.payload.count))
            if h.conn.sendBuffer.isEmpty { break }
        }
        #expect(h.conn.sendBuffer.isEmpty)
        h.conn.shutdownWrite()
        let fin = try #require(h.poll().first { $0.flags.contains(.fin) })
        h.guest(ack: fin.seq &+ 1)
        h.guest(flags: [.fin, .ack])
        #expect(h.conn.state == .timeWait)
        #expect(budget.heldBytes == 0)
        #expect(budget.reserved == 0)
        #expect(pool.chunksInUse == 0)
        // Aborted with unread bytes and unsent ones: the stack's release leaves nothing.
        let budget2 = MemoryBudget(limit: 4 << 20)
        let g = TCPHarness(budget: budget2, pool: pool)
        g.establish()
        g.guest(payload: bytes(30_000))
        _ = g.write(bytes(100_000))
        g.conn.abort(emit: g.record)
        g.conn.releaseMemory()
        #expect(budget2.heldBytes == 0 && budget2.reserved == 0)
        #expect(pool.chunksInUse == 0)
    }

    @Test func writesStopAtTheBudgetAndResumeWhenAcknowledgementsFreeIt() throws {
        let budget = MemoryBudget(limit: 200_000)
        let h = TCPHarness(budget: budget)
        h.establish()
        let taken = h.write(bytes(1 << 20))
        #expect(taken > 0 && taken <= 200_000 - TCPConfiguration().initialReceiveWindow)
        #expect(h.conn.writableBytes == 0)
        #expect(h.conn.waitingForMemory)
        let out = h.poll()
        let last = try #require(out.last)
        h.guest(ack: last.seq &+ UInt32(last.payload.count))
        #expect(h.conn.writableBytes > 0, "acknowledged bytes went back to the budget")
    }
}

@Suite struct StackMemoryTests {
    /// One sandbox filling the shared budget leaves another's writes at zero; once it lets go,
    /// the other's connection is told it may write again (a `.writable` event), without any
    /// traffic of its own.
    @Test func aConnectionWaitingForSharedMemoryIsWokenWhenItFrees() throws {
        var cfg = StackConfiguration()
        cfg.offloads = false
        let shared = SharedMemoryBudget(limit: 300_000)
        let first = Stack(configuration: cfg, memoryBudget: MemoryBudget(limit: 1 << 20, shared: shared))
        let second = Stack(configuration: cfg, memoryBudget: MemoryBudget(limit: 1 << 20, shared: shared))
        let dst = IPv4Address(127, 0, 0, 1)
        var o = TCPOptions()
        o.mss = 1460
        var ids: [TCPFlowID] = []
        for s in [first, second] {
            s.receive(Guest.tcp(to: dst, dstPort: 80, seq: 100, flags: [.syn], options: o))
            guard case .tcpConnectionRequest(let id, _)? = s.events().first else {
                Issue.record("no connection request")
                return
            }
            s.tcpAccept(id, now: 1_000_000_000)
            let synAck = try #require(try s.sentFrames().first)
            let (h, _, _) = try synAck.tcp()
            s.receive(Guest.tcp(to: dst, dstPort: 80, seq: 101, ack: h.sequenceNumber &+ 1, flags: [.ack]))
            _ = s.events()
            ids.append(id)
        }
        let big = bytes(1 << 20)
        let wrote = big.withUnsafeBytes { first.tcpWrite(ids[0], $0, now: 1_000_000_000) }
        #expect(wrote > 100_000)
        #expect(second.tcpWritableBytes(ids[1]) == 0 || wrote + second.tcpWritableBytes(ids[1]) <= 300_000)
        let none = second.tcpWriteInPlace(ids[1], now: 1_000_000_000) { _ in Issue.record("no memory to offer"); return 0 }
        #expect(none == 0)
        _ = second.events()
        // The first sandbox's connection goes away: its memory returns to the shared budget.
        first.tcpAbort(ids[0])
        #expect(shared.reserved < 300_000 - 100_000)
        let retry = try #require(second.nextDeadline)
        second.poll(now: max(retry, 1_000_000_000) + Stack.memoryRetryInterval)
        let woke = second.events().contains { e in
            if case .tcp(let id, let ev) = e { return id == ids[1] && ev == .writable }
            return false
        }
        #expect(woke)
        #expect(second.tcpWritableBytes(ids[1]) > 0)
    }
}

@Suite struct FramePoolTests {
    /// Two stacks on one pool: the second reuses the frames the first's burst left, and frames
    /// idle for a whole trim interval are freed, down to the ones kept warm.
    @Test func stacksShareFramesAndIdleOnesAreFreed() throws {
        let pool = FramePool(keepWarm: 1)
        var cfg = StackConfiguration()
        cfg.offloads = false
        let a = Stack(configuration: cfg, framePool: pool)
        let b = Stack(configuration: cfg, framePool: pool)
        for i in 0..<5 { a.receive(Guest.arpRequest(for: cfg.gatewayIPv4), now: UInt64(i + 1)) }
        #expect(try a.sentFrames().count == 5)
        #expect(pool.allocated == 5)
        for i in 0..<5 { b.receive(Guest.arpRequest(for: cfg.gatewayIPv4), now: UInt64(i + 1)) }
        #expect(try b.sentFrames().count == 5)
        #expect(pool.allocated == 5, "the second stack's burst took the first's frames")
        #expect(pool.trim() == 0, "freed during this interval")
        #expect(pool.trim() == 4)
        #expect(pool.allocated == 1 && pool.freeFrames == 1)
    }
}
