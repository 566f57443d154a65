// Drives one sandbox's Stack from its device fd on a shard's event loop: reads frames in
// batches, polices what is not flow traffic, hands events to the layer above, writes the stack's
// frames back, keeps its timer.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack
import Wire

/// Confined to its loop's thread; the control plane reaches it through a `LoopBound` sandbox.
public final class StackDriver {
    public let loop: EventLoop
    public let fd: Int32
    public let stack: Stack
    /// Called on the loop thread with each stack event.
    public var onEvent: (StackEvent) -> Void = { _ in }

    private var timer: EventLoop.TimerID?
    private var timerDeadline: UInt64?
    /// The shard's (see `EventLoop.frameReadBuffer`).
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Frames, and bytes, read per wake-up before the other fds of the shard get their turn
    /// (the device's watch is level-triggered, so what is left is read on the next pass). The
    /// byte bound keeps one busy sandbox's turn short when its frames are 64 KB segments: 128
    /// of those held every other sandbox on the shard for milliseconds. With eight sandboxes
    /// loading the shards, another one's round trip took ~10 ms at 128 frames a turn and
    /// 0.05–3 ms at 64 KB (with the shards' raised priority), at the same throughput
    /// (Tools/README-bench-many.md).
    public var batchSize = 128
    public var batchBytes = 64 * 1024

    /// Drops what is not flow traffic past the sandbox's rate, and leaves a flooding guest's
    /// device unread for a while; nil: every frame goes to the stack.
    var policer: FramePolicer?
    /// Where the Ethernet header starts in a read, and the addresses the triage checks.
    private let linkOffset: Int
    private let gatewayMAC: MACAddress
    private let guestMAC: MACAddress?
    /// The device is left unread until this timer fires (a flooding guest).
    private var resumeTimer: EventLoop.TimerID?
    var policerCounters: FramePolicer.Counters { policer?.counters ?? .init() }

    public private(set) var readCalls = 0
    public private(set) var framesRead = 0
    public private(set) var writeFailures = 0
    private var running = false
    /// The captures running on this sandbox's link (`Gateway.startCapture`); empty, as it is
    /// nearly always, the data path pays one check per frame for them.
    var captures: [FrameCapture] = []

    public init(loop: EventLoop, fd: Int32, stack: Stack) {
        self.loop = loop
        self.fd = fd
        self.stack = stack
        readBuffer = loop.frameReadBuffer
        linkOffset = stack.configuration.vnetHeaderSize
        gatewayMAC = stack.configuration.gatewayMAC
        guestMAC = stack.configuration.guestMAC
        // One ACK per read batch, sent after the layer above consumed (so it carries the
        // reopened window) instead of one per 64 KB frame.
        stack.deferTCPOutput = true
    }

    /// Registers the device with the loop; call on the loop thread.
    public func start() throws(GatewayError) {
        try loop.register(fd: fd, events: EPOLLIN.rawValue) { [unowned self] _ in self.readFrames() }
        running = true
        rescheduleTimer()
    }

    /// Unregisters; the caller closes the fd.
    public func stop() {
        loop.assertInLoop()
        guard running else { return }
        running = false
        loop.unregister(fd: fd)
        if let timer { loop.cancel(timer) }
        timer = nil
        if let resumeTimer { loop.cancel(resumeTimer) }
        resumeTimer = nil
    }

    private func readFrames() {
        var frames = 0
        var bytes = 0
        var gone = false
        let refusedBefore = stack.counters.refused
        while frames < batchSize && bytes < batchBytes {
            let n = read(fd, readBuffer.baseAddress, readBuffer.count)
            readCalls += 1
            if n <= 0 {
                let e = errno
                // EBADFD: the device was deleted under us (ip link del, another daemon's sweep, its
                // namespace gone). Its fd then polls as an error for ever: stop watching it rather
                // than spin the shard.
                if n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR {
                    loop.unregister(fd: fd)
                    gone = true
                }
                break
            }
            frames += 1
            bytes += n
            if !captures.isEmpty { copyToCaptures(readBuffer.baseAddress, n, fromGuest: true) }
            let frame = UnsafeRawBufferPointer(rebasing: readBuffer[..<n])
            let now = monotonicNanoseconds()
            if policer != nil, !admit(frame, now: now) { continue }
            stack.receive(frame: frame, now: now)
        }
        framesRead += frames
        if policer != nil, !gone { police(frames: frames, refused: stack.counters.refused - refusedBefore) }
        afterWork()
    }

    /// The triage's first look, and the policer's say on anything that is not flow traffic.
    private func admit(_ frame: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        let kind: FrameTriage.Kind
        if let link = frame.checkedSlice(linkOffset, frame.count - linkOffset) {
            kind = FrameTriage.classify(link, gatewayMAC: gatewayMAC, guestMAC: guestMAC)
        } else {
            kind = .runt
        }
        return policer!.admit(kind, now: now)
    }

    /// The end of a turn: charges what the stack refused, and leaves the device unread (its
    /// watch asks for no events) while the guest floods. The watch is level-triggered, so
    /// whatever waits in the device's queue when it is watched again is seen at the next pass.
    private func police(frames: Int, refused: Int) {
        let now = monotonicNanoseconds()
        policer!.charge(refused: refused, now: now)
        let full = frames >= batchSize
        guard resumeTimer == nil, let until = policer!.endTurn(frames: frames, full: full, now: now) else { return }
        loop.modify(fd: fd, events: 0)
        resumeTimer = loop.schedule(at: until) { [unowned self] in
            self.resumeTimer = nil
            guard self.running else { return }
            self.loop.modify(fd: self.fd, events: EPOLLIN.rawValue)
        }
    }

    /// Delivers pending events, writes pending frames and re-arms the timer. The layer above
    /// calls this after it drove the stack (wrote to or read from a connection).
    public func afterWork() {
        loop.assertInLoop()
        var rounds = 0
        // Events can cause more events (accept → established); bounded so a bug cannot spin.
        while stack.hasEvents && rounds < 16 {
            stack.drainEvents(onEvent)
            rounds += 1
        }
        // The batch's deferred ACKs go out now that the layer above has consumed what it could.
        stack.flushDeferredTCP(now: monotonicNanoseconds())
        while stack.hasEvents && rounds < 32 {
            stack.drainEvents(onEvent)
            rounds += 1
        }
        flushOutput()
        rescheduleTimer()
    }

    private func flushOutput() {
        stack.drainOutput(now: monotonicNanoseconds()) { frame in
            if !captures.isEmpty { copyToCaptures(frame.storage.baseAddress, frame.length, fromGuest: false) }
            let n = write(fd, frame.storage.baseAddress, frame.length)
            if n != frame.length { writeFailures += 1 }
        }
    }

    private func rescheduleTimer() {
        guard running else { return }
        let deadline = stack.nextDeadline
        if deadline == timerDeadline { return }
        if let timer { loop.cancel(timer) }
        timer = nil
        timerDeadline = deadline
        guard let deadline else { return }
        timer = loop.schedule(at: deadline) { [unowned self] in
            self.timer = nil
            self.timerDeadline = nil
            self.stack.poll(now: monotonicNanoseconds())
            self.afterWork()
        }
    }
}
